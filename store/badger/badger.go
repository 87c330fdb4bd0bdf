// Package badger is the embedded store.Store, on Badger v4: the backend of
// store/engine that keeps records in one Badger database.
//
// Every write goes through one committer goroutine. It takes the operations
// that are waiting, runs each against one shared Badger transaction, and
// commits them together with a single synced write: group commit. Each
// operation stays atomic (the batch commits or fails as a whole) and sees
// the effects of the operations before it, and because there is only one
// writer there are no transaction conflicts to retry. Measured on the
// project's reference machine, one synced commit per operation caps at about
// 4,000 operations per second whatever the concurrency, while grouping
// passes 50,000 (BASELINES.md).
//
// Reads (GetPendingJobExecutions, DescribeJobExecution, DescribeJob, the
// list operations) run in Badger read transactions beside the committer.
// With synced writes, whatever a reader can see is already on disk.
//
// A thing's queue is one key per pending execution (see keys.go); the
// committer keeps the first entries of busy things' queues, and the
// records it reads most, decoded in a cache of bounded size (cache.go).
//
// Background work runs as ordinary operations submitted to the committer: a
// task loop rolls out, cancels and deletes large jobs a bounded number of
// things at a time, and a timer loop moves IN_PROGRESS executions whose
// step or in-progress deadline has passed to TIMED_OUT. Both keep their
// state in the database, so they resume after a restart.
package badger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// Options configures the Badger store.
type Options struct {
	// Dir is the data directory. It is created if needed.
	Dir string `yaml:"dir" json:"dir"`
	// InMemory keeps everything in memory; for tests only.
	InMemory bool `yaml:"-" json:"-"`
	// NoSync acknowledges writes before they reach the disk. A crash of the
	// process loses nothing, but a power failure or kernel crash can lose
	// the last acknowledged writes.
	NoSync bool `yaml:"no_sync" json:"no_sync"`
	// MaxBatch is how many operations one commit may group (default 512).
	MaxBatch int `yaml:"max_batch" json:"max_batch"`
	// TaskBatch is how many things one background step rolls out, cancels or
	// deletes (default 256).
	TaskBatch int `yaml:"task_batch" json:"task_batch"`
	// Clock tells the time; nil means the wall clock.
	Clock clock.Clock `yaml:"-" json:"-"`
	// Logger receives the store's and Badger's logs; nil discards them.
	Logger *slog.Logger `yaml:"-" json:"-"`
	// EnableEvents switches job and job-execution event messages on until
	// UpdateEventConfigurations first says otherwise.
	EnableEvents bool `yaml:"events" json:"events"`
	// NoBackground starts no timer, task or command-timer loop: the store
	// only does what it is asked (an offline backup, which must not change
	// the directory it copies: a timer that came due while the broker was
	// stopped would fire, and its notifications be lost, with nobody to
	// hear them).
	NoBackground bool `yaml:"-" json:"-"`
	// GCInterval is how often the value log is garbage-collected (default
	// 5 minutes; negative turns it off).
	GCInterval time.Duration `yaml:"gc_interval" json:"gc_interval"`
	// MinFreeBytes is the free space the store's filesystem must keep:
	// below it, operations that write are refused with
	// ServiceUnavailable while reads go on (default 256 MiB). Badger
	// writes through memory maps of sparse files, and running out of space
	// there kills the process, so the store stops writing well before
	// that. Negative keeps only the floor Badger needs for one commit and
	// one memtable flush (disk.go), which no setting lowers.
	MinFreeBytes int64 `yaml:"min_free_bytes" json:"min_free_bytes"`
	// OnCommit, if set, is told about every commit: how long it took, how
	// many operations it carried, and its error.
	OnCommit func(took time.Duration, ops int, err error) `yaml:"-" json:"-"`
	// StrictRecovery refuses to open a store whose write-ahead log or
	// value log is damaged (ErrDamagedLog), leaving the files as they are.
	// Otherwise Open drops the damaged part, as Badger does, and reports
	// it (Recovery, and an error in the log).
	StrictRecovery bool `yaml:"strict_recovery" json:"strict_recovery"`
	// CacheBytes bounds the committer's cache of decoded records (default
	// DefaultCacheBytes; negative turns it off).
	CacheBytes int `yaml:"-" json:"-"`
	// CommitDelay is the longest the committer waits for more operations
	// to join a commit, and it waits only while they arrive fast enough
	// that at least a few more would (pacer.go): a synced commit costs
	// the same CPU whatever it carries. Zero means DefaultCommitDelay with
	// synced writes and no wait with NoSync or InMemory; negative, never
	// wait.
	CommitDelay time.Duration `yaml:"commit_delay" json:"commit_delay"`
}

