package badger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// TestPacerWaitsOnlyWhileBusy: the committer waits for company while
// operations arrive fast enough for a few more to join, and not when they
// trickle in or after a lull.
func TestPacerWaitsOnlyWhileBusy(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	// feed takes n operations every step for span, starting at from, and
	// returns the time after the last.
	feed := func(p *pacer, from time.Time, step time.Duration, n int, span time.Duration) time.Time {
		now := from
		for ; now.Sub(from) < span; now = now.Add(step) {
			p.took(now, n)
		}
		return now
	}
	t.Run("fast", func(t *testing.T) {
		p := pacer{delay: time.Millisecond}
		feed(&p, t0, time.Millisecond, 10, 30*time.Millisecond) // 10,000 a second
		if got := p.wait(); got != time.Millisecond {
			t.Fatalf("wait at 10,000 operations a second = %v, want 1ms", got)
		}
	})
	t.Run("slow", func(t *testing.T) {
		p := pacer{delay: time.Millisecond}
		feed(&p, t0, time.Millisecond, 2, 30*time.Millisecond) // 2,000 a second: 2 more in 1 ms
		if got := p.wait(); got != 0 {
			t.Fatalf("wait at 2,000 operations a second = %v, want none", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		p := pacer{}
		feed(&p, t0, time.Millisecond, 100, 30*time.Millisecond)
		if got := p.wait(); got != 0 {
			t.Fatalf("wait with no delay set = %v, want none", got)
		}
	})
	t.Run("first", func(t *testing.T) {
		p := pacer{delay: time.Millisecond}
		p.took(t0, 100)
		if got := p.wait(); got != 0 {
			t.Fatalf("wait before a window has been counted = %v, want none", got)
		}
	})
	t.Run("lull", func(t *testing.T) {
		p := pacer{delay: time.Millisecond}
		end := feed(&p, t0, time.Millisecond, 10, 30*time.Millisecond)
		p.took(end.Add(50*time.Millisecond), 1) // the first after 50 ms of nothing
		if got := p.wait(); got != 0 {
			t.Fatalf("wait for the first operation after a lull = %v, want none", got)
		}
	})
	t.Run("waits that bring no one", func(t *testing.T) {
		// 10,000 a second, so a 1 ms wait should bring 10, but every wait
		// brings 1: the committer stops waiting for 1, 2, 4, ... batches,
		// up to paceMaxSkip; a wait that pays (5, half of 10) makes it
		// wait every time again.
		p := pacer{delay: time.Millisecond}
		now := feed(&p, t0, time.Millisecond, 10, 30*time.Millisecond)
		waits := 0
		for range 2000 {
			if p.wait() > 0 {
				waits++
				p.waited(now, 1)
			}
		}
		// 1, 2, 4, ..., 256 skipped after the first nine failures, then
		// 256 each: about 2000/257 more.
		if waits < 10 || waits > 20 {
			t.Fatalf("%d waits in 2,000 batches where no wait brought anyone, want 10 to 20", waits)
		}
		if p.wait() > 0 {
			t.Fatal("waited right after a failed wait")
		}
		for p.wait() == 0 {
		}
		p.waited(now, 5)
		for i := range 10 {
			if p.wait() == 0 {
				t.Fatalf("batch %d after a wait that paid did not wait", i)
			}
			p.waited(now, 5)
		}
	})
	t.Run("delay scales the need", func(t *testing.T) {
		// At 3,000 a second a 1 ms wait brings 3 (not worth it), a 2 ms
		// wait 6.
		p := pacer{delay: time.Millisecond}
		feed(&p, t0, time.Millisecond, 3, 30*time.Millisecond)
		if got := p.wait(); got != 0 {
			t.Fatalf("1 ms wait at 3,000 a second = %v, want none", got)
		}
		p.delay = 2 * time.Millisecond
		if got := p.wait(); got != 2*time.Millisecond {
			t.Fatalf("2 ms wait at 3,000 a second = %v, want 2ms", got)
		}
	})
}

// TestCommitDelayAnswersEveryOperation: with the committer waiting for
// company (the longest delay, operations arriving from many goroutines),
// every operation is answered by the store and none by its caller's
// deadline, also those in flight when the store closes; and every
// acknowledged one is there after the store is opened again.
func TestCommitDelayAnswersEveryOperation(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, CommitDelay: MaxCommitDelay, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	acked, errs := hammer(s, 32, func() bool { return s.stats.CommitWaits.Load() >= 3 })
	for _, err := range errs {
		t.Error(err)
	}
	s, err = Open(Options{Dir: dir, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, name := range acked {
		if _, err := s.DescribeThing(context.Background(), name); err != nil {
			t.Fatalf("acknowledged thing %s after reopening: %v", name, err)
		}
	}
}

// TestCommitDelaySparesFewCallers: a few callers that each wait for their
// answer before sending the next operation arrive fast, but a wait brings
// at most the few not already in the batch; the committer must not go on
// waiting before every commit (with a 100 ms delay that would be ten
// commits a second, and at the default delay it would cut their rate).
func TestCommitDelaySparesFewCallers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		delay   time.Duration
		callers int
	}{
		{"longest delay", MaxCommitDelay, 4},
		// At the default delay one to three such callers arrive below, or
		// not far above, the rate that makes the committer wait, and a
		// wait brings fewer than half of what that rate predicts. A rule
		// that also waited for a single more operation while the committer
		// was busy (tried, and dropped: BENCHMARKS.md, "Busy at a low
		// rate") made two and three of them wait on a tenth to nine tenths
		// of their commits, since a wait slows them and so lowers the bar
		// it is judged by.
		{"one", 0, 1},
		{"two", 0, 2},
		{"three", 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(Options{Dir: t.TempDir(), CommitDelay: tc.delay, Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			commits := func() int64 { return s.stats.Commits.Load() }
			start := commits()
			_, errs := hammer(s, tc.callers, func() bool { return commits()-start >= 1000 })
			for _, err := range errs {
				t.Error(err)
			}
			if w, c := s.stats.CommitWaits.Load(), commits()-start; w > c/20 {
				t.Fatalf("%d of %d commits waited for company that never came", w, c)
			}
		})
	}
}

// hammer runs workers goroutines that each create things one after
// another, until enough reports true (polled, with a deadline of a
// minute); then it closes s and returns the things acknowledged and what
// went wrong: any error but the store's refusal as it closes.
func hammer(s *Store, workers int, enough func() bool) (acked []string, errs []error) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				name := fmt.Sprintf("t-%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := s.CreateThing(ctx, &store.CreateThingInput{ThingName: name})
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, name)
				case errors.Is(err, store.ErrUnavailable): // refused: the store is closing
					mu.Unlock()
					return
				default:
					errs = append(errs, fmt.Errorf("create %s: %w", name, err))
					mu.Unlock()
					return
				}
				mu.Unlock()
			}
		})
	}
	var late error
	for deadline := time.Now().Add(time.Minute); !enough(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			late = errors.New("what the test waits for did not happen within a minute")
			break
		}
	}
	cerr := s.Close()
	wg.Wait() // the workers are done with acked and errs
	if err := errors.Join(late, cerr); err != nil {
		errs = append(errs, err)
	}
	return acked, errs
}

var discard = slog.New(slog.DiscardHandler)
