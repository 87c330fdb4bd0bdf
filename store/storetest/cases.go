package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

func testDeviceFlow(t *testing.T, h *Harness) {
	job := h.CreateJob("fw-1", "t1", "t2", "t3")
	equal(t, "status", job.Status, store.JobInProgress)
	equal(t, "targetSelection", job.TargetSelection, store.Snapshot)
	equal(t, "counts after create", Counts(job.ProcessDetails), "q3 i0 s0 f0 r0 c0 rm0 t0")
	if !job.CreatedAt.Equal(Epoch) {
		t.Fatalf("createdAt = %v, want %v", job.CreatedAt, Epoch)
	}
	doc, err := h.Store.GetJobDocument(h.Ctx, "fw-1", false)
	if err != nil || doc != `{"operation":"fw-1"}` {
		t.Fatalf("GetJobDocument = %q, %v", doc, err)
	}

	for _, th := range []string{"t1", "t2", "t3"} {
		inProgress, queued := h.Pending(th)
		equalSlice(t, th+" in progress", inProgress, nil)
		equalSlice(t, th+" queued", queued, []string{"fw-1"})
		cs := h.TakeChanges(th)
		if len(cs) != 1 || !cs[0].Notify || !cs[0].NotifyNext || cs[0].Next == nil || cs[0].Next.JobID != "fw-1" {
			t.Fatalf("%s changes after create = %+v, want one notify + notify-next of fw-1", th, cs)
		}
		equal(t, "next document", cs[0].NextDocument, `{"operation":"fw-1"}`)
	}

	h.Clock.Advance(10 * time.Second)
	for i, th := range []string{"t1", "t2", "t3"} {
		out, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{
			ThingName: th, StatusDetails: map[string]string{"step": "download"},
		})
		if err != nil {
			t.Fatal(err)
		}
		e := out.Execution
		equal(t, "started status", e.Status, store.StatusInProgress)
		equal(t, "started version", e.VersionNumber, int64(2))
		equal(t, "execution number", e.ExecutionNumber, int64(1))
		equal(t, "document", out.Document, `{"operation":"fw-1"}`)
		equal(t, "details", e.StatusDetails["step"], "download")
		if !e.StartedAt.Equal(Epoch.Add(10*time.Second)) || !e.QueuedAt.Equal(Epoch) {
			t.Fatalf("times: queued %v started %v", e.QueuedAt, e.StartedAt)
		}
		if _, ok := e.SecondsBeforeTimedOut(h.Clock.Now()); ok {
			t.Fatal("no timer was set, yet the execution reports a timeout")
		}
		if cs := h.TakeChanges(th); len(cs) != 0 {
			t.Fatalf("QUEUED->IN_PROGRESS of the next execution must not notify: %+v", cs)
		}
		out2, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{
			ThingName: th, JobID: "fw-1", Status: store.StatusInProgress,
			StatusDetails: map[string]string{"progress": "50"}, ExpectedVersion: ptr(int64(2)),
		})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "progress version", out2.Execution.VersionNumber, int64(3))
		equal(t, "document not asked for", out2.Document, "")
		if cs := h.TakeChanges(th); len(cs) != 0 {
			t.Fatalf("a details-only update must not notify: %+v", cs)
		}
		final := h.Update(th, "fw-1", store.StatusSucceeded)
		equal(t, "final version", final.VersionNumber, int64(4))
		equal(t, "details kept", final.StatusDetails["progress"], "50")
		cs := h.TakeChanges(th)
		if len(cs) != 1 || !cs[0].Notify || len(cs[0].Pending) != 0 || !cs[0].NotifyNext || cs[0].Next != nil {
			t.Fatalf("%s changes after success = %+v, want empty notify and empty notify-next", th, cs)
		}
		j := h.Job("fw-1")
		want := fmt.Sprintf("q%d i0 s%d f0 r0 c0 rm0 t0", 2-i, i+1)
		if i < 2 {
			equal(t, "job status", j.Status, store.JobInProgress)
		}
		equal(t, "counts", Counts(j.ProcessDetails), want)
	}
	j := h.Job("fw-1")
	equal(t, "job status", j.Status, store.JobCompleted)
	if !j.CompletedAt.Equal(h.Clock.Now()) {
		t.Fatalf("completedAt = %v", j.CompletedAt)
	}
	if j.IsConcurrent {
		t.Fatal("a completed job is not concurrent")
	}
}

