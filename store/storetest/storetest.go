// Package storetest is the contract suite of store.Store: the behaviour
// every backend must show, run unchanged against each of them.
//
// A backend's test calls Run with a constructor. The constructor must
// return a fresh, empty store that uses the given clock and rolls out,
// cancels and deletes at most a few things per background step, so that
// the suite exercises the paths large jobs take.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

// Factory opens a fresh store for one test.
type Factory func(t *testing.T, clk clock.Clock) store.Store

// Epoch is the fake clock's start in every test.
var Epoch = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// Run runs the whole suite.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *Harness)
	}{
		{"DeviceFlow", testDeviceFlow},
		{"StartNextKeepsInProgress", testStartNextKeepsInProgress},
		{"PendingOrder", testPendingOrder},
		{"PendingListCap", testPendingListCap},
		{"DescribeNextAndNumbers", testDescribe},
		{"UpdateRejections", testUpdateRejections},
		{"StatusDetailsReplace", testStatusDetailsReplace},
		{"StatusDetailsAsAgentsSend", testStatusDetailsAsAgentsSend},
		{"DirectTerminalFromQueued", testDirectTerminal},
		{"WorkedNotificationSequence", testWorkedSequence},
		{"StepTimer", testStepTimer},
		{"StepTimerCleared", testStepTimerCleared},
		{"InProgressTimeoutBoundsStepTimer", testInProgressBound},
		{"CancelJob", testCancelJob},
		{"ForceCancelJob", testForceCancelJob},
		{"CancelLargeJob", testCancelLargeJob},
		{"DeleteJob", testDeleteJob},
		{"DeleteLargeJob", testDeleteLargeJob},
		{"CancelJobExecution", testCancelJobExecution},
		{"DeleteJobExecution", testDeleteJobExecution},
		{"LargeRollout", testLargeRollout},
		{"CreateJobValidation", testCreateJobValidation},
		{"ListJobs", testListJobs},
		{"ListExecutions", testListExecutions},
		{"ThingGroups", testThingGroups},
		{"ContinuousJob", testContinuousJob},
		{"Retries", testRetries},
		{"RolloutRate", testRolloutRate},
		{"ExponentialRollout", testExponentialRollout},
		{"Abort", testAbort},
		{"ScheduledJob", testScheduledJob},
		{"MaintenanceWindows", testMaintenanceWindows},
		{"Templates", testTemplates},
		{"Events", testEvents},
		{"DeepQueue", testDeepQueue},
		{"Namespaces", testNamespaces},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(Epoch)
			h := &Harness{T: t, Clock: clk, Ctx: context.Background()}
			h.Store = newStore(t, clk)
			h.Store.SetChangeHandler(h.record)
			tt.fn(t, h)
		})
	}
}

// Harness holds a store under test and records its changes.
type Harness struct {
	T     *testing.T
	Store store.Store
	Clock *clock.Fake
	Ctx   context.Context

	mu      sync.Mutex
	changes []store.Change
}

func (h *Harness) record(cs []store.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, cs...)
}

// TakeChanges returns the changes recorded so far for thing and forgets
// them.
func (h *Harness) TakeChanges(thing string) []store.Change {
	h.mu.Lock()
	defer h.mu.Unlock()
	var mine, rest []store.Change
	for _, c := range h.changes {
		if c.ThingName == thing {
			mine = append(mine, c)
		} else {
			rest = append(rest, c)
		}
	}
	h.changes = rest
	return mine
}

// TakeChangesAtLeast waits until at least n changes for thing have been
// recorded, then returns them all and forgets them; see gather.
func (h *Harness) TakeChangesAtLeast(thing string, n int) []store.Change {
	h.T.Helper()
	return h.gather(fmt.Sprintf("%d changes for %s", n, thing), thing, func(cs []store.Change) error {
		if len(cs) < n {
			return fmt.Errorf("%d so far: %+v", len(cs), cs)
		}
		return nil
	})
}

// gather takes thing's changes until those taken so far satisfy done (it
// returns nil), and returns them; it fails the test with done's last error
// if that takes longer than Eventually allows. A change made by a
// background step (a rollout, a cancellation or deletion written out) may
// be handed on a moment after the call that started the step returned, or
// after the step's commit is visible.
func (h *Harness) gather(what, thing string, done func([]store.Change) error) []store.Change {
	h.T.Helper()
	var cs []store.Change
	h.Eventually(what, func() error {
		cs = append(cs, h.TakeChanges(thing)...)
		return done(cs)
	})
	return cs
}

