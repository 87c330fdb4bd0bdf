// Package postgres is store.Store on PostgreSQL, for brokers that share
// one database between several nodes: the backend of store/engine that
// keeps records in tables. It owns the schema (versioned migrations
// applied at Open), every operation's transaction, the background loops
// (rollouts, settling cancels and deletes, schedules, step and in-progress
// timers) and the delivery of other nodes' changes (store.Shared).
//
// Every operation is one READ COMMITTED transaction. Operations on a thing
// lock its thing_state row (SELECT ... FOR UPDATE), so they run one after
// another exactly as in the Badger store; things are always locked in name
// order, and jobs only at the end of a transaction (in job-id order), by
// their guards: shared by transactions that only move a job's counts,
// which go to their session's shard of them so that the things of one job
// never wait on each other, exclusive for those that change the job or
// decide on its counts (counts.go). A transaction that decided something
// from a job's status checks, once it holds the guard, that the job's
// revision has not moved since it read it, and starts again if it has;
// serialization failures and deadlocks are retried too. A failure of the connection is reported as
// store.ErrUnavailable, and an operation whose commit was not confirmed
// never reports success. A thing's queue is its pending executions read
// through an index in "next" order, a few at a time (tx.go).
//
// Background work is shared by all nodes and done once: a job's step runs
// under a transaction-scoped advisory lock on the job
// (pg_try_advisory_xact_lock), and a timer sweep locks the things it times
// out with SELECT ... FOR UPDATE SKIP LOCKED; both are released by the
// transaction's end, so a node that dies mid-way loses and duplicates
// nothing.
//
// Changes reach other nodes through LISTEN/NOTIFY, used as a hint only: a
// committed transaction notifies the names of the things whose
// notifications it produced; a node that serves one of them re-reads its
// pending executions and hands the handler a Change when they differ from
// what it last delivered. After the listening connection drops, the node
// re-reads every thing of its Interest. See notify.go.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// Options configures the PostgreSQL store.
type Options struct {
	// URL is the connection string (postgres://user:pass@host:port/db?...
	// or key=value pairs). A search_path parameter selects the schema the
	// store lives in.
	URL string `yaml:"url" json:"url"`
	// Schema is the schema the store lives in, created if missing; empty
	// means the connection's search_path.
	Schema string `yaml:"schema" json:"schema"`
	// MaxConns is the size of the connection pool; default: the URL's
	// pool_max_conns, else DefaultMaxConns.
	MaxConns int32 `yaml:"max_conns" json:"max_conns"`
	// TaskBatch is how many things one background step rolls out,
	// cancels, deletes or times out (default 256).
	TaskBatch int `yaml:"task_batch" json:"task_batch"`
	// NodeID names this node in notifications; default hostname-pid.
	NodeID string `yaml:"node_id" json:"node_id"`
	// PollInterval is how often the background loops look for work even
	// when no notification told them to (default 5 seconds): it bounds how
	// long work left by a node that died waits.
	PollInterval time.Duration `yaml:"poll_interval" json:"poll_interval"`
	// EnableEvents switches job and job-execution event messages on until
	// UpdateEventConfigurations first says otherwise.
	EnableEvents bool `yaml:"events" json:"events"`
	// Clock tells the time; nil means the wall clock. The store never uses
	// the database's clock.
	Clock clock.Clock `yaml:"-" json:"-"`
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger `yaml:"-" json:"-"`
	// OnCommit, if set, is told about every write transaction (and about
	// every operation that failed, with its error and no duration): how long
	// its commit took and its error.
	OnCommit func(took time.Duration, ops int, err error) `yaml:"-" json:"-"`
}

// DefaultMaxConns is the size of a node's connection pool when neither
// Options nor the URL's pool_max_conns set one. Each device operation is
// a transaction that holds a connection until its commit is flushed, so
// the pool bounds the commits in flight, and PostgreSQL flushes the
// commits waiting together in one WAL write: pgxpool's own default (4 on
// a small machine) left one node at a few flushes' worth of commits (see
// BENCHMARKS.md).
const DefaultMaxConns = 16

