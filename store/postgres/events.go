package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
)

const metaEvents = "events"

// loadEvents reads the event configuration into the store's cache. The
// cache decides whether operations emit events; other nodes' updates
// reach it through a notification (and every reconnection of the
// listener), so for a moment after a change a node may still follow the
// old setting.
func (s *Store) loadEvents(ctx context.Context) error {
	var cfg store.EventConfigurations
	var raw []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", metaEvents).Scan(&raw)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("decode event configuration: %w", err)
		}
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
	if err := s.loadEvents(ctx); err != nil {
		return nil, s.mapErr("describe event configurations", err)
	}
	cfg := *s.events.Load()
	return &cfg, nil
}

// UpdateEventConfigurations switches job and job-execution events on or
// off; nil leaves a kind as it is.
func (s *Store) UpdateEventConfigurations(ctx context.Context, job, jobExecution *bool) error {
	return s.update(ctx, "update event configurations", func(w *wtx) error {
		var next store.EventConfigurations
		var raw []byte
		err := w.queryRow("SELECT value FROM meta WHERE key = $1 FOR UPDATE", []any{metaEvents}, &raw)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if w.s.opts.EnableEvents {
				next.Job, next.JobExecution = true, true
			}
		case err != nil:
			return err
		default:
			if err := json.Unmarshal(raw, &next); err != nil {
				return fmt.Errorf("decode event configuration: %w", err)
			}
		}
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
		b, err := json.Marshal(&next)
		if err != nil {
			return err
		}
		w.queue("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", metaEvents, b)
		w.configChanged = true
		cfg := next
		w.after = append(w.after, func() { w.s.events.Store(&cfg) })
		return nil
	})
}

// emit records an event message if its kind is switched on.
func (w *wtx) emit(ev *store.Event) {
	cfg := w.s.events.Load()
	if (ev.Kind == store.EventJob && !cfg.Job) || (ev.Kind == store.EventJobExecution && !cfg.JobExecution) {
		return
	}
	ev.ID, ev.At = store.NewID(), w.now
	thing := ""
	if ev.Execution != nil {
		thing = ev.Execution.ThingName
	}
	w.changes = append(w.changes, store.Change{ThingName: thing, Event: ev, At: w.now})
}

// executionEvent emits a job-execution event.
func (w *wtx) executionEvent(e *store.Execution, operation string) {
	if !w.s.events.Load().JobExecution {
		return
	}
	w.emit(&store.Event{Kind: store.EventJobExecution, Operation: operation, Execution: e.Clone(),
		Job: &store.Job{JobID: e.JobID}})
}

// emitJobEvent emits a job event with the job as it stands, counts and
// targets included.
func (w *wtx) emitJobEvent(js *jobState, operation string) error {
	if js.job == nil {
		return nil
	}
	snap := js.job.Clone()
	snap.ProcessDetails = js.counts
	if js.targets == nil && !js.deleted {
		if _, err := w.jobTargets(js.id); err != nil {
			return err
		}
	}
	snap.Targets = append([]string(nil), js.targets...)
	w.emit(&store.Event{Kind: store.EventJob, Operation: operation, Job: snap})
	return nil
}

// wireEvent is an event as other nodes receive it.
type wireEvent struct {
	Kind      store.EventKind       `json:"k"`
	Operation string                `json:"o"`
	ID        string                `json:"i"`
	At        time.Time             `json:"a"`
	Job       *store.Job            `json:"j,omitempty"`
	Counts    *store.ProcessDetails `json:"c,omitempty"`
	Concur    bool                  `json:"cc,omitempty"`
	Execution *store.Execution      `json:"e,omitempty"`
}

func encodeEvent(ev *store.Event) ([]byte, error) {
	w := wireEvent{Kind: ev.Kind, Operation: ev.Operation, ID: ev.ID, At: ev.At, Job: ev.Job, Execution: ev.Execution}
	if ev.Job != nil {
		c := ev.Job.ProcessDetails
		w.Counts, w.Concur = &c, ev.Job.IsConcurrent
	}
	return json.Marshal(&w)
}

func decodeEvent(b []byte) (*store.Event, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	ev := &store.Event{Kind: w.Kind, Operation: w.Operation, ID: w.ID, At: w.At, Job: w.Job, Execution: w.Execution}
	if ev.Job != nil && w.Counts != nil {
		ev.Job.ProcessDetails, ev.Job.IsConcurrent = *w.Counts, w.Concur
	}
	return ev, nil
}
