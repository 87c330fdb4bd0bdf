package badger

import (
	"context"
	"errors"

	"github.com/jobsbroker/jobsbroker/store"
)

// loadEvents reads the event configuration into the store's cache.
func (s *Store) loadEvents(r *rtx) error {
	var cfg store.EventConfigurations
	if err := r.getJSON([]byte(metaEvents), &cfg); err != nil && !errors.Is(err, errMissing) {
		return err
	}
	if s.opts.EnableEvents && cfg.CreatedAt.IsZero() {
		cfg.Job, cfg.JobExecution = true, true
	}
	s.events.Store(&cfg)
	return nil
}

// DescribeEventConfigurations says which event messages are published.
func (s *Store) DescribeEventConfigurations(ctx context.Context) (*store.EventConfigurations, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := *s.events.Load()
	return &cfg, nil
}

// UpdateEventConfigurations switches job and job-execution events on or
// off; nil leaves a kind as it is.
func (s *Store) UpdateEventConfigurations(ctx context.Context, job, jobExecution *bool) error {
	var next store.EventConfigurations
	err := s.submit(ctx, func(w *wtx) error {
		next = *w.s.events.Load()
		if job != nil {
			next.Job = *job
		}
		if jobExecution != nil {
			next.JobExecution = *jobExecution
		}
		if next.CreatedAt.IsZero() {
			next.CreatedAt = w.now
		}
		next.LastModifiedAt = w.now
		cfg := next
		w.afterCommit(func() { w.s.events.Store(&cfg) })
		return w.setJSON([]byte(metaEvents), &next)
	})
	return err
}

// emit records an event message if its kind is switched on.
func (w *wtx) emit(ev *store.Event) {
	cfg := w.s.events.Load()
	if (ev.Kind == store.EventJob && !cfg.Job) || (ev.Kind == store.EventJobExecution && !cfg.JobExecution) {
		return
	}
	ev.ID, ev.At = store.NewID(), w.now
	w.changes = append(w.changes, store.Change{ThingName: thingOf(ev), Event: ev, At: w.now})
}

func thingOf(ev *store.Event) string {
	if ev.Execution != nil {
		return ev.Execution.ThingName
	}
	return ""
}

// jobEvent emits a job event with the job as it stands, counts included.
func (w *wtx) jobEvent(job *store.Job, operation string) error {
	cfg := w.s.events.Load()
	if !cfg.Job {
		return nil
	}
	snap := job.Clone()
	counts, err := w.jobCounts(job.JobID)
	if err != nil {
		return err
	}
	snap.ProcessDetails = *counts
	if err := w.getJSON(jobTargetsKey(job.JobID), &snap.Targets); err != nil && !errors.Is(err, errMissing) {
		return err
	}
	w.emit(&store.Event{Kind: store.EventJob, Operation: operation, Job: snap})
	return nil
}

// executionEvent emits a job-execution event.
func (w *wtx) executionEvent(e *store.Execution, operation string) {
	if !w.s.events.Load().JobExecution {
		return
	}
	w.emit(&store.Event{Kind: store.EventJobExecution, Operation: operation, Execution: e.Clone(),
		Job: &store.Job{JobID: e.JobID}})
}