const (
	defaultMaxBatch  = 512
	defaultTaskBatch = 256
)

// DefaultCommitDelay is the default of Options.CommitDelay with synced
// writes (BENCHMARKS.md, "Commits that wait for company").
const DefaultCommitDelay = time.Millisecond

// MaxCommitDelay is the largest Options.CommitDelay Open accepts.
const MaxCommitDelay = 100 * time.Millisecond

// DefaultMinFreeBytes is the default of Options.MinFreeBytes.
const DefaultMinFreeBytes = 256 << 20

// Store is the Badger implementation of store.Store: the engine's
// operations over this backend.
type Store struct {
	*engine.Engine
	db      *badgerdb.DB
	opts    Options
	clock   clock.Clock
	log     *slog.Logger
	ops     chan *op
	handler store.Handoff[store.Change]

	seq          uint64 // last sequence number handed out; committer only
	persistedSeq uint64 // last sequence number written; committer only

	unsettledMu sync.RWMutex
	unsettled   map[string]*unsettledJob // jobs whose cancel or delete is being written out
	unsettleGen uint64
	nUnsettled  atomic.Int32

	events atomic.Pointer[store.EventConfigurations]

	timerWake chan struct{}
	taskWake  chan struct{}
	closing   chan struct{}
	stopped   chan struct{} // closed when the committer has returned
	closeOnce sync.Once
	wg        sync.WaitGroup
	stats     Stats
	recovery  RecoveryReport // what Open found in the logs

	maxBytes, maxEntries int64 // the most one Badger transaction may hold

	failed atomic.Pointer[error] // set by a failed commit: the store takes no more writes
	space  diskSpace             // committer only, but for its atomics
	cache  recordCache           // committer only
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.GaugeReader   = (*Store)(nil)
	_ store.CounterReader = (*Store)(nil)
	_ store.Backuper      = (*Store)(nil)
	_ engine.Backend      = backend{}
)

// Stats are counters of the store's work, for metrics.
type Stats struct {
	Commits        atomic.Int64 // Badger commits
	CommittedOps   atomic.Int64 // operations in those commits
	CommitFailures atomic.Int64
	CommitNanos    atomic.Int64 // total time spent committing
	TimersFired    atomic.Int64
	GCRuns         atomic.Int64 // value-log garbage collections attempted
	GCRewrites     atomic.Int64 // value-log files rewritten by them
	CommitWaits    atomic.Int64 // commits that waited for more operations (pacer.go)
}

// Open opens (or creates) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = defaultMaxBatch
	}
	if opts.TaskBatch <= 0 {
		opts.TaskBatch = defaultTaskBatch
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.GCInterval == 0 {
		opts.GCInterval = 5 * time.Minute
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = DefaultMinFreeBytes
	}
	switch {
	case opts.CommitDelay > MaxCommitDelay:
		return nil, fmt.Errorf("badger: CommitDelay %v is above the most allowed, %v", opts.CommitDelay, MaxCommitDelay)
	case opts.CommitDelay == 0 && !opts.NoSync && !opts.InMemory:
		opts.CommitDelay = DefaultCommitDelay
	case opts.CommitDelay < 0:
		opts.CommitDelay = 0
	}
	var recovery RecoveryReport
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if !opts.InMemory {
		rep, err := recoverLogs(opts)
		if err != nil {
			return nil, err
		}
		recovery = rep
		if err := removeEmptyMemtables(opts.Dir); err != nil {
			return nil, err
		}
	}
	bopts := baseOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(!opts.NoSync && !opts.InMemory).
		WithLogger(badgerLogger{opts.Logger})
	if opts.InMemory {
		bopts.Dir, bopts.ValueDir = "", ""
	}
	db, err := badgerdb.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("open badger in %q: %w", opts.Dir, err)
	}
	s := &Store{
		db:         db,
		opts:       opts,
		clock:      opts.Clock,
		log:        opts.Logger,
		ops:        make(chan *op, 4*opts.MaxBatch),
		unsettled:  map[string]*unsettledJob{},
		timerWake:  make(chan struct{}, 1),
		taskWake:   make(chan struct{}, 1),
		closing:    make(chan struct{}),
		stopped:    make(chan struct{}),
		maxBytes:   db.MaxBatchSize(),
		maxEntries: db.MaxBatchCount(),
		recovery:   recovery,
	}
	s.cache.limit = opts.CacheBytes
	s.Engine = engine.New(backend{s}, engine.Options{Clock: opts.Clock, Logger: opts.Logger,
		TaskBatch: opts.TaskBatch, EnableEvents: opts.EnableEvents})
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.commitLoop()
	if opts.GCInterval > 0 && !opts.InMemory {
		s.wg.Add(1)
		go s.gcLoop()
	}
	if !opts.NoBackground {
		s.wg.Add(2)
		go s.taskLoop()
		go s.timerLoop()
		s.StartCommandTimers()
	}
	return s, nil
}

