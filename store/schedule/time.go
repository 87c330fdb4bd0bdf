package schedule

import (
	"fmt"
	"time"
)

// timeLayout is the Go layout of a schedulingConfig startTime/endTime.
const timeLayout = "2006-01-02T15:04"

// timeFormatHelp describes the accepted format in error messages.
const timeFormatHelp = "the format is YYYY-MM-DDTHH:MM in UTC (date YYYY-MM-DD, time HH:MM), for example 2025-06-01T14:30"

// ParseTime parses a schedulingConfig startTime or endTime. The only accepted
// form is AWS's date YYYY-MM-DD and time HH:MM joined by 'T', read as UTC
// ("2025-06-01T14:30"): exactly 16 characters, zero-padded, with a real
// calendar date and a 24-hour time. Seconds, zones, spaces and single-digit
// fields are rejected with an error that states the format.
func ParseTime(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("invalid time %q: %s; %s", s, why, timeFormatHelp)
	}
	if len(s) != len(timeLayout) {
		return bad(fmt.Sprintf("expected %d characters, got %d", len(timeLayout), len(s)))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 4, 7:
			if c != '-' {
				return bad(fmt.Sprintf("expected '-' at position %d", i+1))
			}
		case 10:
			if c != 'T' {
				return bad("expected 'T' between the date and the time")
			}
		case 13:
			if c != ':' {
				return bad("expected ':' between hours and minutes")
			}
		default:
			if c < '0' || c > '9' {
				return bad(fmt.Sprintf("expected a digit at position %d", i+1))
			}
		}
	}
	num := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute := num(11, 13), num(14, 16)
	switch {
	case month < 1 || month > 12:
		return bad(fmt.Sprintf("month %02d is not 01-12", month))
	case day < 1 || day > daysIn(year, time.Month(month)):
		return bad(fmt.Sprintf("day %02d does not exist in %04d-%02d", day, year, month))
	case hour > 23:
		return bad(fmt.Sprintf("hour %02d is not 00-23", hour))
	case minute > 59:
		return bad(fmt.Sprintf("minute %02d is not 00-59", minute))
	}
	return time.Date(year, time.Month(month), day, hour, minute, 0, 0, time.UTC), nil
}

// FormatTime formats t the way ParseTime reads it: in UTC, to the minute
// ("2006-01-02T15:04"). Seconds and below are dropped.
func FormatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

// daysIn returns the number of days of month m in year y (proleptic
// Gregorian calendar, as Go's time package).
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
