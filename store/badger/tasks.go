package badger

import (
	"context"
	"errors"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// task is the unfinished background work of one job, stored under q<job>.
type task struct {
	Rollout *rolloutTask `json:"rollout,omitempty"`
	Settle  *settleTask  `json:"settle,omitempty"`
}

// rolloutTask walks the job's remaining targets (stored in r<job> chunks)
// queueing an execution for each.
type rolloutTask struct {
	Next  int `json:"next"`
	Total int `json:"total"`
}

// settleTask walks the job's executions writing out a cancellation or a
// deletion.
type settleTask struct {
	Delete bool   `json:"delete,omitempty"`
	After  []byte `json:"after,omitempty"` // last x key handled
}

const targetChunk = 4096

func (r *rtx) task(job string) (*task, error) {
	var t task
	if err := r.getJSON(taskKey(job), &t); err != nil {
		if errors.Is(err, errMissing) {
			return nil, nil
		}
		return nil, err
	}
	return &t, nil
}

func (w *wtx) saveTask(job string, t *task) error {
	w.tasksChanged = true
	return w.setJSON(taskKey(job), t)
}

func (w *wtx) saveTargets(job string, things []string) error {
	for i := 0; i*targetChunk < len(things); i++ {
		chunk := things[i*targetChunk : min((i+1)*targetChunk, len(things))]
		if err := w.setJSON(targetsKey(job, i), chunk); err != nil {
			return err
		}
	}
	return nil
}

func (w *wtx) dropTargets(job string) error {
	var keys [][]byte
	err := w.eachKey(targetsPrefix(job), nil, false, func(k []byte) (bool, error) {
		keys = append(keys, k)
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := w.del(k); err != nil {
			return err
		}
	}
	return nil
}

// step runs one bounded step of the job's task. It reports whether work
// remains.
func (w *wtx) step(jobID string) (bool, error) {
	t, err := w.task(jobID)
	if err != nil || t == nil {
		return false, err
	}
	job, err := w.job(jobID)
	if errors.Is(err, store.ErrNotFound) {
		return false, w.del(taskKey(jobID))
	}
	if err != nil {
		return false, err
	}
	if t.Settle != nil {
		return w.settleStep(job, t)
	}
	return w.rolloutStep(job, t)
}

// rolloutStep queues executions for the next TaskBatch targets.
func (w *wtx) rolloutStep(job *store.Job, t *task) (bool, error) {
	r := t.Rollout
	var chunk []string
	chunkNo := -1
	for n := 0; n < w.s.opts.TaskBatch && r.Next < r.Total; n++ {
		if c := r.Next / targetChunk; c != chunkNo {
			chunk, chunkNo = nil, c
			if err := w.getJSON(targetsKey(job.JobID, c), &chunk); err != nil {
				return false, err
			}
		}
		if err := w.queueExecution(job, chunk[r.Next%targetChunk], false); err != nil {
			return false, err
		}
		r.Next++
	}
	if r.Next < r.Total {
		return true, w.saveTask(job.JobID, t)
	}
	if err := w.dropTargets(job.JobID); err != nil {
		return false, err
	}
	return false, w.del(taskKey(job.JobID))
}

// settleStep writes out the job's cancellation or deletion for the next
// TaskBatch executions. The job is in the unsettled set while this runs, so
// openThing applies the job's status to each thing's pending executions.
func (w *wtx) settleStep(job *store.Job, t *task) (bool, error) {
	prefix := jobExecPrefix(job.JobID)
	var start []byte
	if t.Settle.After != nil {
		start = append(append([]byte(nil), t.Settle.After...), 0)
	}
	var keys [][]byte
	err := w.eachKey(prefix, start, false, func(k []byte) (bool, error) {
		keys = append(keys, k)
		return len(keys) < w.s.opts.TaskBatch, nil
	})
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		thing, n, ok := parseJobExecKey(k, job.JobID)
		if !ok {
			continue
		}
		th, err := w.openThing(thing)
		if err != nil {
			return false, err
		}
		if t.Settle.Delete {
			e, err := w.exec(thing, job.JobID, n)
			switch {
			case err == nil:
				if err := w.dropExec(th, e); err != nil {
					return false, err
				}
			case !errors.Is(err, store.ErrNotFound):
				return false, err
			}
		}
		if err := w.closeThing(th); err != nil {
			return false, err
		}
	}
	if len(keys) == w.s.opts.TaskBatch {
		t.Settle.After = keys[len(keys)-1]
		return true, w.saveTask(job.JobID, t)
	}
	// Done. Readers that began before this commit may still look at the
	// unsettled set, so it keeps the job a little longer.
	jobID := job.JobID
	w.afterCommit(func() { time.AfterFunc(time.Second, func() { w.s.clearUnsettled(jobID) }) })
	if err := w.del(taskKey(jobID)); err != nil {
		return false, err
	}
	if !t.Settle.Delete {
		return false, nil
	}
	w.forgetCounts(jobID)
	for _, k := range [][]byte{jobKey(jobID), jobTargetsKey(jobID), docKey(jobID), countsKey(jobID), jobOrderKey(job.Seq)} {
		if err := w.del(k); err != nil {
			return false, err
		}
	}
	return false, nil
}

// taskLoop runs job tasks one step at a time, round robin, each step its
// own operation so that device traffic interleaves with big jobs.
func (s *Store) taskLoop() {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	for {
		jobs, err := s.pendingTasks(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("list job tasks", "error", err)
		}
		busy := false
		for _, job := range jobs {
			var more bool
			err := s.submit(ctx, func(w *wtx) error {
				var err error
				more, err = w.step(job)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Error("job task step", "job", job, "error", err)
				continue
			}
			busy = busy || more
		}
		if busy {
			continue
		}
		select {
		case <-s.taskWake:
		case <-s.closing:
			return
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
		if !s.sleepUntil(next) {
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

// fireTimers times out the executions behind due timer keys. A key whose
// execution has moved on (finished, or re-armed with another deadline) is
// stale and only removed.
func (w *wtx) fireTimers(keys [][]byte) error {
	for _, k := range keys {
		if err := w.del(k); err != nil {
			return err
		}
		deadline, thing, jobID, n, ok := parseTimerKey(k)
		if !ok {
			continue
		}
		e, err := w.exec(thing, jobID, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !e.Deadline().Equal(deadline) {
			continue
		}
		t, err := w.openThing(thing)
		if err != nil {
			return err
		}
		// Settling may have ended the execution already.
		if e, err = w.exec(thing, jobID, n); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if e != nil {
			if timedOut := store.TimeOut(e, w.now); timedOut != nil {
				if err := w.putExec(t, e, timedOut); err != nil {
					return err
				}
				w.s.stats.TimersFired.Add(1)
				job, err := w.job(jobID)
				if err != nil {
					return err
				}
				if err := w.maybeComplete(job); err != nil {
					return err
				}
			}
		}
		if err := w.closeThing(t); err != nil {
			return err
		}
	}
	return nil
}

// sleepUntil waits until next (forever when zero), a timer change, or
// closing; it returns false on closing.
func (s *Store) sleepUntil(next time.Time) bool {
	var wait <-chan time.Time
	if !next.IsZero() {
		t := s.clock.TimerAt(next)
		defer t.Stop()
		wait = t.C()
	}
	select {
	case <-wait:
	case <-s.timerWake:
	case <-s.closing:
		return false
	}
	return true
}
