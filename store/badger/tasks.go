package badger

import (
	"context"
	"time"

	"github.com/jobsbroker/jobsbroker/store/engine"
)

// taskLoop runs job tasks one step at a time, round robin, each step its
// own operation so that device traffic interleaves with big jobs. A task
// that is waiting (for its rate, a maintenance window, its start or its
// end) sleeps until then.
func (s *Store) taskLoop() {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	wakeAt := map[string]time.Time{}
	for {
		jobs, err := s.pendingTasks(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("list job tasks", "error", err)
		}
		now := s.clock.Now()
		busy := false
		var next time.Time
		for _, job := range jobs {
			if at, ok := wakeAt[job]; ok && at.After(now) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
				continue
			}
			var res engine.StepResult
			err := s.submit(ctx, func(w *wtx) error {
				var err error
				res, err = s.Step(w, job)
				// This loop knows when the step wants it back (res); its own
				// write to the task must not wake it at once, or a paced
				// rollout would spin, committing an empty step after
				// another.
				w.tasksChanged = false
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Error("job task step", "job", job, "error", err)
				wakeAt[job] = now.Add(time.Second) // do not spin on a failing step
				continue
			}
			switch {
			case res.Done:
				delete(wakeAt, job)
			case !res.Wake.After(now):
				delete(wakeAt, job)
				busy = true
			default:
				wakeAt[job] = res.Wake
				if next.IsZero() || res.Wake.Before(next) {
					next = res.Wake
				}
			}
		}
		if busy {
			continue
		}
		woken, ok := s.sleepUntil(next, s.taskWake)
		if !ok {
			return
		}
		if woken {
			clear(wakeAt) // a job changed; look at every task again
		}
	}
}

func (s *Store) pendingTasks(ctx context.Context) ([]string, error) {
	var jobs []string
	err := s.view(ctx, func(r *rtx) error {
		return r.eachKey([]byte{prefixTask}, nil, false, func(k []byte) (bool, error) {
			jobs = append(jobs, string(k[1:]))
			return true, nil
		})
	})
	return jobs, err
}

// timerLoop times out executions whose deadline has passed. It sleeps until
// the earliest deadline in the timer index, or until an operation changes
// the index.
func (s *Store) timerLoop() {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	for {
		now := s.clock.Now()
		due, next, err := s.dueTimers(ctx, now, s.opts.TaskBatch)
		if err != nil && ctx.Err() == nil {
			s.log.Error("read timers", "error", err)
		}
		if len(due) > 0 {
			err := s.submit(ctx, func(w *wtx) error { return w.fireTimers(due) })
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Error("fire timers", "error", err)
			}
			continue
		}
		if _, ok := s.sleepUntil(next, s.timerWake); !ok {
			return
		}
	}
}

// loopContext is the context of a background loop: it ends when the store
// closes.
func (s *Store) loopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// dueTimers returns up to limit timer keys due at now, or the earliest
// deadline when none is due.
func (s *Store) dueTimers(ctx context.Context, now time.Time, limit int) (due [][]byte, next time.Time, err error) {
	err = s.view(ctx, func(r *rtx) error {
		return r.eachKey([]byte{prefixTimer}, nil, false, func(k []byte) (bool, error) {
			deadline, _, _, _, ok := parseTimerKey(k)
			if !ok {
				due = append(due, k) // unreadable; fireTimers drops it
				return len(due) < limit, nil
			}
			if deadline.After(now) {
				if len(due) == 0 {
					next = deadline
				}
				return false, nil
			}
			due = append(due, k)
			return len(due) < limit, nil
		})
	})
	return due, next, err
}

// fireTimers times out the executions behind due timer keys and deletes
// the keys it handled: those of executions it timed out are gone with
// their deadline already, and a stale one (its execution moved on) must
// not come back.
func (w *wtx) fireTimers(keys [][]byte) error {
	due := make([]engine.Timer, 0, len(keys))
	var bad [][]byte
	for _, k := range keys {
		deadline, thing, job, n, ok := parseTimerKey(k)
		if !ok {
			bad = append(bad, k)
			continue
		}
		due = append(due, engine.Timer{Thing: thing, Job: job, N: n, Deadline: deadline})
	}
	for _, k := range bad {
		if err := w.del(k); err != nil {
			return err
		}
	}
	handled, fired, _, err := w.s.FireTimers(w, due)
	if err != nil {
		return err
	}
	for _, tm := range due[:handled] {
		if err := w.del(timerKey(tm.Deadline, tm.Thing, tm.Job, tm.N)); err != nil {
			return err
		}
	}
	w.AfterCommit(func() { w.s.stats.TimersFired.Add(int64(fired)) })
	return nil
}

// sleepUntil waits until next (forever when zero), a signal on wake, or
// closing. It reports whether wake fired, and false for ok on closing.
func (s *Store) sleepUntil(next time.Time, wake <-chan struct{}) (woken, ok bool) {
	var timeout <-chan time.Time
	if !next.IsZero() {
		t := s.clock.TimerAt(next)
		defer t.Stop()
		timeout = t.C()
	}
	select {
	case <-timeout:
		return false, true
	case <-wake:
		return true, true
	case <-s.closing:
		return false, false
	}
}
