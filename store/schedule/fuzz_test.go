package schedule

import (
	"testing"
	"time"
)

// FuzzParseCron checks that ParseCron never panics and that, for every
// expression it accepts, Next is after its input, on a whole UTC minute,
// matches the expression's own fields and skips no matching minute, and that
// prev agrees with Next.
func FuzzParseCron(f *testing.F) {
	seeds := []string{
		"cron(0 10 * * ? *)",
		"cron(15 12 * * ? *)",
		"cron(0 18 ? * MON-FRI *)",
		"cron(0 8 1 * ? *)",
		"cron(0/15 * * * ? *)",
		"cron(0/10 * ? * MON-FRI *)",
		"cron(0/5 8-17 ? * MON-FRI *)",
		"cron(0 9 ? * 2#1 *)",
		"cron(0 0 L * ? *)",
		"cron(* * * * ? *)",
		"cron(0 0 29 2 ? *)",
		"cron(0 0 30 2 ? *)",
		"cron(59 23 31 12 ? 2199)",
		"cron(0 0 1 1 ? 1970)",
		"cron(0 22-2 ? * FRI-MON *)",
		"cron(5-20/5 */6 28-3 NOV-FEB ? 2024/4)",
		"cron(0,30 8,20 ? jan,jul sun,sat 2025-2030)",
		"cron(1/10 * ? * */2 *)",
		"rate(5 minutes)",
		"",
	}
	for i, s := range seeds {
		f.Add(s, int64(1717243200)+int64(i)*86_399) // around 2024-06-01
	}
	f.Add("cron(* * * * ? *)", int64(-1_000_000_000))
	f.Add("cron(0 0 1 1 ? 2199)", int64(7_258_118_400)) // 2200-01-01

	// Inputs span 1960-2210 so both ends of the year range are exercised.
	lo := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(2210, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

	f.Fuzz(func(t *testing.T, expr string, sec int64) {
		c, err := ParseCron(expr)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseCron(%q): empty error", expr)
			}
			return
		}
		if len(expr) > maxCronLength {
			t.Fatalf("ParseCron accepted %d characters", len(expr))
		}
		span := hi - lo
		off := sec % span
		if off < 0 {
			off += span
		}
		from := time.Unix(lo+off, 0).UTC()
		base := from.Truncate(time.Minute)
		const scan = 36 * time.Hour

		next := c.Next(from)
		if !next.IsZero() {
			if !next.After(from) {
				t.Fatalf("%s: Next(%v) = %v, not after", expr, from, next)
			}
			if next.Location() != time.UTC || next.Second() != 0 || next.Nanosecond() != 0 {
				t.Fatalf("%s: Next(%v) = %v, not a whole UTC minute", expr, from, next)
			}
			if y := next.Year(); y < minCronYear || y > maxCronYear {
				t.Fatalf("%s: Next(%v) = %v, outside the year range", expr, from, next)
			}
			if !c.matches(next) {
				t.Fatalf("%s: Next(%v) = %v, which does not match", expr, from, next)
			}
		}
		// No minute between the input and Next matches (bounded scan).
		for m := base.Add(time.Minute); m.Before(base.Add(scan)) && (next.IsZero() || m.Before(next)); m = m.Add(time.Minute) {
			if m.Year() >= minCronYear && m.Year() <= maxCronYear && c.matches(m) {
				t.Fatalf("%s: Next(%v) = %v skips %v", expr, from, next, m)
			}
		}

		prev := c.prev(from)
		if !prev.IsZero() {
			if prev.After(from) || !c.matches(prev) {
				t.Fatalf("%s: prev(%v) = %v", expr, from, prev)
			}
			// The first firing after the latest one at or before the input
			// is the first one after the input.
			if got := c.Next(prev); !got.Equal(next) {
				t.Fatalf("%s: Next(prev(%v)) = %v, Next = %v", expr, from, got, next)
			}
		}
		for m := base; m.After(base.Add(-scan)) && (prev.IsZero() || m.After(prev)); m = m.Add(-time.Minute) {
			if m.Year() >= minCronYear && m.Year() <= maxCronYear && c.matches(m) {
				t.Fatalf("%s: prev(%v) = %v skips %v", expr, from, prev, m)
			}
		}
	})
}
