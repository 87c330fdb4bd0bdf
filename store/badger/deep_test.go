package badger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// TestDeepPendingSets gives every thing of a full rollout step more pending
// jobs than fit one Badger batch when each step rewrites them all: every
// CreateJob, rollout step, cancellation and timer sweep must still commit,
// splitting its work across commits as needed.
func TestDeepPendingSets(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 30,000 executions")
	}
	const nThings, nJobs = 256, 120
	clk := clock.NewFake(storetest.Epoch)
	s, err := badger.Open(badger.Options{Dir: t.TempDir(), NoSync: true, Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var targets []string
	for i := range nThings {
		targets = append(targets, storetest.ThingARN(fmt.Sprintf("thing-%03d", i)))
	}
	step := int64(1)
	for j := range nJobs {
		in := &store.CreateJobInput{
			Job:      store.Job{JobID: fmt.Sprintf("job-%03d", j), Targets: targets, TimeoutConfig: &store.TimeoutConfig{InProgressTimeoutInMinutes: &step}},
			Document: `{"operation":"deep"}`,
		}
		if _, err := s.CreateJob(ctx, in); err != nil {
			t.Fatalf("CreateJob %d: %v", j, err)
		}
	}
	waitJobs := func(what string, ok func(*store.Job) error) {
		t.Helper()
		storetest.Eventually(t, what, func() error {
			for j := range nJobs {
				job, err := s.DescribeJob(ctx, fmt.Sprintf("job-%03d", j))
				if err != nil {
					return err
				}
				if err := ok(job); err != nil {
					return fmt.Errorf("%s: %w", job.JobID, err)
				}
			}
			return nil
		})
	}
	waitJobs("every execution queued", func(j *store.Job) error {
		if j.ProcessDetails.Queued != nThings {
			return fmt.Errorf("%d queued", j.ProcessDetails.Queued)
		}
		return nil
	})
	// Every thing starts its head job; a minute later all of those time
	// out in one sweep of the timer index.
	for i := range nThings {
		out, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: fmt.Sprintf("thing-%03d", i)})
		if err != nil || out.Execution == nil || out.Execution.JobID != "job-000" {
			t.Fatalf("start-next thing-%03d: %+v, %v", i, out, err)
		}
	}
	clk.Advance(2 * time.Minute)
	storetest.Eventually(t, "job-000 timed out everywhere", func() error {
		job, err := s.DescribeJob(ctx, "job-000")
		if err != nil {
			return err
		}
		if job.ProcessDetails.TimedOut != nThings {
			return fmt.Errorf("%s", storetest.Counts(job.ProcessDetails))
		}
		return nil
	})
	// Cancelling every job settles each thing's deep pending set.
	for j := 1; j < nJobs; j++ {
		if _, err := s.CancelJob(ctx, &store.CancelJobInput{JobID: fmt.Sprintf("job-%03d", j)}); err != nil {
			t.Fatalf("CancelJob %d: %v", j, err)
		}
	}
	waitJobs("every execution canceled", func(j *store.Job) error {
		if j.JobID != "job-000" && j.ProcessDetails.Canceled != nThings {
			return fmt.Errorf("%s", storetest.Counts(j.ProcessDetails))
		}
		return nil
	})
}
