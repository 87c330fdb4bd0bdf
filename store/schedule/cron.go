package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// maxCronLength is the longest maintenance window startTime (cron
// expression) AWS accepts.
const maxCronLength = 256

// Year limits of the cron year field (EventBridge: 1970-2199).
const (
	minCronYear = 1970
	maxCronYear = 2199
)

// Cron is a parsed AWS cron expression:
//
//	cron(minutes hours day-of-month month day-of-week year)
//
// the six-field EventBridge syntax used by maintenance windows. All times are
// UTC. A Cron is immutable after ParseCron and safe for concurrent use.
type Cron struct {
	minutes valueSet // 0-59
	hours   valueSet // 0-23
	dom     valueSet // 1-31, used when byDOW is false
	months  valueSet // 1-12
	dow     valueSet // 1-7, 1 = Sunday (AWS numbering), used when byDOW is true
	years   valueSet // 1970-2199
	// byDOW is true when day-of-month is '?' and days are chosen by
	// day-of-week; false when day-of-week is '?'.
	byDOW bool
}

// valueSet is a set of small integers base..base+255.
type valueSet struct {
	base int
	w    [4]uint64
}

func (s *valueSet) add(v int) {
	i := v - s.base
	s.w[i>>6] |= 1 << (uint(i) & 63)
}

func (s *valueSet) has(v int) bool {
	i := v - s.base
	if i < 0 || i >= 256 {
		return false
	}
	return s.w[i>>6]&(1<<(uint(i)&63)) != 0
}

// next returns the smallest member >= v.
func (s *valueSet) next(v int) (int, bool) {
	i := v - s.base
	if i < 0 {
		i = 0
	}
	for ; i < 256; i = (i | 63) + 1 {
		if w := s.w[i>>6] >> (uint(i) & 63); w != 0 {
			return s.base + i + bits.TrailingZeros64(w), true
		}
	}
	return 0, false
}

// prev returns the largest member <= v.
func (s *valueSet) prev(v int) (int, bool) {
	i := v - s.base
	if i >= 256 {
		i = 255
	}
	for ; i >= 0; i = (i &^ 63) - 1 {
		if w := s.w[i>>6] << (63 - uint(i)&63); w != 0 {
			return s.base + i - bits.LeadingZeros64(w), true
		}
	}
	return 0, false
}

// fieldSpec describes one of the six cron fields.
type fieldSpec struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i (months, days of week)
	question bool     // '?' allowed (day-of-month, day-of-week)
	lw       bool     // AWS defines L/W/# here (reported as unsupported)
	wrap     bool     // a-b with a > b wraps around max
}