func testStartNextKeepsInProgress(t *testing.T, h *Harness) {
	h.CreateJob("a", "t")
	h.CreateJob("b", "t")
	first, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{
		ThingName: "t", StatusDetails: map[string]string{"k": "v1"}, StepTimeoutInMinutes: ptr(int64(5)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Clock.Advance(time.Minute)
	again, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{
		ThingName: "t", StatusDetails: map[string]string{"k": "v2"}, StepTimeoutInMinutes: ptr(int64(60)),
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "same job", again.Execution.JobID, "a")
	equal(t, "version unchanged", again.Execution.VersionNumber, first.Execution.VersionNumber)
	equal(t, "details unchanged", again.Execution.StatusDetails["k"], "v1")
	secs, ok := again.Execution.SecondsBeforeTimedOut(h.Clock.Now())
	if !ok || secs != 240 {
		t.Fatalf("approximateSecondsBeforeTimedOut = %d, %v; want 240 (the first step timer, not re-armed)", secs, ok)
	}
	if e := h.Describe("t", "b"); e.Status != store.StatusQueued {
		t.Fatalf("b = %s, want QUEUED", e.Status)
	}
}

func testPendingOrder(t *testing.T, h *Harness) {
	for _, id := range []string{"j1", "j2", "j3", "j4"} {
		h.CreateJob(id, "t")
		h.Clock.Advance(time.Second)
	}
	// j3 goes IN_PROGRESS before j1 does: IN_PROGRESS come first, each
	// group by queue order.
	h.Update("t", "j3", store.StatusInProgress)
	h.Update("t", "j1", store.StatusInProgress)
	inProgress, queued := h.Pending("t")
	equalSlice(t, "in progress", inProgress, []string{"j1", "j3"})
	equalSlice(t, "queued", queued, []string{"j2", "j4"})
	equal(t, "start-next returns the first IN_PROGRESS", h.StartNext("t").JobID, "j1")
	out, err := h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "$next"})
	if err != nil || out.Execution == nil || out.Execution.JobID != "j1" {
		t.Fatalf("$next = %+v, %v", out, err)
	}
	h.Update("t", "j1", store.StatusSucceeded)
	h.Update("t", "j3", store.StatusFailed)
	equal(t, "then the oldest QUEUED", h.StartNext("t").JobID, "j2")
}

func testPendingListCap(t *testing.T, h *Harness) {
	for i := range 12 {
		h.CreateJob(fmt.Sprintf("j%02d", i), "t")
	}
	h.Update("t", "j11", store.StatusInProgress)
	inProgress, queued := h.Pending("t")
	equalSlice(t, "in progress", inProgress, []string{"j11"})
	equal(t, "listed", len(inProgress)+len(queued), store.MaxPendingListed)
	equal(t, "first queued", queued[0], "j00")
}

func testDescribe(t *testing.T, h *Harness) {
	out, err := h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "$next"})
	if err != nil || out.Execution != nil {
		t.Fatalf("$next with nothing pending = %+v, %v; want no execution", out, err)
	}
	_, err = h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "nope"})
	ExpectError(t, err, store.ErrNotFound)

	h.CreateJob("j", "t", "other")
	out, err = h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "j", IncludeJobDocument: true})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "document", out.Document, `{"operation":"j"}`)
	equal(t, "thing", out.Execution.ThingName, "t")
	out, err = h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "j", ExecutionNumber: ptr(int64(1))})
	if err != nil || out.Document != "" {
		t.Fatalf("describe by number = %+v, %v", out, err)
	}
	_, err = h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "j", ExecutionNumber: ptr(int64(2))})
	ExpectError(t, err, store.ErrNotFound)
	_, err = h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "nobody", JobID: "j"})
	ExpectError(t, err, store.ErrNotFound)
	_, err = h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "bad.id"})
	ExpectError(t, err, store.ErrInvalidRequest)

	// Terminal executions are described normally.
	h.Update("t", "j", store.StatusRejected)
	equal(t, "terminal describe", h.Describe("t", "j").Status, store.StatusRejected)
}

func testUpdateRejections(t *testing.T, h *Harness) {
	h.CreateJob("j", "t")
	h.StartNext("t")
	before := h.Describe("t", "j")
	cases := []struct {
		in   store.UpdateExecutionInput
		kind error
	}{
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j"}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: "SUCCESS"}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusQueued}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusCanceled}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusTimedOut}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StepTimeoutInMinutes: ptr(int64(0))}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StepTimeoutInMinutes: ptr(int64(10081))}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StatusDetails: map[string]string{"bad key": "v"}}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StatusDetails: map[string]string{"k": ""}}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StatusDetails: map[string]string{"k": strings.Repeat("x", 1025)}}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StatusDetails: map[string]string{strings.Repeat("k", 129): "v"}}, store.ErrInvalidRequest},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "nope", Status: store.StatusSucceeded}, store.ErrNotFound},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusSucceeded, ExecutionNumber: ptr(int64(9))}, store.ErrNotFound},
		{store.UpdateExecutionInput{ThingName: "u", JobID: "j", Status: store.StatusSucceeded}, store.ErrNotFound},
		{store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusSucceeded, ExpectedVersion: ptr(int64(1))}, store.ErrVersionMismatch},
	}
	for i, c := range cases {
		_, err := h.Store.UpdateJobExecution(h.Ctx, &c.in)
		se := ExpectError(t, err, c.kind)
		if c.kind == store.ErrVersionMismatch {
			if se.State == nil || se.State.VersionNumber != 2 || se.State.Status != store.StatusInProgress {
				t.Fatalf("case %d: VersionMismatch must carry the current state, got %+v", i, se.State)
			}
		}
	}
	after := h.Describe("t", "j")
	equal(t, "version after rejections", after.VersionNumber, before.VersionNumber)
	equal(t, "status after rejections", after.Status, before.Status)
	if cs := h.TakeChanges("t"); len(cs) != 1 {
		t.Fatalf("only the create may have notified, got %d changes", len(cs))
	}

	// 1,024 characters are fine; U+0000 is not (see StatusDetailsAsAgentsSend).
	h.Update("t", "j", store.StatusInProgress)
	_, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress,
		StatusDetails: map[string]string{"stdout": strings.Repeat("é", 1024)}})
	if err != nil {
		t.Fatalf("a 1,024-character value must be accepted: %v", err)
	}
	_, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress,
		StatusDetails: map[string]string{"stdout": "hello from device client\x00"}})
	ExpectError(t, err, store.ErrInvalidRequest)

	h.Update("t", "j", store.StatusSucceeded)
	for _, status := range []store.ExecutionStatus{store.StatusSucceeded, store.StatusInProgress, store.StatusFailed} {
		_, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: status})
		se := ExpectError(t, err, store.ErrInvalidStateTransition)
		if se.State == nil || se.State.Status != store.StatusSucceeded || se.State.VersionNumber != 5 {
			t.Fatalf("InvalidStateTransition must carry the current state, got %+v", se.State)
		}
	}
	// expectedVersion is checked before the terminal state.
	_, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusSucceeded, ExpectedVersion: ptr(int64(2))})
	ExpectError(t, err, store.ErrVersionMismatch)
	equal(t, "terminal version unchanged", h.Describe("t", "j").VersionNumber, int64(5))
}

