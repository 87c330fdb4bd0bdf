package postgres

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// task is the unfinished background work of one job, kept in its row.
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

// rolloutTask walks the job's remaining targets (rollout_targets)
// queueing an execution for each, at the job's rollout rate. The pacing
// state is stored with it, so that whichever node takes the next step
// continues at the rate the rollout had, without a burst.
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
	Delete     bool   `json:"delete,omitempty"`
	AfterThing string `json:"afterThing,omitempty"` // last execution handled
	AfterN     int64  `json:"afterN,omitempty"`
}

// concurrent reports whether the task is rolling out or settling
// (isConcurrent).
func (t *task) concurrent() bool { return t != nil && (t.Rollout != nil || t.Settle != nil) }

// stepResult says when a job's task wants to run again.
type stepResult struct {
	done bool      // nothing left
	wake time.Time // zero: as soon as possible
}

// errSkip ends a background step whose job another node is working on.
var errSkip = errors.New("job locked by another step")

// runStep runs one step of a job's task in its own transaction, under the
// job's advisory lock: with wait, after the step another node is running;
// without, it reports ran false when another node holds the lock.
func (s *Store) runStep(ctx context.Context, jobID string, wait bool) (res stepResult, ran bool, err error) {
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
		err = s.attempt(ctx, "job step", func(w *wtx) error {
			r, err := w.step(jobID)
			if err != nil {
				return err
			}
			res = r
			if js := w.jobs[jobID]; !r.done && js != nil && !js.missing && !js.deleted {
				w.setTask(jobID, js.task, r.wake)
			}
			return nil
		}, lock)
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

// step runs one bounded step of the job's task.
func (w *wtx) step(jobID string) (stepResult, error) {
	job, err := w.loadJob(jobID, w.s.opts.TaskBatch)
	if errors.Is(err, store.ErrNotFound) {
		return stepResult{done: true}, nil
	}
	if err != nil {
		return stepResult{}, err
	}
	js := w.jobs[jobID]
	t := js.task
	if t == nil {
		return stepResult{done: true}, nil
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
			w.saveJob(job)
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
		w.setTask(jobID, nil, time.Time{})
		js.checkComplete = true
		return stepResult{done: true}, nil
	}
	w.setTask(jobID, t, wake)
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
		w.queue("DELETE FROM rollout_targets WHERE job_id = $1", job.JobID)
	}
	return false, nil
}

// beginRollout resolves a job's targets (things, and the things of target
// groups and their child groups) and starts rolling out to them.
func (w *wtx) beginRollout(job *store.Job, t *task) error {
	targets, err := w.jobTargets(job.JobID)
	if err != nil {
		return err
	}
	things, err := w.resolveTargets(targets)
	if err != nil {
		return err
	}
	w.queue("DELETE FROM rollout_targets WHERE job_id = $1", job.JobID)
	if js := w.jobs[job.JobID]; js != nil {
		js.nextTargets, js.prefetched = nil, false
	}
	w.queue(`INSERT INTO rollout_targets (job_id, pos, thing_name)
		SELECT $1, u.ord - 1, u.thing FROM unnest($2::text[]) WITH ORDINALITY AS u(thing, ord)`, job.JobID, things)
	t.Rollout = &rolloutTask{Total: len(things), Refilled: w.now}
	t.Rollout.Tokens = store.RolloutBurst(rolloutRate(job, t.Rollout, nil))
	return nil
}

