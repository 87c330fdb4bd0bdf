package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// recorder is a node's Interest and ChangeHandler in the tests.
type recorder struct {
	mu      sync.Mutex
	things  map[string]bool
	changes []store.Change
}

func newRecorder(things ...string) *recorder {
	r := &recorder{things: map[string]bool{}}
	for _, th := range things {
		r.things[th] = true
	}
	return r
}

func (r *recorder) Has(thing string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.things[thing]
}

func (r *recorder) Things() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for th := range r.things {
		out = append(out, th)
	}
	slices.Sort(out)
	return out
}

func (r *recorder) handle(cs []store.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, cs...)
}

// matching returns the recorded changes for which ok holds.
func (r *recorder) matching(ok func(c store.Change) bool) []store.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []store.Change
	for _, c := range r.changes {
		if ok(c) {
			out = append(out, c)
		}
	}
	return out
}

// crossNode bounds the wait for one node to hear of another's change. The
// path (NOTIFY, the listener, a re-read) takes milliseconds; the bound is
// generous because CI runs this race-instrumented on two loaded cores, and
// latency is measured by jobsbench, not asserted here.
const crossNode = 10 * time.Second

// waitFor polls until a change for which ok holds is recorded, failing the
// test after within.
func (r *recorder) waitFor(t *testing.T, what string, within time.Duration, ok func(c store.Change) bool) store.Change {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if got := r.matching(ok); len(got) > 0 {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no such change within %v", what, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// nextIs matches a change of thing that announces job as next.
func nextIs(thing, job string) func(c store.Change) bool {
	return func(c store.Change) bool {
		return c.ThingName == thing && c.NotifyNext && c.Next != nil && c.Next.JobID == job
	}
}

// cluster is two nodes on one schema sharing a fake clock.
type cluster struct {
	a, b   *Store
	ra, rb *recorder
	clk    *clock.Fake
	url    string
	schema string
	ctx    context.Context
}

func newCluster(t *testing.T, batch int, aThings, bThings []string) *cluster {
	url, schema := freshSchema(t)
	c := &cluster{clk: clock.NewFake(storetest.Epoch), url: url, schema: schema, ctx: context.Background()}
	c.a = openNode(t, url, schema, "node-a", c.clk, batch)
	c.b = openNode(t, url, schema, "node-b", c.clk, batch)
	c.ra, c.rb = newRecorder(aThings...), newRecorder(bThings...)
	c.a.SetInterest(c.ra)
	c.a.SetChangeHandler(c.ra.handle)
	c.b.SetInterest(c.rb)
	c.b.SetChangeHandler(c.rb.handle)
	// A, which started alone, notifies once it has seen B (peers.go; what
	// it commits before that reaches B late, which TestPeers* cover).
	waitAlone(t, c.a, false)
	return c
}

func (c *cluster) createJob(t *testing.T, s *Store, in store.CreateJobInput, things ...string) *store.Job {
	t.Helper()
	for _, th := range things {
		in.Job.Targets = append(in.Job.Targets, storetest.ThingARN(th))
	}
	if in.Document == "" {
		in.Document = `{"operation":"` + in.Job.JobID + `"}`
	}
	job, err := s.CreateJob(c.ctx, &in)
	if err != nil {
		t.Fatalf("CreateJob %s: %v", in.Job.JobID, err)
	}
	return job
}

func (c *cluster) describe(t *testing.T, s *Store, thing, job string) *store.Execution {
	t.Helper()
	out, err := s.DescribeJobExecution(c.ctx, &store.DescribeExecutionInput{ThingName: thing, JobID: job})
	if err != nil {
		t.Fatalf("describe %s/%s: %v", thing, job, err)
	}
	return out.Execution
}

// TestClusterChangesReachOtherNode: a job created on A reaches B's handler
// for a thing B serves, within a second, once; A hands its own change over
// once; a device's update through B is readable through A at once; and a
// change B makes reaches A.
func TestClusterChangesReachOtherNode(t *testing.T) {
	c := newCluster(t, 16, []string{"dev-1", "dev-2"}, []string{"dev-1"})
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "j1"}}, "dev-1")
	got := c.rb.waitFor(t, "B hears of j1", crossNode, nextIs("dev-1", "j1"))
	if !got.Notify || len(got.Pending) != 1 || got.NextDocument != `{"operation":"j1"}` {
		t.Fatalf("B's change = %+v", got)
	}

	// Through B, the device starts and reports; A reads it at once.
	out, err := c.b.StartNextPendingJobExecution(c.ctx, &store.StartNextInput{ThingName: "dev-1"})
	if err != nil || out.Execution == nil || out.Execution.JobID != "j1" {
		t.Fatalf("start-next through B = %+v, %v", out, err)
	}
	if e := c.describe(t, c.a, "dev-1", "j1"); e.Status != store.StatusInProgress || e.VersionNumber != 2 {
		t.Fatalf("A reads %+v after B started it", e)
	}
	if _, err := c.b.UpdateJobExecution(c.ctx, &store.UpdateExecutionInput{ThingName: "dev-1", JobID: "j1",
		Status: store.StatusSucceeded, ExpectedVersion: ptr(int64(2))}); err != nil {
		t.Fatal(err)
	}
	if e := c.describe(t, c.a, "dev-1", "j1"); e.Status != store.StatusSucceeded {
		t.Fatalf("A reads %s after B's update", e.Status)
	}
	job, err := c.a.DescribeJob(c.ctx, "j1")
	if err != nil || job.Status != store.JobCompleted {
		t.Fatalf("j1 = %+v, %v", job, err)
	}
	// A serves dev-1 too: it hears B's update (the pending set emptied).
	c.ra.waitFor(t, "A hears dev-1 finished", crossNode, func(ch store.Change) bool {
		return ch.ThingName == "dev-1" && ch.Notify && len(ch.Pending) == 0
	})

	// A barrier: a later change through A reaches B; by then every change
	// of j1 has been handed over, and each once.
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "j2"}}, "dev-1", "dev-2")
	c.rb.waitFor(t, "B hears of j2", crossNode, nextIs("dev-1", "j2"))
	if n := len(c.rb.matching(nextIs("dev-1", "j1"))); n != 1 {
		t.Fatalf("B handed j1's notify-next over %d times", n)
	}
	if n := len(c.ra.matching(nextIs("dev-1", "j1"))); n != 1 {
		t.Fatalf("A handed its own change over %d times", n)
	}
	if n := len(c.rb.matching(func(ch store.Change) bool { return ch.ThingName == "dev-2" })); n != 0 {
		t.Fatalf("B serves no dev-2, yet got %d changes for it", n)
	}
}