func testStatusDetailsReplace(t *testing.T, h *Harness) {
	h.CreateJob("j", "t")
	out, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress,
		StatusDetails: map[string]string{"a": "1", "b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "queued->in progress version", out.Execution.VersionNumber, int64(2))
	out, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress,
		StatusDetails: map[string]string{"c": "3"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Execution.StatusDetails) != 1 || out.Execution.StatusDetails["c"] != "3" {
		t.Fatalf("statusDetails = %v, want replaced by {c:3}", out.Execution.StatusDetails)
	}
	out, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress})
	if err != nil {
		t.Fatal(err)
	}
	if out.Execution.StatusDetails["c"] != "3" {
		t.Fatalf("omitted statusDetails must leave them unchanged, got %v", out.Execution.StatusDetails)
	}
	if d := h.Describe("t", "j"); d.StatusDetails["c"] != "3" || d.VersionNumber != 4 {
		t.Fatalf("stored execution = %+v", d)
	}
}

func testDirectTerminal(t *testing.T, h *Harness) {
	h.CreateJob("j", "t")
	e := h.Update("t", "j", store.StatusRejected)
	equal(t, "status", e.Status, store.StatusRejected)
	if !e.StartedAt.IsZero() {
		t.Fatal("an execution rejected from QUEUED never started")
	}
	equal(t, "counts", Counts(h.Job("j").ProcessDetails), "q0 i0 s0 f0 r1 c0 rm0 t0")
	equal(t, "job", h.Job("j").Status, store.JobCompleted)
}

// testWorkedSequence replays PROTOCOL.md §6.3.
func testWorkedSequence(t *testing.T, h *Harness) {
	type want struct {
		notify     []string // nil: no notify; "ip:x"/"q:x" entries
		notifyNext string   // "": none; "-": empty; else job id
	}
	// The changes are gathered until they read as wanted: a background
	// step's (a rollout, a forced delete) may come a moment late.
	check := func(step string, w want) {
		t.Helper()
		h.gather(step, "t", func(cs []store.Change) error { return sequenceDiff(cs, w.notify, w.notifyNext) })
	}
	h.CreateJob("job1", "t")
	check("job1 queued", want{[]string{"q:job1"}, "job1"})
	h.CreateJob("job2", "t")
	check("job2 queued", want{[]string{"q:job1", "q:job2"}, ""})
	h.StartNext("t")
	check("device starts job1", want{nil, ""})
	h.CreateJob("job3", "t")
	check("job3 queued", want{[]string{"ip:job1", "q:job2", "q:job3"}, ""})
	h.Update("t", "job1", store.StatusSucceeded)
	check("job1 succeeded", want{[]string{"q:job2", "q:job3"}, "job2"})
	h.Update("t", "job3", store.StatusInProgress)
	check("job3 in progress", want{nil, "job3"})
	h.Update("t", "job2", store.StatusRejected)
	check("job2 rejected", want{[]string{"ip:job3"}, ""})
	if err := h.Store.DeleteJob(h.Ctx, &store.DeleteJobInput{JobID: "job3", Force: true}); err != nil {
		t.Fatal(err)
	}
	check("job3 force-deleted", want{[]string{}, "-"})
}

// sequenceDiff sums up a thing's changes as a device would see them (the
// last notify's pending list, "ip:" or "q:" and the job id each, and the
// last notify-next's job, "-" for an empty one) and says how that differs
// from notify (nil: no notify wanted) and notifyNext ("": none wanted).
func sequenceDiff(cs []store.Change, notify []string, notifyNext string) error {
	var got []string
	gotNotify, next := false, ""
	for _, c := range cs {
		if c.Notify {
			gotNotify = true
			got = nil
			for _, p := range c.Pending {
				prefix := "q:"
				if p.Status == store.StatusInProgress {
					prefix = "ip:"
				}
				got = append(got, prefix+p.JobID)
			}
		}
		if c.NotifyNext {
			next = "-"
			if c.Next != nil {
				next = c.Next.JobID
			}
		}
	}
	if gotNotify != (notify != nil) || strings.Join(got, ",") != strings.Join(notify, ",") {
		return fmt.Errorf("notify %v (sent %v), want %v", got, gotNotify, notify)
	}
	if next != notifyNext {
		return fmt.Errorf("notify-next %q, want %q", next, notifyNext)
	}
	return nil
}

