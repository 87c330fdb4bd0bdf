package badger

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(Options{Dir: dir, CommitDelay: MaxCommitDelay, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	const workers = 32
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				name := fmt.Sprintf("t-%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := s.CreateThing(ctx, &store.CreateThingInput{ThingName: name})
				cancel()
				switch {
				case err == nil:
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				case errors.Is(err, store.ErrUnavailable): // refused: the store is closing
					return
				default:
					errs <- fmt.Errorf("create %s: %w", name, err)
					return
				}
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	// Close once the committer has waited a few times.
	for deadline := time.Now().Add(time.Minute); count() < 300 || s.stats.CommitWaits.Load() < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("in a minute %d operations acknowledged, and %d commits waited", count(), s.stats.CommitWaits.Load())
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err = Open(Options{Dir: dir, Logger: logger})
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