const (
	defaultTaskBatch    = 256
	defaultPollInterval = 5 * time.Second
	// maxAttempts bounds how often one operation is run again after a
	// serialization failure, a deadlock or a job that changed under it.
	maxAttempts = 10
	// lockClass is the first key of the advisory locks this store takes
	// (the second is the job's hash, or 0 for migrations).
	lockClassJob       = 0x6a62 // "jb"
	lockClassMigration = 0x6a6d // "jm"
	lockClassNode      = 0x6a6e // "jn": held by a node's listening connection
	lockClassGuard     = 0x6a67 // "jg": a job's guard (tx.go)
	nStripes           = 64
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of store.Store and store.Shared:
// the engine's operations over this backend.
type Store struct {
	*engine.Engine
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig // for the listening connection
	opts    Options
	clock   clock.Clock
	log     *slog.Logger
	node    string
	schema  string
	channel string

	handler  store.Handoff[store.Change]
	interest atomic.Pointer[interestBox]
	hintBus  atomic.Pointer[store.HintBus] // nil: hints go by NOTIFY

	// stripes order the delivery of changes per thing: a transaction
	// holds the stripes of the things it changed from before its commit
	// until its changes are handed over, and each stripe keeps what was
	// last delivered for its things (see notify.go).
	stripes    [nStripes]stripe
	deliveries deliveries

	peers     peerGate      // whether commits notify (peers.go)
	listenPID atomic.Uint32 // backend pid of the listening connection
	listening atomic.Bool
	listenState

	timerWake chan struct{}
	taskWake  chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	stats     Stats

	// skipChecks leaves the checks put off until after commits undone, as
	// a node that died right after its commit would (tests).
	skipChecks atomic.Bool
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.Shared        = (*Store)(nil)
	_ store.GaugeReader   = (*Store)(nil)
	_ store.CounterReader = (*Store)(nil)
	_ engine.Backend      = backend{}
)

// Stats are counters of the store's work, for metrics and tests.
type Stats struct {
	Commits        atomic.Int64 // committed write transactions
	Retries        atomic.Int64 // transactions run again (conflict, deadlock, serialization)
	TimersFired    atomic.Int64 // executions timed out by this node
	TaskSteps      atomic.Int64 // background job steps committed by this node
	RemoteChanges  atomic.Int64 // changes of other nodes handed to the handler
	Resyncs        atomic.Int64 // re-reads of every interesting thing after the listener reconnected
	HintsDropped   atomic.Int64 // notifications not sent because they were too large
	ListenFailures atomic.Int64
	SilentCommits  atomic.Int64 // committed write transactions that sent no NOTIFY, as no other node listened
	RoundTrips     atomic.Int64 // statement batches sent and answered by operations' transactions
}

// Open connects to the database, brings its schema up to date and starts
// the background loops.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.TaskBatch <= 0 {
		opts.TaskBatch = defaultTaskBatch
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.NodeID == "" {
		host, _ := os.Hostname()
		opts.NodeID = host + "-" + strconv.Itoa(os.Getpid())
	}
	opts.NodeID = strings.ReplaceAll(opts.NodeID, "|", "_")
	pcfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	switch {
	case opts.MaxConns > 0:
		pcfg.MaxConns = opts.MaxConns
	case !strings.Contains(opts.URL, "pool_max_conns"):
		pcfg.MaxConns = DefaultMaxConns
	}
	if opts.Schema != "" {
		pcfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	pcfg.ConnConfig.RuntimeParams["application_name"] = "jobsbroker " + opts.NodeID
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	s := &Store{
		pool:        pool,
		connCfg:     pcfg.ConnConfig.Copy(),
		opts:        opts,
		clock:       opts.Clock,
		log:         opts.Logger,
		node:        opts.NodeID,
		listenState: listenState{dirtySig: make(chan struct{}, 1)},
		timerWake:   make(chan struct{}, 1),
		taskWake:    make(chan struct{}, 1),
		closing:     make(chan struct{}),
	}
	s.connCfg.RuntimeParams["application_name"] = "jobsbroker listen " + opts.NodeID
	s.Engine = engine.New(backend{s}, engine.Options{Clock: opts.Clock, Logger: opts.Logger,
		TaskBatch: opts.TaskBatch, EnableEvents: opts.EnableEvents})
	s.deliveries.init()
	s.peers.init()
	for i := range s.stripes {
		s.stripes[i].seen = map[queueKey]*seenState{}
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.pool.QueryRow(ctx, "SELECT current_schema()").Scan(&s.schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("read current schema: %w", err)
	}
	s.channel = "jobsbroker." + s.schema
	if err := s.loadEvents(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("read event configuration: %w", err)
	}
	conn, err := s.listen(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("listen for other nodes' changes: %w", err)
	}
	if err := s.checkPeers(ctx); err != nil {
		// Notify until a check succeeds.
		s.log.Warn("look for other nodes", "op", "peers", "error", err)
	}
	s.wg.Add(6)
	go s.peerLoop()
	go s.listenLoop(conn)
	go s.refreshLoop()
	go s.taskLoop()
	go s.timerLoop()
	s.StartCommandTimers()
	go s.countLoop()
	return s, nil
}

// migrate applies the embedded migrations the database lacks, one
// transaction each, under a session advisory lock so that nodes starting
// together apply each migration once.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, 0)", lockClassMigration); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		// A connection whose unlock failed is closed, which drops the lock.
		if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1, 0)", lockClassMigration); err != nil {
			conn.Conn().Close(context.Background())
		}
	}()
	if s.opts.Schema != "" {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{s.opts.Schema}.Sanitize()); err != nil {
			return fmt.Errorf("migrate: create schema %s: %w", s.opts.Schema, err)
		}
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for _, v := range versions {
		applied[int(v)] = true
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	known := 0
	for _, f := range files {
		name := strings.TrimPrefix(f, "migrations/")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("migrate: migration file %s is not named NNNN_name.sql", name)
		}
		known = max(known, v)
		if applied[v] {
			continue
		}
		sql, err := migrations.ReadFile(f)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", v, name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: apply %s: %w", name, err)
		}
		s.log.Info("applied schema migration", "version", v, "name", name)
	}
	for v := range applied {
		if v > known {
			return fmt.Errorf("migrate: the database has schema version %d, this build knows up to %d", v, known)
		}
	}
	return nil
}

