package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// isJobEvent matches the job events of operation op for job.
func isJobEvent(job, op string) func(c store.Change) bool {
	return func(c store.Change) bool {
		return c.Event != nil && c.Event.Kind == store.EventJob && c.Event.Job != nil && c.Event.Job.JobID == job && c.Event.Operation == op
	}
}

// eventOnce checks that the job event reached each node exactly once:
// each node's handler hears its own events and the other node's. A later
// job's event, committed on one node and heard on both, is the barrier
// behind which a second one would have arrived.
func (c *cluster) eventOnce(t *testing.T, job, op string) store.Change {
	t.Helper()
	got := c.ra.waitFor(t, "A hears "+job+" "+op, crossNode, isJobEvent(job, op))
	c.rb.waitFor(t, "B hears "+job+" "+op, crossNode, isJobEvent(job, op))
	barrier := job + "-barrier"
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: barrier}}, barrier+"-thing")
	if _, err := c.b.UpdateJobExecution(c.ctx, &store.UpdateExecutionInput{ThingName: barrier + "-thing", JobID: barrier, Status: store.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	c.ra.waitFor(t, "A hears the barrier", crossNode, isJobEvent(barrier, "completed"))
	c.rb.waitFor(t, "B hears the barrier", crossNode, isJobEvent(barrier, "completed"))
	for name, r := range map[string]*recorder{"A": c.ra, "B": c.rb} {
		if n := len(r.matching(isJobEvent(job, op))); n != 1 {
			t.Fatalf("%s heard %d %s events of %s, want 1", name, n, op, job)
		}
	}
	return got
}

// enableJobEvents switches job events on for both nodes.
func (c *cluster) enableJobEvents(t *testing.T) {
	t.Helper()
	on := true
	for _, s := range []*Store{c.a, c.b} {
		if err := s.UpdateEventConfigurations(c.ctx, &on, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// startAll starts the job's execution on every thing, half through each
// node.
func (c *cluster) startAll(t *testing.T, things []string) {
	t.Helper()
	for i, th := range things {
		s := c.a
		if i%2 == 1 {
			s = c.b
		}
		if out, err := s.StartNextPendingJobExecution(c.ctx, &store.StartNextInput{ThingName: th}); err != nil || out.Execution == nil {
			t.Fatalf("start-next %s: %+v, %v", th, out, err)
		}
	}
}

// finishAll moves every thing's execution of job to status at once, the
// things alternating between the nodes, and returns how many updates were
// accepted.
func (c *cluster) finishAll(t *testing.T, job string, things []string, status store.ExecutionStatus) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	gate := make(chan struct{})
	for i, th := range things {
		s := c.a
		if i%2 == 1 {
			s = c.b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			_, err := s.UpdateJobExecution(c.ctx, &store.UpdateExecutionInput{ThingName: th, JobID: job, Status: status})
			if err != nil && !strings.Contains(err.Error(), "InvalidStateTransition") {
				t.Errorf("update %s: %v", th, err)
			}
			if err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	close(gate)
	wg.Wait()
	return accepted
}

func manyThings(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("dev-%03d", i)
	}
	return out
}

// TestCountsCompleteOnceAcrossNodes finishes every thing of one job at
// once, through two nodes: no update waits on another's count row, and
// the job still becomes COMPLETED exactly once, by the time the last
// update has returned, with exact counts.
func TestCountsCompleteOnceAcrossNodes(t *testing.T) {
	c := newCluster(t, 64, nil, nil)
	c.enableJobEvents(t)
	things := manyThings(40)
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "wave"}}, things...)
	c.startAll(t, things)
	if n := c.finishAll(t, "wave", things, store.StatusSucceeded); n != len(things) {
		t.Fatalf("%d of %d updates accepted", n, len(things))
	}
	for _, s := range []*Store{c.a, c.b} {
		job, err := s.DescribeJob(c.ctx, "wave")
		if err != nil {
			t.Fatal(err)
		}
		if job.Status != store.JobCompleted || storetest.Counts(job.ProcessDetails) != "q0 i0 s40 f0 r0 c0 rm0 t0" {
			t.Fatalf("%s: wave = %s %s once every update returned", s.NodeID(), job.Status, storetest.Counts(job.ProcessDetails))
		}
	}
	done := c.eventOnce(t, "wave", "completed")
	if got := storetest.Counts(done.Event.Job.ProcessDetails); got != "q0 i0 s40 f0 r0 c0 rm0 t0" {
		t.Fatalf("completed event counts = %s", got)
	}
}

// TestCountsAbortOnceAcrossNodes fails every thing of a job with abort
// criteria at once, through two nodes: the criteria are met by many
// transactions' counts together, and the job is canceled exactly once.
func TestCountsAbortOnceAcrossNodes(t *testing.T) {
	c := newCluster(t, 64, nil, nil)
	c.enableJobEvents(t)
	things := manyThings(40)
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "risky", AbortConfig: &store.AbortConfig{
		CriteriaList: []store.AbortCriteria{{FailureType: "FAILED", Action: "CANCEL", ThresholdPercentage: 20, MinNumberOfExecutedThings: 10}}}}},
		things...)
	c.startAll(t, things)
	failed := c.finishAll(t, "risky", things, store.StatusFailed)
	job, err := c.b.DescribeJob(c.ctx, "risky")
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != store.JobCanceled || !strings.Contains(job.Comment, "aborted") {
		t.Fatalf("risky = %s %q once every update returned, want CANCELED by its abort criteria", job.Status, job.Comment)
	}
	// Executions still IN_PROGRESS when the job was canceled may report.
	if job.ProcessDetails.Failed != int64(failed) || job.ProcessDetails.Total() != int64(len(things)) {
		t.Fatalf("counts %s after %d accepted failures", storetest.Counts(job.ProcessDetails), failed)
	}
	storetest.Eventually(t, "cancellation written out", func() error {
		job, err := c.a.DescribeJob(c.ctx, "risky")
		if err != nil {
			return err
		}
		if job.IsConcurrent {
			return fmt.Errorf("still settling")
		}
		return nil
	})
	c.ra.waitFor(t, "A hears risky canceled", crossNode, isJobEvent("risky", "canceled"))
	c.eventOnce(t, "risky", "cancellation_in_progress")
	for name, r := range map[string]*recorder{"A": c.ra, "B": c.rb} {
		if n := len(r.matching(isJobEvent("risky", "canceled"))); n != 1 {
			t.Fatalf("%s heard %d canceled events of risky, want 1", name, n)
		}
	}
}

