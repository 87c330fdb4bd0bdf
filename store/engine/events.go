package engine

import (
	"context"
	"slices"

	"github.com/jobsbroker/jobsbroker/store"
)

// DescribeEventConfigurations says which event messages are published.
func (e *Engine) DescribeEventConfigurations(ctx context.Context) (*store.EventConfigurations, error) {
	var out store.EventConfigurations
	err := e.view(ctx, "describe event configurations", func(t *txn) error {
		cfg, err := t.r.EventConfig(NoLock)
		if err != nil {
			return err
		}
		e.SetEventConfig(cfg)
		out = *e.events.Load()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateEventConfigurations switches job and job-execution events on or
// off; nil leaves a kind as it is.
func (e *Engine) UpdateEventConfigurations(ctx context.Context, job, jobExecution *bool) error {
	return e.update(ctx, "update event configurations", func(t *txn) error {
		cfg, err := t.r.EventConfig(LockUpdate)
		if err != nil {
			return err
		}
		if cfg.CreatedAt.IsZero() {
			cfg.Job, cfg.JobExecution = e.enableEvents, e.enableEvents
			cfg.CreatedAt = t.now
		}
		if job != nil {
			cfg.Job = *job
		}
		if jobExecution != nil {
			cfg.JobExecution = *jobExecution
		}
		cfg.LastModifiedAt = t.now
		if err := t.tx.SetEventConfig(cfg); err != nil {
			return err
		}
		t.tx.AfterCommit(func() { e.SetEventConfig(cfg) })
		return nil
	})
}

// emit records an event message if its kind is switched on.
func (t *txn) emit(ev *store.Event) {
	cfg := t.e.events.Load()
	if (ev.Kind == store.EventJob && !cfg.Job) || (ev.Kind == store.EventJobExecution && !cfg.JobExecution) {
		return
	}
	ev.ID, ev.At = store.NewID(), t.now
	thing := ""
	if ev.Execution != nil {
		thing = ev.Execution.ThingName
	}
	t.tx.Emit(store.Change{ThingName: thing, Event: ev, At: t.now})
}

// jobEvent emits a job event when the transaction ends, with the job's
// counts as they then are.
func (t *txn) jobEvent(job *store.Job, operation string) {
	if !t.e.events.Load().Job {
		return
	}
	js := t.state(job.JobID)
	js.events = append(js.events, operation)
}

// emitJobEvent emits a job event with the job as it stands, counts and
// targets included.
func (t *txn) emitJobEvent(js *jobState, operation string) error {
	if js.job == nil {
		return nil
	}
	snap := js.job.Clone()
	snap.ProcessDetails = js.counts
	targets, err := t.targets(js.id)
	if err != nil {
		return err
	}
	snap.Targets = slices.Clone(targets)
	t.emit(&store.Event{Kind: store.EventJob, Operation: operation, Job: snap})
	return nil
}

// executionEvent emits a job-execution event.
func (t *txn) executionEvent(e *store.Execution, operation string) {
	if !t.e.events.Load().JobExecution {
		return
	}
	t.emit(&store.Event{Kind: store.EventJobExecution, Operation: operation, Execution: e.Clone(),
		Job: &store.Job{JobID: e.JobID}})
}