// Memory. What the store holds in memory is bounded by these settings,
// not by how much it stores (README, "Memory"): the memtables (three of
// 16 MiB), Badger's block cache and its cache of table indexes and bloom
// filters (without a bound, Badger keeps every table's index in memory, a
// cost that grows with the data), the buffers its compactions build
// tables in (see baseOptions), and the committer's record cache
// (Options.CacheBytes).
const (
	memTableBytes   = 16 << 20
	numMemTables    = 3
	blockCacheBytes = 32 << 20
	indexCacheBytes = 16 << 20
)

// baseOptions are the Badger options every opening of a store uses.
func baseOptions(dir string) badgerdb.Options {
	opts := badgerdb.DefaultOptions(dir)
	// Tables of every level below L0 are BaseTableSize (2 MB) rather
	// than twice as large a level down: a compaction builds each new
	// table in a buffer of twice its size, and Badger keeps up to eight
	// such buffers for reuse, so with growing tables the memory of
	// compactions grew with the data (to 200 MB at 1,000,000 executions).
	opts.TableSizeMultiplier = 1
	return opts.
		// A synced commit msyncs the memtable's write-ahead log, and the
		// cost of that grows with how full the memtable is: with 64 MB
		// memtables a commit cost 2.4 times more once 100,000 executions
		// were stored; with 16 MB the cost stays flat (BENCHMARKS.md).
		WithMemTableSize(memTableBytes).
		WithNumMemtables(numMemTables).
		// Large values (job documents, target lists) go to the value log,
		// so that a job with very many targets still fits one commit.
		WithValueThreshold(64 << 10).
		// A value read from a damaged value log fails its checksum
		// instead of coming back as whatever bytes are there now (see
		// valueOf). Only values of 64 KiB and more are read from it.
		WithVerifyValueChecksum(true).
		WithNumCompactors(2).
		WithBlockCacheSize(blockCacheBytes).
		WithIndexCacheSize(indexCacheBytes).
		WithMetricsEnabled(false)
}

// load brings the data directory to this build's schema (migrate.go) and
// reads the sequence counter, the event configuration and the jobs whose
// cancellation or deletion is being written out.
func (s *Store) load() error {
	if err := s.migrate(); err != nil {
		return err
	}
	return s.db.View(func(txn *badgerdb.Txn) error {
		if item, err := txn.Get([]byte(metaSeq)); err == nil {
			v, _ := item.ValueCopy(nil)
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("read sequence: %w", err)
			}
			s.seq, s.persistedSeq = n, n
		} else if !errors.Is(err, badgerdb.ErrKeyNotFound) {
			return fmt.Errorf("read sequence: %w", err)
		}
		r := &rtx{txn: txn, s: s}
		cfg, err := r.EventConfig(engine.NoLock)
		if err != nil {
			return fmt.Errorf("read event configuration: %w", err)
		}
		s.SetEventConfig(cfg)
		return r.each([]byte{prefixTask}, nil, false, func(k, v []byte) (bool, error) {
			var t engine.Task
			if err := json.Unmarshal(v, &t); err != nil {
				return false, fmt.Errorf("decode task %q: %w", k, err)
			}
			if t.Settle != nil {
				s.unsettleGen++
				s.unsettled[string(k[1:])] = &unsettledJob{deleting: t.Settle.Delete, gen: s.unsettleGen}
				s.nUnsettled.Store(int32(len(s.unsettled)))
			}
			return true, nil
		})
	})
}

// backend is the Store as the engine's Backend.
type backend struct{ s *Store }

// Update runs fn in the committer.
func (b backend) Update(ctx context.Context, _ string, fn func(tx engine.Tx) error) error {
	return b.s.enqueue(ctx, &op{ctx: ctx, txFn: fn, done: make(chan struct{})})
}