var fields = [6]fieldSpec{
	{name: "minutes", min: 0, max: 59, wrap: true},
	{name: "hours", min: 0, max: 23, wrap: true},
	{name: "day-of-month", min: 1, max: 31, question: true, lw: true, wrap: true},
	{name: "month", min: 1, max: 12, wrap: true,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{name: "day-of-week", min: 1, max: 7, question: true, lw: true, wrap: true,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
	{name: "year", min: minCronYear, max: maxCronYear},
}

// ParseCron parses an AWS cron expression of at most 256 characters,
// "cron(minutes hours day-of-month month day-of-week year)", fields separated
// by white space.
//
// Each field is '*', or a comma-separated list of items; an item is a value,
// a range a-b, or either of those or '*' followed by a step /n (a/n means a,
// a+n, ... up to the field's maximum). Values are numbers, month names
// JAN-DEC and day names SUN-SAT (any letter case). Ranges are minutes 0-59,
// hours 0-23, day-of-month 1-31, month 1-12, day-of-week 1-7 where 1 is
// Sunday and 7 Saturday, year 1970-2199. A range whose start is after its end
// wraps around (FRI-MON, 22-2), except in the year field.
//
// Exactly one of day-of-month and day-of-week must be '?', which is allowed
// nowhere else. The L, W and # extensions are not supported and are rejected;
// every error names the offending field.
func ParseCron(expr string) (*Cron, error) {
	if expr == "" {
		return nil, fmt.Errorf("invalid cron expression: empty; expected cron(minutes hours day-of-month month day-of-week year)")
	}
	if len(expr) > maxCronLength {
		return nil, fmt.Errorf("invalid cron expression: %d characters, at most %d allowed", len(expr), maxCronLength)
	}
	inner, ok := strings.CutPrefix(expr, "cron(")
	if ok {
		inner, ok = strings.CutSuffix(inner, ")")
	}
	if !ok {
		return nil, fmt.Errorf("invalid cron expression %q: expected cron(minutes hours day-of-month month day-of-week year)", expr)
	}
	parts := strings.Fields(inner)
	if len(parts) != len(fields) {
		return nil, fmt.Errorf("invalid cron expression %q: expected 6 fields (minutes hours day-of-month month day-of-week year), got %d", expr, len(parts))
	}
	c := &Cron{}
	sets := [6]*valueSet{&c.minutes, &c.hours, &c.dom, &c.months, &c.dow, &c.years}
	var question [6]bool
	for i, f := range fields {
		q, err := f.parse(parts[i], sets[i])
		if err != nil {
			return nil, fmt.Errorf("invalid cron expression %q: %s field %q: %w", expr, f.name, parts[i], err)
		}
		question[i] = q
	}
	switch domQ, dowQ := question[2], question[4]; {
	case domQ && dowQ:
		return nil, fmt.Errorf("invalid cron expression %q: day-of-month and day-of-week are both '?'; exactly one of them must be '?'", expr)
	case !domQ && !dowQ:
		return nil, fmt.Errorf("invalid cron expression %q: day-of-month %q and day-of-week %q are both set; exactly one of them must be '?'", expr, parts[2], parts[4])
	default:
		c.byDOW = domQ
	}
	return c, nil
}

// parse reads one field into set. It reports whether the field is '?'.
func (f *fieldSpec) parse(s string, set *valueSet) (question bool, err error) {
	set.base = f.min
	if s == "?" {
		if !f.question {
			return false, fmt.Errorf("'?' is only allowed in day-of-month and day-of-week")
		}
		return true, nil
	}
	if strings.Contains(s, "#") {
		if f.lw {
			return false, fmt.Errorf("'#' (nth weekday of the month) is not supported")
		}
		return false, fmt.Errorf("'#' is not allowed here")
	}
	for _, item := range strings.Split(s, ",") {
		if err := f.parseItem(item, set); err != nil {
			return false, err
		}
	}
	return false, nil
}

// parseItem adds one list item (value, range, '*', each with an optional
// step) to set.
func (f *fieldSpec) parseItem(item string, set *valueSet) error {
	if item == "" {
		return fmt.Errorf("empty list item")
	}
	base, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	span := f.max - f.min + 1
	if hasStep {
		n, err := parseNumber(stepText)
		if err != nil {
			return fmt.Errorf("step %q: %v", stepText, err)
		}
		if n < 1 || n > span {
			return fmt.Errorf("step %d out of range 1-%d", n, span)
		}
		step = n
	}
	var lo, hi int
	switch {
	case base == "*":
		lo, hi = f.min, f.max
	case base == "?":
		return fmt.Errorf("'?' must be the whole field")
	case strings.Contains(base, "-"):
		a, b, _ := strings.Cut(base, "-")
		var err error
		if lo, err = f.value(a); err != nil {
			return err
		}
		if hi, err = f.value(b); err != nil {
			return err
		}
		if lo > hi && !f.wrap {
			return fmt.Errorf("range %d-%d goes backwards", lo, hi)
		}
	default:
		v, err := f.value(base)
		if err != nil {
			return err
		}
		lo, hi = v, v
		if hasStep {
			hi = f.max
		}
	}
	// Walk lo, lo+step, ... up to hi, wrapping from max to min when lo > hi.
	n := hi - lo + 1
	if lo > hi {
		n += span
	}
	for i := 0; i < n; i += step {
		v := lo + i
		if v > f.max {
			v -= span
		}
		set.add(v)
	}
	return nil
}

// value parses one value: a number in range or a name.
func (f *fieldSpec) value(tok string) (int, error) {
	if tok == "" {
		return 0, fmt.Errorf("missing value")
	}
	if tok[0] >= '0' && tok[0] <= '9' {
		n, err := parseNumber(tok)
		if err != nil {
			if f.lw && (strings.HasSuffix(tok, "L") || strings.HasSuffix(tok, "W") ||
				strings.HasSuffix(tok, "l") || strings.HasSuffix(tok, "w")) {
				return 0, fmt.Errorf("%q: the L and W extensions are not supported", tok)
			}
			return 0, fmt.Errorf("value %q: %v", tok, err)
		}
		if n < f.min || n > f.max {
			return 0, fmt.Errorf("value %d out of range %d-%d", n, f.min, f.max)
		}
		return n, nil
	}
	up := strings.ToUpper(tok)
	for i, name := range f.names {
		if up == name {
			return f.min + i, nil
		}
	}
	if f.lw && strings.ContainsAny(up, "LW") {
		return 0, fmt.Errorf("%q: the L and W extensions are not supported", tok)
	}
	if f.names != nil {
		return 0, fmt.Errorf("invalid value %q (expected %d-%d or %s-%s)", tok, f.min, f.max, f.names[0], f.names[len(f.names)-1])
	}
	return 0, fmt.Errorf("invalid value %q (expected a number %d-%d)", tok, f.min, f.max)
}

// parseNumber parses a non-negative decimal number of at most 4 digits
// (every legal value, step included, fits).
func parseNumber(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("missing number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a number")
		}
	}
	if len(s) > 4 {
		return 0, fmt.Errorf("number too large")
	}
	n, _ := strconv.Atoi(s)
	return n, nil
}

