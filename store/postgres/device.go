package postgres

import (
	"context"
	"errors"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

// snapshot is a thing's pending set as it stands (the effects of canceled
// and deleted jobs applied), read in one statement.
type snapshot struct {
	rev   int64
	set   store.PendingSet
	execs map[execKey]*store.Execution
}

// readSnapshots reads the pending sets of things in one statement, which
// sees one snapshot of the database. Things that never had an execution
// are absent from the result.
func (s *Store) readSnapshots(ctx context.Context, things []string) (map[string]*snapshot, error) {
	rows, err := s.pool.Query(ctx, `SELECT ts.thing_name, ts.rev, e.record, j.seq, j.status, j.force_canceled, j.updated_ns
		FROM thing_state ts
		LEFT JOIN executions e ON e.thing_name = ts.thing_name AND e.status IN ('QUEUED', 'IN_PROGRESS')
		LEFT JOIN jobs j ON j.job_id = e.job_id
		WHERE ts.thing_name = ANY($1)`, things)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*snapshot{}
	for rows.Next() {
		var name string
		var rev int64
		var rec []byte
		var seq, updated *int64
		var status *string
		var force *bool
		if err := rows.Scan(&name, &rev, &rec, &seq, &status, &force, &updated); err != nil {
			return nil, err
		}
		sn := out[name]
		if sn == nil {
			sn = &snapshot{rev: rev, execs: map[execKey]*store.Execution{}}
			out[name] = sn
		}
		if rec == nil {
			continue
		}
		e, err := decode[store.Execution](rec, "execution")
		if err != nil {
			return nil, err
		}
		var job *store.Job
		if seq != nil {
			job = &store.Job{JobID: e.JobID, Seq: uint64(*seq), Status: store.JobStatus(*status), ForceCanceled: *force, LastUpdatedAt: fromNanos(*updated)}
		}
		if store.JobStateEffect(job, e) != store.EffectNone {
			continue
		}
		sn.execs[keyOf(e)] = e
		sn.set = sn.set.Put(e.Summary())
	}
	return out, rows.Err()
}

// GetPendingJobExecutions lists the thing's pending executions. Things need
// no registration: a thing nobody has targeted simply has none.
func (s *Store) GetPendingJobExecutions(ctx context.Context, thing string) (*store.PendingExecutions, error) {
	if err := store.ValidateThingName(thing); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, store.Unavailable("get pending", errors.New("store is closed"))
	}
	snaps, err := s.readSnapshots(ctx, []string{thing})
	if err != nil {
		return nil, s.mapErr("get pending", err)
	}
	s.deliveries.settle()
	var out store.PendingExecutions
	var set store.PendingSet
	if sn := snaps[thing]; sn != nil {
		set = sn.set
	}
	out.InProgress, out.Queued = set.Split()
	return &out, nil
}

// peekThing reads a thing's pending set as stored, without locking it.
func (w *wtx) peekThing(name string) (store.PendingSet, error) {
	if st, ok := w.things[name]; ok {
		return st.set, nil
	}
	w.things[name] = &thingState{name: name}
	if err := w.readPending([]string{name}); err != nil {
		return nil, err
	}
	return w.things[name].set, nil
}

// effective returns e as it stands given its job's status: executions of a
// canceled job that are not yet written out read as CANCELED, and those of
// a job being deleted (or gone) read as missing.
func (w *wtx) effective(e *store.Execution) (*store.Execution, error) {
	js, err := w.jobHead(e.JobID)
	if err != nil {
		return nil, err
	}
	job := js.head()
	switch store.JobStateEffect(job, e) {
	case store.EffectCancel:
		return store.CancelByJob(e, job), nil
	case store.EffectDelete:
		return nil, store.Errorf(store.ErrNotFound, "job %s is being deleted", e.JobID)
	}
	return e, nil
}

// effectivePending is a thing's pending set as it stands.
func (w *wtx) effectivePending(thing string) (store.PendingSet, error) {
	set, err := w.peekThing(thing)
	if err != nil {
		return nil, err
	}
	out := set[:0:0]
	for _, p := range set {
		e, err := w.exec(thing, p.JobID, p.ExecutionNumber)
		if err != nil {
			return nil, err
		}
		e, err = w.effective(e)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if e.Status.Pending() {
			out = append(out, p)
		}
	}
	return out, nil
}

// StartNextPendingJobExecution starts the thing's next execution.
func (s *Store) StartNextPendingJobExecution(ctx context.Context, in *store.StartNextInput) (*store.ExecutionOutput, error) {
	if err := store.ValidateStartNext(in); err != nil {
		return nil, err
	}
	var out store.ExecutionOutput
	err := s.onThing(ctx, "start next", in.ThingName, false, func(w *wtx, t *thingTx) error {
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
	err := s.view(ctx, "describe execution", func(r *wtx) error {
		out = store.ExecutionOutput{}
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
			var err error
			if e, err = r.findExec(in.ThingName, in.JobID, in.ExecutionNumber, nil); err != nil {
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
	err := s.onThing(ctx, "update execution", in.ThingName, false, func(w *wtx, t *thingTx) error {
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
