package engine

import (
	"errors"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// step runs one bounded step of the job's task.
func (t *txn) step(jobID string) (StepResult, error) {
	job, err := t.job(jobID)
	if errors.Is(err, store.ErrNotFound) {
		return StepResult{Done: true}, nil
	}
	if err != nil {
		return StepResult{}, err
	}
	task, err := t.task(jobID)
	if err != nil || task == nil {
		return StepResult{Done: true}, err
	}
	if task.Settle != nil {
		more, err := t.settleStep(job, task)
		return StepResult{Done: !more}, err
	}
	var wake time.Time
	if sc := task.Schedule; sc != nil {
		if job.Status == store.JobScheduled {
			if t.now.Before(sc.Start) {
				t.setTask(jobID, task, sc.Start)
				return StepResult{Wake: sc.Start}, nil
			}
			job.Status, job.LastUpdatedAt = store.JobInProgress, t.now
			t.saveJob(job)
			if err := t.beginRollout(job, task); err != nil {
				return StepResult{}, err
			}
		}
		if !sc.End.IsZero() && !t.now.Before(sc.End) {
			task.Schedule = nil
			if job.Status == store.JobInProgress {
				canceled, err := t.endSchedule(job, task, sc.EndBehavior)
				if err != nil || canceled {
					return StepResult{}, err
				}
			}
		} else if !sc.End.IsZero() {
			wake = sc.End
		}
	}
	if task.Rollout != nil && job.Status == store.JobInProgress {
		next, err := t.rolloutStep(job, task)
		if err != nil {
			return StepResult{}, err
		}
		if task.Rollout != nil && (wake.IsZero() || next.Before(wake)) {
			wake = next
		}
	}
	if job.Status != store.JobInProgress && job.Status != store.JobScheduled {
		task.Rollout, task.Schedule = nil, nil
	}
	if task.Rollout == nil && task.Schedule == nil {
		t.setTask(jobID, nil, time.Time{})
		t.state(jobID).checkComplete = true
		return StepResult{Done: true}, nil
	}
	t.setTask(jobID, task, wake)
	return StepResult{Wake: wake}, nil
}

// endSchedule applies a scheduled job's endBehavior when its endTime
// comes: STOP_ROLLOUT queues no more executions; CANCEL and FORCE_CANCEL
// cancel the job. It reports whether the job was canceled (which replaced
// its task).
func (t *txn) endSchedule(job *store.Job, task *Task, behavior string) (bool, error) {
	switch behavior {
	case "CANCEL", "FORCE_CANCEL":
		comment := "the job's scheduled end time passed"
		return true, t.cancelJob(job, behavior == "FORCE_CANCEL", nil, &comment)
	}
	if task.Rollout != nil {
		task.Rollout = nil
		return false, t.tx.DropRolloutTargets(job.JobID)
	}
	return false, nil
}

// beginRollout resolves a job's targets (things, and the things of target
// groups and their child groups) and starts rolling out to them.
func (t *txn) beginRollout(job *store.Job, task *Task) error {
	targets, err := t.targets(job.JobID)
	if err != nil {
		return err
	}
	things, err := t.resolveTargets(targets)
	if err != nil {
		return err
	}
	if err := t.tx.SetRolloutTargets(job.JobID, things); err != nil {
		return err
	}
	task.Rollout = &RolloutTask{Total: len(things), Refilled: t.now}
	task.Rollout.Tokens = store.RolloutBurst(store.RolloutRate(job.RolloutConfig, 0, 0))
	return nil
}

// resolveTargets lists the things that target ARNs name, directly or
// through groups and their child groups, each once, things named
// directly first.
func (t *txn) resolveTargets(targets []string) ([]string, error) {
	seen := map[string]bool{}
	var things, groups []string
	add := func(th string) {
		if !seen[th] {
			seen[th] = true
			things = append(things, th)
		}
	}
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
		members, err := t.groupThings(g, true)
		if err != nil {
			return nil, err
		}
		for _, th := range members {
			add(th)
		}
	}
	return things, nil
}

