package schedule

import (
	"fmt"
	"sort"
	"time"
)

// Maintenance window duration limits (durationInMinutes), PROTOCOL.md §13.
const (
	minWindowMinutes = 1
	maxWindowMinutes = 1430
)

// Window is a recurring maintenance window: it opens each time Start fires
// and stays open for Duration. An instance that opens at s covers the
// half-open interval [s, s+Duration).
type Window struct {
	// Start fires at each opening.
	Start *Cron
	// Duration is how long each opening lasts.
	Duration time.Duration
}

// ParseWindow builds a Window from a maintenance window's startTime (an AWS
// cron expression, see ParseCron) and durationInMinutes, which must be
// 1-1430.
func ParseWindow(cron string, durationInMinutes int64) (Window, error) {
	if durationInMinutes < minWindowMinutes || durationInMinutes > maxWindowMinutes {
		return Window{}, fmt.Errorf("durationInMinutes must be between %d and %d, got %d",
			minWindowMinutes, maxWindowMinutes, durationInMinutes)
	}
	c, err := ParseCron(cron)
	if err != nil {
		return Window{}, err
	}
	return Window{Start: c, Duration: time.Duration(durationInMinutes) * time.Minute}, nil
}

// Open reports whether t is inside any instance of any of the windows.
//
// If it is, until is when the window containing t closes; when several
// instances contain t (overlapping windows, or a window whose instances
// overlap each other) it is the latest of their closes. Another instance that
// opens before until and closes after it is not chained in: at until, call
// Open again. If t is in no window, open is false and until is when the next
// instance of any window opens, or the zero time if none ever does.
//
// Windows with a nil Start or a Duration <= 0 are ignored.
func Open(ws []Window, t time.Time) (open bool, until time.Time) {
	t = t.UTC()
	var next time.Time
	for _, w := range ws {
		if w.Start == nil || w.Duration <= 0 {
			continue
		}
		// The instance containing t, if any, is the latest one opened at or
		// before t (all instances of w have the same length, so it also
		// closes last).
		if last := w.Start.prev(t); !last.IsZero() && last.Add(w.Duration).After(t) {
			if end := last.Add(w.Duration); !open || end.After(until) {
				until = end
			}
			open = true
			continue
		}
		if s := w.Start.Next(t); !s.IsZero() && (next.IsZero() || s.Before(next)) {
			next = s
		}
	}
	if open {
		return true, until
	}
	return false, next
}

// NextStarts returns the next n opening times strictly after t across all
// the windows, merged, sorted ascending and without duplicates (two windows
// opening at the same minute give one entry). It returns fewer than n when
// the windows stop firing, and nil when n <= 0. DescribeJob's
// scheduledJobRollouts lists the next 7.
func NextStarts(ws []Window, t time.Time, n int) []time.Time {
	if n <= 0 {
		return nil
	}
	// heads[i] is the next opening of a live window not yet emitted.
	type head struct {
		c *Cron
		s time.Time
	}
	var heads []head
	for _, w := range ws {
		if w.Start == nil {
			continue
		}
		if s := w.Start.Next(t); !s.IsZero() {
			heads = append(heads, head{w.Start, s})
		}
	}
	var out []time.Time
	for len(out) < n && len(heads) > 0 {
		sort.Slice(heads, func(i, j int) bool { return heads[i].s.Before(heads[j].s) })
		s := heads[0].s
		out = append(out, s)
		// Advance every window that opens at s (this drops duplicates).
		live := heads[:0]
		for _, h := range heads {
			if h.s.Equal(s) {
				h.s = h.c.Next(s)
			}
			if !h.s.IsZero() {
				live = append(live, h)
			}
		}
		heads = live
	}
	return out
}