func testStepTimer(t *testing.T, h *Harness) {
	h.CreateJob("j", "t")
	out, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{ThingName: "t", StepTimeoutInMinutes: ptr(int64(2))})
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := out.Execution.SecondsBeforeTimedOut(h.Clock.Now()); !ok || s != 120 {
		t.Fatalf("approximateSecondsBeforeTimedOut = %d, %v", s, ok)
	}
	h.TakeChanges("t")
	h.Clock.Advance(90 * time.Second)
	// A new step timer replaces the old one: now + 1 minute.
	out, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StepTimeoutInMinutes: ptr(int64(1))})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := out.Execution.SecondsBeforeTimedOut(h.Clock.Now()); s != 60 {
		t.Fatalf("after re-arming, seconds = %d, want 60", s)
	}
	h.Clock.Advance(45 * time.Second) // past the first deadline, before the second
	h.Eventually("still running", func() error {
		if e := h.Describe("t", "j"); e.Status != store.StatusInProgress {
			return fmt.Errorf("status %s", e.Status)
		}
		return nil
	})
	h.Clock.Advance(20 * time.Second)
	// A store may make the commit visible a moment before it hands the
	// change on: wait for both.
	var cs []store.Change
	h.Eventually("timed out", func() error {
		if e := h.Describe("t", "j"); e.Status != store.StatusTimedOut {
			return fmt.Errorf("status %s", e.Status)
		}
		if cs = append(cs, h.TakeChanges("t")...); len(cs) == 0 {
			return errors.New("timed out, but no change handed on yet")
		}
		return nil
	})
	e := h.Describe("t", "j")
	equal(t, "version bumped by the service", e.VersionNumber, int64(4))
	if _, ok := e.SecondsBeforeTimedOut(h.Clock.Now()); ok {
		t.Fatal("a timed-out execution has no timer")
	}
	if len(cs) != 1 || !cs[0].Notify || len(cs[0].Pending) != 0 || !cs[0].NotifyNext || cs[0].Next != nil {
		t.Fatalf("timeout changes = %+v", cs)
	}
	_, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusSucceeded})
	se := ExpectError(t, err, store.ErrInvalidStateTransition)
	equal(t, "rejected state", se.State.Status, store.StatusTimedOut)
	equal(t, "job counts", Counts(h.Job("j").ProcessDetails), "q0 i0 s0 f0 r0 c0 rm0 t1")
	equal(t, "job status", h.Job("j").Status, store.JobCompleted)
}

func testStepTimerCleared(t *testing.T, h *Harness) {
	h.CreateJob("j", "t")
	if _, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{ThingName: "t", StepTimeoutInMinutes: ptr(int64(1))}); err != nil {
		t.Fatal(err)
	}
	out, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StepTimeoutInMinutes: ptr(int64(-1))})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out.Execution.SecondsBeforeTimedOut(h.Clock.Now()); ok {
		t.Fatal("-1 must clear the step timer")
	}
	h.Clock.Advance(time.Hour)
	// Give the timer loop a chance to run; nothing may fire.
	h.CreateJob("probe", "other")
	equal(t, "status", h.Describe("t", "j").Status, store.StatusInProgress)
	// A finished execution's timer is gone too.
	h.CreateJob("k", "u")
	if _, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{ThingName: "u", StepTimeoutInMinutes: ptr(int64(1))}); err != nil {
		t.Fatal(err)
	}
	h.Update("u", "k", store.StatusSucceeded)
	h.Clock.Advance(time.Hour)
	h.CreateJob("probe2", "other")
	equal(t, "succeeded stays", h.Describe("u", "k").Status, store.StatusSucceeded)
}

func testInProgressBound(t *testing.T, h *Harness) {
	in := store.CreateJobInput{Job: store.Job{JobID: "j", TimeoutConfig: &store.TimeoutConfig{InProgressTimeoutInMinutes: ptr(int64(10))}}}
	h.CreateJobWith(in, "t")
	e := h.StartNext("t")
	if s, ok := e.SecondsBeforeTimedOut(h.Clock.Now()); !ok || s != 600 {
		t.Fatalf("seconds = %d, %v; want 600", s, ok)
	}
	h.Clock.Advance(7 * time.Minute)
	// A 9-minute step set at minute 7 cannot push past minute 10.
	out, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress, StepTimeoutInMinutes: ptr(int64(9))})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := out.Execution.SecondsBeforeTimedOut(h.Clock.Now()); s != 180 {
		t.Fatalf("seconds = %d, want 180", s)
	}
	h.Clock.Advance(3*time.Minute + time.Second)
	h.Eventually("timed out at the in-progress bound", func() error {
		if e := h.Describe("t", "j"); e.Status != store.StatusTimedOut {
			return fmt.Errorf("status %s", e.Status)
		}
		return nil
	})
}

func testCancelJob(t *testing.T, h *Harness) {
	h.CreateJob("j", "a", "b", "c")
	h.StartNext("a")
	h.Update("b", "j", store.StatusSucceeded)
	for _, th := range []string{"a", "b", "c"} {
		h.TakeChanges(th)
	}
	job, err := h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "j", ReasonCode: ptr("FW_BAD"), Comment: ptr("bad build")})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "status", job.Status, store.JobCanceled)
	equal(t, "forceCanceled", job.ForceCanceled, false)
	equal(t, "reasonCode", job.ReasonCode, "FW_BAD")
	equal(t, "comment", job.Comment, "bad build")
	equal(t, "a keeps running", h.Describe("a", "j").Status, store.StatusInProgress)
	equal(t, "c canceled", h.Describe("c", "j").Status, store.StatusCanceled)
	equal(t, "c version", h.Describe("c", "j").VersionNumber, int64(2))
	equal(t, "counts", Counts(h.Job("j").ProcessDetails), "q0 i1 s1 f0 r0 c1 rm0 t0")
	if cs := h.TakeChangesAtLeast("c", 1); len(cs) != 1 || !cs[0].Notify || !cs[0].NotifyNext || cs[0].Next != nil {
		t.Fatalf("c changes = %+v", cs)
	}
	if cs := h.TakeChanges("a"); len(cs) != 0 {
		t.Fatalf("a's running execution is untouched, yet: %+v", cs)
	}
	// The device may still finish the running one.
	h.Update("a", "j", store.StatusSucceeded)
	equal(t, "canceled job stays canceled", h.Job("j").Status, store.JobCanceled)
	_, err = h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "j"})
	ExpectError(t, err, store.ErrInvalidStateTransition)
	_, err = h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "nope"})
	ExpectError(t, err, store.ErrNotFound)
	_, err = h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "j", ReasonCode: ptr("lower case")})
	ExpectError(t, err, store.ErrInvalidRequest)

	h.CreateJob("done", "z")
	h.Update("z", "done", store.StatusSucceeded)
	_, err = h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "done"})
	ExpectError(t, err, store.ErrInvalidStateTransition)
}

