package engine

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// txn is one run of an operation: the backend's transaction (tx is nil in
// read-only views) and what the operation has learnt and changed of jobs.
type txn struct {
	e    *Engine
	r    Reader
	tx   Tx
	now  time.Time
	jobs []*jobState // few per operation: a slice beats a map

	// Room for the common case, one job, without more allocations.
	jobsArr [2]*jobState
	job0    jobState
	thing0  thingTx
}

// txns recycles transactions: one per operation, and the device
// operations run by the thousand a second.
var txns = sync.Pool{New: func() any { return new(txn) }}

func newTxn(e *Engine, r Reader, tx Tx, now time.Time) *txn {
	t := txns.Get().(*txn)
	*t = txn{e: e, r: r, tx: tx, now: now}
	t.jobs = t.jobsArr[:0]
	return t
}

// release returns a finished transaction for reuse; nothing may use it
// after.
func (t *txn) release() {
	*t = txn{}
	txns.Put(t)
}

// jobState is what a transaction knows about one job.
type jobState struct {
	id      string
	job     *store.Job // the record; nil when the job does not exist
	loaded  bool
	created bool // inserted by this transaction

	targets       []string
	targetsLoaded bool
	targetsDirty  bool

	task       *Task
	taskLoaded bool
	taskSet    bool
	wake       time.Time

	delta   store.ProcessDetails
	counted bool
	// counts are the job's counts as last written by this transaction
	// (known), delta not included.
	counts     store.ProcessDetails
	known      bool
	rollingOut bool

	dirty   bool
	deleted bool

	checkAbort, checkComplete bool
	events                    []string
}

func (js *jobState) needsWrite() bool {
	return js.counted || js.dirty || js.taskSet || js.targetsDirty
}

// state returns the transaction's state of a job, creating it.
func (t *txn) state(id string) *jobState {
	for _, js := range t.jobs {
		if js.id == id {
			return js
		}
	}
	js := &t.job0
	if js.id != "" {
		js = &jobState{}
	}
	js.id = id
	t.jobs = append(t.jobs, js)
	return js
}

// job loads a job's record (without targets and counts). The transaction
// keeps it: callers change it and call saveJob.
func (t *txn) job(id string) (*store.Job, error) {
	js := t.state(id)
	if !js.loaded {
		j, err := t.r.Job(id)
		if err != nil {
			return nil, err
		}
		js.job, js.loaded = j, true
	}
	if js.job == nil {
		return nil, store.ErrJobNotFound(id)
	}
	return js.job, nil
}

// jobHead returns the job as far as the execution rules need it, or nil
// when it does not exist.
func (t *txn) jobHead(id string) (*store.Job, error) {
	for _, js := range t.jobs {
		if js.id == id && js.loaded {
			return js.job, nil
		}
	}
	return t.r.JobHead(id)
}

// saveJob records that a job's record changed; it is written when the
// transaction ends.
func (t *txn) saveJob(j *store.Job) {
	js := t.state(j.JobID)
	js.job, js.loaded, js.dirty = j, true, true
}

// targets returns a job's target ARNs.
func (t *txn) targets(id string) ([]string, error) {
	js := t.state(id)
	if !js.targetsLoaded {
		targets, err := t.r.JobTargets(id)
		if err != nil {
			return nil, err
		}
		js.targets, js.targetsLoaded = targets, true
	}
	return js.targets, nil
}

// task returns a job's background task (nil when it has none).
func (t *txn) task(id string) (*Task, error) {
	js := t.state(id)
	if !js.taskLoaded {
		task, err := t.r.JobTask(id)
		if err != nil {
			return nil, err
		}
		js.task, js.taskLoaded = task, true
	}
	return js.task, nil
}

// setTask replaces a job's task; wake is when it wants to run (zero: now).
func (t *txn) setTask(id string, task *Task, wake time.Time) {
	js := t.state(id)
	js.task, js.taskLoaded, js.taskSet = task, true, true
	if wake.IsZero() {
		wake = t.now
	}
	js.wake = wake
	t.tx.TasksChanged()
}

