package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustWindow(t *testing.T, cron string, minutes int64) Window {
	t.Helper()
	w, err := ParseWindow(cron, minutes)
	if err != nil {
		t.Fatalf("ParseWindow(%q, %d): %v", cron, minutes, err)
	}
	return w
}

func TestParseWindow(t *testing.T) {
	valid := []struct {
		cron    string
		minutes int64
	}{
		{"cron(0 22 * * ? *)", 1},
		{"cron(0 22 * * ? *)", 180},
		{"cron(0 22 * * ? *)", 1430},
	}
	for _, tc := range valid {
		w, err := ParseWindow(tc.cron, tc.minutes)
		if err != nil {
			t.Errorf("ParseWindow(%q, %d): %v", tc.cron, tc.minutes, err)
			continue
		}
		if w.Start == nil || w.Duration != time.Duration(tc.minutes)*time.Minute {
			t.Errorf("ParseWindow(%q, %d) = %+v", tc.cron, tc.minutes, w)
		}
	}
	invalid := []struct {
		cron    string
		minutes int64
		want    string
	}{
		{"cron(0 22 * * ? *)", 0, "durationInMinutes must be between 1 and 1430, got 0"},
		{"cron(0 22 * * ? *)", -5, "durationInMinutes"},
		{"cron(0 22 * * ? *)", 1431, "got 1431"},
		{"cron(0 22 * * ? *)", 1 << 40, "durationInMinutes"},
		{"cron(0 22 * * * *)", 60, "exactly one"},
		{"", 60, "empty"},
	}
	for _, tc := range invalid {
		if _, err := ParseWindow(tc.cron, tc.minutes); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseWindow(%q, %d) error = %v, want one containing %q", tc.cron, tc.minutes, err, tc.want)
		}
	}
}