func testForceCancelJob(t *testing.T, h *Harness) {
	h.CreateJob("j", "a", "b")
	h.StartNext("a")
	h.TakeChanges("a")
	if _, err := h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "j", Force: true}); err != nil {
		t.Fatal(err)
	}
	e := h.Describe("a", "j")
	equal(t, "status", e.Status, store.StatusCanceled)
	equal(t, "forceCanceled", e.ForceCanceled, true)
	equal(t, "job forceCanceled", h.Job("j").ForceCanceled, true)
	cs := h.TakeChangesAtLeast("a", 1)
	if len(cs) != 1 || !cs[0].Notify || !cs[0].NotifyNext {
		t.Fatalf("a changes = %+v", cs)
	}
	_, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "a", JobID: "j", Status: store.StatusSucceeded})
	se := ExpectError(t, err, store.ErrInvalidStateTransition)
	equal(t, "state", se.State.Status, store.StatusCanceled)

	// A canceled job may be canceled again with force.
	h.CreateJob("k", "c")
	h.StartNext("c")
	if _, err := h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "k"}); err != nil {
		t.Fatal(err)
	}
	equal(t, "still running", h.Describe("c", "k").Status, store.StatusInProgress)
	if _, err := h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "k", Force: true}); err != nil {
		t.Fatal(err)
	}
	equal(t, "force-canceled", h.Describe("c", "k").Status, store.StatusCanceled)
	_, err = h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "k", Force: true})
	ExpectError(t, err, store.ErrInvalidStateTransition)
}

func things(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("thing-%03d", i)
	}
	return out
}

func testCancelLargeJob(t *testing.T, h *Harness) {
	all := things(40)
	h.CreateJob("big", all...)
	h.Eventually("rolled out", func() error {
		if j := h.Job("big"); j.ProcessDetails.Queued != 40 || j.IsConcurrent {
			return fmt.Errorf("counts %s concurrent %v", Counts(j.ProcessDetails), j.IsConcurrent)
		}
		return nil
	})
	h.StartNext(all[39])
	if _, err := h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "big"}); err != nil {
		t.Fatal(err)
	}
	// From the moment CancelJob returns, every QUEUED execution reads as
	// canceled, even those not yet written out.
	for _, th := range all[:39] {
		if e := h.Describe(th, "big"); e.Status != store.StatusCanceled {
			t.Fatalf("%s = %s right after cancel", th, e.Status)
		}
		if _, q := h.Pending(th); len(q) != 0 {
			t.Fatalf("%s still has pending %v", th, q)
		}
	}
	if e := h.StartNext(all[0]); e != nil {
		t.Fatalf("start-next after cancel returned %+v", e)
	}
	// The changes are collected while waiting: a store may make a commit
	// visible a moment before it hands the change on.
	changes := map[string][]store.Change{}
	told := func(th string) bool {
		var last store.Change
		for _, c := range changes[th] {
			if c.Notify {
				last = c
			}
		}
		return last.Notify && len(last.Pending) == 0
	}
	h.Eventually("cancel written out and every thing told", func() error {
		j := h.Job("big")
		if Counts(j.ProcessDetails) != "q0 i1 s0 f0 r0 c39 rm0 t0" || j.IsConcurrent {
			return fmt.Errorf("counts %s concurrent %v", Counts(j.ProcessDetails), j.IsConcurrent)
		}
		for _, th := range all[:39] {
			if changes[th] = append(changes[th], h.TakeChanges(th)...); !told(th) {
				return fmt.Errorf("%s not told its execution was canceled: %+v", th, changes[th])
			}
		}
		return nil
	})
	equal(t, "running one untouched", h.Describe(all[39], "big").Status, store.StatusInProgress)
}

func testDeleteJob(t *testing.T, h *Harness) {
	h.CreateJob("j", "a", "b")
	err := h.Store.DeleteJob(h.Ctx, &store.DeleteJobInput{JobID: "j"})
	ExpectError(t, err, store.ErrInvalidStateTransition)
	h.Update("a", "j", store.StatusSucceeded)
	h.Update("b", "j", store.StatusFailed)
	equal(t, "completed", h.Job("j").Status, store.JobCompleted)
	if err := h.Store.DeleteJob(h.Ctx, &store.DeleteJobInput{JobID: "j"}); err != nil {
		t.Fatal(err)
	}
	h.Eventually("gone", func() error {
		_, err := h.Store.DescribeJob(h.Ctx, "j")
		if err == nil {
			return fmt.Errorf("job still there")
		}
		return nil
	})
	_, err = h.Store.DescribeJob(h.Ctx, "j")
	ExpectError(t, err, store.ErrNotFound)
	_, err = h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "a", JobID: "j"})
	ExpectError(t, err, store.ErrNotFound)
	_, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "a", JobID: "j", Status: store.StatusSucceeded})
	ExpectError(t, err, store.ErrNotFound)
	err = h.Store.DeleteJob(h.Ctx, &store.DeleteJobInput{JobID: "j"})
	ExpectError(t, err, store.ErrNotFound)
	// The id can be used again, and starts from execution number 1.
	h.CreateJob("j", "a")
	e := h.Describe("a", "j")
	equal(t, "fresh execution", e.ExecutionNumber, int64(1))
	equal(t, "fresh status", e.Status, store.StatusQueued)
	equal(t, "fresh counts", Counts(h.Job("j").ProcessDetails), "q1 i0 s0 f0 r0 c0 rm0 t0")
}

