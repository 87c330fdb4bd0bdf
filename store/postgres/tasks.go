package postgres

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store/engine"
)

// errSkip ends a background step whose job another node is working on.
var errSkip = errors.New("job locked by another step")

// runStep runs one step of a job's task in its own transaction, under the
// job's advisory lock: with wait, after the step another node is running;
// without, it reports ran false when another node holds the lock.
func (s *Store) runStep(ctx context.Context, jobID string, wait bool) (res engine.StepResult, ran bool, err error) {
	lock := func(w *wtx) error {
		if wait {
			_, err := w.execNow("SELECT pg_advisory_xact_lock($1, hashtext($2))", lockClassJob, jobID)
			return err
		}
		var got bool
		if err := w.queryRow("SELECT pg_try_advisory_xact_lock($1, hashtext($2))", []any{lockClassJob, jobID}, &got); err != nil {
			return err
		}
		if !got {
			return errSkip
		}
		return nil
	}
	for attempt := range maxAttempts {
		if attempt > 0 {
			s.stats.Retries.Add(1)
			time.Sleep(time.Duration(attempt) * time.Millisecond)
		}
		var due []string
		due, err = s.attempt(ctx, "job step", func(w *wtx) error {
			var err error
			res, err = s.Step(w, jobID)
			return err
		}, lock)
		s.checkJobs(ctx, due)
		if errors.Is(err, errSkip) {
			return res, false, nil
		}
		if !retryable(err) {
			break
		}
	}
	if err == nil {
		s.stats.TaskSteps.Add(1)
	}
	return res, true, s.mapErr("job step", err)
}

// taskLoop runs the steps of job tasks that are due, round robin, each
// step its own transaction so that device traffic interleaves with big
// jobs. Every node runs one; a step another node is running is skipped
// and looked at again shortly. A task that is waiting (for its rate, a
// maintenance window, its start or its end) is left until then. The list
// of tasks is read again whenever a notification or the poll interval
// wakes the loop; its own timer only runs the steps it knows are due.
func (s *Store) taskLoop() {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	backoff := map[string]time.Time{} // real time before which a job is not tried again
	known := map[string]time.Time{}   // job -> when its next step is due
	relist := true
	var fails failures
	for {
		select {
		case <-s.taskWake:
			relist = true
		default:
		}
		var retry time.Duration
		if relist {
			fresh, err := s.listTasks(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				retry = fails.fail(s.log, slog.LevelError, "list job tasks", "task loop", err)
			} else {
				fails.ok()
				known, relist = fresh, false
			}
		}
		now := s.clock.Now()
		busy, soon := false, false
		var next time.Time
		ids := make([]string, 0, len(known))
		for id := range known {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b string) int { return known[a].Compare(known[b]) })
		for _, id := range ids {
			if wake := known[id]; wake.After(now) {
				if next.IsZero() || wake.Before(next) {
					next = wake
				}
				continue
			}
			if until, ok := backoff[id]; ok && time.Now().Before(until) {
				soon = true
				continue
			}
			delete(backoff, id)
			res, ran, err := s.runStep(ctx, id, false)
			switch {
			case ctx.Err() != nil:
				return
			case !ran:
				backoff[id] = time.Now().Add(50 * time.Millisecond)
				soon = true
			case err != nil:
				s.log.Error("job task step", "op", "job step", "job", id, "error", err)
				backoff[id] = time.Now().Add(time.Second) // do not spin on a failing step
				soon = true
			case res.Done:
				delete(known, id)
			case !res.Wake.After(now):
				known[id] = now
				busy = true
			default:
				known[id] = res.Wake
				if next.IsZero() || res.Wake.Before(next) {
					next = res.Wake
				}
			}
		}
		if busy {
			continue
		}
		if soon {
			retry = max(retry, retrySoon)
		}
		switch s.sleep(next, s.taskWake, retry) {
		case wokeClosing:
			return
		case wokeClock:
		default:
			relist = true
		}
	}
}

// listTasks reads when every job's next step is due.
func (s *Store) listTasks(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, "SELECT job_id, task_wake FROM jobs WHERE task IS NOT NULL ORDER BY task_wake LIMIT 10000")
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	var id string
	var wake int64
	_, err = pgx.ForEachRow(rows, []any{&id, &wake}, func() error {
		out[id] = fromNanos(wake)
		return nil
	})
	return out, err
}