func TestOpen(t *testing.T) {
	// 2024-06-01 is a Saturday.
	nightly := mustWindow(t, "cron(0 22 * * ? *)", 180)               // 22:00-01:00, crosses midnight
	midnight := mustWindow(t, "cron(0 0 * * ? *)", 120)               // 00:00-02:00
	hourly := mustWindow(t, "cron(0 * * * ? *)", 90)                  // instances overlap each other
	weekend := mustWindow(t, "cron(0 23 ? * SAT *)", 1430)            // Sat 23:00 - Sun 22:50
	monthEnd := mustWindow(t, "cron(30 23 31 * ? *)", 60)             // 31st 23:30 - 1st 00:30
	newYear := mustWindow(t, "cron(0 23 31 DEC ? *)", 120)            // crosses the year
	once := mustWindow(t, "cron(0 0 1 1 ? 2020)", 60)                 // only in 2020
	never := mustWindow(t, "cron(0 0 30 FEB ? *)", 60)                // never fires
	short := Window{Start: nightly.Start, Duration: 30 * time.Second} // built directly
	var zero time.Time

	tests := []struct {
		name      string
		ws        []Window
		t         time.Time
		wantOpen  bool
		wantUntil time.Time
	}{
		{"no windows", nil, at(2024, 6, 1, 12, 0), false, zero},
		{"before the window", []Window{nightly}, at(2024, 6, 1, 21, 59), false, at(2024, 6, 1, 22, 0)},
		{"just before, seconds", []Window{nightly}, time.Date(2024, 6, 1, 21, 59, 59, 0, time.UTC), false, at(2024, 6, 1, 22, 0)},
		{"opening minute", []Window{nightly}, at(2024, 6, 1, 22, 0), true, at(2024, 6, 2, 1, 0)},
		{"before midnight", []Window{nightly}, at(2024, 6, 1, 23, 30), true, at(2024, 6, 2, 1, 0)},
		{"after midnight", []Window{nightly}, at(2024, 6, 2, 0, 30), true, at(2024, 6, 2, 1, 0)},
		{"last second", []Window{nightly}, time.Date(2024, 6, 2, 0, 59, 59, 999, time.UTC), true, at(2024, 6, 2, 1, 0)},
		{"closing minute is closed", []Window{nightly}, at(2024, 6, 2, 1, 0), false, at(2024, 6, 2, 22, 0)},
		{"non-UTC input", []Window{nightly}, time.Date(2024, 6, 2, 2, 30, 0, 0, time.FixedZone("CEST", 2*3600)), true, at(2024, 6, 2, 1, 0)},

		{"overlap: later close wins", []Window{nightly, midnight}, at(2024, 6, 2, 0, 30), true, at(2024, 6, 2, 2, 0)},
		{"overlap: order does not matter", []Window{midnight, nightly}, at(2024, 6, 2, 0, 30), true, at(2024, 6, 2, 2, 0)},
		{"overlap: only the first yet", []Window{nightly, midnight}, at(2024, 6, 1, 23, 0), true, at(2024, 6, 2, 1, 0)},
		{"overlap: only the second left", []Window{nightly, midnight}, at(2024, 6, 2, 1, 30), true, at(2024, 6, 2, 2, 0)},
		{"overlap: both closed", []Window{nightly, midnight}, at(2024, 6, 2, 2, 0), false, at(2024, 6, 2, 22, 0)},
		{"closed: earliest next opening", []Window{midnight, nightly}, at(2024, 6, 2, 12, 0), false, at(2024, 6, 2, 22, 0)},
		{"closed: earliest next opening, reversed", []Window{nightly, midnight}, at(2024, 6, 2, 23, 30), true, at(2024, 6, 3, 1, 0)},

		{"self-overlap: latest instance", []Window{hourly}, at(2024, 6, 1, 10, 15), true, at(2024, 6, 1, 11, 30)},
		{"self-overlap: opening minute", []Window{hourly}, at(2024, 6, 1, 10, 0), true, at(2024, 6, 1, 11, 30)},

		{"weekend window, Sunday evening", []Window{weekend}, at(2024, 6, 2, 22, 49), true, at(2024, 6, 2, 22, 50)},
		{"weekend window, closed", []Window{weekend}, at(2024, 6, 2, 22, 50), false, at(2024, 6, 8, 23, 0)},
		{"weekend window, Saturday", []Window{weekend}, at(2024, 6, 1, 12, 0), false, at(2024, 6, 1, 23, 0)},
		{"month end, next day", []Window{monthEnd}, at(2024, 6, 1, 0, 10), true, at(2024, 6, 1, 0, 30)},
		{"month end, skips June", []Window{monthEnd}, at(2024, 6, 1, 0, 30), false, at(2024, 7, 31, 23, 30)},
		{"new year", []Window{newYear}, at(2025, 1, 1, 0, 59), true, at(2025, 1, 1, 1, 0)},
		{"exhausted year", []Window{once}, at(2024, 6, 1, 0, 0), false, zero},
		{"inside its only instance", []Window{once}, at(2020, 1, 1, 0, 30), true, at(2020, 1, 1, 1, 0)},
		{"never fires", []Window{never}, at(2024, 6, 1, 0, 0), false, zero},
		{"never plus nightly", []Window{never, nightly}, at(2024, 6, 1, 0, 0), true, at(2024, 6, 1, 1, 0)},
		{"sub-minute duration, open", []Window{short}, time.Date(2024, 6, 1, 22, 0, 29, 0, time.UTC), true, time.Date(2024, 6, 1, 22, 0, 30, 0, time.UTC)},
		{"sub-minute duration, closed", []Window{short}, time.Date(2024, 6, 1, 22, 0, 30, 0, time.UTC), false, at(2024, 6, 2, 22, 0)},
		{"nil start and zero duration ignored", []Window{{}, {Start: nightly.Start}}, at(2024, 6, 1, 22, 0), false, zero},
	}
	for _, tc := range tests {
		open, until := Open(tc.ws, tc.t)
		if open != tc.wantOpen || !until.Equal(tc.wantUntil) {
			t.Errorf("%s: Open(%v) = %v, %v; want %v, %v", tc.name, tc.t, open, until, tc.wantOpen, tc.wantUntil)
		}
	}
}