// Ping checks that the database answers and accepts writes: it reads the
// schema version in a transaction that is given a transaction id, which a
// read-only standby refuses.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return store.Unavailable("ping", errors.New("store is closed"))
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var v int32
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_current_xact_id()")
		return err
	})
	return s.mapErr("ping", err)
}

// SetChangeHandler installs the receiver of committed changes. Changes
// committed before the first receiver is installed (timers that came due
// while the store was closed fire as it opens) are handed to it first.
func (s *Store) SetChangeHandler(h store.ChangeHandler) {
	if n := s.handler.Set(h); n > 0 {
		s.log.Warn("changes committed before a receiver was installed were dropped", "op", "set change handler", "dropped", n)
	}
}

// Stats returns the store's counters.
func (s *Store) Stats() *Stats { return &s.stats }

// Counters reports the store's running totals for metrics.
func (s *Store) Counters() store.Counters {
	return store.Counters{TimersFired: s.stats.TimersFired.Load()}
}

// backend is the Store as the engine's Backend.
type backend struct{ s *Store }

// Update runs fn as one write transaction.
func (b backend) Update(ctx context.Context, op string, fn func(tx engine.Tx) error) error {
	return b.s.update(ctx, op, func(w *wtx) error { return fn(w) })
}

// View runs fn in a read-only transaction.
func (b backend) View(ctx context.Context, op string, fn func(r engine.Reader) error) error {
	return b.s.view(ctx, op, func(r *wtx) error { return fn(r) })
}

