package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// BenchmarkDeviceOps measures one device's sequential start-next and
// update to SUCCEEDED, the pair every job execution costs.
//
//	eval "$(.ci/postgres)"; go test ./store/postgres -run '^$' -bench DeviceOps -benchtime 2000x
func BenchmarkDeviceOps(b *testing.B) {
	url, schema := freshSchema(b)
	s := openNode(b, url, schema, "bench", nil, 0)
	ctx := context.Background()
	var targets []string
	for i := range 100 {
		targets = append(targets, storetest.ThingARN(fmt.Sprintf("bench-%03d", i)))
	}
	jobs := (b.N + len(targets) - 1) / len(targets)
	for j := range jobs {
		if _, err := s.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: fmt.Sprintf("job-%05d", j), Targets: targets},
			Document: `{"op":"bench"}`}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for j := range jobs {
		for {
			job, err := s.DescribeJob(ctx, fmt.Sprintf("job-%05d", j))
			if err != nil {
				b.Fatal(err)
			}
			if !job.IsConcurrent {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("rollout did not finish")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	trips, commits := s.Stats().RoundTrips.Load(), s.Stats().Commits.Load()
	b.ResetTimer()
	for i := range b.N {
		thing := fmt.Sprintf("bench-%03d", i%len(targets))
		out, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: thing})
		if err != nil || out.Execution == nil {
			b.Fatalf("start-next %s: %+v %v", thing, out, err)
		}
		if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: thing, JobID: out.Execution.JobID,
			Status: store.StatusSucceeded}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/pair")
	b.ReportMetric(float64(s.Stats().RoundTrips.Load()-trips)/float64(b.N), "trips/pair")
	b.ReportMetric(float64(s.Stats().Commits.Load()-commits)/float64(b.N), "commits/pair")
}