// addCount moves a job's counts.
func (t *txn) addCount(job string, s store.ExecutionStatus, delta int64) {
	js := t.state(job)
	js.delta.Add(s, delta)
	js.counted = true
}

// counts returns a job's counts as they stand in the transaction.
func (t *txn) counts(id string) (store.ProcessDetails, error) {
	js := t.state(id)
	p := js.counts
	if !js.known {
		var err error
		if p, err = t.r.JobCounts(id); err != nil {
			return p, err
		}
	}
	for _, s := range store.Statuses {
		p.Add(s, js.delta.Count(s))
	}
	return p, nil
}

// document returns a job's document, from the engine's cache when it can.
func (t *txn) document(job string, seq uint64) (string, error) {
	if d, ok := t.e.docs.Get(seq); ok {
		return d, nil
	}
	d, ok, err := t.r.Document(job, seq, false)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", store.Errorf(store.ErrNotFound, "job %s has no document", job)
	}
	t.e.docs.Put(seq, d)
	return d, nil
}

// finish writes what the operation left for the end, job by job in id
// order: its counts, record, targets and task, then the abort criteria and
// the completion those counts call for, then the job's events.
func (t *txn) finish() error {
	if t.tx == nil {
		return nil
	}
	slices.SortFunc(t.jobs, func(a, b *jobState) int { return strings.Compare(a.id, b.id) })
	for i := 0; i < len(t.jobs); i++ {
		if err := t.flushJob(t.jobs[i]); err != nil {
			return err
		}
	}
	return nil
}

// flushJob brings one job up to date, then runs the checks that need its
// counts: abort criteria and completion.
func (t *txn) flushJob(js *jobState) error {
	if js.deleted {
		return t.deleteJob(js)
	}
	if js.loaded && js.job == nil {
		return nil
	}
	needCounts := js.checkComplete || js.checkAbort || len(js.events) > 0
	if !js.needsWrite() && !needCounts {
		return nil
	}
	for range 3 {
		if js.needsWrite() || !js.known {
			if err := t.writeJob(js); err != nil {
				return err
			}
		}
		if !js.checkAbort && !js.checkComplete {
			break
		}
		abort, complete := js.checkAbort, js.checkComplete
		js.checkAbort, js.checkComplete = false, false
		job, err := t.job(js.id)
		if err != nil {
			return err
		}
		if lc, ok := t.tx.(LateChecker); ok && lc.CheckLater(job) {
			break
		}
		if abort {
			if err := t.checkAbort(job, &js.counts); err != nil {
				return err
			}
		}
		if complete {
			t.maybeComplete(job, &js.counts, js.rollingOut)
		}
		if !js.needsWrite() {
			break
		}
	}
	for _, op := range js.events {
		if err := t.emitJobEvent(js, op); err != nil {
			return err
		}
	}
	js.events = nil
	return nil
}

func (t *txn) writeJob(js *jobState) error {
	w := &JobWrite{ID: js.id, Delta: js.delta}
	if js.dirty {
		w.Job = js.job
	}
	if js.targetsDirty {
		w.Targets = js.targets
	}
	if js.taskSet {
		w.Task, w.TaskSet, w.Wake = js.task, true, js.wake
	}
	counts, rolling, err := t.tx.WriteJob(w)
	if err != nil {
		return err
	}
	js.counts, js.known, js.rollingOut = counts, true, rolling
	js.delta, js.counted, js.dirty, js.targetsDirty, js.taskSet = store.ProcessDetails{}, false, false, false, false
	return nil
}

