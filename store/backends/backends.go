// Package backends opens the store.Store a configuration names, so that
// the broker (and anything else that serves a store) does not know which
// backend it runs on: it names one, and asks the store for what it can do
// through store's optional interfaces (store.Backuper, store.GaugeReader,
// store.CounterReader).
package backends

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/postgres"
)

// The backends.
const (
	// Badger is the embedded store, in a data directory of one node.
	Badger = "badger"
	// Postgres is the store several nodes share in a PostgreSQL database.
	Postgres = "postgres"
)

// Config is what opening a store needs; each backend reads its part.
type Config struct {
	// Kind is Badger or Postgres.
	Kind string
	// DataDir is the data directory; Badger keeps the store in its jobs
	// subdirectory.
	DataDir string
	// NoSync, MinFreeBytes, CommitDelay and StrictRecovery configure
	// Badger (see badger.Options).
	NoSync         bool
	MinFreeBytes   int64
	CommitDelay    time.Duration
	StrictRecovery bool
	// InMemory keeps a Badger store in memory only (DataDir unused):
	// nothing survives the process.
	InMemory bool
	// URL and NodeID configure PostgreSQL (see postgres.Options).
	URL    string
	NodeID string
	// Events switches event messages on until UpdateEventConfigurations
	// says otherwise.
	Events bool
	// Clock tells the time; nil means the wall clock.
	Clock clock.Clock
	// Logger receives the store's logs.
	Logger *slog.Logger
	// OnCommit is told about every commit (for metrics).
	OnCommit func(took time.Duration, ops int, err error)
}

// Validate checks the configuration without opening anything.
func (c *Config) Validate() error {
	switch {
	case c.Kind != Badger && c.Kind != Postgres:
		return fmt.Errorf("store %q: must be %s or %s", c.Kind, Badger, Postgres)
	case c.Kind == Postgres && c.URL == "":
		return fmt.Errorf("store %s needs a store URL", Postgres)
	}
	return nil
}

// StoreDir is where Badger keeps the store in a data directory.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "jobs") }

// Open opens the configured store; ctx bounds connecting to a database.
func Open(ctx context.Context, c Config) (store.Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Kind == Postgres {
		return postgres.Open(ctx, postgres.Options{URL: c.URL, NodeID: c.NodeID, EnableEvents: c.Events,
			Clock: c.Clock, Logger: c.Logger, OnCommit: c.OnCommit})
	}
	dir := ""
	if !c.InMemory {
		dir = StoreDir(c.DataDir)
		if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	return badger.Open(badger.Options{Dir: dir, InMemory: c.InMemory, NoSync: c.NoSync, MinFreeBytes: c.MinFreeBytes,
		CommitDelay: c.CommitDelay, StrictRecovery: c.StrictRecovery, EnableEvents: c.Events, Clock: c.Clock, Logger: c.Logger, OnCommit: c.OnCommit})
}