// resolveTargets lists the things that target ARNs name, directly or
// through groups and their child groups, each once, things named
// directly first.
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
// unlimited).
func rolloutRate(job *store.Job, r *rolloutTask, counts *store.ProcessDetails) float64 {
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
	var counts *store.ProcessDetails
	if job.RolloutConfig != nil && job.RolloutConfig.ExponentialRate != nil &&
		job.RolloutConfig.ExponentialRate.RateIncreaseCriteria.NumberOfSucceededThings != nil {
		var err error
		if counts, err = w.committedCounts(job.JobID); err != nil {
			return time.Time{}, err
		}
		counts.Succeeded += w.jobs[job.JobID].delta.Succeeded
	}
	rate := rolloutRate(job, r, counts)
	limit := w.s.opts.TaskBatch
	if rate > 0 {
		r.Tokens = min(store.RolloutBurst(rate), r.Tokens+rate/60*w.now.Sub(r.Refilled).Seconds())
		r.Refilled = w.now
		limit = min(limit, int(r.Tokens))
	}
	limit = min(limit, r.Total-r.Next)
	queued := 0
	if limit > 0 {
		var batch []string
		if js := w.jobs[job.JobID]; js.prefetched && (len(js.nextTargets) >= limit || len(js.nextTargets) < w.s.opts.TaskBatch) {
			batch = js.nextTargets[:min(limit, len(js.nextTargets))]
			js.nextTargets, js.prefetched = nil, false
		} else {
			rows, err := w.query(`SELECT thing_name FROM rollout_targets WHERE job_id = $1 AND pos >= $2 ORDER BY pos LIMIT $3`,
				job.JobID, r.Next, limit)
			if err != nil {
				return time.Time{}, err
			}
			if batch, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return time.Time{}, err
			}
		}
		var err error
		r.Next += len(batch)
		if len(batch) < limit {
			r.Next = r.Total // the targets are gone (a concurrent settle); nothing is left
		}
		if job.TargetSelection == store.Continuous {
			// Membership may have changed since the targets were resolved.
			batch = slices.DeleteFunc(batch, func(th string) bool {
				ok, cerr := w.covers(job, th)
				if cerr != nil {
					err = cerr
				}
				return !ok
			})
			if err != nil {
				return time.Time{}, err
			}
		}
		if err := w.queueMany(job, batch, job.TargetSelection == store.Continuous); err != nil {
			return time.Time{}, err
		}
		queued = len(batch)
	}
	r.Notified += int64(queued)
	if rate > 0 {
		r.Tokens -= float64(queued)
		// The things just notified may have met the rate-increase
		// criteria: the wait for the next token is at the new rate.
		rate = rolloutRate(job, r, counts)
	}
	w.s.log.Debug("rollout step", "op", "rollout", "job", job.JobID, "now", w.now, "due", w.jobs[job.JobID].dueAt,
		"rate", rate, "queued", queued, "tokens", r.Tokens, "next", r.Next)
	if r.Next >= r.Total {
		t.Rollout = nil
		w.queue("DELETE FROM rollout_targets WHERE job_id = $1", job.JobID)
		return time.Time{}, nil
	}
	if rate <= 0 || r.Tokens >= 1 {
		return w.now, nil
	}
	wait := time.Duration((1 - r.Tokens) / (rate / 60) * float64(time.Second))
	return w.now.Add(max(wait, time.Millisecond)), nil
}

