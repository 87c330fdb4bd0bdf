package console

import (
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

func TestFieldForMapsTheAPIsMessages(t *testing.T) {
	for msg, want := range map[string]string{
		`jobId "a b" must be 1-64 characters from [a-zA-Z0-9_-]`:                            "jobId",
		"job fw-1 already exists":                                                           "jobId",
		`target "arn:x" is not an AWS IoT thing or thing group ARN`:                         "targets",
		"thing group pumps does not exist":                                                  "targets",
		"targets must list at least one thing or thing group ARN":                           "targets",
		"document must be a JSON object: got null":                                          "document",
		"a job needs a document, a documentSource or a jobTemplateArn":                      "document",
		"job template t1 does not exist":                                                    "template",
		"jobExecutionsRolloutConfig.maximumPerMinute 0 must be at least 1":                  "rollout",
		"exponentialRate.incrementFactor 9 must be between 1.1 and 5":                       "rollout",
		"timeoutConfig.inProgressTimeoutInMinutes 0 must be between 1 and 10080":            "timeout",
		"schedulingConfig.endTime must be at least 30 minutes from now":                     "scheduleEnd",
		"schedulingConfig.endBehavior CANCEL requires schedulingConfig.endTime":             "endBehavior",
		"documentParameters can only be used with a jobTemplateArn":                         "parameters",
		"description has 3000 characters; the limit is 2028":                                "description",
		"timeoutConfig has the wrong type: expected store.TimeoutConfig, got a JSON string": "timeout",
		"the service cannot complete the request right now":                                 "",
	} {
		if got := fieldFor(msg); got != want {
			t.Errorf("fieldFor(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestMakeBar(t *testing.T) {
	b := makeBar(&store.ProcessDetails{Succeeded: 6, Failed: 1, InProgress: 1, Queued: 2})
	if b.Total != 10 || b.Done != 7 || b.Percent != 70 {
		t.Errorf("bar %+v", b)
	}
	if b.Text != "70% done: 6 succeeded, 1 failed, 1 in progress, 2 queued, of 10" {
		t.Errorf("text %q", b.Text)
	}
	var x float64
	for _, s := range b.Segs {
		if s.X != x {
			t.Errorf("segment %s starts at %v, want %v", s.Label, s.X, x)
		}
		x += s.W
	}
	if x < 999.999 || x > 1000.001 {
		t.Errorf("segments cover %v of 1000", x)
	}
	if e := makeBar(&store.ProcessDetails{}); e.Percent != 0 || e.Text != "no executions yet" {
		t.Errorf("empty bar %+v", e)
	}
}

func TestReconstructCountsEachThingsLatestAttempt(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	j := &store.Job{CreatedAt: t0, CompletedAt: at(60)}
	execs := []*store.Execution{
		{ThingName: "a", ExecutionNumber: 1, Status: store.StatusSucceeded, QueuedAt: at(0), StartedAt: at(10), LastUpdatedAt: at(20)},
		{ThingName: "b", ExecutionNumber: 1, Status: store.StatusFailed, QueuedAt: at(0), StartedAt: at(10), LastUpdatedAt: at(30)},
		{ThingName: "b", ExecutionNumber: 2, Status: store.StatusSucceeded, QueuedAt: at(30), StartedAt: at(40), LastUpdatedAt: at(50)},
		{ThingName: "c", ExecutionNumber: 1, Status: store.StatusCanceled, QueuedAt: at(0), LastUpdatedAt: at(5)},
	}
	pts := reconstruct(execs, j, at(100))
	count := func(p sample, s store.ExecutionStatus) int64 {
		for i, st := range store.Statuses {
			if st == s {
				return p.Counts[i]
			}
		}
		return -1
	}
	find := func(sec int) sample {
		for _, p := range pts {
			if !p.At.Before(at(sec)) {
				return p
			}
		}
		t.Fatalf("no point at %ds", sec)
		return sample{}
	}
	for _, tc := range []struct {
		sec  int
		want map[store.ExecutionStatus]int64
	}{
		{0, map[store.ExecutionStatus]int64{store.StatusQueued: 3}},
		{15, map[store.ExecutionStatus]int64{store.StatusInProgress: 2, store.StatusCanceled: 1}},
		{35, map[store.ExecutionStatus]int64{store.StatusSucceeded: 1, store.StatusQueued: 1, store.StatusCanceled: 1}},
		{60, map[store.ExecutionStatus]int64{store.StatusSucceeded: 2, store.StatusCanceled: 1}},
	} {
		p := find(tc.sec)
		for _, st := range store.Statuses {
			if got := count(p, st); got != tc.want[st] {
				t.Errorf("at %ds (%v): %s = %d, want %d", tc.sec, p.At.Sub(t0), st, got, tc.want[st])
			}
		}
	}
}

func TestHistoryIsBounded(t *testing.T) {
	var e jobEntry
	t0 := time.Now()
	for i := range 10 * maxSamples {
		e.record(sample{At: t0.Add(time.Duration(i) * time.Second), Counts: [8]int64{int64(i)}})
	}
	if len(e.hist) > maxSamples {
		t.Fatalf("%d points kept", len(e.hist))
	}
	if e.hist[0].Counts[0] != 0 || e.hist[len(e.hist)-1].Counts[0] != int64(10*maxSamples-1) {
		t.Errorf("the first and latest points are not kept: %v ... %v", e.hist[0], e.hist[len(e.hist)-1])
	}
	for i := 1; i < len(e.hist); i++ {
		if !e.hist[i].At.After(e.hist[i-1].At) {
			t.Fatalf("points out of order at %d", i)
		}
	}
	// Unchanged counts add a point only every sampleEvery.
	var q jobEntry
	for i := range 100 {
		q.record(sample{At: t0.Add(time.Duration(i) * time.Second)})
	}
	if want := 100/int(sampleEvery/time.Second) + 1; len(q.hist) > want {
		t.Errorf("%d points for unchanged counts, want at most %d", len(q.hist), want)
	}
}

func TestSafeNextStaysInTheConsole(t *testing.T) {
	for next, want := range map[string]string{
		"/console/jobs/x?status=FAILED": "/console/jobs/x?status=FAILED",
		"https://evil.example/":         Prefix,
		"//evil.example/console/":       Prefix,
		"/metrics":                      Prefix,
		"/console/\\evil":               Prefix,
		"":                              Prefix,
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[any]string{0: "0", 999: "999", 1000: "1,000", int64(-1234567): "-1,234,567", 1.5: "1.5", 100000.0: "100,000"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}
