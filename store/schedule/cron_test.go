package schedule

import (
	"strings"
	"testing"
	"time"
)

// members lists a set's values in [lo, hi].
func members(s valueSet, lo, hi int) []int {
	var out []int
	for v := lo; v <= hi; v++ {
		if s.has(v) {
			out = append(out, v)
		}
	}
	return out
}

func seq(lo, hi int) []int {
	var out []int
	for v := lo; v <= hi; v++ {
		out = append(out, v)
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// cronOfLength returns a valid expression of exactly n characters (n >= 24).
func cronOfLength(n int) string {
	const tail = " 0 * * ? *)"
	m := n - len("cron(") - len(tail) // length of the minutes field
	var b strings.Builder
	if m%2 == 0 {
		b.WriteString("00")
	} else {
		b.WriteString("0")
	}
	for b.Len() < m {
		b.WriteString(",0")
	}
	return "cron(" + b.String() + tail
}

func TestParseCronValid(t *testing.T) {
	type sets struct {
		minutes, hours, dom, months, dow, years []int
	}
	tests := []struct {
		expr  string
		byDOW bool
		want  sets // nil slices are not checked
	}{
		{"cron(0 10 * * ? *)", false, sets{minutes: []int{0}, hours: []int{10}, dom: seq(1, 31), months: seq(1, 12), years: seq(1970, 2199)}},
		{"cron(0 10 ? * * *)", true, sets{dow: seq(1, 7)}},
		{"cron(15 12 * * ? *)", false, sets{minutes: []int{15}, hours: []int{12}}},
		{"cron(0 18 ? * MON-FRI *)", true, sets{dow: []int{2, 3, 4, 5, 6}}},
		{"cron(0 18 ? * mon-fri *)", true, sets{dow: []int{2, 3, 4, 5, 6}}}, // names in any case
		{"cron(0 18 ? * 2-6 *)", true, sets{dow: []int{2, 3, 4, 5, 6}}},
		{"cron(0 9 ? * 1 *)", true, sets{dow: []int{1}}},
		{"cron(0 9 ? * SUN,SAT *)", true, sets{dow: []int{1, 7}}},
		{"cron(0 9 ? * 7 *)", true, sets{dow: []int{7}}},
		{"cron(0 0 ? * FRI-MON *)", true, sets{dow: []int{1, 2, 6, 7}}}, // wraps
		{"cron(0 0 ? * */2 *)", true, sets{dow: []int{1, 3, 5, 7}}},
		{"cron(0 0 1 JAN,Apr,jul,OCT ? *)", false, sets{dom: []int{1}, months: []int{1, 4, 7, 10}}},
		{"cron(0 0 1 1/3 ? *)", false, sets{months: []int{1, 4, 7, 10}}},
		{"cron(0 0 1 NOV-FEB ? *)", false, sets{months: []int{1, 2, 11, 12}}},
		{"cron(0 0 1 OCT-MAR/2 ? *)", false, sets{months: []int{2, 10, 12}}}, // 10, 12, 2 along the wrap
		{"cron(1/10 * * * ? *)", false, sets{minutes: []int{1, 11, 21, 31, 41, 51}, hours: seq(0, 23)}},
		{"cron(*/15 * * * ? *)", false, sets{minutes: []int{0, 15, 30, 45}}},
		{"cron(*/60 * * * ? *)", false, sets{minutes: []int{0}}},
		{"cron(5-20/5 * * * ? *)", false, sets{minutes: []int{5, 10, 15, 20}}},
		{"cron(0,30 8,20 * * ? *)", false, sets{minutes: []int{0, 30}, hours: []int{8, 20}}},
		{"cron(0 22-2 * * ? *)", false, sets{hours: []int{0, 1, 2, 22, 23}}},
		{"cron(0 */6 * * ? *)", false, sets{hours: []int{0, 6, 12, 18}}},
		{"cron(15 10-14/2 * * ? *)", false, sets{hours: []int{10, 12, 14}}},
		{"cron(0 0 28-3 * ? *)", false, sets{dom: []int{1, 2, 3, 28, 29, 30, 31}}},
		{"cron(0 0 1 1 ? 2024/4)", false, sets{years: []int{2024, 2028, 2032, 2036, 2040, 2044, 2048, 2052, 2056, 2060, 2064, 2068, 2072, 2076, 2080, 2084, 2088, 2092, 2096, 2100, 2104, 2108, 2112, 2116, 2120, 2124, 2128, 2132, 2136, 2140, 2144, 2148, 2152, 2156, 2160, 2164, 2168, 2172, 2176, 2180, 2184, 2188, 2192, 2196}}},
		{"cron(0 0 1 1 ? 1970,2199)", false, sets{years: []int{1970, 2199}}},
		{"cron(0 0 1 1 ? 2025-2027)", false, sets{years: []int{2025, 2026, 2027}}},
		{"cron(0 0 1 1 ? */100)", false, sets{years: []int{1970, 2070, 2170}}},
		{"cron(05 007 * * ? *)", false, sets{minutes: []int{5}, hours: []int{7}}}, // leading zeros
		{"cron(\t0  10 *\t* ? *  )", false, sets{minutes: []int{0}, hours: []int{10}}},
		{"cron( 0 10 * * ? * )", false, sets{minutes: []int{0}}},
		{"cron(*,5 0 * * ? *)", false, sets{minutes: seq(0, 59)}},
		{"cron(59,0,30,0 0 * * ? *)", false, sets{minutes: []int{0, 30, 59}}},
		{cronOfLength(maxCronLength), false, sets{minutes: []int{0}}},
	}
	for _, tc := range tests {
		c, err := ParseCron(tc.expr)
		if err != nil {
			t.Errorf("ParseCron(%q): %v", tc.expr, err)
			continue
		}
		if c.byDOW != tc.byDOW {
			t.Errorf("ParseCron(%q): byDOW = %v, want %v", tc.expr, c.byDOW, tc.byDOW)
		}
		check := func(name string, s valueSet, lo, hi int, want []int) {
			if want == nil {
				return
			}
			if got := members(s, lo, hi); !equalInts(got, want) {
				t.Errorf("ParseCron(%q): %s = %v, want %v", tc.expr, name, got, want)
			}
		}
		check("minutes", c.minutes, 0, 59, tc.want.minutes)
		check("hours", c.hours, 0, 23, tc.want.hours)
		check("day-of-month", c.dom, 1, 31, tc.want.dom)
		check("month", c.months, 1, 12, tc.want.months)
		check("day-of-week", c.dow, 1, 7, tc.want.dow)
		check("year", c.years, 1970, 2199, tc.want.years)
	}
}

func TestParseCronInvalid(t *testing.T) {
	tests := []struct {
		expr string
		want []string // substrings the error must contain
	}{
		{"", []string{"empty"}},
		{"0 10 * * ? *", []string{"expected cron("}},
		{"rate(5 minutes)", []string{"expected cron("}},
		{"CRON(0 10 * * ? *)", []string{"expected cron("}},
		{"cron(0 10 * * ? *", []string{"expected cron("}},
		{"cron(0 10 * * ? *) ", []string{"expected cron("}},
		{"cron()", []string{"6 fields", "got 0"}},
		{"cron(0 10 * * ?)", []string{"6 fields", "got 5"}},
		{"cron(0 0 10 * * ? *)", []string{"6 fields", "got 7"}},
		{"cron(0 10 * * * *)", []string{"day-of-month", "day-of-week", "exactly one", "'?'"}},
		{"cron(0 10 1 * MON *)", []string{"exactly one", "'?'"}},
		{"cron(0 10 ? * ? *)", []string{"both '?'"}},
		{"cron(? 10 * * ? *)", []string{"minutes field", "'?' is only allowed"}},
		{"cron(0 ? * * ? *)", []string{"hours field", "'?'"}},
		{"cron(0 0 * ? ? *)", []string{"month field", "'?'"}},
		{"cron(0 0 * * ? ?)", []string{"year field", "'?'"}},
		{"cron(0 0 ?,1 * ? *)", []string{"day-of-month field", "'?' must be the whole field"}},
		{"cron(60 10 * * ? *)", []string{"minutes field", "60 out of range 0-59"}},
		{"cron(0 24 * * ? *)", []string{"hours field", "24 out of range 0-23"}},
		{"cron(0 0 0 * ? *)", []string{"day-of-month field", "0 out of range 1-31"}},
		{"cron(0 0 32 * ? *)", []string{"day-of-month field", "32 out of range"}},
		{"cron(0 0 1 0 ? *)", []string{"month field", "0 out of range 1-12"}},
		{"cron(0 0 1 13 ? *)", []string{"month field", "13 out of range"}},
		{"cron(0 0 ? * 0 *)", []string{"day-of-week field", "0 out of range 1-7"}},
		{"cron(0 0 ? * 8 *)", []string{"day-of-week field", "8 out of range"}},
		{"cron(0 0 1 1 ? 1969)", []string{"year field", "1969 out of range 1970-2199"}},
		{"cron(0 0 1 1 ? 2200)", []string{"year field", "2200 out of range"}},
		{"cron(0 0 1 1 ? 2030-2020)", []string{"year field", "backwards"}},
		{"cron(0 0 L * ? *)", []string{"day-of-month field", "not supported"}},
		{"cron(0 0 l * ? *)", []string{"day-of-month field", "not supported"}},
		{"cron(0 0 15W * ? *)", []string{"day-of-month field", "not supported"}},
		{"cron(0 0 LW * ? *)", []string{"day-of-month field", "not supported"}},
		{"cron(0 0 L-3 * ? *)", []string{"day-of-month field", "not supported"}},
		{"cron(0 0 ? * L *)", []string{"day-of-week field", "not supported"}},
		{"cron(0 0 ? * 6L *)", []string{"day-of-week field", "not supported"}},
		{"cron(0 0 ? * FRIL *)", []string{"day-of-week field", "not supported"}},
		{"cron(0 0 ? * 3#2 *)", []string{"day-of-week field", "'#'", "not supported"}},
		{"cron(0 0 ? * 3#2,6#3 *)", []string{"day-of-week field", "not supported"}},
		{"cron(L 0 * * ? *)", []string{"minutes field", "invalid value"}},
		{"cron(*/0 * * * ? *)", []string{"minutes field", "step 0 out of range 1-60"}},
		{"cron(*/61 * * * ? *)", []string{"minutes field", "step 61"}},
		{"cron(0 */25 * * ? *)", []string{"hours field", "step 25"}},
		{"cron(1/2/3 * * * ? *)", []string{"minutes field", "step"}},
		{"cron(*/ * * * ? *)", []string{"minutes field", "step", "missing number"}},
		{"cron(*/x * * * ? *)", []string{"minutes field", "step", "not a number"}},
		{"cron(1,,2 * * * ? *)", []string{"minutes field", "empty list item"}},
		{"cron(1, * * * ? *)", []string{"minutes field", "empty list item"}},
		{"cron(1- * * * ? *)", []string{"minutes field", "missing value"}},
		{"cron(-1 * * * ? *)", []string{"minutes field", "missing value"}},
		{"cron(1-2-3 * * * ? *)", []string{"minutes field"}},
		{"cron(a 0 * * ? *)", []string{"minutes field", "invalid value \"a\""}},
		{"cron(0x10 0 * * ? *)", []string{"minutes field", "not a number"}},
		{"cron(00000 0 * * ? *)", []string{"minutes field", "too large"}},
		{"cron(99999999999999999999 0 * * ? *)", []string{"minutes field", "too large"}},
		{"cron(JAN 0 * * ? *)", []string{"minutes field", "invalid value"}},
		{"cron(0 0 * FOO ? *)", []string{"month field", "invalid value \"FOO\"", "JAN-DEC"}},
		{"cron(0 0 * JANUARY ? *)", []string{"month field", "invalid value"}},
		{"cron(0 0 ? * MON-FOO *)", []string{"day-of-week field", "invalid value", "SUN-SAT"}},
		{"cron(0 0 ? * JAN *)", []string{"day-of-week field", "invalid value"}},
		{"cron(0 0 1 1 ? 20x5)", []string{"year field", "not a number"}},
		{"cron(0 0 1 1 ? 3#1)", []string{"year field", "'#'"}},
		{cronOfLength(maxCronLength + 1), []string{"257 characters", "at most 256"}},
	}
	for _, tc := range tests {
		c, err := ParseCron(tc.expr)
		if err == nil {
			t.Errorf("ParseCron(%q) = %+v, want an error", tc.expr, c)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseCron(%q) error %q does not contain %q", tc.expr, err, w)
			}
		}
	}
}

func TestNext(t *testing.T) {
	var zero time.Time
	tests := []struct {
		name string
		expr string
		from time.Time
		want time.Time
	}{
		{"daily, before", "cron(0 10 * * ? *)", at(2024, 6, 1, 9, 59), at(2024, 6, 1, 10, 0)},
		{"daily, strictly after", "cron(0 10 * * ? *)", at(2024, 6, 1, 10, 0), at(2024, 6, 2, 10, 0)},
		{"seconds truncated, before", "cron(0 10 * * ? *)", time.Date(2024, 6, 1, 9, 59, 59, 999999999, time.UTC), at(2024, 6, 1, 10, 0)},
		{"seconds truncated, after", "cron(0 10 * * ? *)", time.Date(2024, 6, 1, 10, 0, 30, 0, time.UTC), at(2024, 6, 2, 10, 0)},
		{"non-UTC input", "cron(0 10 * * ? *)", time.Date(2024, 6, 1, 12, 30, 0, 0, time.FixedZone("CEST", 2*3600)), at(2024, 6, 2, 10, 0)},
		{"year rollover", "cron(15 12 * * ? *)", at(2024, 12, 31, 12, 15), at(2025, 1, 1, 12, 15)},
		{"every minute", "cron(* * * * ? *)", at(2024, 12, 31, 23, 59), at(2025, 1, 1, 0, 0)},

		// month ends
		{"31st skips April", "cron(0 0 31 * ? *)", at(2024, 4, 1, 0, 0), at(2024, 5, 31, 0, 0)},
		{"31st skips February", "cron(0 0 31 * ? *)", at(2024, 1, 31, 0, 0), at(2024, 3, 31, 0, 0)},
		{"30th skips February", "cron(0 0 30 * ? *)", at(2024, 1, 30, 0, 0), at(2024, 3, 30, 0, 0)},
		{"31st across the year", "cron(0 0 31 * ? *)", at(2024, 12, 31, 0, 0), at(2025, 1, 31, 0, 0)},
		{"last hour of month", "cron(30 23 30 * ? *)", at(2024, 9, 30, 23, 0), at(2024, 9, 30, 23, 30)},

		// leap years
		{"29 Feb after a leap day", "cron(0 12 29 2 ? *)", at(2024, 3, 1, 0, 0), at(2028, 2, 29, 12, 0)},
		{"29 Feb from a common year", "cron(0 12 29 2 ? *)", at(2023, 1, 1, 0, 0), at(2024, 2, 29, 12, 0)},
		{"2100 is not leap", "cron(0 0 29 FEB ? 2097-2104)", at(2097, 1, 1, 0, 0), at(2104, 2, 29, 0, 0)},
		{"2000 is leap", "cron(0 0 29 FEB ? *)", at(1999, 6, 1, 0, 0), at(2000, 2, 29, 0, 0)},
		{"30 Feb never", "cron(0 0 30 2 ? *)", at(2024, 1, 1, 0, 0), zero},
		{"31 Apr/Jun/Sep/Nov never", "cron(0 0 31 APR,JUN,SEP,NOV ? *)", at(2024, 1, 1, 0, 0), zero},
		{"29 Feb only in common years", "cron(0 0 29 2 ? 2025-2027)", at(2024, 1, 1, 0, 0), zero},

		// day-of-week numbering: 1 = SUN ... 7 = SAT. 2024-06-01 is a Saturday.
		{"1 is Sunday", "cron(0 9 ? * 1 *)", at(2024, 6, 1, 0, 0), at(2024, 6, 2, 9, 0)},
		{"SUN is Sunday", "cron(0 9 ? * SUN *)", at(2024, 6, 1, 0, 0), at(2024, 6, 2, 9, 0)},
		{"7 is Saturday", "cron(0 9 ? * 7 *)", at(2024, 6, 2, 0, 0), at(2024, 6, 8, 9, 0)},
		{"7 is Saturday, same day", "cron(0 9 ? * 7 *)", at(2024, 6, 1, 0, 0), at(2024, 6, 1, 9, 0)},
		{"2 is Monday", "cron(0 9 ? * 2 *)", at(2024, 6, 1, 0, 0), at(2024, 6, 3, 9, 0)},
		{"MON-FRI from Friday evening", "cron(0 18 ? * MON-FRI *)", at(2024, 6, 7, 18, 0), at(2024, 6, 10, 18, 0)},
		{"2-6 from Friday evening", "cron(0 18 ? * 2-6 *)", at(2024, 6, 7, 18, 0), at(2024, 6, 10, 18, 0)},
		{"MON-FRI midweek", "cron(0 18 ? * MON-FRI *)", at(2024, 6, 4, 18, 0), at(2024, 6, 5, 18, 0)},
		{"FRI-MON from Tuesday", "cron(0 0 ? * FRI-MON *)", at(2024, 6, 4, 0, 0), at(2024, 6, 7, 0, 0)},
		{"FRI-MON Saturday to Sunday", "cron(0 0 ? * FRI-MON *)", at(2024, 6, 8, 0, 0), at(2024, 6, 9, 0, 0)},
		{"FRI-MON Monday to Friday", "cron(0 0 ? * FRI-MON *)", at(2024, 6, 10, 0, 0), at(2024, 6, 14, 0, 0)},
		{"Mondays Nov-Feb", "cron(0 0 ? NOV-FEB 2 *)", at(2024, 3, 1, 0, 0), at(2024, 11, 4, 0, 0)},
		{"day-of-week ignores day-of-month", "cron(0 0 ? * 4 *)", at(2024, 2, 28, 0, 0), at(2024, 3, 6, 0, 0)}, // Wed 28 Feb -> Wed 6 Mar
		{"any day via day-of-week *", "cron(0 0 ? * * *)", at(2024, 2, 28, 0, 0), at(2024, 2, 29, 0, 0)},

		// year limits
		{"last year's first minute", "cron(0 0 1 1 ? 2199)", at(2198, 6, 1, 0, 0), at(2199, 1, 1, 0, 0)},
		{"last year exhausted", "cron(0 0 1 1 ? 2199)", at(2199, 1, 1, 0, 0), zero},
		{"very last minute", "cron(59 23 31 12 ? *)", at(2199, 12, 31, 23, 58), at(2199, 12, 31, 23, 59)},
		{"after the very last minute", "cron(59 23 31 12 ? *)", at(2199, 12, 31, 23, 59), zero},
		{"beyond 2199", "cron(* * * * ? *)", at(2300, 1, 1, 0, 0), zero},
		{"before 1970", "cron(* * * * ? *)", at(1960, 5, 5, 5, 5), at(1970, 1, 1, 0, 0)},
		{"first year", "cron(0 0 1 1 ? 1970)", at(1969, 12, 31, 23, 59), at(1970, 1, 1, 0, 0)},
		{"first year exhausted", "cron(0 0 1 1 ? 1970)", at(1970, 1, 1, 0, 0), zero},
		{"year list jumps", "cron(0 12 31 DEC ? 2024,2030)", at(2025, 1, 1, 0, 0), at(2030, 12, 31, 12, 0)},
		{"year range ended", "cron(0 0 * * ? 2020-2023)", at(2024, 1, 1, 0, 0), zero},

		// steps and lists
		{"1/10 minutes", "cron(1/10 * * * ? *)", at(2024, 6, 1, 10, 5), at(2024, 6, 1, 10, 11)},
		{"1/10 minutes, next hour", "cron(1/10 * * * ? *)", at(2024, 6, 1, 10, 51), at(2024, 6, 1, 11, 1)},
		{"*/15 minutes", "cron(*/15 * * * ? *)", time.Date(2024, 6, 1, 10, 44, 59, 0, time.UTC), at(2024, 6, 1, 10, 45)},
		{"*/15 minutes, on the mark", "cron(*/15 * * * ? *)", at(2024, 6, 1, 10, 45), at(2024, 6, 1, 11, 0)},
		{"*/6 hours", "cron(0 */6 * * ? *)", at(2024, 6, 1, 5, 0), at(2024, 6, 1, 6, 0)},
		{"*/6 hours, next day", "cron(0 */6 * * ? *)", at(2024, 6, 1, 18, 0), at(2024, 6, 2, 0, 0)},
		{"10-14/2 hours", "cron(15 10-14/2 * * ? *)", at(2024, 6, 1, 10, 15), at(2024, 6, 1, 12, 15)},
		{"10-14/2 hours, next day", "cron(15 10-14/2 * * ? *)", at(2024, 6, 1, 14, 15), at(2024, 6, 2, 10, 15)},
		{"quarterly", "cron(0 0 1 1/3 ? *)", at(2024, 1, 1, 0, 0), at(2024, 4, 1, 0, 0)},
		{"quarterly, next year", "cron(0 0 1 1/3 ? *)", at(2024, 10, 1, 0, 0), at(2025, 1, 1, 0, 0)},
		{"every 4 years", "cron(0 0 1 1 ? 2024/4)", at(2024, 1, 1, 0, 0), at(2028, 1, 1, 0, 0)},
		{"every 4 years runs out", "cron(0 0 1 1 ? 2196/4)", at(2196, 1, 1, 0, 0), zero},
		{"list of minutes and hours", "cron(0,30 8,20 * * ? *)", at(2024, 6, 1, 8, 30), at(2024, 6, 1, 20, 0)},
		{"list, next day", "cron(0,30 8,20 * * ? *)", at(2024, 6, 1, 20, 30), at(2024, 6, 2, 8, 0)},
		{"hours wrap 22-2", "cron(0 22-2 * * ? *)", at(2024, 6, 1, 23, 0), at(2024, 6, 2, 0, 0)},
		{"hours wrap 22-2, gap", "cron(0 22-2 * * ? *)", at(2024, 6, 1, 2, 0), at(2024, 6, 1, 22, 0)},
		{"day-of-month wrap 28-3", "cron(0 0 28-3 * ? *)", at(2024, 2, 29, 0, 0), at(2024, 3, 1, 0, 0)},
		{"lower-case month", "cron(30 2 15 jan ? *)", at(2024, 6, 1, 0, 0), at(2025, 1, 15, 2, 30)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCron(tc.expr)
			if err != nil {
				t.Fatalf("ParseCron(%q): %v", tc.expr, err)
			}
			got := c.Next(tc.from)
			if !got.Equal(tc.want) {
				t.Fatalf("Next(%v) of %s = %v, want %v", tc.from, tc.expr, got, tc.want)
			}
			if !got.IsZero() {
				if got.Location() != time.UTC {
					t.Errorf("Next returned %v, not UTC", got)
				}
				if !c.matches(got) {
					t.Errorf("Next returned %v, which does not match %s", got, tc.expr)
				}
			}
		})
	}
}

