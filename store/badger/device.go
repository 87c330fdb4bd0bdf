package badger

import (
	"context"
	"errors"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

// GetPendingJobExecutions lists the thing's pending executions. Things need
// no registration: a thing nobody has targeted simply has none.
func (s *Store) GetPendingJobExecutions(ctx context.Context, thing string) (*store.PendingExecutions, error) {
	if err := store.ValidateThingName(thing); err != nil {
		return nil, err
	}
	var out store.PendingExecutions
	err := s.view(ctx, func(r *rtx) error {
		set, err := r.effectivePending(thing)
		if err != nil {
			return err
		}
		out.InProgress, out.Queued = set.Split()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// StartNextPendingJobExecution starts the thing's next execution.
func (s *Store) StartNextPendingJobExecution(ctx context.Context, in *store.StartNextInput) (*store.ExecutionOutput, error) {
	if err := store.ValidateStartNext(in); err != nil {
		return nil, err
	}
	var out store.ExecutionOutput
	err := s.onThing(ctx, in.ThingName, func(w *wtx, t *thingTx) error {
		out = store.ExecutionOutput{}
		h := t.set.Head()
		if h == nil {
			return nil
		}
		e, err := w.exec(t.name, h.JobID, h.ExecutionNumber)
		if err != nil {
			return err
		}
		job, err := w.job(h.JobID)
		if err != nil {
			return err
		}
		if e.Status == store.StatusQueued {
			started := store.StartExecution(e, job, in, w.now)
			if err := w.putExec(t, e, started); err != nil {
				return err
			}
			e = started
		}
		doc, err := w.document(job.JobID, job.Seq)
		if err != nil {
			return err
		}
		out.Execution, out.Document = e, doc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DescribeJobExecution returns one execution, or the next one for "$next".
func (s *Store) DescribeJobExecution(ctx context.Context, in *store.DescribeExecutionInput) (*store.ExecutionOutput, error) {
	if err := store.ValidateDescribe(in, true); err != nil {
		return nil, err
	}
	var out store.ExecutionOutput
	err := s.view(ctx, func(r *rtx) error {
		var e *store.Execution
		if in.JobID == topics.Next {
			set, err := r.effectivePending(in.ThingName)
			if err != nil {
				return err
			}
			h := set.Head()
			if h == nil {
				return nil
			}
			if e, err = r.exec(in.ThingName, h.JobID, h.ExecutionNumber); err != nil {
				return err
			}
		} else {
			set, err := r.pending(in.ThingName)
			if err != nil {
				return err
			}
			if e, err = r.findExec(in.ThingName, in.JobID, in.ExecutionNumber, set); err != nil {
				return err
			}
			if e, err = r.effective(e); err != nil {
				return err
			}
		}
		out.Execution = e
		if in.IncludeJobDocument {
			doc, err := r.document(e.JobID, e.JobSeq)
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
func (s *Store) UpdateJobExecution(ctx context.Context, in *store.UpdateExecutionInput) (*store.ExecutionOutput, error) {
	if err := store.ValidateUpdate(in); err != nil {
		return nil, err
	}
	var out store.ExecutionOutput
	err := s.onThing(ctx, in.ThingName, func(w *wtx, t *thingTx) error {
		out = store.ExecutionOutput{}
		return w.updateExec(t, in, &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (w *wtx) updateExec(t *thingTx, in *store.UpdateExecutionInput, out *store.ExecutionOutput) error {
	e, err := w.findExec(t.name, in.JobID, in.ExecutionNumber, t.set)
	if err != nil {
		return err
	}
	job, err := w.job(in.JobID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Errorf(store.ErrNotFound, "no execution of job %s exists for thing %s", in.JobID, t.name)
	}
	if err != nil {
		return err
	}
	// openThing wrote out what a canceled or deleted job did to the thing's
	// pending executions; a finished execution of a job being deleted is
	// gone all the same.
	if store.JobStateEffect(job, e) == store.EffectDelete {
		return store.Errorf(store.ErrNotFound, "no execution of job %s exists for thing %s", in.JobID, t.name)
	}
	updated, err := store.ApplyDeviceUpdate(e, job, in, w.now)
	if err != nil {
		return err
	}
	if err := w.putExec(t, e, updated); err != nil {
		return err
	}
	if updated.Status.Terminal() {
		if err := w.finished(t, job, updated); err != nil {
			return err
		}
	}
	out.Execution = updated
	if in.IncludeJobDocument {
		doc, err := w.document(job.JobID, job.Seq)
		if err != nil {
			return err
		}
		out.Document = doc
	}
	return nil
}