// rolloutStep queues executions for the job's next targets, as many as
// the rate, the maintenance windows, TaskBatch and the transaction's size
// allow. It returns when it wants to run again.
func (t *txn) rolloutStep(job *store.Job, task *Task) (time.Time, error) {
	r := task.Rollout
	if sc := job.SchedulingConfig; sc != nil && len(sc.MaintenanceWindows) > 0 {
		ws, err := store.ParseWindows(sc.MaintenanceWindows)
		if err != nil {
			return time.Time{}, err
		}
		if open, until := schedule.Open(ws, t.now); !open {
			if until.IsZero() {
				until = t.now.Add(24 * time.Hour) // no window ever opens; look again tomorrow
			}
			return until, nil
		}
	}
	var succeeded int64
	if cfg := job.RolloutConfig; cfg != nil && cfg.ExponentialRate != nil &&
		cfg.ExponentialRate.RateIncreaseCriteria.NumberOfSucceededThings != nil {
		counts, err := t.counts(job.JobID)
		if err != nil {
			return time.Time{}, err
		}
		succeeded = counts.Succeeded
	}
	rate := store.RolloutRate(job.RolloutConfig, r.Notified, succeeded)
	limit := t.e.batch
	if rate > 0 {
		r.Tokens = min(store.RolloutBurst(rate), r.Tokens+rate/60*t.now.Sub(r.Refilled).Seconds())
		r.Refilled = t.now
		limit = min(limit, int(r.Tokens))
	}
	limit = min(limit, r.Total-r.Next)
	queued := 0
	if limit > 0 {
		batch, err := t.tx.RolloutTargets(job.JobID, r.Next, limit)
		if err != nil {
			return time.Time{}, err
		}
		continuous := job.TargetSelection == store.Continuous
		covered := make([]bool, len(batch))
		var lock []string
		for i, th := range batch {
			// Membership may have changed since the targets were resolved.
			covered[i] = true
			if continuous {
				if covered[i], err = t.covers(job, th); err != nil {
					return time.Time{}, err
				}
			}
			if covered[i] {
				lock = append(lock, th)
			}
		}
		if _, err := t.tx.LockThings(lock, true, false); err != nil {
			return time.Time{}, err
		}
		if err := t.tx.ReserveSeqs(len(lock)); err != nil {
			return time.Time{}, err
		}
		visited := 0
		for i, th := range batch {
			if queued > 0 && t.tx.Full() {
				break
			}
			visited = i + 1
			if !covered[i] {
				continue
			}
			if err := t.queueOn(job, th, continuous); err != nil {
				return time.Time{}, err
			}
			queued++
		}
		r.Next += visited
		if len(batch) < limit && visited == len(batch) {
			r.Next = r.Total // the targets are gone (a concurrent settle); nothing is left
		}
	}
	r.Notified += int64(queued)
	if rate > 0 {
		r.Tokens -= float64(queued)
		// The things just notified may have met the rate-increase
		// criteria: the wait for the next token is at the new rate.
		rate = store.RolloutRate(job.RolloutConfig, r.Notified, succeeded)
	}
	if r.Next >= r.Total {
		task.Rollout = nil
		return time.Time{}, t.tx.DropRolloutTargets(job.JobID)
	}
	if rate <= 0 || r.Tokens >= 1 {
		return t.now, nil
	}
	wait := time.Duration((1 - r.Tokens) / (rate / 60) * float64(time.Second))
	return t.now.Add(max(wait, time.Millisecond)), nil
}