// View runs fn in a Badger read transaction.
func (b backend) View(ctx context.Context, _ string, fn func(r engine.Reader) error) error {
	return b.s.view(ctx, func(r *rtx) error { return fn(r) })
}

// StepNow runs one step of the job's task in the committer.
func (b backend) StepNow(ctx context.Context, jobID string) {
	s := b.s
	err := s.submit(ctx, func(w *wtx) error {
		_, err := s.Step(w, jobID)
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("job step failed; the task loop carries on", "job", jobID, "error", err)
	}
}

// Ping checks that the store can read and that its committer runs: it
// submits an operation that reads the schema version and writes nothing.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.failed.Load(); err != nil {
		return store.Unavailable("ping", fmt.Errorf("a commit failed earlier (%w); restart the broker", *err))
	}
	return s.submit(ctx, func(w *wtx) error {
		_, err := w.get([]byte(metaSchema))
		return err
	})
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
	return store.Counters{TimersFired: s.stats.TimersFired.Load(), HasGC: true,
		GCRuns: s.stats.GCRuns.Load(), GCRewrites: s.stats.GCRewrites.Load(),
		HasCommitDelay: true, CommitWaits: s.stats.CommitWaits.Load()}
}

// Close stops the background loops, fails operations that have not run,
// and closes the database.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.StopCommandTimers()
		close(s.closing)
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

// op is one operation waiting for the committer.
type op struct {
	ctx     context.Context
	fn      func(w *wtx) error
	txFn    func(tx engine.Tx) error // an engine operation (instead of fn)
	err     error
	changes []store.Change
	after   []func()
	skipped bool // its caller gave up before it ran; it writes nothing
	done    chan struct{}
}

// submit runs fn in the committer and waits until its batch is committed.
// fn may run more than once (when a batch has to be redone); it must keep
// its results in variables it resets at the start.
func (s *Store) submit(ctx context.Context, fn func(w *wtx) error) error {
	return s.enqueue(ctx, &op{ctx: ctx, fn: fn, done: make(chan struct{})})
}

// enqueue hands o to the committer and waits until its batch is committed.
func (s *Store) enqueue(ctx context.Context, o *op) error {
	if err := s.failed.Load(); err != nil {
		return store.Unavailable("write", fmt.Errorf("a commit failed earlier (%w); restart the broker", *err))
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return store.Unavailable("submit", errors.New("store is closed"))
	}
	select {
	case <-o.done:
		return o.err
	case <-s.stopped:
		// The committer has finished every operation it took; one that
		// reached the queue as it stopped was never taken.
		select {
		case <-o.done:
			return o.err
		default:
			return store.Unavailable("submit", errors.New("store is closed"))
		}
	case <-ctx.Done():
		// The operation may still commit; the caller has not acknowledged it.
		return ctx.Err()
	}
}

func (s *Store) commitLoop() {
	defer s.wg.Done()
	defer close(s.stopped)
	batch := make([]*op, 0, s.opts.MaxBatch)
	pace := pacer{delay: s.opts.CommitDelay}
	var timer *time.Timer
	for {
		select {
		case o := <-s.ops:
			batch = append(batch[:0], o)
		drain:
			for len(batch) < s.opts.MaxBatch {
				select {
				case o := <-s.ops:
					batch = append(batch, o)
				default:
					break drain
				}
			}
			pace.took(time.Now(), len(batch))
			if d := pace.wait(); d > 0 && len(batch) < s.opts.MaxBatch {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				n := len(batch)
				batch = s.gather(batch, timer)
				timer.Stop()
				pace.waited(time.Now(), len(batch)-n)
				s.stats.CommitWaits.Add(1)
			}
			s.runBatch(batch)
		case <-s.closing:
			for {
				select {
				case o := <-s.ops:
					o.err = store.Unavailable("commit", errors.New("store is closing"))
					close(o.done)
				default:
					return
				}
			}
		}
	}
}

// gather adds the operations that arrive to batch until it is full, the
// timer fires or the store closes (the batch is then run as it is; the
// operations still queued are run or refused as the committer stops).
func (s *Store) gather(batch []*op, timer *time.Timer) []*op {
	for len(batch) < s.opts.MaxBatch {
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-timer.C:
			return batch
		case <-s.closing:
			return batch
		}
	}
	return batch
}

// runBatch runs ops in as few transactions as their size allows.
func (s *Store) runBatch(ops []*op) {
	if s.space.check(s) {
		for _, o := range ops {
			s.runReadOnly(o)
		}
		return
	}
	for len(ops) > 0 {
		ops = ops[s.runTxn(ops):]
	}
}

