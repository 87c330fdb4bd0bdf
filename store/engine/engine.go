// Package engine is the job model's operations written once, over the
// record-level transactions of a storage backend: every method of
// store.Store that reads or changes jobs, executions, things, groups,
// templates and the event configuration, and the background work (rollout
// steps, settling a cancel or delete, schedules, timers).
//
// A backend (store/badger, store/postgres) implements Backend: write
// transactions that may run more than once, read transactions, and the
// record reads and writes of Tx. It keeps whatever makes it fast or safe
// on its own terms (Badger's group commit, PostgreSQL's row locks taken
// in name order, its batched round trips and its counts kept in shards
// that are summed when read), and embeds the Engine in its Store.
//
// What an operation does to a thing is followed entry by entry: each
// thing has a queue per job namespace (jobs without a namespace in ""),
// one ordered entry per pending execution, and an operation reads the
// head of each queue it changes before changing it, and writes the
// entries it changes. Whether notify (an execution joined or left the
// queue) or notify-next (the head changed) is due is decided, queue by
// queue, from the entries it touched, so the cost of an operation does
// not grow with how many executions a thing has pending, in its queue or
// in the others.
//
// A job-level change (a cancellation, a deletion) applies to the job's
// executions at once, as they read, and is written out in bounded steps;
// any operation that meets such an execution first writes it out. Counts,
// abort criteria and completion are settled at the end of a transaction,
// when the counts it changed are known, or, on a backend whose counts a
// transaction cannot know for sure (LateChecker), once it has committed.
package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

// Options configures an Engine.
type Options struct {
	// Clock tells the time; nil means the wall clock.
	Clock clock.Clock
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// TaskBatch is how many things one background step rolls out,
	// cancels, deletes or times out (default 256).
	TaskBatch int
	// EnableEvents switches event messages on until
	// UpdateEventConfigurations first says otherwise.
	EnableEvents bool
}

// DefaultTaskBatch is the default of Options.TaskBatch.
const DefaultTaskBatch = 256

// docCacheBytes bounds the engine's cache of job documents.
const docCacheBytes = 16 << 20

// Engine runs the operations of store.Store over a Backend. Its methods
// are safe for concurrent use.
type Engine struct {
	b            Backend
	clock        clock.Clock
	log          *slog.Logger
	batch        int
	enableEvents bool
	events       atomic.Pointer[store.EventConfigurations]
	docs         store.DocCache
	cmd          *commands
}

// New returns an engine over b.
func New(b Backend, opts Options) *Engine {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TaskBatch <= 0 {
		opts.TaskBatch = DefaultTaskBatch
	}
	e := &Engine{b: b, clock: opts.Clock, log: opts.Logger, batch: opts.TaskBatch, enableEvents: opts.EnableEvents}
	e.docs.Init(docCacheBytes)
	e.cmd = &commands{wake: make(chan struct{}, 1)}
	if cb, ok := b.(CommandBackend); ok {
		e.cmd.b = cb
	}
	e.events.Store(&store.EventConfigurations{})
	return e
}

// Documents is the engine's cache of job documents by job sequence
// number, for backends that read documents themselves.
func (e *Engine) Documents() *store.DocCache { return &e.docs }

// TaskBatch is the number of things one background step handles.
func (e *Engine) TaskBatch() int { return e.batch }

// update runs fn as one write operation: fn, then the end of the
// transaction (counts, abort and completion checks, job events).
func (e *Engine) update(ctx context.Context, op string, fn func(t *txn) error) error {
	return e.b.Update(ctx, op, func(tx Tx) error { return e.run(tx, fn) })
}

// run runs fn in tx and ends the transaction. A rejection from fn is
// returned after the end, so that what fn wrote before it is kept.
func (e *Engine) run(tx Tx, fn func(t *txn) error) error {
	t := newTxn(e, tx, tx, tx.Now())
	defer t.release()
	ferr := fn(t)
	if ferr != nil && !IsRejection(ferr) {
		return ferr
	}
	if err := t.finish(); err != nil {
		return err
	}
	return ferr
}

// view runs fn in a read transaction.
func (e *Engine) view(ctx context.Context, op string, fn func(t *txn) error) error {
	return e.b.View(ctx, op, func(r Reader) error {
		t := newTxn(e, r, nil, e.clock.Now())
		defer t.release()
		return fn(t)
	})
}

// onThing runs an operation on one thing: it opens the thing, runs fn,
// and closes the thing whether or not fn rejected the request, since fn
// may have written out what a canceled or deleted job did to the thing
// before deciding, and what it wrote must be kept and notified.
func (e *Engine) onThing(ctx context.Context, op, thing string, create bool, fn func(t *txn, th *thingTx) error) error {
	return e.update(ctx, op, func(t *txn) error {
		th, err := t.open(thing, create)
		if err != nil {
			return err
		}
		ferr := fn(t, th)
		if ferr != nil && !IsRejection(ferr) {
			return ferr
		}
		if err := t.close(th); err != nil {
			return err
		}
		return ferr
	})
}

// IsRejection reports whether err is an operation's rejection (a
// *store.Error) rather than a failure.
func IsRejection(err error) bool {
	var se *store.Error
	return errors.As(err, &se)
}

// Step runs one bounded step of a job's background task in tx (the
// backend's task loop calls it in a transaction of its own).
func (e *Engine) Step(tx Tx, jobID string) (res StepResult, err error) {
	err = e.run(tx, func(t *txn) error {
		var err error
		res, err = t.step(jobID)
		return err
	})
	return res, err
}

// FireTimers times out, in tx, the executions of due whose deadline has
// passed and has not moved since the timer was read. It reports how many
// timers it handled (a prefix of due: it stops when the transaction is
// full; a timer whose execution moved on counts as handled), how many
// executions it timed out, and how many timers it skipped because
// another transaction holds their thing.
func (e *Engine) FireTimers(tx Tx, due []Timer) (handled, fired, skipped int, err error) {
	err = e.run(tx, func(t *txn) error {
		var err error
		handled, fired, skipped, err = t.fireTimers(due)
		return err
	})
	return handled, fired, skipped, err
}

// EventConfig returns the event configuration operations follow now.
func (e *Engine) EventConfig() store.EventConfigurations { return *e.events.Load() }

// SetEventConfig installs the event configuration operations follow
// (backends call it at start and when another node changed it).
func (e *Engine) SetEventConfig(cfg store.EventConfigurations) {
	if e.enableEvents && cfg.CreatedAt.IsZero() {
		cfg.Job, cfg.JobExecution = true, true
	}
	e.events.Store(&cfg)
}
