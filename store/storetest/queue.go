package storetest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
)

// deepQueue is how many executions testDeepQueue queues on one thing.
const deepQueue = 1000

// notifications sums up a thing's changes since the last call: whether
// notify was due (and the first jobs it listed), and the job of each
// notify-next ("-" for an empty queue).
func (h *Harness) notifications(thing string) (notify bool, listed string, next []string) {
	return notificationsOf(h.TakeChanges(thing))
}

// notificationsOf sums up changes as notifications does.
func notificationsOf(cs []store.Change) (notify bool, listed string, next []string) {
	for _, c := range cs {
		if c.Notify {
			notify = true
			ids := make([]string, 0, len(c.Pending))
			for _, p := range c.Pending {
				ids = append(ids, p.JobID)
			}
			listed = strings.Join(ids, ",")
		}
		if c.NotifyNext {
			if c.Next == nil {
				next = append(next, "-")
			} else {
				next = append(next, c.Next.JobID)
			}
		}
	}
	return notify, listed, next
}

// expect checks a thing's notifications since the last call, gathering
// them until they read as wanted (a background step's may come late).
func (h *Harness) expect(step, thing string, wantNotify bool, wantNext ...string) string {
	h.T.Helper()
	var listed string
	h.gather(step, thing, func(cs []store.Change) error {
		var notify bool
		var next []string
		notify, listed, next = notificationsOf(cs)
		if notify != wantNotify || strings.Join(next, ",") != strings.Join(wantNext, ",") {
			return fmt.Errorf("notify %v, notify-next %q; want notify %v, notify-next %q", notify, next, wantNotify, wantNext)
		}
		return nil
	})
	return listed
}

func deepJob(i int) string { return fmt.Sprintf("q%04d", i) }

// testDeepQueue gives one thing a thousand pending executions and checks
// that every operation answers, lists and notifies as with a short queue:
// IN_PROGRESS executions ahead of QUEUED ones, the first ten listed, and
// notify-next exactly when the head changes.
func testDeepQueue(t *testing.T, h *Harness) {
	const thing = "deep"
	for i := range deepQueue {
		h.CreateJob(deepJob(i), thing)
	}
	notify, listed, next := h.notifications(thing)
	if !notify || strings.Join(next, ",") != deepJob(0) {
		t.Fatalf("queueing: notify %v, notify-next %q; want notify and one notify-next of %s", notify, next, deepJob(0))
	}
	first := func(from, n int) string {
		var ids []string
		for i := from; i < from+n; i++ {
			ids = append(ids, deepJob(i))
		}
		return strings.Join(ids, ",")
	}
	equal(t, "listed after queueing", listed, first(0, store.MaxPendingListed))
	inProgress, queued := h.Pending(thing)
	equalSlice(t, "in progress", inProgress, nil)
	equal(t, "queued", strings.Join(queued, ","), first(0, store.MaxPendingListed))

	// An execution deep in the queue goes IN_PROGRESS: it is the head now.
	h.Update(thing, deepJob(500), store.StatusInProgress)
	h.expect("q0500 in progress", thing, false, deepJob(500))
	inProgress, queued = h.Pending(thing)
	equalSlice(t, "in progress", inProgress, []string{deepJob(500)})
	equal(t, "queued behind it", strings.Join(queued, ","), first(0, store.MaxPendingListed-1))
	// A second one joins it, behind it in queue order: the head stays.
	h.Update(thing, deepJob(700), store.StatusInProgress)
	h.expect("q0700 in progress", thing, false)
	equal(t, "start-next returns the head", h.StartNext(thing).JobID, deepJob(500))
	out, err := h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: thing, JobID: "$next"})
	if err != nil || out.Execution == nil || out.Execution.JobID != deepJob(500) {
		t.Fatalf("$next = %+v, %v; want %s", out, err, deepJob(500))
	}
	h.expect("start-next of an IN_PROGRESS head", thing, false)

	// Leaving the queue anywhere but the head notifies, without
	// notify-next.
	h.Update(thing, deepJob(900), store.StatusSucceeded)
	listed = h.expect("q0900 succeeded", thing, true)
	equal(t, "listed", listed, deepJob(500)+","+deepJob(700)+","+first(0, store.MaxPendingListed-2))
	h.Update(thing, deepJob(5), store.StatusRejected)
	h.expect("q0005 rejected", thing, true)

	// The head leaves: the next IN_PROGRESS one is next, then the oldest
	// QUEUED one.
	h.Update(thing, deepJob(500), store.StatusSucceeded)
	h.expect("q0500 succeeded", thing, true, deepJob(700))
	h.Update(thing, deepJob(700), store.StatusFailed)
	h.expect("q0700 failed", thing, true, deepJob(0))
	equal(t, "start-next starts the oldest", h.StartNext(thing).JobID, deepJob(0))
	h.expect("start-next of a QUEUED head", thing, false)

	// A canceled job ends its executions where they are; a deep one
	// leaves the queue without changing the head, the head's moves it.
	if _, err := h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: deepJob(800)}); err != nil {
		t.Fatal(err)
	}
	h.Eventually("q0800 canceled", func() error {
		if j := h.Job(deepJob(800)); j.IsConcurrent {
			return fmt.Errorf("still settling: %s", Counts(j.ProcessDetails))
		}
		return nil
	})
	h.expect("q0800 canceled", thing, true)
	if err := h.Store.DeleteJob(h.Ctx, &store.DeleteJobInput{JobID: deepJob(0), Force: true}); err != nil {
		t.Fatal(err)
	}
	h.Eventually("q0000 deleted", func() error {
		if _, err := h.Store.DescribeJob(h.Ctx, deepJob(0)); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	h.expect("q0000 deleted", thing, true, deepJob(1))
	inProgress, queued = h.Pending(thing)
	equalSlice(t, "in progress", inProgress, nil)
	equal(t, "queued", strings.Join(queued, ","), first(1, 4)+","+first(6, store.MaxPendingListed-4))

	// Working through the queue from the head keeps every answer right.
	for i := range 20 {
		e := h.StartNext(thing)
		if e == nil || e.Status != store.StatusInProgress {
			t.Fatalf("start-next %d: %+v", i, e)
		}
		h.Update(thing, e.JobID, store.StatusSucceeded)
	}
	pending := deepQueue - 6 - 20 // q0005, q0000, q0500, q0700, q0800, q0900 left before
	equal(t, "pending", countPending(t, h, thing), pending)
}

// countPending counts a thing's pending executions through
// ListJobExecutionsForThing.
func countPending(t *testing.T, h *Harness, thing string) int {
	t.Helper()
	n := 0
	for _, status := range []store.ExecutionStatus{store.StatusQueued, store.StatusInProgress} {
		in := &store.ListExecutionsInput{ThingName: thing, Status: status, MaxResults: store.MaxListResults}
		for {
			page, err := h.Store.ListJobExecutionsForThing(h.Ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Executions)
			if page.NextToken == "" {
				break
			}
			in.NextToken = page.NextToken
		}
	}
	return n
}