// TestCalendarFacts guards the hand-computed weekdays the tables rely on.
func TestCalendarFacts(t *testing.T) {
	facts := []struct {
		day  time.Time
		want time.Weekday
	}{
		{at(2024, 6, 1, 0, 0), time.Saturday},
		{at(2024, 6, 2, 0, 0), time.Sunday},
		{at(2024, 6, 7, 0, 0), time.Friday},
		{at(2024, 11, 4, 0, 0), time.Monday},
		{at(2024, 11, 1, 0, 0), time.Friday},
		{at(2024, 2, 28, 0, 0), time.Wednesday},
	}
	for _, f := range facts {
		if got := f.day.Weekday(); got != f.want {
			t.Errorf("%v is a %v, tables assume %v", f.day, got, f.want)
		}
	}
}

func TestPrev(t *testing.T) {
	var zero time.Time
	tests := []struct {
		expr string
		from time.Time
		want time.Time
	}{
		{"cron(0 10 * * ? *)", at(2024, 6, 1, 10, 0), at(2024, 6, 1, 10, 0)}, // at or before
		{"cron(0 10 * * ? *)", time.Date(2024, 6, 1, 10, 0, 59, 0, time.UTC), at(2024, 6, 1, 10, 0)},
		{"cron(0 10 * * ? *)", at(2024, 6, 1, 9, 59), at(2024, 5, 31, 10, 0)},
		{"cron(0 0 31 * ? *)", at(2024, 3, 30, 0, 0), at(2024, 1, 31, 0, 0)},
		{"cron(0 12 29 2 ? *)", at(2028, 2, 28, 0, 0), at(2024, 2, 29, 12, 0)},
		{"cron(0 9 ? * 1 *)", at(2024, 6, 1, 0, 0), at(2024, 5, 26, 9, 0)},
		{"cron(0 22-2 * * ? *)", at(2024, 6, 1, 12, 0), at(2024, 6, 1, 2, 0)},
		{"cron(*/15 * * * ? *)", at(2024, 6, 1, 0, 14), at(2024, 6, 1, 0, 0)},
		{"cron(45 23 * * ? *)", at(2024, 1, 1, 0, 0), at(2023, 12, 31, 23, 45)},
		{"cron(0 0 1 1 ? 1970)", at(1969, 12, 31, 0, 0), zero},
		{"cron(0 0 1 1 ? 1970)", at(2024, 1, 1, 0, 0), at(1970, 1, 1, 0, 0)},
		{"cron(59 23 31 12 ? *)", at(2500, 1, 1, 0, 0), at(2199, 12, 31, 23, 59)},
		{"cron(0 0 30 2 ? *)", at(2024, 1, 1, 0, 0), zero},
	}
	for _, tc := range tests {
		c, err := ParseCron(tc.expr)
		if err != nil {
			t.Fatalf("ParseCron(%q): %v", tc.expr, err)
		}
		if got := c.prev(tc.from); !got.Equal(tc.want) {
			t.Errorf("prev(%v) of %s = %v, want %v", tc.from, tc.expr, got, tc.want)
		}
	}
}

