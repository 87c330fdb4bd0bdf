package badger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
)

// storeWithJob opens a store (closed when the test ends) holding job "j"
// with one queued execution, on thing "t".
func storeWithJob(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Options{Dir: t.TempDir(), NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.CreateJob(context.Background(), &store.CreateJobInput{Job: store.Job{JobID: "j",
		Targets: []string{"arn:aws:iot:us-east-1:123456789012:thing/t"}}, Document: `{}`}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCacheForgetsDiscardedWrites: what an operation wrote before failing
// (its transaction thrown away) must not be what the next operation reads
// through the committer's cache; what committed operations wrote must be.
func TestCacheForgetsDiscardedWrites(t *testing.T) {
	s := storeWithJob(t)
	ctx := context.Background()
	read := func() *store.Execution {
		t.Helper()
		var e *store.Execution
		if err := s.submit(ctx, func(w *wtx) error {
			var err error
			e, err = w.Execution("t", "j", 1)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return e
	}
	before := read() // now cached
	boom := errors.New("boom")
	err := s.submit(ctx, func(w *wtx) error {
		e, err := w.Execution("t", "j", 1)
		if err != nil {
			return err
		}
		e.VersionNumber = 99
		e.StatusDetails = map[string]string{"discarded": "yes"}
		if err := w.PutExecution(e, e); err != nil {
			return err
		}
		if _, err := w.Execution("t", "j", 1); err != nil { // reads its own write
			return err
		}
		return boom
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("failing operation: %v", err)
	}
	if got := read(); got.VersionNumber != before.VersionNumber || got.StatusDetails["discarded"] != "" {
		t.Fatalf("a discarded write is read back: version %d details %v", got.VersionNumber, got.StatusDetails)
	}
	// A committed write is read back, and what callers change in what they
	// read does not reach the cache.
	if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress,
		StatusDetails: map[string]string{"step": "1"}}); err != nil {
		t.Fatal(err)
	}
	got := read()
	if got.Status != store.StatusInProgress || got.StatusDetails["step"] != "1" {
		t.Fatalf("committed write not read back: %+v", got)
	}
	got.StatusDetails["step"] = "mutated"
	if again := read(); again.StatusDetails["step"] != "1" {
		t.Fatalf("a caller's change reached the cache: %v", again.StatusDetails)
	}
	// Views (outside the committer) agree.
	out, err := s.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "j"})
	if err != nil || out.Execution.StatusDetails["step"] != "1" || out.Execution.VersionNumber != got.VersionNumber {
		t.Fatalf("view: %+v, %v", out, err)
	}
}

// TestCacheLeavesFinishedExecutions: an execution stays in the committer's
// cache while a device works on it, leaves it when it finishes (device
// operations read a finished execution again only to reject an update, and
// kept it would crowd out records in use), and is still read right, from
// Badger, after.
func TestCacheLeavesFinishedExecutions(t *testing.T) {
	s := storeWithJob(t)
	ctx := context.Background()
	key := string(execKey("t", "j", 1))
	// cached reports, on the committer, whether the execution is cached,
	// and reads it through the committer.
	cached := func() (bool, *store.Execution) {
		t.Helper()
		var in bool
		var e *store.Execution
		if err := s.submit(ctx, func(w *wtx) error {
			_, cur := w.tc.c.cur[key]
			_, old := w.tc.c.old[key]
			in = cur || old
			var err error
			e, err = w.Execution("t", "j", 1)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return in, e
	}
	update := func(status store.ExecutionStatus) {
		t.Helper()
		if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	update(store.StatusInProgress)
	if in, e := cached(); !in || e.Status != store.StatusInProgress {
		t.Fatalf("in progress: cached %v, status %s", in, e.Status)
	}
	update(store.StatusSucceeded)
	for range 2 { // the read in between must not bring it back
		if in, e := cached(); in || e.Status != store.StatusSucceeded {
			t.Fatalf("succeeded: cached %v, status %s", in, e.Status)
		}
	}
}

// TestLatestExecutionSeesEarlierWriteOfBatch: an operation that asks for a
// job's latest execution on a thing must see what an earlier operation of
// the same batch made of it, also once it has left the thing's queue (a
// device resending SUCCEEDED in the same batch must be refused, not
// counted twice).
func TestLatestExecutionSeesEarlierWriteOfBatch(t *testing.T) {
	s := storeWithJob(t)
	ctx := context.Background()
	if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j", Status: store.StatusInProgress}); err != nil {
		t.Fatal(err)
	}
	var got *store.Execution
	if err := s.submit(ctx, func(w *wtx) error {
		e, err := w.Execution("t", "j", 1)
		if err != nil {
			return err
		}
		done := e.Clone()
		done.Status, done.VersionNumber = store.StatusSucceeded, e.VersionNumber+1
		if err := w.PutExecution(e, done); err != nil {
			return err
		}
		// Read back by number: a finished execution is not staged for
		// the cache; the batch's own write must answer.
		if byNumber, err := w.Execution("t", "j", 1); err != nil || byNumber == nil || byNumber.Status != store.StatusSucceeded {
			return fmt.Errorf("execution 1 in the batch that finished it: %+v, %v; want SUCCEEDED", byNumber, err)
		}
		got, err = w.LatestExecution("t", "j")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Status != store.StatusSucceeded {
		t.Fatalf("latest execution in the batch that finished it: %+v, want SUCCEEDED", got)
	}
}