// TestCountsSweepAfterLostCheck stands for a node that died between
// committing the last update of a job and checking the job: the counts
// read exact all along, and the next sweep, a poll interval later, folds
// the shards into the job's row and completes it.
func TestCountsSweepAfterLostCheck(t *testing.T) {
	c := newCluster(t, 64, nil, nil)
	things := manyThings(6)
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "orphan"}}, things...)
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "busy", TargetSelection: store.Continuous}}, things[:2]...)
	c.startAll(t, things)
	c.a.skipChecks.Store(true)
	c.b.skipChecks.Store(true)
	if n := c.finishAll(t, "orphan", things, store.StatusSucceeded); n != len(things) {
		t.Fatalf("%d of %d updates accepted", n, len(things))
	}
	job, err := c.b.DescribeJob(c.ctx, "orphan")
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != store.JobInProgress || storetest.Counts(job.ProcessDetails) != "q0 i0 s6 f0 r0 c0 rm0 t0" {
		t.Fatalf("orphan = %s %s with its check lost", job.Status, storetest.Counts(job.ProcessDetails))
	}
	c.a.skipChecks.Store(false)
	c.b.skipChecks.Store(false)
	shards := func() (n int) {
		t.Helper()
		if err := c.a.pool.QueryRow(c.ctx, "SELECT count(*) FROM job_count_shards WHERE job_id = 'orphan'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if shards() == 0 {
		t.Fatal("no shards: the updates wrote their counts to the job's row")
	}
	// Not yet quiet for a poll interval: the sweep leaves them.
	if n, err := c.b.sweepCounts(c.ctx, c.clk.Now().Add(-defaultPollInterval)); err != nil || n != 0 {
		t.Fatalf("sweep before the poll interval: %d jobs, %v", n, err)
	}
	c.clk.Advance(defaultPollInterval + time.Second)
	storetest.Eventually(t, "orphan completed by a sweep", func() error {
		job, err := c.a.DescribeJob(c.ctx, "orphan")
		if err != nil {
			return err
		}
		if job.Status != store.JobCompleted {
			// The loops sweep every poll interval; do not wait for them.
			if _, err := c.b.sweepCounts(c.ctx, c.clk.Now().Add(-defaultPollInterval)); err != nil {
				return err
			}
			return fmt.Errorf("%s", job.Status)
		}
		return nil
	})
	if n := shards(); n != 0 {
		t.Fatalf("%d shards left after the sweep", n)
	}
	var base string
	if err := c.a.pool.QueryRow(c.ctx, "SELECT n_queued || ' ' || n_in_progress || ' ' || n_succeeded FROM jobs WHERE job_id = 'orphan'").Scan(&base); err != nil {
		t.Fatal(err)
	}
	if base != "0 0 6" {
		t.Fatalf("orphan's row counts queued, in progress, succeeded = %s after the fold, want 0 0 6", base)
	}
	// A continuous job's counts are folded too; it never completes.
	busy, err := c.b.DescribeJob(c.ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if busy.Status != store.JobInProgress || storetest.Counts(busy.ProcessDetails) != "q2 i0 s0 f0 r0 c0 rm0 t0" {
		t.Fatalf("busy = %s %s", busy.Status, storetest.Counts(busy.ProcessDetails))
	}
}

// TestMigrateCountShards opens a database at schema version 3, whose jobs
// keep their counts in their rows only, holding a job two of whose three
// things have succeeded. Its counts read the same after the upgrade, and
// the last thing's success completes it.
func TestMigrateCountShards(t *testing.T) {
	url, schema, exec := schemaAt(t, "0001_init.sql", "0002_sessions.sql", "0003_queue.sql")
	ctx := context.Background()
	at := storetest.Epoch
	things := []string{"t1", "t2", "t3"}
	var targets []string
	for _, th := range things {
		targets = append(targets, storetest.ThingARN(th))
	}
	job := store.Job{JobID: "old", Seq: 1, Status: store.JobInProgress, TargetSelection: store.Snapshot, CreatedAt: at, LastUpdatedAt: at}
	rec, _ := json.Marshal(&job)
	targetsJSON, _ := json.Marshal(targets)
	exec(`INSERT INTO jobs (job_id, seq, status, target_selection, updated_ns, record, targets, document, n_queued, n_succeeded)
		VALUES ('old', 1, 'IN_PROGRESS', 'SNAPSHOT', $1, $2, $3, '{"operation":"old"}', 1, 2)`, at.UnixNano(), rec, targetsJSON)
	for i, th := range things {
		e := store.Execution{JobID: "old", ThingName: th, ExecutionNumber: 1, Status: store.StatusSucceeded, QueuedAt: at,
			LastUpdatedAt: at, VersionNumber: 2, QueueSeq: uint64(i + 2), JobSeq: 1}
		if th == "t3" {
			e.Status, e.VersionNumber = store.StatusQueued, 1
		}
		rec, _ := json.Marshal(&e)
		exec(`INSERT INTO executions (thing_name, job_id, execution_number, status, queue_seq, record) VALUES ($1, 'old', 1, $2, $3, $4)`,
			th, string(e.Status), int64(e.QueueSeq), rec)
		exec(`INSERT INTO thing_state (thing_name, rev, members_rev) VALUES ($1, 2, 1)`, th)
	}
	exec("SELECT setval('jobsbroker_seq', 4)")

	s := openNode(t, url, schema, "migrated", clock.NewFake(at), 4)
	got, err := s.DescribeJob(ctx, "old")
	if err != nil || storetest.Counts(got.ProcessDetails) != "q1 i0 s2 f0 r0 c0 rm0 t0" || got.Status != store.JobInProgress {
		t.Fatalf("after the upgrade: %+v, %v", got, err)
	}
	if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t3", JobID: "old", Status: store.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	got, err = s.DescribeJob(ctx, "old")
	if err != nil || storetest.Counts(got.ProcessDetails) != "q0 i0 s3 f0 r0 c0 rm0 t0" || got.Status != store.JobCompleted {
		t.Fatalf("after the last thing: %s %s, %v", got.Status, storetest.Counts(got.ProcessDetails), err)
	}
	g, err := s.Gauges(ctx)
	if err != nil || g.ExecutionsByStatus[store.StatusSucceeded] != 3 || g.ExecutionsByStatus[store.StatusQueued] != 0 {
		t.Fatalf("gauges = %+v, %v", g, err)
	}
}

// TestCountsNoWaitOnOtherThings holds open, on a connection of its own, a
// transaction that has moved a job's counts as an execution's change does
// (the job's guard shared, a row of its session's shard written), and
// runs operations on other things of the same job meanwhile, through both
// nodes: they must not wait for that transaction. A change of the job
// itself (its cancellation) takes the guard exclusively and goes through
// once that transaction has committed.
func TestCountsNoWaitOnOtherThings(t *testing.T) {
	c := newCluster(t, 64, nil, nil)
	things := manyThings(3)
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "shared"}}, things...)
	conn, err := pgx.Connect(c.ctx, c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(c.ctx)
	tx, err := conn.Begin(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(c.ctx)
	for _, sql := range []string{
		"SET LOCAL search_path TO " + pgx.Identifier{c.schema}.Sanitize(),
		fmt.Sprintf("SELECT pg_advisory_xact_lock_shared(%d, hashtext('shared'))", lockClassGuard),
		"INSERT INTO job_count_shards (job_id, shard, updated_ns) VALUES ('shared', pg_backend_pid(), 0)",
		// As a change that wrote the job's row would: an execution's
		// change must not wait for the row either.
		"SELECT FROM jobs WHERE job_id = 'shared' FOR NO KEY UPDATE",
	} {
		if _, err := tx.Exec(c.ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Bounded, so that a wait fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	for i, s := range []*Store{c.a, c.b} {
		if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: things[i], JobID: "shared", Status: store.StatusSucceeded}); err != nil {
			t.Fatalf("update %s while another change of the job's counts is open: %v", things[i], err)
		}
	}
	job, err := c.b.DescribeJob(ctx, "shared")
	if err != nil || job.Status != store.JobInProgress || storetest.Counts(job.ProcessDetails) != "q1 i0 s2 f0 r0 c0 rm0 t0" {
		t.Fatalf("shared = %+v, %v", job, err)
	}
	canceled := make(chan error, 1)
	go func() {
		_, err := c.a.CancelJob(ctx, &store.CancelJobInput{JobID: "shared"})
		canceled <- err
	}()
	// Whether the cancellation waited cannot be told from its running
	// late without a timing assertion: the test checks that it goes
	// through once the open change has committed.
	if err := tx.Commit(c.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-canceled; err != nil {
		t.Fatalf("cancel: %v", err)
	}
	job, err = c.a.DescribeJob(ctx, "shared")
	if err != nil || job.Status != store.JobCanceled || storetest.Counts(job.ProcessDetails) != "q0 i0 s2 f0 r0 c1 rm0 t0" {
		t.Fatalf("shared = %s %s, %v after the open change committed", job.Status, storetest.Counts(job.ProcessDetails), err)
	}
}
