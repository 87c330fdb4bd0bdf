package badger

import (
	"context"
	"errors"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// task is the unfinished background work of one job, stored under q<job>.
type task struct {
	Schedule *scheduleTask `json:"schedule,omitempty"`
	Rollout  *rolloutTask  `json:"rollout,omitempty"`
	Settle   *settleTask   `json:"settle,omitempty"`
}

// scheduleTask holds a scheduled job's start and end.
type scheduleTask struct {
	Start       time.Time `json:"start,omitzero"`
	End         time.Time `json:"end,omitzero"`
	EndBehavior string    `json:"endBehavior,omitempty"`
}

// rolloutTask walks the job's remaining targets (stored in r<job> chunks)
// queueing an execution for each, at the job's rollout rate. The pacing
// state is stored with it, so a restarted broker continues at the rate it
// had, without a burst.
type rolloutTask struct {
	Next     int       `json:"next"`
	Total    int       `json:"total"`
	Notified int64     `json:"notified"` // executions queued by the rollout
	Tokens   float64   `json:"tokens"`   // things that may be queued now
	Refilled time.Time `json:"refilled"` // when Tokens was last topped up
}

// settleTask walks the job's executions writing out a cancellation or a
// deletion.
type settleTask struct {
	Delete bool   `json:"delete,omitempty"`
	After  []byte `json:"after,omitempty"` // last x key handled
}

// concurrent reports whether the task is rolling out or settling
// (isConcurrent).
func (t *task) concurrent() bool { return t != nil && (t.Rollout != nil || t.Settle != nil) }

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

// stepResult says when a job's task wants to run again.
type stepResult struct {
	done bool      // nothing left
	wake time.Time // zero: as soon as possible
}

// step runs one bounded step of the job's task.
func (w *wtx) step(jobID string) (stepResult, error) {
	t, err := w.task(jobID)
	if err != nil || t == nil {
		return stepResult{done: true}, err
	}
	job, err := w.job(jobID)
	if errors.Is(err, store.ErrNotFound) {
		return stepResult{done: true}, w.del(taskKey(jobID))
	}
	if err != nil {
		return stepResult{}, err
	}
	if t.Settle != nil {
		more, err := w.settleStep(job, t)
		return stepResult{done: !more}, err
	}
	var wake time.Time
	if sc := t.Schedule; sc != nil {
		if job.Status == store.JobScheduled {
			if w.now.Before(sc.Start) {
				return stepResult{wake: sc.Start}, nil
			}
			job.Status, job.LastUpdatedAt = store.JobInProgress, w.now
			if err := w.saveJob(job); err != nil {
				return stepResult{}, err
			}
			if err := w.beginRollout(job, t); err != nil {
				return stepResult{}, err
			}
		}
		if !sc.End.IsZero() && !w.now.Before(sc.End) {
			t.Schedule = nil
			if job.Status == store.JobInProgress {
				done, err := w.endSchedule(job, t, sc.EndBehavior)
				if err != nil || done {
					return stepResult{}, err
				}
			}
		} else if !sc.End.IsZero() {
			wake = sc.End
		}
	}
	if t.Rollout != nil && job.Status == store.JobInProgress {
		next, err := w.rolloutStep(job, t)
		if err != nil {
			return stepResult{}, err
		}
		if t.Rollout != nil && (wake.IsZero() || next.Before(wake)) {
			wake = next
		}
	}
	if job.Status != store.JobInProgress && job.Status != store.JobScheduled {
		t.Rollout, t.Schedule = nil, nil
	}
	if t.Rollout == nil && t.Schedule == nil {
		if err := w.del(taskKey(job.JobID)); err != nil {
			return stepResult{}, err
		}
		return stepResult{done: true}, w.maybeComplete(job)
	}
	if err := w.saveTask(job.JobID, t); err != nil {
		return stepResult{}, err
	}
	if t.Rollout == nil {
		return stepResult{wake: wake}, nil // waiting for the schedule's end
	}
	return stepResult{wake: wake}, nil
}

// endSchedule applies a scheduled job's endBehavior when its endTime
// comes: STOP_ROLLOUT queues no more executions; CANCEL and FORCE_CANCEL
// cancel the job. It reports whether the task was replaced (by a cancel).
func (w *wtx) endSchedule(job *store.Job, t *task, behavior string) (bool, error) {
	switch behavior {
	case "CANCEL", "FORCE_CANCEL":
		comment := "the job's scheduled end time passed"
		return true, w.cancelJob(job, behavior == "FORCE_CANCEL", nil, &comment)
	}
	if t.Rollout != nil {
		t.Rollout = nil
		return false, w.dropTargets(job.JobID)
	}
	return false, nil
}

// beginRollout resolves a job's targets (things, and the things of target
// groups and their child groups) and starts rolling out to them.
func (w *wtx) beginRollout(job *store.Job, t *task) error {
	things, err := w.resolve(job)
	if err != nil {
		return err
	}
	if err := w.dropTargets(job.JobID); err != nil {
		return err
	}
	if err := w.saveTargets(job.JobID, things); err != nil {
		return err
	}
	t.Rollout = &rolloutTask{Total: len(things), Refilled: w.now}
	t.Rollout.Tokens = store.RolloutBurst(w.rolloutRate(job, t.Rollout, nil))
	return nil
}

// resolve lists the things a job targets, each once, things named
// directly first.
func (w *wtx) resolve(job *store.Job) ([]string, error) {
	var targets []string
	if err := w.getJSON(jobTargetsKey(job.JobID), &targets); err != nil && !errors.Is(err, errMissing) {
		return nil, err
	}
	return w.resolveTargets(targets)
}

// resolveTargets lists the things that target ARNs name, directly or
// through groups and their child groups, each once.
func (w *wtx) resolveTargets(targets []string) ([]string, error) {
	seen := map[string]bool{}
	var things []string
	add := func(th string) {
		if !seen[th] {
			seen[th] = true
			things = append(things, th)
		}
	}
	var groups []string
	for _, arn := range targets {
		kind, name, err := store.ParseTargetARN(arn)
		if err != nil {
			return nil, err
		}
		if kind == store.TargetThing {
			add(name)
		} else {
			groups = append(groups, name)
		}
	}
	for _, g := range groups {
		members, err := w.groupThings(g, true)
		if err != nil {
			return nil, err
		}
		for _, th := range members {
			add(th)
		}
	}
	return things, nil
}

// rolloutRate is the job's current rollout rate in things per minute (0:
// unlimited): maximumPerMinute, or the exponential rate reached so far,
// capped by maximumPerMinute.
func (w *wtx) rolloutRate(job *store.Job, r *rolloutTask, counts *store.ProcessDetails) float64 {
	cfg := job.RolloutConfig
	if cfg == nil {
		return 0
	}
	var succeeded int64
	if counts != nil {
		succeeded = counts.Succeeded
	}
	return store.RolloutRate(cfg, r.Notified, succeeded)
}

// rolloutStep queues executions for the next targets, as many as the
// rate, the maintenance windows and TaskBatch allow. It returns when it
// wants to run again.
func (w *wtx) rolloutStep(job *store.Job, t *task) (time.Time, error) {
	r := t.Rollout
	if sc := job.SchedulingConfig; sc != nil && len(sc.MaintenanceWindows) > 0 {
		ws, err := store.ParseWindows(sc.MaintenanceWindows)
		if err != nil {
			return time.Time{}, err
		}
		if open, until := schedule.Open(ws, w.now); !open {
			if until.IsZero() {
				until = w.now.Add(24 * time.Hour) // no window ever opens; look again tomorrow
			}
			return until, nil
		}
	}
	counts, err := w.jobCounts(job.JobID)
	if err != nil {
		return time.Time{}, err
	}
	rate := w.rolloutRate(job, r, counts)
	limit := w.s.opts.TaskBatch
	if rate > 0 {
		r.Tokens = min(store.RolloutBurst(rate), r.Tokens+rate/60*w.now.Sub(r.Refilled).Seconds())
		r.Refilled = w.now
		limit = min(limit, int(r.Tokens))
	}
	var chunk []string
	chunkNo := -1
	queued := 0
	for n := 0; n < limit && r.Next < r.Total && !w.full(); n++ {
		if c := r.Next / targetChunk; c != chunkNo {
			chunk, chunkNo = nil, c
			if err := w.getJSON(targetsKey(job.JobID, c), &chunk); err != nil {
				return time.Time{}, err
			}
		}
		thing := chunk[r.Next%targetChunk]
		r.Next++
		if job.TargetSelection == store.Continuous {
			// Membership may have changed since the targets were resolved.
			if ok, err := w.covers(job, thing); err != nil {
				return time.Time{}, err
			} else if !ok {
				continue
			}
		}
		if err := w.queueExecution(job, thing, job.TargetSelection == store.Continuous); err != nil {
			return time.Time{}, err
		}
		queued++
	}
	r.Notified += int64(queued)
	if rate > 0 {
		r.Tokens -= float64(queued)
		// The things just notified may have met the rate-increase
		// criteria: the wait for the next token is at the new rate.
		rate = w.rolloutRate(job, r, counts)
	}
	if r.Next >= r.Total {
		t.Rollout = nil
		return time.Time{}, w.dropTargets(job.JobID)
	}
	if rate <= 0 || r.Tokens >= 1 {
		return w.now, nil
	}
	wait := time.Duration((1 - r.Tokens) / (rate / 60) * float64(time.Second))
	return w.now.Add(max(wait, time.Millisecond)), nil
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
	more := len(keys) == w.s.opts.TaskBatch
	for i, k := range keys {
		if i > 0 && w.full() {
			keys, more = keys[:i], true
			break
		}
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
	if more {
		t.Settle.After = keys[len(keys)-1]
		return true, w.saveTask(job.JobID, t)
	}
	// Done. Readers that began before this commit may still look at the
	// unsettled set, so it keeps the job a little longer.
	jobID := job.JobID
	w.afterCommit(func() { w.s.settled(jobID) })
	if err := w.del(taskKey(jobID)); err != nil {
		return false, err
	}
	if !t.Settle.Delete {
		return false, w.jobEvent(job, "canceled")
	}
	if err := w.jobEvent(job, "deleted"); err != nil {
		return false, err
	}
	w.forgetCounts(jobID)
	var targets []string
	if err := w.getJSON(jobTargetsKey(jobID), &targets); err != nil && !errors.Is(err, errMissing) {
		return false, err
	}
	gone := [][]byte{jobKey(jobID), jobTargetsKey(jobID), docKey(jobID), docBeforeKey(jobID), countsKey(jobID), jobOrderKey(job.Seq)}
	for _, arn := range targets {
		if kind, g, err := store.ParseTargetARN(arn); err == nil && kind == store.TargetThingGroup {
			gone = append(gone, groupJobKey(g, jobID))
		}
	}
	for _, k := range gone {
		if err := w.del(k); err != nil {
			return false, err
		}
	}
	return false, nil
}

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
			var res stepResult
			err := s.submit(ctx, func(w *wtx) error {
				var err error
				res, err = w.step(job)
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
			case res.done:
				delete(wakeAt, job)
			case !res.wake.After(now):
				delete(wakeAt, job)
				busy = true
			default:
				wakeAt[job] = res.wake
				if next.IsZero() || res.wake.Before(next) {
					next = res.wake
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

// fireTimers times out the executions behind due timer keys. A key whose
// execution has moved on (finished, or re-armed with another deadline) is
// stale and only removed.
func (w *wtx) fireTimers(keys [][]byte) error {
	for i, k := range keys {
		if i > 0 && w.full() {
			return nil // the rest stay in the index for the next sweep
		}
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
				if err := w.finished(t, job, timedOut); err != nil {
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
