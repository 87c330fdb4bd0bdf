package schedule

import (
	"fmt"
	"time"
)

// Scheduling limits AWS applies when a job is created (PROTOCOL.md §11.2).
const (
	// minLead is how far ahead of now startTime (and endTime when there is
	// no startTime) must be, and the minimum gap from startTime to endTime.
	minLead = 30 * time.Minute
	// maxStartYears and maxEndYears bound startTime and endTime from now.
	maxStartYears = 1
	maxEndYears   = 2
)

// End behaviors of schedulingConfig.endBehavior.
var endBehaviors = map[string]bool{"STOP_ROLLOUT": true, "CANCEL": true, "FORCE_CANCEL": true}

// WindowSpec is a maintenance window as the API gives it
// (schedulingConfig.maintenanceWindows[i]).
type WindowSpec struct {
	// StartTime is the AWS cron expression that opens the window.
	StartTime string
	// DurationInMinutes is how long the window stays open (1-1430).
	DurationInMinutes int64
}

// Validate checks a job's schedulingConfig when the job is created at now,
// per AWS:
//
//   - startTime, if set, is in ParseTime's format, at least 30 minutes after
//     now and at most 1 year after now;
//   - endTime, if set, is in ParseTime's format, at most 2 years after now,
//     and at least 30 minutes after startTime (after now when there is no
//     startTime);
//   - endBehavior is empty or one of STOP_ROLLOUT, CANCEL, FORCE_CANCEL, and
//     is set only together with an endTime;
//   - every maintenance window has a valid cron startTime (ParseCron), a
//     durationInMinutes of 1-1430, and opens at least once after now.
//
// The bounds are inclusive (exactly 30 minutes, 1 year or 2 years is
// accepted); "1 year after now" is now.AddDate(1, 0, 0). It returns the first
// problem found, as an error naming the field
// ("schedulingConfig.startTime must be at least 30 minutes from now").
func Validate(startTime, endTime, endBehavior string, windows []WindowSpec, now time.Time) error {
	now = now.UTC()
	var start, end time.Time
	if startTime != "" {
		t, err := ParseTime(startTime)
		if err != nil {
			return fmt.Errorf("schedulingConfig.startTime: %w", err)
		}
		if t.Before(now.Add(minLead)) {
			return fmt.Errorf("schedulingConfig.startTime must be at least 30 minutes from now (now is %s UTC, startTime is %s)",
				now.Format(time.RFC3339), startTime)
		}
		if t.After(now.AddDate(maxStartYears, 0, 0)) {
			return fmt.Errorf("schedulingConfig.startTime must be at most 1 year from now (now is %s UTC, startTime is %s)",
				now.Format(time.RFC3339), startTime)
		}
		start = t
	}
	if endTime != "" {
		t, err := ParseTime(endTime)
		if err != nil {
			return fmt.Errorf("schedulingConfig.endTime: %w", err)
		}
		if !start.IsZero() {
			if t.Before(start.Add(minLead)) {
				return fmt.Errorf("schedulingConfig.endTime must be at least 30 minutes after schedulingConfig.startTime (startTime is %s, endTime is %s)",
					startTime, endTime)
			}
		} else if t.Before(now.Add(minLead)) {
			return fmt.Errorf("schedulingConfig.endTime must be at least 30 minutes from now (now is %s UTC, endTime is %s)",
				now.Format(time.RFC3339), endTime)
		}
		if t.After(now.AddDate(maxEndYears, 0, 0)) {
			return fmt.Errorf("schedulingConfig.endTime must be at most 2 years from now (now is %s UTC, endTime is %s)",
				now.Format(time.RFC3339), endTime)
		}
		end = t
	}
	if endBehavior != "" {
		if !endBehaviors[endBehavior] {
			return fmt.Errorf("schedulingConfig.endBehavior must be one of STOP_ROLLOUT, CANCEL, FORCE_CANCEL, got %q", endBehavior)
		}
		if end.IsZero() {
			return fmt.Errorf("schedulingConfig.endBehavior %s requires schedulingConfig.endTime", endBehavior)
		}
	}
	for i, w := range windows {
		field := fmt.Sprintf("schedulingConfig.maintenanceWindows[%d]", i)
		if w.DurationInMinutes < minWindowMinutes || w.DurationInMinutes > maxWindowMinutes {
			return fmt.Errorf("%s.durationInMinutes must be between %d and %d, got %d",
				field, minWindowMinutes, maxWindowMinutes, w.DurationInMinutes)
		}
		c, err := ParseCron(w.StartTime)
		if err != nil {
			return fmt.Errorf("%s.startTime: %w", field, err)
		}
		if c.Next(now).IsZero() {
			return fmt.Errorf("%s.startTime %q never opens after now", field, w.StartTime)
		}
	}
	return nil
}
