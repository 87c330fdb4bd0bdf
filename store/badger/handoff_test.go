package badger_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// startTimed starts job j1's execution on thing t1, with a one-minute
// in-progress timeout, and closes s.
func startTimed(t *testing.T, s *badger.Store) {
	t.Helper()
	defer s.Close()
	ctx := context.Background()
	minute := int64(1)
	if _, err := s.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "j1", Targets: []string{storetest.ThingARN("t1")},
		TimeoutConfig: &store.TimeoutConfig{InProgressTimeoutInMinutes: &minute}}, Document: `{"op":"x"}`}); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, "the execution is started", func() error {
		out, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: "t1"})
		if err == nil && out.Execution == nil {
			err = fmt.Errorf("nothing to start yet")
		}
		return err
	})
}

// TestTimeoutDueAtOpenReachesHandler: an execution whose in-progress
// timeout came due while the store was closed times out as the store
// opens, before the broker has installed its change handler; the
// notify-next that the timeout calls for reaches the handler installed
// afterwards (before, it was committed and never published).
func TestTimeoutDueAtOpenReachesHandler(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(storetest.Epoch)
	open := func() *badger.Store {
		s, err := badger.Open(badger.Options{Dir: dir, NoSync: true, Clock: clk, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	startTimed(t, open())
	clk.Advance(2 * time.Minute)

	s := open()
	defer s.Close()
	storetest.Eventually(t, "the execution timed out as the store opened", func() error {
		e, err := s.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "t1", JobID: "j1"})
		if err == nil && e.Execution.Status != store.StatusTimedOut {
			err = fmt.Errorf("status %s", e.Execution.Status)
		}
		return err
	})
	var mu sync.Mutex
	var got []store.Change
	s.SetChangeHandler(func(cs []store.Change) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, cs...)
	})
	mu.Lock()
	defer mu.Unlock()
	for _, c := range got {
		if c.ThingName == "t1" && c.Notify {
			return
		}
	}
	t.Fatalf("the timeout's change did not reach the handler installed after the store opened: %d changes", len(got))
}

// TestNoBackgroundKeepsDueTimers: a store opened with NoBackground (an
// offline backup) does not fire a timer that came due while the store was
// closed; the next broker to open the directory fires it, with its
// notifications.
func TestNoBackgroundKeepsDueTimers(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(storetest.Epoch)
	open := func(noBackground bool) *badger.Store {
		s, err := badger.Open(badger.Options{Dir: dir, NoSync: true, Clock: clk, Logger: quiet, NoBackground: noBackground})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	startTimed(t, open(false))
	clk.Advance(2 * time.Minute)

	s := open(true)
	if _, err := s.Backup(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	e, err := s.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "t1", JobID: "j1"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Execution.Status != store.StatusInProgress {
		t.Fatalf("the execution is %s after a backup, want IN_PROGRESS until a broker opens the store", e.Execution.Status)
	}
	s.Close()
}
