package schedule

import (
	"strings"
	"testing"
	"time"
)

// at builds a UTC time to the minute.
func at(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

func TestParseTime(t *testing.T) {
	valid := []struct {
		in   string
		want time.Time
	}{
		{"2024-06-01T14:30", at(2024, 6, 1, 14, 30)},
		{"2024-02-29T00:00", at(2024, 2, 29, 0, 0)},  // leap day
		{"2000-02-29T12:00", at(2000, 2, 29, 12, 0)}, // divisible by 400: leap
		{"2023-12-31T23:59", at(2023, 12, 31, 23, 59)},
		{"2025-01-01T00:00", at(2025, 1, 1, 0, 0)},
		{"2024-04-30T09:05", at(2024, 4, 30, 9, 5)},
	}
	for _, tc := range valid {
		got, err := ParseTime(tc.in)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", tc.in, err)
			continue
		}
		if !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, want %v UTC", tc.in, got, tc.want)
		}
		if back := FormatTime(got); back != tc.in {
			t.Errorf("FormatTime(ParseTime(%q)) = %q", tc.in, back)
		}
	}

	invalid := []struct{ in, why string }{
		{"", "characters"},
		{"2024-06-01", "characters"},
		{"2024-06-01 14:30", "'T'"},
		{"2024-06-01t14:30", "'T'"},
		{"2024-06-01T14:30:00", "characters"},
		{"2024-06-01T14:30Z", "characters"},
		{"2024-06-01T14:30+02:00", "characters"},
		{"2024-6-01T14:30", "characters"},
		{"2024-06-01T4:30", "characters"},
		{"2024-006-1T14:30", "'-'"},
		{"2024/06/01T14:30", "'-'"},
		{"2024-06-01T14.30", "':'"},
		{"+024-06-01T14:30", "digit"},
		{"2024-06-0aT14:30", "digit"},
		{" 024-06-01T14:30", "digit"},
		{"2024-13-01T00:00", "month"},
		{"2024-00-10T00:00", "month"},
		{"2024-06-00T00:00", "day"},
		{"2024-04-31T00:00", "day"},
		{"2023-02-29T00:00", "day"}, // not a leap year
		{"2100-02-29T00:00", "day"}, // divisible by 100, not 400
		{"2024-06-01T24:00", "hour"},
		{"2024-06-01T12:60", "minute"},
		{"1717200000", "characters"},
	}
	for _, tc := range invalid {
		got, err := ParseTime(tc.in)
		if err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", tc.in, got)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "YYYY-MM-DDTHH:MM") || !strings.Contains(msg, "UTC") {
			t.Errorf("ParseTime(%q) error %q does not state the format", tc.in, msg)
		}
		if !strings.Contains(msg, tc.why) {
			t.Errorf("ParseTime(%q) error %q does not mention %q", tc.in, msg, tc.why)
		}
	}
}

func TestFormatTime(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	tests := []struct {
		in   time.Time
		want string
	}{
		{at(2024, 6, 1, 14, 30), "2024-06-01T14:30"},
		{time.Date(2024, 6, 1, 14, 30, 59, 999, time.UTC), "2024-06-01T14:30"}, // seconds dropped
		{time.Date(2024, 6, 1, 5, 0, 0, 0, ist), "2024-05-31T23:30"},           // converted to UTC
		{at(2199, 12, 31, 23, 59), "2199-12-31T23:59"},
	}
	for _, tc := range tests {
		if got := FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
