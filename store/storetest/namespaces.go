package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

// notifiedOf sums up a thing's changes, one line per notification,
// sorted: "ns notify a,b" (the jobs listed) and "ns next j" ("-" for an
// empty queue), with "" shown as "plain". It fails on a notify-next that
// names a job of another namespace.
func notifiedOf(cs []store.Change) ([]string, error) {
	var out []string
	var errs []error
	for _, c := range cs {
		ns := c.Namespace
		if ns == "" {
			ns = "plain"
		}
		if c.Notify {
			out = append(out, ns+" notify "+strings.Join(ids(c.Pending), ","))
		}
		if c.NotifyNext {
			next := "-"
			if c.Next != nil {
				next = c.Next.JobID
				if c.Next.Namespace != c.Namespace {
					errs = append(errs, fmt.Errorf("notify-next of namespace %q names %s of namespace %q", c.Namespace, next, c.Next.Namespace))
				}
			}
			out = append(out, ns+" next "+next)
		}
	}
	slices.Sort(out)
	return out, errors.Join(errs...)
}

// expectNotified checks a thing's notifications since the last call,
// gathering them until they read as wanted (see expect).
func (h *Harness) expectNotified(step, thing string, want ...string) {
	h.T.Helper()
	slices.Sort(want)
	h.gather(step, thing, func(cs []store.Change) error {
		got, err := notifiedOf(cs)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("notifications %q, want %q", got, want)
		}
		return nil
	})
}

// describeNext describes $next in namespace ns, with the document.
func (h *Harness) describeNext(thing, ns string) (*store.Execution, string) {
	h.T.Helper()
	out, err := h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: thing, JobID: topics.Next,
		Namespace: ns, IncludeJobDocument: true})
	if err != nil {
		h.T.Fatalf("describe $next in %q: %v", ns, err)
	}
	return out.Execution, out.Document
}

func jobOf(e *store.Execution) string {
	if e == nil {
		return "-"
	}
	return e.JobID
}

// testNamespaces checks that each job namespace is a queue of its own on
// a thing: its notifications name its own executions only, and come
// exactly when its own members or head change, whatever the other queues
// hold; $next in a namespace is the namespace's next execution however
// deep the other queues are; and the plain operations (get, start-next,
// $next) see the jobs without a namespace only, as AWS IoT sends
// namespaced jobs to namespaced topics only.
func testNamespaces(t *testing.T, h *Harness) {
	const thing = "gg-core"
	ns := func(id, namespace string) {
		t.Helper()
		h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: id, NamespaceID: namespace}}, thing)
	}
	// Namespaced jobs first: they are older than every plain one.
	ns("a1", "A")
	h.expectNotified("a1 created", thing, "A notify a1", "A next a1")
	ns("b1", "B")
	ns("b2", "B")
	h.expectNotified("b1, b2 created", thing, "B notify b1", "B next b1", "B notify b1,b2")
	for i := 1; i <= 12; i++ {
		h.CreateJob(fmt.Sprintf("p%02d", i), thing)
	}
	ns("c1", "C")
	h.TakeChanges(thing)

	// The plain operations see the plain jobs only.
	inProgress, queued := h.Pending(thing)
	equalSlice(t, "plain in progress", inProgress, nil)
	equal(t, "plain queued", strings.Join(queued, ","), "p01,p02,p03,p04,p05,p06,p07,p08,p09,p10")
	next, _ := h.describeNext(thing, "")
	equal(t, "plain $next", jobOf(next), "p01")

	// $next in a namespace is its next execution, even behind twelve
	// plain and three namespaced ones created before it.
	next, doc := h.describeNext(thing, "C")
	equal(t, "$next in C", jobOf(next), "c1")
	equal(t, "$next in C: document", doc, `{"operation":"c1"}`)
	next, _ = h.describeNext(thing, "B")
	equal(t, "$next in B", jobOf(next), "b1")
	next, _ = h.describeNext(thing, "nobody")
	equal(t, "$next in a namespace without jobs", jobOf(next), "-")

	// A's execution goes IN_PROGRESS by id: A's head stays a1.
	h.Update(thing, "a1", store.StatusInProgress)
	h.expectNotified("a1 in progress", thing)
	// B's second execution goes IN_PROGRESS by id while A's is: B's head
	// is b2 now, and only B hears of it.
	h.Update(thing, "b2", store.StatusInProgress)
	h.expectNotified("b2 in progress", thing, "B next b2")
	next, _ = h.describeNext(thing, "B")
	equal(t, "$next in B", jobOf(next), "b2")

	// Plain start-next starts the oldest plain job, not the older
	// namespaced ones, and not the IN_PROGRESS ones of A and B.
	equal(t, "plain start-next", jobOf(h.StartNext(thing)), "p01")
	h.expectNotified("p01 started", thing)

	// B's head succeeds: B lists and names b1; A and the plain queue hear
	// nothing.
	h.Update(thing, "b2", store.StatusSucceeded)
	h.expectNotified("b2 succeeded", thing, "B notify b1", "B next b1")
	h.Update(thing, "b1", store.StatusSucceeded)
	h.expectNotified("b1 succeeded", thing, "B notify ", "B next -")

	// A canceled namespaced job leaves its queue.
	if err := h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{ThingName: thing, JobID: "c1"}); err != nil {
		t.Fatal(err)
	}
	h.expectNotified("c1 canceled", thing, "C notify ", "C next -")

	// The plain queue empties; the namespaced one left keeps its job.
	for i := 1; i <= 12; i++ {
		h.Update(thing, fmt.Sprintf("p%02d", i), store.StatusSucceeded)
	}
	h.TakeChanges(thing)
	equal(t, "plain start-next with only namespaced jobs pending", jobOf(h.StartNext(thing)), "-")
	next, _ = h.describeNext(thing, "A")
	equal(t, "$next in A", jobOf(next), "a1")

	// Deleting the thing removes the pending executions of every queue.
	h.mustRegister(thing)
	ns("a2", "A")
	h.CreateJob("p13", thing)
	h.TakeChanges(thing)
	if err := h.Store.DeleteThing(h.Ctx, &store.DeleteThingInput{ThingName: thing}); err != nil {
		t.Fatal(err)
	}
	h.expectNotified("thing deleted", thing, "A notify ", "A next -", "plain notify ", "plain next -")
	for _, job := range []string{"a1", "a2", "p13"} {
		equal(t, job+" after the thing was deleted", h.Describe(thing, job).Status, store.StatusRemoved)
	}
}