// runReadOnly runs one op while the disk is low on space: an op that
// writes nothing (a ping, a rejected request) completes as usual, one that
// writes is refused and changes nothing.
func (s *Store) runReadOnly(o *op) {
	defer close(o.done)
	if o.skipped {
		return
	}
	if err := o.ctx.Err(); err != nil {
		o.skipped, o.err = true, err
		return
	}
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	tc := newTxnCache(&s.cache)
	defer tc.discard()
	w, err := s.execute(txn, o, tc) // staged writes are dropped
	switch {
	case err != nil:
		o.err = store.Unavailable("operation", err)
	case w.entries > 0:
		s.stats.CommitFailures.Add(1)
		o.err = store.Unavailable("write", s.space.refusal())
	default:
		return // nothing to commit
	}
	o.changes, o.after = nil, nil
}

// runTxn runs a prefix of ops in one transaction and commits it. It returns
// how many ops it finished, successfully or not.
func (s *Store) runTxn(ops []*op) int {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	tc := newTxnCache(&s.cache)
	defer tc.close()
	for i, o := range ops {
		if o.skipped {
			continue
		}
		if err := o.ctx.Err(); err != nil {
			o.skipped, o.err = true, err
			continue
		}
		_, err := s.execute(txn, o, tc)
		if err == nil {
			continue
		}
		// The transaction now holds part of o's writes: throw it away,
		// commit the ops before o on their own, and finish o.
		txn.Discard()
		tc.discard()
		if errors.Is(err, badgerdb.ErrTxnTooBig) && i > 0 {
			s.runBatch(ops[:i])
			return i
		}
		s.runBatch(ops[:i])
		if errors.Is(err, badgerdb.ErrTxnTooBig) {
			o.err = store.Errorf(store.ErrLimitExceeded, "the operation is too large to commit at once")
		} else {
			s.log.Error("store operation failed", "error", err)
			o.err = store.Unavailable("operation", err)
		}
		o.changes, o.after = nil, nil
		close(o.done)
		return i + 1
	}
	s.commit(txn, ops, tc)
	return len(ops)
}

// execute runs one op in txn. A *store.Error from the op is a normal
// outcome (a rejection; whatever the op wrote before deciding, such as
// settling a canceled job, is kept). Any other error, or a panic, is
// returned.
func (s *Store) execute(txn *badgerdb.Txn, o *op, tc *txnCache) (w *wtx, err error) {
	w = &wtx{rtx: rtx{txn: txn, s: s, tc: tc}, now: s.clock.Now()}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	var ferr error
	if o.txFn != nil {
		ferr = o.txFn(w)
	} else {
		ferr = o.fn(w)
	}
	if ferr != nil && !engine.IsRejection(ferr) {
		return w, ferr
	}
	o.err, o.changes, o.after = ferr, w.changes, w.after
	if gate := store.NotifyAfter(o.ctx); gate != nil {
		for i := range o.changes {
			o.changes[i].After = gate
		}
	}
	if w.timersChanged {
		o.after = append(o.after, s.wakeTimers)
	}
	if w.tasksChanged {
		o.after = append(o.after, s.wakeTasks)
	}
	return w, nil
}

func (s *Store) commit(txn *badgerdb.Txn, ops []*op, tc *txnCache) {
	if s.seq != s.persistedSeq {
		if err := txn.Set([]byte(metaSeq), strconv.AppendUint(nil, s.seq, 10)); err != nil {
			s.failAll(ops, err)
			return
		}
	}
	start := time.Now()
	err := txn.Commit()
	took := time.Since(start)
	s.stats.CommitNanos.Add(int64(took))
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(took, len(ops), err)
	}
	if err != nil {
		s.failAll(ops, err)
		return
	}
	s.persistedSeq = s.seq
	tc.apply()
	s.stats.Commits.Add(1)
	s.stats.CommittedOps.Add(int64(len(ops)))
	// Changes go to the handler before anyone hears of the commit, so that
	// when an operation returns its notifications are already on their way.
	var changes []store.Change
	for _, o := range ops {
		if !o.skipped {
			for _, f := range o.after {
				f()
			}
			changes = append(changes, o.changes...)
		}
	}
	s.handler.Deliver(changes)
	for _, o := range ops {
		close(o.done)
	}
}