func testDeleteLargeJob(t *testing.T, h *Harness) {
	all := things(30)
	h.CreateJob("big", all...)
	h.Eventually("rolled out", func() error {
		if j := h.Job("big"); j.ProcessDetails.Queued != 30 || j.IsConcurrent {
			return fmt.Errorf("counts %s", Counts(j.ProcessDetails))
		}
		return nil
	})
	h.CreateJob("other", all[0])
	h.StartNext(all[0])
	if err := h.Store.DeleteJob(h.Ctx, &store.DeleteJobInput{JobID: "big", Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, th := range all[1:] {
		if _, err := h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: th, JobID: "big"}); err == nil {
			t.Fatalf("%s still sees the deleted job", th)
		}
	}
	if err := h.Store.DeleteJob(h.Ctx, &store.DeleteJobInput{JobID: "big", Force: true}); err == nil {
		t.Fatal("deleting a job twice must fail")
	}
	h.Eventually("deleted", func() error {
		if _, err := h.Store.DescribeJob(h.Ctx, "big"); err == nil {
			return fmt.Errorf("job still described")
		}
		return nil
	})
	equal(t, "other job next", h.StartNext(all[0]).JobID, "other")
	inProgress, queued := h.Pending(all[0])
	equalSlice(t, "pending", append(inProgress, queued...), []string{"other"})
	list, err := h.Store.ListJobExecutionsForThing(h.Ctx, &store.ListExecutionsInput{ThingName: all[5]})
	if err != nil || len(list.Executions) != 0 {
		t.Fatalf("executions left behind: %+v, %v", list, err)
	}
}

func testCancelJobExecution(t *testing.T, h *Harness) {
	h.CreateJob("j", "a", "b")
	h.StartNext("b")
	h.TakeChanges("a")
	err := h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{JobID: "j", ThingName: "a", ExpectedVersion: ptr(int64(7))})
	ExpectError(t, err, store.ErrVersionConflict)
	err = h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{JobID: "j", ThingName: "a",
		StatusDetails: map[string]string{"1": "1", "2": "2", "3": "3", "4": "4", "5": "5", "6": "6", "7": "7", "8": "8", "9": "9", "10": "10", "11": "11"}})
	ExpectError(t, err, store.ErrInvalidRequest)
	if err := h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{JobID: "j", ThingName: "a", ExpectedVersion: ptr(int64(1)),
		StatusDetails: map[string]string{"why": "operator"}}); err != nil {
		t.Fatal(err)
	}
	e := h.Describe("a", "j")
	equal(t, "status", e.Status, store.StatusCanceled)
	equal(t, "details", e.StatusDetails["why"], "operator")
	equal(t, "forceCanceled", e.ForceCanceled, false)
	if cs := h.TakeChanges("a"); len(cs) != 1 || !cs[0].Notify || !cs[0].NotifyNext {
		t.Fatalf("changes = %+v", cs)
	}
	err = h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{JobID: "j", ThingName: "a"})
	ExpectError(t, err, store.ErrInvalidStateTransition)
	err = h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{JobID: "j", ThingName: "b"})
	ExpectError(t, err, store.ErrInvalidStateTransition)
	if err := h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{JobID: "j", ThingName: "b", Force: true}); err != nil {
		t.Fatal(err)
	}
	equal(t, "force canceled", h.Describe("b", "j").ForceCanceled, true)
	equal(t, "job completes when every execution is terminal", h.Job("j").Status, store.JobCompleted)
	equal(t, "counts", Counts(h.Job("j").ProcessDetails), "q0 i0 s0 f0 r0 c2 rm0 t0")
	err = h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{JobID: "j", ThingName: "nobody"})
	ExpectError(t, err, store.ErrNotFound)
}

func testDeleteJobExecution(t *testing.T, h *Harness) {
	h.CreateJob("j", "a", "b")
	err := h.Store.DeleteJobExecution(h.Ctx, &store.DeleteExecutionInput{JobID: "j", ThingName: "a", ExecutionNumber: 1})
	ExpectError(t, err, store.ErrInvalidStateTransition)
	h.Update("a", "j", store.StatusSucceeded)
	if err := h.Store.DeleteJobExecution(h.Ctx, &store.DeleteExecutionInput{JobID: "j", ThingName: "a", ExecutionNumber: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = h.Store.DescribeJobExecution(h.Ctx, &store.DescribeExecutionInput{ThingName: "a", JobID: "j"})
	ExpectError(t, err, store.ErrNotFound)
	equal(t, "counts", Counts(h.Job("j").ProcessDetails), "q1 i0 s0 f0 r0 c0 rm0 t0")
	err = h.Store.DeleteJobExecution(h.Ctx, &store.DeleteExecutionInput{JobID: "j", ThingName: "a", ExecutionNumber: 1})
	ExpectError(t, err, store.ErrNotFound)
	h.StartNext("b")
	h.TakeChanges("b")
	if err := h.Store.DeleteJobExecution(h.Ctx, &store.DeleteExecutionInput{JobID: "j", ThingName: "b", ExecutionNumber: 1, Force: true}); err != nil {
		t.Fatal(err)
	}
	if cs := h.TakeChanges("b"); len(cs) != 1 || !cs[0].Notify || !cs[0].NotifyNext || cs[0].Next != nil {
		t.Fatalf("changes = %+v", cs)
	}
	_, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "b", JobID: "j", Status: store.StatusSucceeded})
	ExpectError(t, err, store.ErrNotFound)
	j := h.Job("j")
	equal(t, "counts after force delete", Counts(j.ProcessDetails), "q0 i0 s0 f0 r0 c0 rm0 t0")
	equal(t, "job completes", j.Status, store.JobCompleted)
}

