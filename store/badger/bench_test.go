package badger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// BenchmarkStartNextUpdate measures one device's start-next followed by an
// update to SUCCEEDED, with 1,000 and with 100,000 other executions
// stored, durable (synced) and not. Device operations touch only the
// thing's own records and indexes, so their cost must not grow with what
// else is stored.
func BenchmarkStartNextUpdate(b *testing.B) {
	for _, stored := range []int{1000, 100000} {
		for _, sync := range []bool{true, false} {
			name := fmt.Sprintf("stored=%d/sync=%v", stored, sync)
			b.Run(name, func(b *testing.B) { benchStartNextUpdate(b, stored, sync) })
		}
	}
}

func benchStartNextUpdate(b *testing.B, stored int, sync bool) {
	ctx := context.Background()
	s, err := badger.Open(badger.Options{Dir: b.TempDir(), NoSync: !sync, Logger: quiet, TaskBatch: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	createAndWait(b, s, "background", "bg", stored)
	createAndWait(b, s, "bench", "dev", b.N)
	b.ResetTimer()
	for i := range b.N {
		thing := fmt.Sprintf("dev-%d", i)
		out, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: thing})
		if err != nil || out.Execution == nil {
			b.Fatalf("start-next %s: %v %+v", thing, err, out)
		}
		if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: thing, JobID: "bench", Status: store.StatusSucceeded}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/2, "µs/op-each")
}

func createAndWait(b *testing.B, s store.Store, job, prefix string, n int) {
	ctx := context.Background()
	in := &store.CreateJobInput{Job: store.Job{JobID: job}, Document: `{"op":"x"}`}
	for i := range n {
		in.Job.Targets = append(in.Job.Targets, storetest.ThingARN(fmt.Sprintf("%s-%d", prefix, i)))
	}
	if _, err := s.CreateJob(ctx, in); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		j, err := s.DescribeJob(ctx, job)
		if err != nil {
			b.Fatal(err)
		}
		if !j.IsConcurrent && j.ProcessDetails.Queued == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("rollout of %d things did not finish", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