// TestClusterTimerOnce: a step timer armed through A fires exactly once
// while both nodes run, and once more for another execution after A is
// gone without closing its connections cleanly.
func TestClusterTimerOnce(t *testing.T) {
	c := newCluster(t, 16, nil, []string{"dev-t"})
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "timed"}}, "dev-t", "dev-u")
	for _, th := range []string{"dev-t", "dev-u"} {
		if _, err := c.a.StartNextPendingJobExecution(c.ctx, &store.StartNextInput{ThingName: th, StepTimeoutInMinutes: ptr(int64(1))}); err != nil {
			t.Fatal(err)
		}
	}
	c.clk.Advance(61 * time.Second)
	waitStatus := func(s *Store, thing string, want store.ExecutionStatus) {
		t.Helper()
		storetest.Eventually(t, thing+" "+string(want), func() error {
			if e := c.describe(t, s, thing, "timed"); e.Status != want {
				return fmt.Errorf("%s", e.Status)
			}
			return nil
		})
	}
	waitStatus(c.b, "dev-t", store.StatusTimedOut)
	waitStatus(c.b, "dev-u", store.StatusTimedOut)
	c.rb.waitFor(t, "B hears dev-t timed out", crossNode, func(ch store.Change) bool {
		return ch.ThingName == "dev-t" && ch.Notify && len(ch.Pending) == 0
	})
	// A barrier through both timer loops: a later timer fires, and by then
	// any second firing of the first ones would have happened.
	c.createJob(t, c.b, store.CreateJobInput{Job: store.Job{JobID: "later"}}, "dev-v")
	if _, err := c.b.StartNextPendingJobExecution(c.ctx, &store.StartNextInput{ThingName: "dev-v", StepTimeoutInMinutes: ptr(int64(1))}); err != nil {
		t.Fatal(err)
	}
	c.clk.Advance(61 * time.Second)
	storetest.Eventually(t, "dev-v timed out", func() error {
		if e := c.describe(t, c.a, "dev-v", "later"); e.Status != store.StatusTimedOut {
			return fmt.Errorf("%s", e.Status)
		}
		return nil
	})
	// The counters move just after each node's commit.
	fired := func() int64 { return c.a.Stats().TimersFired.Load() + c.b.Stats().TimersFired.Load() }
	storetest.Eventually(t, "three timeouts counted", func() error {
		if n := fired(); n != 3 {
			return fmt.Errorf("%d timeouts fired across the nodes, want 3", n)
		}
		return nil
	})
	job, _ := c.a.DescribeJob(c.ctx, "timed")
	if storetest.Counts(job.ProcessDetails) != "q0 i0 s0 f0 r0 c0 rm0 t2" || job.Status != store.JobCompleted {
		t.Fatalf("timed = %s %s", job.Status, storetest.Counts(job.ProcessDetails))
	}
	if e := c.describe(t, c.a, "dev-t", "timed"); e.VersionNumber != 3 {
		t.Fatalf("dev-t version %d, want 3 (queued, started, timed out once)", e.VersionNumber)
	}
	if n := len(c.rb.matching(func(ch store.Change) bool { return ch.ThingName == "dev-t" && ch.Notify && len(ch.Pending) == 0 })); n != 1 {
		t.Fatalf("B heard dev-t's timeout %d times", n)
	}

	// A arms a timer and dies: its connections are cut, then it stops.
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "orphan"}}, "dev-w")
	if _, err := c.a.StartNextPendingJobExecution(c.ctx, &store.StartNextInput{ThingName: "dev-w", StepTimeoutInMinutes: ptr(int64(1))}); err != nil {
		t.Fatal(err)
	}
	killNode(t, c.b, "node-a")
	c.a.Close()
	before := c.b.Stats().TimersFired.Load()
	c.clk.Advance(61 * time.Second)
	storetest.Eventually(t, "B times out A's execution", func() error {
		if e := c.describe(t, c.b, "dev-w", "orphan"); e.Status != store.StatusTimedOut {
			return fmt.Errorf("%s", e.Status)
		}
		return nil
	})
	storetest.Eventually(t, "B counted the timeout", func() error {
		if n := c.b.Stats().TimersFired.Load() - before; n != 1 {
			return fmt.Errorf("B fired %d timeouts, want 1", n)
		}
		return nil
	})
	if n := fired(); n != 4 {
		t.Fatalf("%d timeouts fired across the nodes in all, want 4", n)
	}
}

