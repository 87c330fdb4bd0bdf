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
	s.SetEventConfig(cfg)
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
