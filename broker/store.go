package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/cluster"
	"github.com/jobsbroker/jobsbroker/broker/metrics"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/backends"
)

// The store backends (see store/backends).
const (
	StoreBadger   = backends.Badger
	StorePostgres = backends.Postgres
)

// openStore opens the configured store and registers its metrics. What
// the store can report or do beyond store.Store (gauges, counters,
// backups) is asked of it, not of its backend.
func (b *Broker) openStore() (store.Store, error) {
	cfg := &b.cfg
	bcfg := backends.Config{
		Kind:           cfg.Store,
		DataDir:        cfg.DataDir,
		NoSync:         cfg.NoSync,
		MinFreeBytes:   cfg.MinFreeBytes,
		CommitDelay:    cfg.CommitDelay,
		URL:            cfg.StoreURL,
		NodeID:         cfg.NodeID,
		Events:         cfg.Events,
		Clock:          cfg.Clock,
		Logger:         cfg.Logger.With("component", "store"),
		OnCommit:       b.Metrics.Commit,
		StrictRecovery: cfg.StrictRecovery,
		InMemory:       cfg.inMemory(),
	}
	st, err := b.openWithRetries(bcfg)
	if err != nil {
		return nil, err
	}
	if r, ok := st.(store.RecoveryReporter); ok {
		b.security.DamagedLogFiles(r.DamagedLogFiles())
	}
	metrics.RegisterStore(cfg.Registry, st, 5*time.Second)
	return st, nil
}

// openWithRetries opens the store. A database the store reaches over the
// network (PostgreSQL) is retried with backoff for Config.StartTimeout, as
// a node may start before it; an embedded store is opened once, and a node
// whose node ID another running node holds is refused at once.
func (b *Broker) openWithRetries(bcfg backends.Config) (store.Store, error) {
	if bcfg.Kind != StorePostgres {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return backends.Open(ctx, bcfg)
	}
	start, cancelStart := context.WithTimeout(context.Background(), b.cfg.StartTimeout)
	defer cancelStart()
	var st store.Store
	var final error
	err := cluster.Retry(start, b.log.With("component", "store"), "PostgreSQL", func() error {
		ctx, cancel := context.WithTimeout(start, 30*time.Second)
		defer cancel()
		var err error
		st, err = backends.Open(ctx, bcfg)
		if errors.Is(err, store.ErrDuplicateNode) {
			final = err
			return nil // no retry
		}
		return err
	})
	if final != nil {
		return nil, final
	}
	if err != nil {
		return nil, fmt.Errorf("open the store: %w", err)
	}
	return st, nil
}