// killNode terminates every database connection of a node, as if its
// process had died.
func killNode(t *testing.T, via *Store, node string) {
	t.Helper()
	if _, err := via.pool.Exec(context.Background(),
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name IN ($1, $2)",
		"jobsbroker "+node, "jobsbroker listen "+node); err != nil {
		t.Fatal(err)
	}
}

// TestClusterRolloutOnce: a 2,000-thing rollout that both nodes step
// queues exactly one execution per thing.
func TestClusterRolloutOnce(t *testing.T) {
	const n = 2000
	c := newCluster(t, 64, nil, []string{"roll-0000", "roll-1999"})
	things := make([]string, n)
	for i := range things {
		things[i] = fmt.Sprintf("roll-%04d", i)
	}
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "wide"}}, things...)
	// Besides both task loops, each node keeps claiming the job's steps
	// directly, one waiting for the lock and one trying it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range []*Store{c.a, c.b, c.b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if res, _, err := s.runStep(c.ctx, "wide", i == 1); err != nil || res.Done {
					return
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	var job *store.Job
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if job, err = c.b.DescribeJob(c.ctx, "wide"); err != nil {
			t.Fatal(err)
		}
		if !job.IsConcurrent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout unfinished: %s", storetest.Counts(job.ProcessDetails))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if job.ProcessDetails.Queued != n {
		t.Fatalf("counts %s, want %d queued", storetest.Counts(job.ProcessDetails), n)
	}
	var rows, distinct, maxN int64
	if err := c.a.pool.QueryRow(c.ctx, "SELECT count(*), count(DISTINCT thing_name), max(execution_number) FROM executions WHERE job_id = 'wide'").
		Scan(&rows, &distinct, &maxN); err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n || maxN != 1 {
		t.Fatalf("%d executions on %d things, highest number %d; want %d, %d, 1", rows, distinct, maxN, n, n)
	}
	stepsA, stepsB := c.a.Stats().TaskSteps.Load(), c.b.Stats().TaskSteps.Load()
	t.Logf("steps: node A %d, node B %d", stepsA, stepsB)
	if stepsA == 0 || stepsB == 0 {
		t.Fatalf("both nodes should have stepped the rollout: A %d, B %d", stepsA, stepsB)
	}
	c.rb.waitFor(t, "B hears of the last thing's execution", 5*time.Second, nextIs("roll-1999", "wide"))
	if got := len(c.rb.matching(nextIs("roll-0000", "wide"))); got != 1 {
		t.Fatalf("B heard of roll-0000's execution %d times", got)
	}
}