// StepNow runs one step of a job's task at once, waiting for another
// node's step of the same job to finish first.
func (b backend) StepNow(ctx context.Context, jobID string) {
	if _, _, err := b.s.runStep(ctx, jobID, true); err != nil && ctx.Err() == nil {
		b.s.log.Warn("job step failed; the task loop carries on", "op", "job step", "job", jobID, "error", err)
	}
}

// NodeID returns the name this node uses in notifications.
func (s *Store) NodeID() string { return s.node }

// Pool exposes the connection pool (for tools and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the background loops and closes the connections. Operations
// still running fail with store.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.StopCommandTimers()
		close(s.closing)
		s.wg.Wait()
		s.pool.Close()
	})
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// errConflict means that a job this transaction decided on changed before
// it could commit; the transaction is run again.
var errConflict = errors.New("a job changed during the transaction")

// retryable reports whether a failed transaction may simply be run again:
// it was rolled back and nothing of it is visible.
func retryable(err error) bool {
	if errors.Is(err, errConflict) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// mapErr turns a failure into what the caller sees: rejections and
// context errors as they are, anything else (a lost connection, a database
// error) as store.ErrUnavailable, logged.
func (s *Store) mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if engine.IsRejection(err) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if s.isClosed() {
		return store.Unavailable(op, errors.New("store is closed"))
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(0, 0, err)
	}
	s.log.Error("store operation failed", "op", op, "error", err)
	return store.Unavailable(op, err)
}

// view runs fn in a read-only REPEATABLE READ transaction, so that its
// reads see one snapshot.
func (s *Store) view(ctx context.Context, op string, fn func(r *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isClosed() {
		return store.Unavailable(op, errors.New("store is closed"))
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.mapErr(op, err)
	}
	defer conn.Release()
	w := newWtx(ctx, s, conn)
	w.queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	err = fn(w)
	if w.sent > 0 {
		// A connection left inside a transaction is closed on release.
		endTx(conn, "COMMIT")
	}
	s.deliveries.settle()
	return s.mapErr(op, err)
}

// endTx ends the connection's transaction, if the connection still works.
func endTx(conn *pgxpool.Conn, stmt string) {
	if conn.Conn().IsClosed() || conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Exec(ctx, stmt)
}

// update runs fn as one write transaction, again after a serialization
// failure, a deadlock or a job that changed under it, and hands its
// changes to the handler once it has committed. fn may run several times;
// it must reset its results at its start. A *store.Error from fn is a
// rejection: what fn wrote before deciding (a canceled job's executions
// written out on the way) is committed all the same.
func (s *Store) update(ctx context.Context, op string, fn func(w *wtx) error) error {
	if s.isClosed() {
		return store.Unavailable(op, errors.New("store is closed"))
	}
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			s.stats.Retries.Add(1)
			backoff := time.Duration(1<<min(attempt, 6)) * time.Millisecond
			select {
			case <-time.After(backoff/2 + rand.N(backoff)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var due []string
		due, err = s.attempt(ctx, op, fn, nil)
		s.checkJobs(ctx, due)
		if !retryable(err) {
			break
		}
	}
	return s.mapErr(op, err)
}

// attempt runs fn in one transaction. lock, when set, runs first (the
// background steps take their advisory lock with it); errSkip from it
// ends the attempt without error.
//
// It returns the jobs whose abort or completion checks, put off until the
// commit (CheckLater), the committed counts call for: the caller runs them
// (checkJobs) once the connection is back in the pool.
func (s *Store) attempt(ctx context.Context, op string, fn func(w *wtx) error, lock func(w *wtx) error) (due []string, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			endTx(conn, "ROLLBACK")
		}
		conn.Release()
	}()
	w := newWtx(ctx, s, conn)
	defer func() {
		if w.silent {
			s.peers.leave(w.quiet, time.Now())
		}
	}()
	w.queue("BEGIN")
	if lock != nil {
		if err := lock(w); err != nil {
			return nil, err
		}
	}
	ferr := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		return fn(w)
	}()
	if ferr != nil && !engine.IsRejection(ferr) {
		return nil, ferr
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	if gate := store.NotifyAfter(ctx); gate != nil {
		for i := range w.changes {
			w.changes[i].After = gate
		}
	}
	unlock := s.lockStripes(w.deliveredThings())
	if err := s.measure(w); err != nil {
		unlock()
		return nil, err
	}
	ticket := s.deliveries.begin()
	defer s.deliveries.end(ticket)
	w.queue("COMMIT")
	start := time.Now()
	if len(w.late) == 0 {
		err = w.flush()
	} else {
		var lateErr error
		if err, lateErr = w.flushThen(w.lateQuery()); err == nil && lateErr != nil {
			// Committed, but whether a check is due is unknown: check.
			s.log.Warn("read counts after commit", "op", op, "error", lateErr)
			w.due = slices.Collect(maps.Keys(w.late))
		}
	}
	if s.opts.OnCommit != nil && err == nil {
		s.opts.OnCommit(time.Since(start), 1, nil) // a failure is counted by mapErr
	}
	if err != nil {
		unlock()
		// A database error means the server refused a statement, and the
		// rest of the batch, COMMIT included, was not run: nothing was
		// committed. Any other failure (the connection) leaves the
		// outcome unknown: never report success for it.
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, store.Unavailable("commit", err)
	}
	committed = true
	s.stats.Commits.Add(1)
	if w.silent {
		s.stats.SilentCommits.Add(1)
	}
	s.sendHints(w)
	s.deliverLocal(w)
	unlock()
	for _, f := range w.after {
		f()
	}
	if w.timersChanged {
		s.wakeTimers()
	}
	if w.tasksChanged {
		s.wakeTasks()
	}
	return w.due, ferr
}