func testLargeRollout(t *testing.T, h *Harness) {
	all := things(50)
	h.CreateJob("big", all...)
	h.Eventually("every thing has its execution", func() error {
		j := h.Job("big")
		if j.ProcessDetails.Queued != 50 || j.IsConcurrent || j.ProcessDetails.ProcessingTargets != nil {
			return fmt.Errorf("counts %s concurrent %v", Counts(j.ProcessDetails), j.IsConcurrent)
		}
		return nil
	})
	for _, th := range all {
		if e := h.StartNext(th); e == nil || e.JobID != "big" {
			t.Fatalf("%s got %+v", th, e)
		}
		h.Update(th, "big", store.StatusSucceeded)
		if cs := h.TakeChanges(th); len(cs) < 2 {
			t.Fatalf("%s: want the queued notification and the success one, got %d", th, len(cs))
		}
	}
	equal(t, "completed", h.Job("big").Status, store.JobCompleted)
	// A duplicated target is one thing.
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "dup", Targets: []string{ThingARN("x")}}}, "x")
	equal(t, "dup counts", Counts(h.Job("dup").ProcessDetails), "q1 i0 s0 f0 r0 c0 rm0 t0")
}

func testCreateJobValidation(t *testing.T, h *Harness) {
	h.CreateJob("exists", "t")
	ok := func() store.CreateJobInput {
		return store.CreateJobInput{Job: store.Job{JobID: "new", Targets: []string{ThingARN("t")}}, Document: `{"a":1}`}
	}
	cases := []struct {
		name string
		mod  func(*store.CreateJobInput)
		kind error
	}{
		{"duplicate", func(in *store.CreateJobInput) { in.Job.JobID = "exists" }, store.ErrAlreadyExists},
		{"bad id", func(in *store.CreateJobInput) { in.Job.JobID = "a.b" }, store.ErrInvalidRequest},
		{"long id", func(in *store.CreateJobInput) { in.Job.JobID = strings.Repeat("a", 65) }, store.ErrInvalidRequest},
		{"no targets", func(in *store.CreateJobInput) { in.Job.Targets = nil }, store.ErrInvalidRequest},
		{"bad target", func(in *store.CreateJobInput) { in.Job.Targets = []string{"thing/x"} }, store.ErrInvalidRequest},
		{"bad thing in target", func(in *store.CreateJobInput) { in.Job.Targets = []string{ThingARN("a b")} }, store.ErrInvalidRequest},
		{"unknown group", func(in *store.CreateJobInput) {
			in.Job.Targets = []string{"arn:aws:iot:us-east-1:123456789012:thinggroup/none"}
		}, store.ErrNotFound},
		{"no document", func(in *store.CreateJobInput) { in.Document = "" }, store.ErrInvalidRequest},
		{"document not json", func(in *store.CreateJobInput) { in.Document = "{" }, store.ErrInvalidRequest},
		{"document not object", func(in *store.CreateJobInput) { in.Document = "[1]" }, store.ErrInvalidRequest},
		{"document too long", func(in *store.CreateJobInput) {
			in.Document = `{"a":"` + strings.Repeat("x", 32768) + `"}`
		}, store.ErrInvalidRequest},
		{"description too long", func(in *store.CreateJobInput) { in.Job.Description = strings.Repeat("d", 2029) }, store.ErrInvalidRequest},
		{"bad selection", func(in *store.CreateJobInput) { in.Job.TargetSelection = "SOMETIMES" }, store.ErrInvalidRequest},
		{"timeout 0", func(in *store.CreateJobInput) {
			in.Job.TimeoutConfig = &store.TimeoutConfig{InProgressTimeoutInMinutes: ptr(int64(0))}
		}, store.ErrInvalidRequest},
		{"timeout too long", func(in *store.CreateJobInput) {
			in.Job.TimeoutConfig = &store.TimeoutConfig{InProgressTimeoutInMinutes: ptr(int64(10081))}
		}, store.ErrInvalidRequest},
		{"rate 0", func(in *store.CreateJobInput) {
			in.Job.RolloutConfig = &store.RolloutConfig{MaximumPerMinute: ptr(int64(0))}
		}, store.ErrInvalidRequest},
		{"increment factor", func(in *store.CreateJobInput) {
			in.Job.RolloutConfig = &store.RolloutConfig{ExponentialRate: &store.ExponentialRate{BaseRatePerMinute: 10, IncrementFactor: 1.25,
				RateIncreaseCriteria: store.RateIncreaseCriteria{NumberOfNotifiedThings: ptr(int64(1))}}}
		}, store.ErrInvalidRequest},
		{"abort threshold", func(in *store.CreateJobInput) {
			in.Job.AbortConfig = &store.AbortConfig{CriteriaList: []store.AbortCriteria{{FailureType: "FAILED", Action: "CANCEL", ThresholdPercentage: 101, MinNumberOfExecutedThings: 1}}}
		}, store.ErrInvalidRequest},
		{"retries total", func(in *store.CreateJobInput) {
			in.Job.RetryConfig = &store.RetryConfig{CriteriaList: []store.RetryCriteria{{FailureType: "FAILED", NumberOfRetries: 6}, {FailureType: "TIMED_OUT", NumberOfRetries: 5}}}
		}, store.ErrInvalidRequest},
		{"presigned expiry", func(in *store.CreateJobInput) {
			in.Job.PresignedURLConfig = &store.PresignedURLConfig{ExpiresInSec: ptr(int64(59))}
		}, store.ErrInvalidRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := ok()
			c.mod(&in)
			_, err := h.Store.CreateJob(h.Ctx, &in)
			ExpectError(t, err, c.kind)
			if _, err := h.Store.DescribeJob(h.Ctx, "new"); err == nil {
				t.Fatal("a rejected CreateJob created the job")
			}
		})
	}
	in := ok()
	in.Job.Description = "fine"
	in.Job.RolloutConfig = &store.RolloutConfig{MaximumPerMinute: ptr(int64(1000))}
	in.Job.RetryConfig = &store.RetryConfig{CriteriaList: []store.RetryCriteria{{FailureType: "ALL", NumberOfRetries: 10}}}
	if _, err := h.Store.CreateJob(h.Ctx, &in); err != nil {
		t.Fatalf("valid job rejected: %v", err)
	}
	equal(t, "description", h.Job("new").Description, "fine")
}