// TestNextNeverMatchesIsFast checks that exhausting the whole year range
// skips by field rather than walking minutes.
func TestNextNeverMatchesIsFast(t *testing.T) {
	c, err := ParseCron("cron(59 23 30 2 ? *)")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 20; i++ {
		if got := c.Next(at(1970, 1, 1, 0, 0)); !got.IsZero() {
			t.Fatalf("Next = %v, want zero", got)
		}
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("20 exhaustive searches took %v", el)
	}
}

// TestNextAgainstBruteForce compares Next with a minute-by-minute scan on a
// spread of expressions and start times.
func TestNextAgainstBruteForce(t *testing.T) {
	exprs := []string{
		"cron(0 10 * * ? *)", "cron(*/7 */5 * * ? *)", "cron(0 0 ? * 1,7 *)",
		"cron(30 22-2 ? * FRI-MON *)", "cron(0 0 29-2 * ? *)", "cron(13 13 13 * ? *)",
		"cron(0 12 ? 2 3-4 2024-2026)", "cron(5/20 1/3 1-7 * ? *)",
	}
	starts := []time.Time{
		at(2024, 2, 27, 21, 53), at(2024, 6, 1, 0, 0), time.Date(2025, 12, 31, 23, 59, 30, 0, time.UTC),
	}
	for _, e := range exprs {
		c, err := ParseCron(e)
		if err != nil {
			t.Fatalf("ParseCron(%q): %v", e, err)
		}
		for _, s := range starts {
			want := time.Time{}
			for m := s.Truncate(time.Minute).Add(time.Minute); m.Before(s.Add(40 * 24 * time.Hour)); m = m.Add(time.Minute) {
				if c.matches(m) {
					want = m
					break
				}
			}
			if want.IsZero() {
				continue // beyond the scan; covered elsewhere
			}
			if got := c.Next(s); !got.Equal(want) {
				t.Errorf("Next(%v) of %s = %v, brute force says %v", s, e, got, want)
			}
			if got := c.prev(want); !got.Equal(want) {
				t.Errorf("prev(%v) of %s = %v, want itself", want, e, got)
			}
		}
	}
}