// TestClusterListenerReconnects: after B's listening connection is
// terminated, a change made through A meanwhile still reaches B once B
// listens again.
func TestClusterListenerReconnects(t *testing.T) {
	c := newCluster(t, 16, nil, []string{"dev-r", "dev-s"})
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "first"}}, "dev-r")
	c.rb.waitFor(t, "B hears of the first job", crossNode, nextIs("dev-r", "first"))

	resyncs := c.b.Stats().Resyncs.Load()
	// Stop B's refresher from seeing anything until the change is made,
	// by making it while B's listener is gone.
	c.cutListener(t)
	// dev-r's head does not change (first is still next), but a second
	// job joins its pending set; dev-s gets its first job.
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "meanwhile"}}, "dev-r", "dev-s")
	// Reconnecting (a new connection, authentication) and re-reading take
	// longer than a hint on a loaded machine; the bound is the suite's.
	c.rb.waitFor(t, "B hears dev-r's new member", 10*time.Second, func(ch store.Change) bool {
		return ch.ThingName == "dev-r" && ch.Notify && len(ch.Pending) == 2
	})
	c.rb.waitFor(t, "B hears dev-s's job", 10*time.Second, nextIs("dev-s", "meanwhile"))
	if c.b.Stats().Resyncs.Load() == resyncs {
		t.Fatal("B did not re-read its things after reconnecting")
	}
	if n := len(c.rb.matching(nextIs("dev-r", "first"))); n != 1 {
		t.Fatalf("B announced dev-r's unchanged head %d times", n)
	}
}

// cutListener terminates B's listening connection and waits until B
// notices.
func (c *cluster) cutListener(t *testing.T) {
	t.Helper()
	pid := c.b.ListenerPID()
	if pid == 0 {
		t.Fatal("B is not listening")
	}
	if _, err := c.a.pool.Exec(c.ctx, "SELECT pg_terminate_backend($1)", int32(pid)); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, "B notices", func() error {
		if c.b.ListenerPID() == pid {
			return fmt.Errorf("still listening on %d", pid)
		}
		return nil
	})
}

