package badger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jobsbroker/jobsbroker/store"
)

// thingTx follows one thing's pending set through an operation, so that
// the operation can tell afterwards whether notify or notify-next is due.
type thingTx struct {
	name   string
	before store.PendingSet // as stored when the operation began
	set    store.PendingSet // as it is now
}

// openThing loads a thing's pending set and writes out whatever canceled or
// deleted jobs have done to it (see store.JobStateEffect).
func (w *wtx) openThing(name string) (*thingTx, error) {
	set, err := w.pending(name)
	if err != nil {
		return nil, err
	}
	t := &thingTx{name: name, before: set, set: set}
	if w.s.nUnsettled.Load() == 0 {
		return t, nil
	}
	for _, p := range set {
		if !w.s.isUnsettled(p.JobID) {
			continue
		}
		e, err := w.exec(name, p.JobID, p.ExecutionNumber)
		if errors.Is(err, store.ErrNotFound) {
			t.set = t.set.Remove(p.JobID, p.ExecutionNumber)
			continue
		}
		if err != nil {
			return nil, err
		}
		job, err := w.job(p.JobID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		switch store.JobStateEffect(job, e) {
		case store.EffectCancel:
			if err := w.putExec(t, e, store.CancelByJob(e, job)); err != nil {
				return nil, err
			}
		case store.EffectDelete:
			if err := w.dropExec(t, e); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// putExec writes an execution's new state and keeps the thing's pending
// set, the job's counts and the timer index in step. old is the state it
// replaces: the same execution before the change, or for a new execution
// the previous execution of the same job on the thing (nil if none), whose
// place in the counts it takes.
func (w *wtx) putExec(t *thingTx, old, cur *store.Execution) error {
	if err := w.saveExec(cur); err != nil {
		return err
	}
	if old == nil || old.ExecutionNumber != cur.ExecutionNumber {
		if err := w.set(jobExecKey(cur.JobID, cur.ThingName, cur.ExecutionNumber), nil); err != nil {
			return err
		}
	}
	t.set = t.set.Put(cur.Summary())
	counts, err := w.jobCounts(cur.JobID)
	if err != nil {
		return err
	}
	if old == nil {
		counts.Add(cur.Status, 1)
	} else {
		counts.Move(old.Status, cur.Status)
	}
	if old != nil && old.ExecutionNumber != cur.ExecutionNumber {
		return w.retime(nil, cur)
	}
	if old != nil && !old.Status.Terminal() && cur.Status.Terminal() {
		w.executionEvent(cur, store.ExecutionEventOperation(cur.Status))
	}
	return w.retime(old, cur)
}

// dropExec deletes an execution with its index entries; counts are the
// caller's business.
func (w *wtx) dropExec(t *thingTx, e *store.Execution) error {
	if err := w.del(execKey(e.ThingName, e.JobID, e.ExecutionNumber)); err != nil {
		return err
	}
	if err := w.del(jobExecKey(e.JobID, e.ThingName, e.ExecutionNumber)); err != nil {
		return err
	}
	if t != nil {
		t.set = t.set.Remove(e.JobID, e.ExecutionNumber)
	}
	w.executionEvent(e, "deleted")
	return w.retime(e, nil)
}

// onThing submits an operation on one thing: it opens the thing, runs fn,
// and closes the thing whether or not fn rejected the request, since
// opening may already have written (settling a canceled job) and what it
// wrote must be kept and notified.
func (s *Store) onThing(ctx context.Context, thing string, fn func(w *wtx, t *thingTx) error) error {
	return s.submit(ctx, func(w *wtx) error {
		t, err := w.openThing(thing)
		if err != nil {
			return err
		}
		ferr := fn(w, t)
		var se *store.Error
		if ferr != nil && !errors.As(ferr, &se) {
			return ferr
		}
		if err := w.closeThing(t); err != nil {
			return err
		}
		return ferr
	})
}

// closeThing stores the thing's pending set if it changed and records the
// notifications the change calls for.
func (w *wtx) closeThing(t *thingTx) error {
	if t.before.Same(t.set) {
		return nil
	}
	if err := w.savePending(t.name, t.set); err != nil {
		return err
	}
	notify := !store.SameMembers(t.before, t.set)
	next := !store.SameHead(t.before, t.set)
	if !notify && !next {
		return nil
	}
	c := store.Change{ThingName: t.name, At: w.now, Pending: t.set, Before: t.before}
	if notify {
		c.Notify = true
	}
	if next {
		c.NotifyNext = true
		if h := t.set.Head(); h != nil {
			e, err := w.exec(t.name, h.JobID, h.ExecutionNumber)
			if err != nil {
				return err
			}
			doc, err := w.document(h.JobID, h.JobSeq)
			if err != nil {
				return err
			}
			c.Next, c.NextDocument = e, doc
		}
	}
	w.changes = append(w.changes, c)
	return nil
}

// maybeComplete marks a SNAPSHOT job COMPLETED once none of its executions
// is pending and its rollout is over.
func (w *wtx) maybeComplete(job *store.Job) error {
	if job.Status != store.JobInProgress || job.TargetSelection != store.Snapshot {
		return nil
	}
	counts, err := w.jobCounts(job.JobID)
	if err != nil {
		return err
	}
	if counts.Pending() > 0 {
		return nil
	}
	t, err := w.task(job.JobID)
	if err != nil || (t != nil && t.Rollout != nil) {
		return err
	}
	job.Status = store.JobCompleted
	job.CompletedAt, job.LastUpdatedAt = w.now, w.now
	if err := w.saveJob(job); err != nil {
		return err
	}
	return w.jobEvent(job, "completed")
}

// finished runs what follows an execution reaching a terminal status: a
// retry when the job's retry configuration allows one, the job's abort
// criteria, and the job's completion.
func (w *wtx) finished(t *thingTx, job *store.Job, e *store.Execution) error {
	if job.Status == store.JobInProgress && store.RetryAllowed(job.RetryConfig, e) {
		retry := store.Retry(e, w.now, w.s.nextSeq())
		if err := w.putExec(t, e, retry); err != nil {
			return err
		}
	}
	if err := w.checkAbort(job); err != nil {
		return err
	}
	return w.maybeComplete(job)
}

// checkAbort cancels the job when its abort criteria are met.
func (w *wtx) checkAbort(job *store.Job) error {
	if job.AbortConfig == nil || job.Status != store.JobInProgress {
		return nil
	}
	counts, err := w.jobCounts(job.JobID)
	if err != nil {
		return err
	}
	c := store.AbortTriggered(job.AbortConfig, counts)
	if c == nil {
		return nil
	}
	comment := fmt.Sprintf("aborted: %s executions reached %.2f%% of %d things (threshold %.2f%%)",
		c.FailureType, 100*float64(counts.Failures(c.FailureType))/float64(counts.Total()), counts.Total(), c.ThresholdPercentage)
	return w.cancelJob(job, false, nil, &comment)
}