// Eventually polls cond until it returns nil or the deadline passes.
func (h *Harness) Eventually(what string, cond func() error) {
	h.T.Helper()
	Eventually(h.T, what, cond)
}

// Eventually polls cond every few milliseconds until it returns nil, and
// fails the test with cond's last error if that takes over 10 seconds.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ThingARN returns a target ARN for thing.
func ThingARN(thing string) string { return "arn:aws:iot:us-east-1:123456789012:thing/" + thing }

// CreateJob creates a job with a small document for things.
func (h *Harness) CreateJob(id string, things ...string) *store.Job {
	h.T.Helper()
	return h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: id}}, things...)
}

// CreateJobWith creates a job from in, targeting things.
func (h *Harness) CreateJobWith(in store.CreateJobInput, things ...string) *store.Job {
	h.T.Helper()
	for _, th := range things {
		in.Job.Targets = append(in.Job.Targets, ThingARN(th))
	}
	if in.Document == "" && in.Job.JobTemplateArn == "" {
		in.Document = `{"operation":"` + in.Job.JobID + `"}`
	}
	job, err := h.Store.CreateJob(h.Ctx, &in)
	if err != nil {
		h.T.Fatalf("CreateJob %s: %v", in.Job.JobID, err)
	}
	// Wait for a rollout that only the store's speed bounds; a paced or
	// scheduled one moves with the fake clock, which the test drives.
	if job.IsConcurrent && in.Job.RolloutConfig == nil && in.Job.SchedulingConfig == nil {
		h.Eventually("rollout of "+job.JobID, func() error {
			if job = h.Job(job.JobID); job.IsConcurrent {
				return fmt.Errorf("still rolling out: %s", Counts(job.ProcessDetails))
			}
			return nil
		})
	}
	return job
}

// StartNext runs start-next for thing and returns the execution (nil if none).
func (h *Harness) StartNext(thing string) *store.Execution {
	h.T.Helper()
	out, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{ThingName: thing})
	if err != nil {
		h.T.Fatalf("StartNext %s: %v", thing, err)
	}
	return out.Execution
}

// Update reports status for the latest execution of job on thing.
func (h *Harness) Update(thing, job string, status store.ExecutionStatus) *store.Execution {
	h.T.Helper()
	out, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: thing, JobID: job, Status: status})
	if err != nil {
		h.T.Fatalf("Update %s/%s to %s: %v", thing, job, status, err)
	}
	return out.Execution
}

// Describe returns the latest execution of job on thing.
func (h *Harness) Describe(thing, job string) *store.Execution {
	h.T.Helper()
	out, err := h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: thing, JobID: job})
	if err != nil {
		h.T.Fatalf("Describe %s/%s: %v", thing, job, err)
	}
	return out.Execution
}

// Pending returns the job ids of thing's pending executions, in order.
func (h *Harness) Pending(thing string) (inProgress, queued []string) {
	h.T.Helper()
	p, err := h.Store.GetPendingJobExecutions(h.Ctx, thing)
	if err != nil {
		h.T.Fatalf("GetPending %s: %v", thing, err)
	}
	return ids(p.InProgress), ids(p.Queued)
}

func ids(list []store.PendingExecution) []string {
	out := []string{}
	for _, e := range list {
		out = append(out, e.JobID)
	}
	return out
}

// Job describes a job.
func (h *Harness) Job(id string) *store.Job {
	h.T.Helper()
	j, err := h.Store.DescribeJob(h.Ctx, id)
	if err != nil {
		h.T.Fatalf("DescribeJob %s: %v", id, err)
	}
	return j
}

// ExpectError checks that err wraps kind.
func ExpectError(t *testing.T, err, kind error) *store.Error {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want %v", err, kind)
	}
	var se *store.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *store.Error", err)
	}
	if se.Message == "" {
		t.Fatalf("error %v has no message", err)
	}
	return se
}

func equal[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func equalSlice(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

// Counts renders process details compactly for comparisons.
func Counts(p store.ProcessDetails) string {
	return fmt.Sprintf("q%d i%d s%d f%d r%d c%d rm%d t%d", p.Queued, p.InProgress, p.Succeeded, p.Failed, p.Rejected, p.Canceled, p.Removed, p.TimedOut)
}

func ptr[T any](v T) *T { return &v }