// matches reports whether minute t (UTC) is one the expression fires at.
func (c *Cron) matches(t time.Time) bool {
	t = t.UTC()
	y, mo, _ := t.Date()
	return c.years.has(y) && c.months.has(int(mo)) && c.dayMatches(t) &&
		c.hours.has(t.Hour()) && c.minutes.has(t.Minute())
}

// dayMatches applies whichever of day-of-month and day-of-week is not '?'.
func (c *Cron) dayMatches(t time.Time) bool {
	if c.byDOW {
		return c.dow.has(int(t.Weekday()) + 1) // Sunday = 1
	}
	return c.dom.has(t.Day())
}

// Next returns the first minute at which the expression fires strictly after
// t (t is first converted to UTC and truncated to the minute, so the result
// is always a whole UTC minute later than t), or the zero time if it never
// fires again (the year field is exhausted, or the date can never occur, like
// 30 FEB).
//
// The search skips whole years, months, days and hours that cannot match,
// so it costs at most a few thousand steps even when nothing matches before
// 2199.
func (c *Cron) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	if t.Year() < minCronYear {
		t = time.Date(minCronYear, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	date := func(y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, time.UTC)
	}
	for {
		y, mo, d := t.Date()
		h, mi := t.Hour(), t.Minute()
		if y > maxCronYear {
			return time.Time{}
		}
		if !c.years.has(y) {
			ny, ok := c.years.next(y + 1)
			if !ok {
				return time.Time{}
			}
			t = date(ny, 1, 1, 0, 0)
			continue
		}
		if !c.months.has(int(mo)) {
			if nm, ok := c.months.next(int(mo) + 1); ok {
				t = date(y, time.Month(nm), 1, 0, 0)
			} else {
				t = date(y+1, 1, 1, 0, 0)
			}
			continue
		}
		if !c.dayMatches(t) {
			t = date(y, mo, d+1, 0, 0)
			continue
		}
		if !c.hours.has(h) {
			if nh, ok := c.hours.next(h + 1); ok {
				t = date(y, mo, d, nh, 0)
			} else {
				t = date(y, mo, d+1, 0, 0)
			}
			continue
		}
		if !c.minutes.has(mi) {
			if nmi, ok := c.minutes.next(mi + 1); ok {
				t = date(y, mo, d, h, nmi)
			} else {
				t = date(y, mo, d, h+1, 0)
			}
			continue
		}
		return t
	}
}

// prev returns the latest time at or before t, truncated to the minute, in
// UTC, at which the expression fires; the zero time if there is none. It
// mirrors Next and skips by field the same way.
func (c *Cron) prev(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute)
	if t.Year() > maxCronYear {
		t = time.Date(maxCronYear, 12, 31, 23, 59, 0, 0, time.UTC)
	}
	date := func(y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, time.UTC)
	}
	for {
		y, mo, d := t.Date()
		h, mi := t.Hour(), t.Minute()
		if y < minCronYear {
			return time.Time{}
		}
		if !c.years.has(y) {
			py, ok := c.years.prev(y - 1)
			if !ok {
				return time.Time{}
			}
			t = date(py, 12, 31, 23, 59)
			continue
		}
		if !c.months.has(int(mo)) {
			if pm, ok := c.months.prev(int(mo) - 1); ok {
				t = date(y, time.Month(pm)+1, 1, 0, 0).Add(-time.Minute)
			} else {
				t = date(y-1, 12, 31, 23, 59)
			}
			continue
		}
		if !c.dayMatches(t) {
			t = date(y, mo, d, 0, 0).Add(-time.Minute)
			continue
		}
		if !c.hours.has(h) {
			if ph, ok := c.hours.prev(h - 1); ok {
				t = date(y, mo, d, ph, 59)
			} else {
				t = date(y, mo, d, 0, 0).Add(-time.Minute)
			}
			continue
		}
		if !c.minutes.has(mi) {
			if pmi, ok := c.minutes.prev(mi - 1); ok {
				t = date(y, mo, d, h, pmi)
			} else {
				t = date(y, mo, d, h, 0).Add(-time.Minute)
			}
			continue
		}
		return t
	}
}