// TestClusterEvents: event messages committed on one node reach the other
// node's handler, and the event configuration follows.
func TestClusterEvents(t *testing.T) {
	c := newCluster(t, 16, nil, nil)
	on := true
	if err := c.a.UpdateEventConfigurations(c.ctx, &on, &on); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, "B sees the configuration", func() error {
		if cfg := c.b.EventConfig(); !cfg.Job || !cfg.JobExecution {
			return fmt.Errorf("%+v", cfg)
		}
		return nil
	})
	c.createJob(t, c.b, store.CreateJobInput{Job: store.Job{JobID: "ev"}}, "dev-e")
	if _, err := c.b.UpdateJobExecution(c.ctx, &store.UpdateExecutionInput{ThingName: "dev-e", JobID: "ev", Status: store.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	isEvent := func(op string) func(store.Change) bool {
		return func(ch store.Change) bool { return ch.Event != nil && ch.Event.Operation == op }
	}
	got := c.ra.waitFor(t, "A hears the job completed", crossNode, isEvent("completed"))
	if got.Event.Job == nil || got.Event.Job.JobID != "ev" || got.Event.Job.ProcessDetails.Succeeded != 1 || got.ThingName != "" {
		t.Fatalf("completed event on A = %+v", got.Event)
	}
	exec := c.ra.waitFor(t, "A hears the execution succeeded", crossNode, isEvent("succeeded"))
	if exec.ThingName != "dev-e" || exec.Event.Execution.Status != store.StatusSucceeded {
		t.Fatalf("succeeded event on A = %+v", exec.Event)
	}
	if n := len(c.rb.matching(isEvent("completed"))); n != 1 {
		t.Fatalf("B handed its own event over %d times", n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestClusterNamespaces: each job namespace of a thing is a queue of its
// own across nodes too. B hears A's changes to a namespaced queue as
// changes of that namespace, and of no other; a non-head execution of the
// namespace started by id while another namespace's is IN_PROGRESS gives
// that namespace a notify-next; and after B's listener was cut, B re-reads
// every queue of the thing and hands over what changed in each.
func TestClusterNamespaces(t *testing.T) {
	const thing, ns = "gg-1", "aws-gg-deployment"
	c := newCluster(t, 16, nil, []string{thing})
	in := func(namespace string) func(ch store.Change) bool {
		return func(ch store.Change) bool { return ch.ThingName == thing && ch.Namespace == namespace }
	}
	nsNext := func(job string) func(ch store.Change) bool {
		return func(ch store.Change) bool {
			return in(ns)(ch) && ch.NotifyNext && ((job == "" && ch.Next == nil) || (ch.Next != nil && ch.Next.JobID == job))
		}
	}
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "other", NamespaceID: "other-ns"}}, thing)
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "d1", NamespaceID: ns}}, thing)
	c.createJob(t, c.a, store.CreateJobInput{Job: store.Job{JobID: "d2", NamespaceID: ns}}, thing)
	got := c.rb.waitFor(t, "B hears of d1 in the namespace", crossNode, nsNext("d1"))
	if got.NextDocument != `{"operation":"d1"}` {
		t.Fatalf("B's change = %+v", got)
	}
	c.rb.waitFor(t, "B hears d2 join the namespace", crossNode, func(ch store.Change) bool {
		return in(ns)(ch) && ch.Notify && len(ch.Pending) == 2
	})

	// The other namespace's job goes IN_PROGRESS, then d2, not the
	// namespace's head, by id: only the namespace hears, of d2 as next.
	for _, job := range []string{"other", "d2"} {
		if _, err := c.a.UpdateJobExecution(c.ctx, &store.UpdateExecutionInput{ThingName: thing, JobID: job, Status: store.StatusInProgress}); err != nil {
			t.Fatal(err)
		}
	}
	c.rb.waitFor(t, "B hears d2 is the namespace's next", crossNode, nsNext("d2"))

	// B's listener is cut; meanwhile d2 succeeds through A. Once B is
	// back, it hands over the namespace's change: d1 next again.
	c.cutListener(t)
	if _, err := c.a.UpdateJobExecution(c.ctx, &store.UpdateExecutionInput{ThingName: thing, JobID: "d2", Status: store.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	// d1 was next once before (when created); now again, with notify.
	deadline := time.Now().Add(10 * time.Second)
	for len(c.rb.matching(nsNext("d1"))) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("B did not hear d1 is next again after reconnecting: %+v", c.rb.matching(in(ns)))
		}
		time.Sleep(2 * time.Millisecond)
	}
	if again := c.rb.matching(nsNext("d1"))[1]; !again.Notify || len(again.Pending) != 1 {
		t.Fatalf("B's change after reconnecting = %+v, want notify listing d1", again)
	}
	if got := c.rb.matching(in("")); len(got) != 0 {
		t.Fatalf("B handed over %d changes of the plain queue, which never changed: %+v", len(got), got)
	}
}
