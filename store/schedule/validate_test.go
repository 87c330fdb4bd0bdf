package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	now := at(2024, 6, 1, 12, 0) // a Saturday
	nowSec := time.Date(2024, 6, 1, 12, 0, 30, 0, time.UTC)
	leapNow := at(2024, 2, 29, 12, 0)
	daily := []WindowSpec{{StartTime: "cron(0 22 * * ? *)", DurationInMinutes: 180}}

	type args struct {
		start, end, behavior string
		windows              []WindowSpec
		now                  time.Time
	}
	tests := []struct {
		name string
		a    args
		want string // "" for valid, else substrings separated by '|'
	}{
		{"empty config", args{now: now}, ""},
		{"windows only", args{windows: daily, now: now}, ""},
		{"everything", args{"2024-06-02T00:00", "2024-07-01T00:00", "CANCEL", daily, now}, ""},

		// startTime format
		{"start bad format", args{start: "2024-06-01 13:00", now: now}, "schedulingConfig.startTime|YYYY-MM-DDTHH:MM"},
		{"start with seconds", args{start: "2024-06-01T13:00:00", now: now}, "schedulingConfig.startTime|YYYY-MM-DDTHH:MM"},
		{"start impossible date", args{start: "2024-06-31T13:00", now: now}, "schedulingConfig.startTime|day"},

		// startTime >= now + 30 minutes
		{"start exactly 30 minutes ahead", args{start: "2024-06-01T12:30", now: now}, ""},
		{"start 29 minutes ahead", args{start: "2024-06-01T12:29", now: now}, "schedulingConfig.startTime must be at least 30 minutes from now"},
		{"start in the past", args{start: "2024-05-01T12:00", now: now}, "schedulingConfig.startTime must be at least 30 minutes from now"},
		{"start 29.5 minutes ahead", args{start: "2024-06-01T12:30", now: nowSec}, "schedulingConfig.startTime must be at least 30 minutes"},
		{"start 30.5 minutes ahead", args{start: "2024-06-01T12:31", now: nowSec}, ""},

		// startTime <= now + 1 year
		{"start exactly 1 year ahead", args{start: "2025-06-01T12:00", now: now}, ""},
		{"start 1 year and 1 minute ahead", args{start: "2025-06-01T12:01", now: now}, "schedulingConfig.startTime must be at most 1 year from now"},
		{"start 1 year from a leap day", args{start: "2025-03-01T12:00", now: leapNow}, ""},
		{"start past 1 year from a leap day", args{start: "2025-03-01T12:01", now: leapNow}, "schedulingConfig.startTime must be at most 1 year"},

		// endTime format
		{"end bad format", args{end: "2024/07/01T00:00", now: now}, "schedulingConfig.endTime|YYYY-MM-DDTHH:MM"},

		// endTime >= startTime + 30 minutes
		{"end exactly 30 minutes after start", args{start: "2024-06-01T13:00", end: "2024-06-01T13:30", now: now}, ""},
		{"end 29 minutes after start", args{start: "2024-06-01T13:00", end: "2024-06-01T13:29", now: now}, "schedulingConfig.endTime must be at least 30 minutes after schedulingConfig.startTime"},
		{"end equal to start", args{start: "2024-06-01T13:00", end: "2024-06-01T13:00", now: now}, "schedulingConfig.endTime must be at least 30 minutes after"},
		{"end before start", args{start: "2024-06-02T13:00", end: "2024-06-01T13:00", now: now}, "schedulingConfig.endTime must be at least 30 minutes after"},

		// endTime >= now + 30 minutes when there is no startTime
		{"no start, end exactly 30 minutes ahead", args{end: "2024-06-01T12:30", now: now}, ""},
		{"no start, end 29 minutes ahead", args{end: "2024-06-01T12:29", now: now}, "schedulingConfig.endTime must be at least 30 minutes from now"},
		{"no start, end 29.5 minutes ahead", args{end: "2024-06-01T12:30", now: nowSec}, "schedulingConfig.endTime must be at least 30 minutes from now"},

		// endTime <= now + 2 years
		{"end exactly 2 years ahead", args{end: "2026-06-01T12:00", now: now}, ""},
		{"end 2 years and 1 minute ahead", args{end: "2026-06-01T12:01", now: now}, "schedulingConfig.endTime must be at most 2 years from now"},
		{"end 2 years ahead with a start", args{start: "2025-06-01T12:00", end: "2026-06-01T12:00", now: now}, ""},
		{"end past 2 years with a start", args{start: "2025-06-01T12:00", end: "2026-06-01T12:01", now: now}, "schedulingConfig.endTime must be at most 2 years"},
		{"end 2 years from a leap day", args{end: "2026-03-01T12:00", now: leapNow}, ""},
		{"end past 2 years from a leap day", args{end: "2026-03-01T12:01", now: leapNow}, "schedulingConfig.endTime must be at most 2 years"},

		// endBehavior
		{"STOP_ROLLOUT", args{end: "2024-07-01T00:00", behavior: "STOP_ROLLOUT", now: now}, ""},
		{"CANCEL", args{end: "2024-07-01T00:00", behavior: "CANCEL", now: now}, ""},
		{"FORCE_CANCEL", args{end: "2024-07-01T00:00", behavior: "FORCE_CANCEL", now: now}, ""},
		{"unknown behavior", args{end: "2024-07-01T00:00", behavior: "STOP", now: now}, "schedulingConfig.endBehavior must be one of STOP_ROLLOUT, CANCEL, FORCE_CANCEL"},
		{"lower-case behavior", args{end: "2024-07-01T00:00", behavior: "cancel", now: now}, "schedulingConfig.endBehavior must be one of"},
		{"behavior without endTime", args{behavior: "CANCEL", now: now}, "schedulingConfig.endBehavior CANCEL requires schedulingConfig.endTime"},
		{"behavior with only startTime", args{start: "2024-06-02T00:00", behavior: "STOP_ROLLOUT", now: now}, "requires schedulingConfig.endTime"},
		{"endTime without behavior", args{end: "2024-07-01T00:00", now: now}, ""},

		// maintenance windows
		{"window duration 1", args{windows: []WindowSpec{{"cron(0 22 * * ? *)", 1}}, now: now}, ""},
		{"window duration 1430", args{windows: []WindowSpec{{"cron(0 22 * * ? *)", 1430}}, now: now}, ""},
		{"window duration 0", args{windows: []WindowSpec{{"cron(0 22 * * ? *)", 0}}, now: now}, "schedulingConfig.maintenanceWindows[0].durationInMinutes must be between 1 and 1430, got 0"},
		{"window duration 1431", args{windows: []WindowSpec{{"cron(0 22 * * ? *)", 1431}}, now: now}, "schedulingConfig.maintenanceWindows[0].durationInMinutes|got 1431"},
		{"second window bad cron", args{windows: []WindowSpec{daily[0], {"cron(0 22 * * * *)", 60}}, now: now}, "schedulingConfig.maintenanceWindows[1].startTime|exactly one"},
		{"window cron missing", args{windows: []WindowSpec{{"", 60}}, now: now}, "schedulingConfig.maintenanceWindows[0].startTime|empty"},
		{"window cron unsupported L", args{windows: []WindowSpec{{"cron(0 22 L * ? *)", 60}}, now: now}, "schedulingConfig.maintenanceWindows[0].startTime|day-of-month field|not supported"},
		{"window cron too long", args{windows: []WindowSpec{{cronOfLength(257), 60}}, now: now}, "schedulingConfig.maintenanceWindows[0].startTime|at most 256"},
		{"window in the past only", args{windows: []WindowSpec{{"cron(0 0 1 1 ? 2020)", 60}}, now: now}, "schedulingConfig.maintenanceWindows[0].startTime|never opens"},
		{"window never", args{windows: []WindowSpec{{"cron(0 0 30 2 ? *)", 60}}, now: now}, "schedulingConfig.maintenanceWindows[0].startTime|never opens"},

		// the first problem is reported
		{"start checked before end", args{start: "2024-06-01T12:00", end: "bad", now: now}, "schedulingConfig.startTime"},
	}
	for _, tc := range tests {
		err := Validate(tc.a.start, tc.a.end, tc.a.behavior, tc.a.windows, tc.a.now)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: Validate: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Validate succeeded, want an error containing %q", tc.name, tc.want)
			continue
		}
		for _, w := range strings.Split(tc.want, "|") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Validate error %q does not contain %q", tc.name, err, w)
			}
		}
	}
}