func (s *Store) failAll(ops []*op, err error) {
	s.stats.CommitFailures.Add(1)
	s.cache.clear()
	// A commit that failed inside Badger (a write error, no room for a new
	// memtable) can leave it unable to take more: the store stops writing
	// and reports unready, and a restart recovers every acknowledged write.
	if s.failed.CompareAndSwap(nil, &err) {
		s.log.Error("store commit failed; the store takes no more writes until the broker restarts", "error", err, "operations", len(ops))
	} else {
		s.log.Error("store commit failed", "error", err, "operations", len(ops))
	}
	for _, o := range ops {
		if !o.skipped {
			o.err = store.Unavailable("commit", err)
			o.changes, o.after = nil, nil
		}
		close(o.done)
	}
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

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(r *rtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return store.Unavailable("read", errors.New("store is closed"))
	default:
	}
	err := s.safeView(fn)
	if err != nil && !engine.IsRejection(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return store.Unavailable("read", err)
	}
	return err
}

// safeView runs fn in a Badger read transaction, turning a panic into an
// error: Badger can panic on reads after a failed commit left it without a
// memtable, and a read must not take the broker down.
func (s *Store) safeView(fn func(r *rtx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read panicked: %v", r)
			s.log.Error("store read failed", "error", err, "stack", string(debug.Stack()))
		}
	}()
	return s.db.View(func(txn *badgerdb.Txn) error { return fn(&rtx{txn: txn, s: s}) })
}

// nextSeq hands out the next sequence number. Committer only.
func (s *Store) nextSeq() uint64 {
	s.seq++
	return s.seq
}

func (s *Store) isUnsettled(job string) bool {
	if s.nUnsettled.Load() == 0 {
		return false
	}
	s.unsettledMu.RLock()
	defer s.unsettledMu.RUnlock()
	_, ok := s.unsettled[job]
	return ok
}

// unsettledJob is a job whose cancellation or deletion is being written
// out to its executions.
type unsettledJob struct {
	deleting bool
	gen      uint64 // tells this settling from a later one of a re-created job
	done     bool   // written out; kept a moment for readers that began before
}

func (s *Store) setUnsettled(job string, deleting bool) {
	s.unsettledMu.Lock()
	defer s.unsettledMu.Unlock()
	s.unsettleGen++
	s.unsettled[job] = &unsettledJob{deleting: deleting, gen: s.unsettleGen}
	s.nUnsettled.Store(int32(len(s.unsettled)))
}

// settled marks a job's settling as written out and forgets it after a
// grace period, unless the job settles again meanwhile.
func (s *Store) settled(job string) {
	s.unsettledMu.Lock()
	u := s.unsettled[job]
	if u == nil {
		s.unsettledMu.Unlock()
		return
	}
	u.done = true
	gen := u.gen
	s.unsettledMu.Unlock()
	time.AfterFunc(time.Second, func() {
		s.unsettledMu.Lock()
		defer s.unsettledMu.Unlock()
		if u := s.unsettled[job]; u != nil && u.gen == gen {
			delete(s.unsettled, job)
			s.nUnsettled.Store(int32(len(s.unsettled)))
		}
	})
}

func (s *Store) deletionsInProgress() int {
	s.unsettledMu.RLock()
	defer s.unsettledMu.RUnlock()
	n := 0
	for _, u := range s.unsettled {
		if u.deleting && !u.done {
			n++
		}
	}
	return n
}

// badgerLogger forwards Badger's logs to slog; Badger's chatty info lines
// go to debug. A line is formatted only if its level is enabled: Badger's
// writer logs several debug lines for every commit.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, f string, a []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, "badger", "message", fmt.Sprintf(f, a...))
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

// gcLoop garbage-collects the value log every GCInterval, rewriting files
// while at least half of one is garbage.
func (s *Store) gcLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// Garbage collection rewrites value-log files: not on a disk
			// that is nearly full, nor on a store that stopped writing.
			if s.failed.Load() != nil || !s.roomForGC() {
				continue
			}
			s.collectGarbage()
		case <-s.closing:
			return
		}
	}
}

// collectGarbage runs value-log GC until it finds nothing to rewrite.
func (s *Store) collectGarbage() {
	for range 16 {
		s.stats.GCRuns.Add(1)
		err := s.db.RunValueLogGC(0.5)
		if err != nil {
			if !errors.Is(err, badgerdb.ErrNoRewrite) && !errors.Is(err, badgerdb.ErrRejected) {
				s.log.Warn("value log garbage collection failed", "error", err)
			}
			return
		}
		s.stats.GCRewrites.Add(1)
	}
}
