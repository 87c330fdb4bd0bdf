package engine

import (
	"context"
	"errors"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

// GetPendingJobExecutions lists the thing's first pending executions of
// jobs without a namespace (the queue of the plain jobs topics). Things
// need no registration: a thing nobody has targeted simply has none.
func (e *Engine) GetPendingJobExecutions(ctx context.Context, thing string) (*store.PendingExecutions, error) {
	if err := store.ValidateThingName(thing); err != nil {
		return nil, err
	}
	var out store.PendingExecutions
	err := e.view(ctx, "get pending", func(t *txn) error {
		list, err := t.queue(thing, "", store.MaxPendingListed)
		if err != nil {
			return err
		}
		out.InProgress, out.Queued = store.PendingSet(list).Split()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// StartNextPendingJobExecution starts the thing's next execution of a job
// without a namespace, or returns the one already IN_PROGRESS.
func (e *Engine) StartNextPendingJobExecution(ctx context.Context, in *store.StartNextInput) (*store.ExecutionOutput, error) {
	if err := store.ValidateStartNext(in); err != nil {
		return nil, err
	}
	var out store.ExecutionOutput
	err := e.onThing(ctx, "start next", in.ThingName, false, func(t *txn, th *thingTx) error {
		out = store.ExecutionOutput{}
		q, err := t.queueOf(th, "")
		if err != nil {
			return err
		}
		h, err := t.effectiveHead(th, q)
		if err != nil || h == nil {
			return err
		}
		ex, err := t.exec(th.name, h.JobID, h.ExecutionNumber)
		if err != nil {
			return err
		}
		job, err := t.job(h.JobID)
		if err != nil {
			return err
		}
		if ex.Status == store.StatusQueued {
			started := store.StartExecution(ex, job, in, t.now)
			if err := t.putExec(th, ex, started); err != nil {
				return err
			}
			ex = started
		}
		doc, err := t.document(job.JobID, job.Seq)
		if err != nil {
			return err
		}
		out.Execution, out.Document = ex, doc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DescribeJobExecution returns one execution, or for "$next" the next one
// of the queue of in.Namespace.
func (e *Engine) DescribeJobExecution(ctx context.Context, in *store.DescribeExecutionInput) (*store.ExecutionOutput, error) {
	if err := store.ValidateDescribe(in, true); err != nil {
		return nil, err
	}
	var out store.ExecutionOutput
	err := e.view(ctx, "describe execution", func(t *txn) error {
		out = store.ExecutionOutput{}
		var ex *store.Execution
		if in.JobID == topics.Next {
			next, err := t.queue(in.ThingName, in.Namespace, 1)
			if err != nil || len(next) == 0 {
				return err
			}
			if ex, err = t.exec(in.ThingName, next[0].JobID, next[0].ExecutionNumber); err != nil {
				return err
			}
		} else {
			found, err := t.findExec(in.ThingName, in.JobID, in.ExecutionNumber)
			if err != nil {
				return err
			}
			if ex, err = t.effective(found); err != nil {
				return err
			}
			if ex == nil {
				return store.Errorf(store.ErrNotFound, "job %s is being deleted", in.JobID)
			}
		}
		out.Execution = ex
		if in.IncludeJobDocument {
			doc, err := t.document(ex.JobID, ex.JobSeq)
			if err != nil {
				return err
			}
			out.Document = doc
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateJobExecution applies a device's status report.
func (e *Engine) UpdateJobExecution(ctx context.Context, in *store.UpdateExecutionInput) (*store.ExecutionOutput, error) {
	if err := store.ValidateUpdate(in); err != nil {
		return nil, err
	}
	var out store.ExecutionOutput
	err := e.onThing(ctx, "update execution", in.ThingName, false, func(t *txn, th *thingTx) error {
		out = store.ExecutionOutput{}
		return t.updateExec(th, in, &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (t *txn) updateExec(th *thingTx, in *store.UpdateExecutionInput, out *store.ExecutionOutput) error {
	found, err := t.findExec(th.name, in.JobID, in.ExecutionNumber)
	if err != nil {
		return err
	}
	job, err := t.job(in.JobID)
	if errors.Is(err, store.ErrNotFound) {
		return store.ErrNoExecution(in.JobID, th.name)
	}
	if err != nil {
		return err
	}
	// What a canceled or deleted job did to the execution is written out
	// first: a canceled one is terminal, a deleted one is gone.
	ex, err := t.current(th, found)
	if err != nil {
		return err
	}
	if ex == nil {
		return store.ErrNoExecution(in.JobID, th.name)
	}
	updated, err := store.ApplyDeviceUpdate(ex, job, in, t.now)
	if err != nil {
		return err
	}
	if err := t.putExec(th, ex, updated); err != nil {
		return err
	}
	if updated.Status.Terminal() {
		if err := t.finished(th, job, updated); err != nil {
			return err
		}
	}
	out.Execution = updated
	if in.IncludeJobDocument {
		doc, err := t.document(job.JobID, job.Seq)
		if err != nil {
			return err
		}
		out.Document = doc
	}
	return nil
}

// CancelJobExecution cancels the latest execution of a job on a thing.
func (e *Engine) CancelJobExecution(ctx context.Context, in *store.CancelExecutionInput) error {
	if err := store.ValidateCancelExecution(in); err != nil {
		return err
	}
	return e.onThing(ctx, "cancel execution", in.ThingName, false, func(t *txn, th *thingTx) error {
		found, err := t.latestExec(th.name, in.JobID)
		if err != nil {
			return err
		}
		job, err := t.job(in.JobID)
		if err != nil {
			return err
		}
		ex, err := t.current(th, found)
		if err != nil {
			return err
		}
		if ex == nil {
			return store.ErrNoExecution(in.JobID, th.name)
		}
		if err := store.CheckCancelExecution(ex, th.name, in); err != nil {
			return err
		}
		canceled := store.Cancel(ex, in.StatusDetails, t.now)
		if err := t.putExec(th, ex, canceled); err != nil {
			return err
		}
		return t.finished(th, job, canceled)
	})
}

// DeleteJobExecution deletes one execution; a pending one only with Force.
func (e *Engine) DeleteJobExecution(ctx context.Context, in *store.DeleteExecutionInput) error {
	if err := store.ValidateDeleteExecution(in); err != nil {
		return err
	}
	return e.onThing(ctx, "delete execution", in.ThingName, false, func(t *txn, th *thingTx) error {
		found, err := t.exec(th.name, in.JobID, in.ExecutionNumber)
		if err != nil {
			return err
		}
		if _, err := t.job(in.JobID); err != nil {
			return err
		}
		ex, err := t.current(th, found)
		if err != nil {
			return err
		}
		if ex == nil {
			return store.ErrNoExecutionNumber(in.ExecutionNumber, in.JobID, th.name)
		}
		if !ex.Status.Terminal() && !in.Force {
			return store.Errorf(store.ErrInvalidStateTransition, "job execution %s on %s is %s; delete it with force", in.JobID, th.name, ex.Status)
		}
		latest, err := t.latestExec(th.name, in.JobID)
		if err != nil {
			return err
		}
		if err := t.dropExec(th, ex); err != nil {
			return err
		}
		if latest.ExecutionNumber == ex.ExecutionNumber {
			// The thing is counted by its latest execution; the one before
			// takes its place, if there is one.
			t.addCount(in.JobID, ex.Status, -1)
			prev, err := t.r.LatestExecution(th.name, in.JobID)
			if err != nil {
				return err
			}
			if prev != nil {
				t.addCount(in.JobID, prev.Status, 1)
			}
		}
		t.state(in.JobID).checkComplete = true
		return nil
	})
}