func testListJobs(t *testing.T, h *Harness) {
	for i := range 7 {
		h.CreateJob(fmt.Sprintf("job-%d", i), "t")
	}
	h.Update("t", "job-3", store.StatusSucceeded)
	var got []string
	token := ""
	for {
		page, err := h.Store.ListJobs(h.Ctx, &store.ListJobsInput{MaxResults: 3, NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Jobs) > 3 {
			t.Fatalf("page of %d", len(page.Jobs))
		}
		for _, j := range page.Jobs {
			got = append(got, j.JobID)
		}
		if token = page.NextToken; token == "" {
			break
		}
	}
	equalSlice(t, "all jobs newest first", got, []string{"job-6", "job-5", "job-4", "job-3", "job-2", "job-1", "job-0"})
	page, err := h.Store.ListJobs(h.Ctx, &store.ListJobsInput{Status: store.JobCompleted})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].JobID != "job-3" {
		t.Fatalf("completed filter = %+v, %v", page, err)
	}
	_, err = h.Store.ListJobs(h.Ctx, &store.ListJobsInput{MaxResults: 251})
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = h.Store.ListJobs(h.Ctx, &store.ListJobsInput{NextToken: "!!"})
	ExpectError(t, err, store.ErrInvalidRequest)
	// A well-formed string that this store never handed out is refused too.
	_, err = h.Store.ListJobs(h.Ctx, &store.ListJobsInput{NextToken: "bm90LWEtdG9rZW4"})
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = h.Store.ListJobExecutionsForThing(h.Ctx, &store.ListExecutionsInput{ThingName: "t", NextToken: "bm90LWEtdG9rZW4"})
	ExpectError(t, err, store.ErrInvalidRequest)
}

func testListExecutions(t *testing.T, h *Harness) {
	all := things(5)
	h.CreateJob("j", all...)
	h.CreateJob("k", all[0])
	h.Update(all[1], "j", store.StatusSucceeded)
	var got []string
	token := ""
	for {
		page, err := h.Store.ListJobExecutionsForJob(h.Ctx, &store.ListExecutionsInput{JobID: "j", MaxResults: 2, NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Executions {
			got = append(got, e.ThingName)
		}
		if token = page.NextToken; token == "" {
			break
		}
	}
	equalSlice(t, "executions of j", got, all)
	page, err := h.Store.ListJobExecutionsForJob(h.Ctx, &store.ListExecutionsInput{JobID: "j", Status: store.StatusSucceeded})
	if err != nil || len(page.Executions) != 1 || page.Executions[0].ThingName != all[1] {
		t.Fatalf("succeeded filter = %+v, %v", page, err)
	}
	_, err = h.Store.ListJobExecutionsForJob(h.Ctx, &store.ListExecutionsInput{JobID: "none"})
	ExpectError(t, err, store.ErrNotFound)
	forThing, err := h.Store.ListJobExecutionsForThing(h.Ctx, &store.ListExecutionsInput{ThingName: all[0]})
	if err != nil || len(forThing.Executions) != 2 || forThing.Executions[0].JobID != "j" || forThing.Executions[1].JobID != "k" {
		t.Fatalf("executions of %s = %+v, %v", all[0], forThing, err)
	}
	forThing, err = h.Store.ListJobExecutionsForThing(h.Ctx, &store.ListExecutionsInput{ThingName: all[0], JobID: "k"})
	if err != nil || len(forThing.Executions) != 1 {
		t.Fatalf("jobId filter = %+v, %v", forThing, err)
	}
	empty, err := h.Store.ListJobExecutionsForThing(h.Ctx, &store.ListExecutionsInput{ThingName: "unknown"})
	if err != nil || len(empty.Executions) != 0 {
		t.Fatalf("unknown thing = %+v, %v", empty, err)
	}
}