// deleteJob removes a job whose deletion has been written out.
func (t *txn) deleteJob(js *jobState) error {
	if len(js.events) > 0 {
		if _, err := t.targets(js.id); err != nil {
			return err
		}
	}
	counts, err := t.tx.DeleteJob(js.id)
	if err != nil {
		return err
	}
	js.counts, js.known = counts, true
	for _, op := range js.events {
		if err := t.emitJobEvent(js, op); err != nil {
			return err
		}
	}
	js.events = nil
	return nil
}

// LateChecker is implemented by a Tx whose counts, as it reads them, may
// miss changes that concurrent transactions have yet to commit (the
// PostgreSQL backend, where an execution's change adds to the job's counts
// without locking the job against other executions' changes). Abort
// criteria and completion must then not be decided on them: for a job
// whose counts the transaction cannot vouch for, CheckLater returns true
// and takes the checks over. The backend looks at the job's committed
// counts once the transaction has committed (ChecksDue) and, when a check
// may be due, runs CheckJob in a transaction that holds the job against
// every other change. CheckLater returns false when the transaction holds
// the job so already; the engine then checks at once.
type LateChecker interface {
	CheckLater(job *store.Job) bool
}

// ChecksDue reports whether a job in the state given (its record, its
// counts, whether its rollout is running) calls for a change by its abort
// criteria or its completion: what CheckJob would act on, decided without
// a transaction.
func ChecksDue(job *store.Job, counts *store.ProcessDetails, rollingOut bool) bool {
	if job.Status != store.JobInProgress {
		return false
	}
	return completionDue(job, counts, rollingOut) || (job.AbortConfig != nil && store.AbortTriggered(job.AbortConfig, counts) != nil)
}

// CheckJob runs, in tx, the checks an execution's change calls for on its
// job: its abort criteria, then its completion. A backend whose
// transactions defer them (LateChecker) calls it in a transaction of its
// own.
func (e *Engine) CheckJob(tx Tx, jobID string) error {
	return e.run(tx, func(t *txn) error {
		if _, err := t.job(jobID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		js := t.state(jobID)
		js.checkAbort, js.checkComplete = true, true
		return nil
	})
}

// completionDue reports whether a SNAPSHOT job is due to become COMPLETED:
// none of its executions is pending and its rollout is over.
func completionDue(job *store.Job, counts *store.ProcessDetails, rollingOut bool) bool {
	return job.Status == store.JobInProgress && job.TargetSelection == store.Snapshot && counts.Pending() == 0 && !rollingOut
}

// maybeComplete marks a SNAPSHOT job COMPLETED once none of its executions
// is pending and its rollout is over.
func (t *txn) maybeComplete(job *store.Job, counts *store.ProcessDetails, rollingOut bool) {
	if !completionDue(job, counts, rollingOut) {
		return
	}
	job.Status = store.JobCompleted
	job.CompletedAt, job.LastUpdatedAt = t.now, t.now
	t.saveJob(job)
	t.jobEvent(job, "completed")
}

// checkAbort cancels the job when its abort criteria are met.
func (t *txn) checkAbort(job *store.Job, counts *store.ProcessDetails) error {
	if job.AbortConfig == nil || job.Status != store.JobInProgress {
		return nil
	}
	c := store.AbortTriggered(job.AbortConfig, counts)
	if c == nil {
		return nil
	}
	comment := store.AbortComment(c, counts)
	return t.cancelJob(job, false, nil, &comment)
}

// finished runs what follows an execution reaching a terminal status: a
// retry when the job's retry configuration allows one, then (when the
// transaction ends and the counts are known) the job's abort criteria and
// its completion.
func (t *txn) finished(th *thingTx, job *store.Job, e *store.Execution) error {
	if job.Status == store.JobInProgress && store.RetryAllowed(job.RetryConfig, e) {
		seq, err := t.tx.NextSeq()
		if err != nil {
			return err
		}
		if err := t.putExec(th, e, store.Retry(e, t.now, seq)); err != nil {
			return err
		}
	}
	js := t.state(job.JobID)
	js.checkAbort, js.checkComplete = true, true
	return nil
}