// timerLoop times out executions whose deadline has passed. It sleeps until
// the earliest deadline, or until an operation (here or on another node)
// changes the timers.
func (s *Store) timerLoop() {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	var fails failures
	for {
		now := s.clock.Now()
		handled, skipped, err := s.sweepTimers(ctx, now)
		var retry time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			retry = fails.fail(s.log, slog.LevelError, "fire timers", "timer sweep", err)
		} else {
			fails.ok()
			if skipped > 0 {
				retry = retrySoon
			}
		}
		if handled > 0 {
			continue
		}
		var next time.Time
		if err == nil {
			var n *int64
			err = s.pool.QueryRow(ctx, "SELECT min(deadline_ns) FROM executions WHERE deadline_ns IS NOT NULL").Scan(&n)
			if err != nil && ctx.Err() != nil {
				return
			}
			if n != nil {
				next = fromNanos(*n)
				if !next.After(now) && skipped == 0 {
					next = now.Add(time.Millisecond)
				}
			}
		}
		if s.sleep(next, s.timerWake, retry) == wokeClosing {
			return
		}
	}
}

// sweepTimers times out, in one transaction, the executions of up to
// TaskBatch timers whose deadline has passed, and reports how many it
// timed out. Things another transaction holds (a device's operation,
// another node's sweep) are skipped; it reports how many timers it
// skipped.
func (s *Store) sweepTimers(ctx context.Context, now time.Time) (handled, skipped int, err error) {
	rows, err := s.pool.Query(ctx, `SELECT thing_name, job_id, execution_number, deadline_ns FROM executions
		WHERE deadline_ns <= $1 ORDER BY deadline_ns LIMIT $2`, now.UnixNano(), s.TaskBatch())
	if err != nil {
		return 0, 0, err
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.Timer, error) {
		var tm engine.Timer
		var deadline int64
		err := r.Scan(&tm.Thing, &tm.Job, &tm.N, &deadline)
		tm.Deadline = fromNanos(deadline)
		return tm, err
	})
	if err != nil || len(due) == 0 {
		return 0, 0, err
	}
	err = s.update(ctx, "timer sweep", func(w *wtx) error {
		w.exclusive = true // a timeout and the completion it brings commit together
		var fired int
		var err error
		_, fired, skipped, err = s.FireTimers(w, due)
		handled = fired
		w.after = append(w.after, func() { s.stats.TimersFired.Add(int64(fired)) })
		return err
	})
	return handled, skipped, err
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

// How a background loop's sleep ended.
const (
	wokeClock   = iota // the store's clock reached the time asked for
	wokeSignal         // a wake signal (an operation here or a notification)
	wokePoll           // the poll interval, or the short retry delay
	wokeClosing        // the store is closing
)

// retrySoon is how soon a loop looks again at work another node held.
const retrySoon = 20 * time.Millisecond

// failures counts a background loop's failures in a row (the database
// down, say): the loop waits longer after each, and logs only some, so
// that neither the database nor the log is flooded.
type failures struct{ n int }

// fail records a failure of op, logs it at level when it is one to log
// (the first, then one at each doubling of the count), and returns how
// long to wait before trying again (from retrySoon, doubling, up to 5 s).
func (f *failures) fail(log *slog.Logger, level slog.Level, msg, op string, err error) time.Duration {
	f.n++
	wait := min(retrySoon<<min(f.n-1, 10), 5*time.Second)
	if f.n&(f.n-1) == 0 {
		log.Log(context.Background(), level, msg, "op", op, "failures", f.n, "retry_in", wait, "error", err)
	}
	return wait
}

// ok records a success.
func (f *failures) ok() { f.n = 0 }

// sleep waits until next on the store's clock (forever when zero), a
// signal on wake, the poll interval (or, when retry is set, that much
// real time), or closing, and says which came first.
func (s *Store) sleep(next time.Time, wake <-chan struct{}, retry time.Duration) int {
	var timeout <-chan time.Time
	if !next.IsZero() {
		t := s.clock.TimerAt(next)
		defer t.Stop()
		timeout = t.C()
	}
	poll := s.opts.PollInterval
	if retry > 0 {
		poll = min(poll, retry)
	}
	pt := time.NewTimer(poll)
	defer pt.Stop()
	select {
	case <-timeout:
		return wokeClock
	case <-wake:
		return wokeSignal
	case <-pt.C:
		return wokePoll
	case <-s.closing:
		return wokeClosing
	}
}