// settleStep writes out the job's cancellation or deletion for the next
// TaskBatch executions: opening each thing applies the job's status to its
// pending executions, and a deletion drops every execution. When no
// execution is left it finishes the job: canceled, or deleted.
func (w *wtx) settleStep(job *store.Job, t *task) (bool, error) {
	rows, err := w.query(`SELECT thing_name, execution_number FROM executions
		WHERE job_id = $1 AND (thing_name, execution_number) > ($2, $3)
		ORDER BY thing_name, execution_number LIMIT $4`, job.JobID, t.Settle.AfterThing, t.Settle.AfterN, w.s.opts.TaskBatch)
	if err != nil {
		return false, err
	}
	type key struct {
		thing string
		n     int64
	}
	var keys []key
	var k key
	if _, err := pgx.ForEachRow(rows, []any{&k.thing, &k.n}, func() error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return false, err
	}
	more := len(keys) == w.s.opts.TaskBatch
	things := make([]string, 0, len(keys))
	for _, k := range keys {
		if len(things) == 0 || things[len(things)-1] != k.thing {
			things = append(things, k.thing)
		}
	}
	if _, err := w.loadThings(things, false, false); err != nil {
		return false, err
	}
	for i, k := range keys {
		if i > 0 && w.full() {
			keys, more = keys[:i], true
			break
		}
		th, err := w.viewThing(k.thing)
		if err != nil {
			return false, err
		}
		if t.Settle.Delete {
			e, err := w.exec(k.thing, job.JobID, k.n)
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
		last := keys[len(keys)-1]
		t.Settle.AfterThing, t.Settle.AfterN = last.thing, last.n
		w.setTask(job.JobID, t, w.now)
		return true, nil
	}
	w.setTask(job.JobID, nil, time.Time{})
	if !t.Settle.Delete {
		w.jobEvent(job, "canceled")
		return false, nil
	}
	w.jobEvent(job, "deleted")
	w.jobs[job.JobID].deleted = true
	return false, nil
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
	for {
		select {
		case <-s.taskWake:
			relist = true
		default:
		}
		if relist {
			fresh, err := s.listTasks(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Error("list job tasks", "op", "task loop", "error", err)
			} else {
				known, relist = fresh, false
			}
		}
		now := s.clock.Now()
		busy, soon := false, relist
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
			case res.done:
				delete(known, id)
			case !res.wake.After(now):
				known[id] = now
				busy = true
			default:
				known[id] = res.wake
				if next.IsZero() || res.wake.Before(next) {
					next = res.wake
				}
			}
		}
		if busy {
			continue
		}
		switch s.sleep(next, s.taskWake, soon) {
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
	for {
		now := s.clock.Now()
		handled, skipped, err := s.sweepTimers(ctx, now)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("fire timers", "op", "timer sweep", "error", err)
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
		if s.sleep(next, s.timerWake, skipped > 0 || err != nil) == wokeClosing {
			return
		}
	}
}

// sweepTimers times out, in one transaction, the executions of up to
// TaskBatch things whose deadline has passed, and reports how many it
// timed out. Things another transaction holds (a device's operation,
// another node's sweep) are skipped; it reports how many there were.
func (s *Store) sweepTimers(ctx context.Context, now time.Time) (handled, skipped int, err error) {
	rows, err := s.pool.Query(ctx, "SELECT thing_name FROM executions WHERE deadline_ns <= $1 ORDER BY deadline_ns LIMIT $2",
		now.UnixNano(), s.opts.TaskBatch)
	if err != nil {
		return 0, 0, err
	}
	due, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(due) == 0 {
		return 0, 0, err
	}
	slices.Sort(due)
	due = slices.Compact(due)
	err = s.update(ctx, "timer sweep", func(w *wtx) error {
		handled, skipped = 0, 0
		held, err := w.loadThings(due, false, true)
		if err != nil {
			return err
		}
		skipped = len(due) - len(held)
		for _, thing := range held {
			if w.full() {
				break
			}
			th, err := w.viewThing(thing)
			if err != nil {
				return err
			}
			for _, p := range slices.Clone(th.set) {
				e, err := w.exec(thing, p.JobID, p.ExecutionNumber)
				if err != nil {
					return err
				}
				timedOut := store.TimeOut(e, w.now)
				if timedOut == nil {
					continue
				}
				if err := w.putExec(th, e, timedOut); err != nil {
					return err
				}
				job, err := w.job(p.JobID)
				if err != nil {
					return err
				}
				if err := w.finished(th, job, timedOut); err != nil {
					return err
				}
				handled++
				w.after = append(w.after, func() { w.s.stats.TimersFired.Add(1) })
			}
			if err := w.closeThing(th); err != nil {
				return err
			}
		}
		return nil
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

// sleep waits until next on the store's clock (forever when zero), a
// signal on wake, the poll interval (or, with soon, a few milliseconds of
// real time), or closing, and says which came first.
func (s *Store) sleep(next time.Time, wake <-chan struct{}, soon bool) int {
	var timeout <-chan time.Time
	if !next.IsZero() {
		t := s.clock.TimerAt(next)
		defer t.Stop()
		timeout = t.C()
	}
	poll := s.opts.PollInterval
	if soon {
		poll = 20 * time.Millisecond
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