// settleStep writes out the job's cancellation or deletion for its next
// executions: a canceled job's pending executions are canceled, a deleted
// job's executions are dropped. When none is left it finishes the job:
// canceled, or deleted.
func (t *txn) settleStep(job *store.Job, task *Task) (bool, error) {
	s := task.Settle
	var keys []Cursor
	err := t.r.EachExecutionOfJob(job.JobID, s.After, func(ex *store.Execution) (bool, error) {
		keys = append(keys, Cursor{ex.ThingName, ex.ExecutionNumber})
		return len(keys) < t.e.batch, nil
	})
	if err != nil {
		return false, err
	}
	more := len(keys) == t.e.batch
	things := make([]string, 0, len(keys))
	for _, k := range keys {
		if len(things) == 0 || things[len(things)-1] != k.Name {
			things = append(things, k.Name)
		}
	}
	if _, err := t.tx.LockThings(things, false, false); err != nil {
		return false, err
	}
	for i, k := range keys {
		if i > 0 && t.tx.Full() {
			keys, more = keys[:i], true
			break
		}
		ex, err := t.r.Execution(k.Name, job.JobID, k.N)
		if err != nil {
			return false, err
		}
		if ex == nil {
			continue
		}
		th := t.follow(k.Name)
		if s.Delete {
			err = t.dropExec(th, ex)
		} else {
			_, err = t.current(th, ex)
		}
		if err != nil {
			return false, err
		}
		if err := t.close(th); err != nil {
			return false, err
		}
	}
	if more {
		s.After = keys[len(keys)-1]
		t.setTask(job.JobID, task, t.now)
		return true, nil
	}
	t.tx.EndSettle(job.JobID)
	t.setTask(job.JobID, nil, time.Time{})
	if !s.Delete {
		t.jobEvent(job, "canceled")
		return false, nil
	}
	t.jobEvent(job, "deleted")
	t.state(job.JobID).deleted = true
	return false, nil
}

// fireTimers times out the executions behind due timers. A timer whose
// execution has moved on (finished, or re-armed with another deadline) is
// stale and ignored.
func (t *txn) fireTimers(due []Timer) (handled, fired, skipped int, err error) {
	var things []string
	for _, tm := range due {
		things = append(things, tm.Thing)
	}
	held, err := t.tx.LockThings(things, false, true)
	if err != nil {
		return 0, 0, 0, err
	}
	holds := make(map[string]bool, len(held))
	for _, th := range held {
		holds[th] = true
	}
	for i, tm := range due {
		if i > 0 && t.tx.Full() {
			break // the rest stay in the index for the next sweep
		}
		handled = i + 1
		if !holds[tm.Thing] {
			skipped++
			continue
		}
		ok, err := t.fireTimer(tm)
		if err != nil {
			return 0, 0, 0, err
		}
		if ok {
			fired++
		}
	}
	return handled, fired, skipped, nil
}

// fireTimer times out the execution of one due timer, if it is still due.
func (t *txn) fireTimer(tm Timer) (bool, error) {
	ex, err := t.r.Execution(tm.Thing, tm.Job, tm.N)
	if err != nil || ex == nil || !ex.Deadline().Equal(tm.Deadline) {
		return false, err
	}
	th := t.follow(tm.Thing)
	cur, err := t.current(th, ex)
	if err != nil {
		return false, err
	}
	timedOut := timeOut(cur, t.now)
	if timedOut != nil {
		if err := t.putExec(th, cur, timedOut); err != nil {
			return false, err
		}
		job, err := t.job(tm.Job)
		if err != nil {
			return false, err
		}
		if err := t.finished(th, job, timedOut); err != nil {
			return false, err
		}
	}
	return timedOut != nil, t.close(th)
}

func timeOut(e *store.Execution, now time.Time) *store.Execution {
	if e == nil {
		return nil
	}
	return store.TimeOut(e, now)
}

// covers reports whether a job targets the thing, directly or through a
// group that contains it (at any depth).
func (t *txn) covers(job *store.Job, thing string) (bool, error) {
	targets, err := t.targets(job.JobID)
	if err != nil {
		return false, err
	}
	var enclosing map[string]bool
	for _, arn := range targets {
		kind, name, err := store.ParseTargetARN(arn)
		if err != nil {
			continue
		}
		if kind == store.TargetThing {
			if name == thing {
				return true, nil
			}
			continue
		}
		if enclosing == nil {
			if enclosing, err = t.r.EnclosingGroups(thing); err != nil {
				return false, err
			}
		}
		if enclosing[name] {
			return true, nil
		}
	}
	return false, nil
}