func (s *Store) wakeTimers() {
	select {
	case s.timerWake <- struct{}{}:
	default:
	}
}

func (s *Store) wakeTasks() {
	select {
	case s.taskWake <- struct{}{}:
	default:
	}
}

// deliveries tracks this node's commits from just before COMMIT is sent
// until their changes have been handed over, so that a read can wait for
// those it may have seen (see settle).
type deliveries struct {
	mu      sync.Mutex
	cond    *sync.Cond
	issued  uint64
	pending map[uint64]struct{}
}

func (d *deliveries) init() { d.cond, d.pending = sync.NewCond(&d.mu), map[uint64]struct{}{} }

// begin issues the ticket of a commit about to be sent.
func (d *deliveries) begin() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.issued++
	d.pending[d.issued] = struct{}{}
	return d.issued
}

// end marks a commit's changes handed over (or the commit failed).
func (d *deliveries) end(ticket uint64) {
	d.mu.Lock()
	delete(d.pending, ticket)
	d.mu.Unlock()
	d.cond.Broadcast()
}

// settle waits until every commit issued so far has been handed over. A
// read calls it after reading: whatever of this node's commits it saw
// then had been issued, so once settle returns, their changes are with
// the handler, as they would be had the read come after the method that
// committed them.
func (d *deliveries) settle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	upto := d.issued
	for {
		waiting := false
		for t := range d.pending {
			if t <= upto {
				waiting = true
				break
			}
		}
		if !waiting {
			return
		}
		d.cond.Wait()
	}
}

// stripe is one lock of the per-thing delivery order and what was last
// delivered for the things that hash to it.
type stripe struct {
	mu   sync.Mutex
	seen map[queueKey]*seenState
}

func stripeOf(thing string) int {
	h := fnv.New32a()
	h.Write([]byte(thing))
	return int(h.Sum32() % nStripes)
}

// lockStripes locks the stripes of things, in order, and returns their
// unlock.
func (s *Store) lockStripes(things []string) func() {
	if len(things) == 0 {
		return func() {}
	}
	idx := make([]int, 0, len(things))
	for _, th := range things {
		idx = append(idx, stripeOf(th))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		s.stripes[i].mu.Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			s.stripes[i].mu.Unlock()
		}
	}
}

// hand passes changes to the handler.
func (s *Store) hand(changes []store.Change) {
	if len(changes) == 0 {
		return
	}
	s.handler.Deliver(changes)
}
