package broker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/metrics"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/postgres"
)

// The store backends.
const (
	StoreBadger   = "badger"
	StorePostgres = "postgres"
)

// openStore opens the configured backend and registers its metrics.
func (b *Broker) openStore() (store.Store, error) {
	cfg := &b.cfg
	switch cfg.Store {
	case StorePostgres:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := postgres.Open(ctx, postgres.Options{
			URL:          cfg.StoreURL,
			NodeID:       cfg.NodeID,
			EnableEvents: cfg.Events,
			Clock:        cfg.Clock,
			Logger:       cfg.Logger.With("component", "store"),
		})
		if err != nil {
			return nil, err
		}
		stats := st.Stats()
		metrics.RegisterStore(cfg.Registry, st, metrics.StoreCounters{TimersFired: stats.TimersFired.Load}, 5*time.Second)
		return st, nil
	case StoreBadger:
		dir, inMemory := filepath.Join(cfg.DataDir, "jobs"), cfg.inMemory()
		if inMemory {
			dir = ""
		} else if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		st, err := badger.Open(badger.Options{
			Dir:            dir,
			InMemory:       inMemory,
			NoSync:         cfg.NoSync,
			MinFreeBytes:   cfg.MinFreeBytes,
			EnableEvents:   cfg.Events,
			Clock:          cfg.Clock,
			Logger:         cfg.Logger.With("component", "store"),
			OnCommit:       b.Metrics.Commit,
			StrictRecovery: cfg.StrictRecovery,
		})
		if err != nil {
			return nil, err
		}
		b.security.DamagedLogFiles(len(st.Recovery().Damaged))
		stats := st.Stats()
		metrics.RegisterStore(cfg.Registry, st, metrics.StoreCounters{
			TimersFired: stats.TimersFired.Load, GCRuns: stats.GCRuns.Load, GCRewrites: stats.GCRewrites.Load,
		}, 5*time.Second)
		return st, nil
	}
	return nil, fmt.Errorf("store %q: must be %s or %s", cfg.Store, StoreBadger, StorePostgres)
}