func TestNextStarts(t *testing.T) {
	nightly := mustWindow(t, "cron(0 22 * * ? *)", 180)
	midnight := mustWindow(t, "cron(0 0 * * ? *)", 120)
	midnightLong := mustWindow(t, "cron(0 0 * * ? *)", 600)
	twiceA := mustWindow(t, "cron(0 0,12 * * ? *)", 30)
	twiceB := mustWindow(t, "cron(0 12,18 * * ? *)", 30)
	monday := mustWindow(t, "cron(0 2 ? * MON *)", 240)
	thursday := mustWindow(t, "cron(0 2 ? * THU *)", 240)
	few := mustWindow(t, "cron(0 0 1 1 ? 2025-2027)", 60)
	gone := mustWindow(t, "cron(0 0 1 1 ? 2020)", 60)

	tests := []struct {
		name string
		ws   []Window
		t    time.Time
		n    int
		want []time.Time
	}{
		{"merged", []Window{nightly, midnight}, at(2024, 6, 1, 12, 0), 5, []time.Time{
			at(2024, 6, 1, 22, 0), at(2024, 6, 2, 0, 0), at(2024, 6, 2, 22, 0), at(2024, 6, 3, 0, 0), at(2024, 6, 3, 22, 0)}},
		{"strictly after", []Window{nightly}, at(2024, 6, 1, 22, 0), 1, []time.Time{at(2024, 6, 2, 22, 0)}},
		{"identical windows deduplicated", []Window{midnight, midnightLong}, at(2024, 6, 1, 12, 0), 3, []time.Time{
			at(2024, 6, 2, 0, 0), at(2024, 6, 3, 0, 0), at(2024, 6, 4, 0, 0)}},
		{"shared minutes deduplicated", []Window{twiceA, twiceB}, at(2024, 6, 1, 0, 0), 4, []time.Time{
			at(2024, 6, 1, 12, 0), at(2024, 6, 1, 18, 0), at(2024, 6, 2, 0, 0), at(2024, 6, 2, 12, 0)}},
		{"next 7 (scheduledJobRollouts)", []Window{thursday, monday}, at(2024, 6, 1, 12, 0), 7, []time.Time{
			at(2024, 6, 3, 2, 0), at(2024, 6, 6, 2, 0), at(2024, 6, 10, 2, 0), at(2024, 6, 13, 2, 0),
			at(2024, 6, 17, 2, 0), at(2024, 6, 20, 2, 0), at(2024, 6, 24, 2, 0)}},
		{"runs out", []Window{few, gone}, at(2024, 6, 1, 0, 0), 7, []time.Time{
			at(2025, 1, 1, 0, 0), at(2026, 1, 1, 0, 0), at(2027, 1, 1, 0, 0)}},
		{"one runs out, other continues", []Window{few, monday}, at(2026, 12, 27, 0, 0), 3, []time.Time{
			at(2026, 12, 28, 2, 0), at(2027, 1, 1, 0, 0), at(2027, 1, 4, 2, 0)}},
		{"nothing left", []Window{gone}, at(2024, 6, 1, 0, 0), 7, nil},
		{"no windows", nil, at(2024, 6, 1, 0, 0), 7, nil},
		{"nil start ignored", []Window{{}, nightly}, at(2024, 6, 1, 12, 0), 1, []time.Time{at(2024, 6, 1, 22, 0)}},
		{"n = 0", []Window{nightly}, at(2024, 6, 1, 0, 0), 0, nil},
		{"n < 0", []Window{nightly}, at(2024, 6, 1, 0, 0), -1, nil},
	}
	for _, tc := range tests {
		got := NextStarts(tc.ws, tc.t, tc.n)
		if len(got) != len(tc.want) {
			t.Errorf("%s: NextStarts = %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if !got[i].Equal(tc.want[i]) {
				t.Errorf("%s: NextStarts[%d] = %v, want %v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
}

// TestOpenAgreesWithNextStarts walks a week minute by minute and checks Open
// against the window instances NextStarts reports.
func TestOpenAgreesWithNextStarts(t *testing.T) {
	ws := []Window{
		mustWindow(t, "cron(0 22 * * ? *)", 180),
		mustWindow(t, "cron(0 0 * * ? *)", 120),
		mustWindow(t, "cron(45 */5 ? * MON-WED *)", 50),
		mustWindow(t, "cron(0 23 ? * SAT *)", 1430),
	}
	from := at(2024, 5, 30, 0, 0)
	starts := NextStarts(ws, from.Add(-48*time.Hour), 500)
	for m := from; m.Before(from.Add(7 * 24 * time.Hour)); m = m.Add(time.Minute) {
		// Expected: the latest close among instances containing m.
		var wantOpen bool
		var wantUntil time.Time
		for _, w := range ws {
			for _, s := range starts {
				if w.Start.matches(s) && !s.After(m) && s.Add(w.Duration).After(m) {
					if end := s.Add(w.Duration); !wantOpen || end.After(wantUntil) {
						wantUntil = end
					}
					wantOpen = true
				}
			}
		}
		if !wantOpen {
			for _, s := range starts {
				if s.After(m) {
					wantUntil = s
					break
				}
			}
		}
		open, until := Open(ws, m)
		if open != wantOpen || !until.Equal(wantUntil) {
			t.Fatalf("Open(%v) = %v, %v; want %v, %v", m, open, until, wantOpen, wantUntil)
		}
	}
}
