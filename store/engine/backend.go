package engine

import (
	"context"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// Backend is what a storage backend gives the engine: transactions over
// its records. A backend's Store embeds the Engine for the operations of
// store.Store and adds what only it knows (Ping, Close, delivering
// changes).
type Backend interface {
	// Update runs fn in one write transaction and commits it, then hands
	// the changes fn emitted to the change handler. fn may run more than
	// once (a batch redone, a conflict retried): it must keep its results
	// in variables it resets at its start. A *store.Error from fn is a
	// rejection: what fn wrote before it is committed all the same. Any
	// other error discards the transaction.
	Update(ctx context.Context, op string, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction that sees one snapshot.
	View(ctx context.Context, op string, fn func(r Reader) error) error
	// StepNow runs one step of a job's background task at once (after
	// CancelJob and DeleteJob, so that the first things are settled when
	// the call returns). A failure is the backend's to log: its task loop
	// carries on.
	StepNow(ctx context.Context, jobID string)
}

// LockMode says how a read locks the row it reads, where the backend has
// row locks (PostgreSQL); a single-writer backend ignores it.
type LockMode uint8

// The lock modes.
const (
	NoLock     LockMode = iota
	LockShare           // the row may not change or go away
	LockUpdate          // the transaction will change or delete the row
)

// Cursor is a position in a list of executions: a name (the thing, or the
// job) and an execution number. The zero Cursor is before the first.
type Cursor struct {
	Name string `json:"name,omitempty"`
	N    int64  `json:"n,omitempty"`
}

// Timer is an entry of the timer index: an execution that times out at
// Deadline unless it changed since.
type Timer struct {
	Thing, Job string
	N          int64
	Deadline   time.Time
}

// Reader reads records. Missing records are reported as nil (or false),
// not as errors: the engine words the errors.
type Reader interface {
	// Job returns a job's record without its targets and counts. The
	// caller may change it.
	Job(id string) (*store.Job, error)
	// JobHead returns a job as far as the execution rules need it (Seq,
	// Status, ForceCanceled, LastUpdatedAt), or nil. It may be the whole
	// record; the caller must not change it.
	JobHead(id string) (*store.Job, error)
	// JobTargets returns a job's target ARNs.
	JobTargets(id string) ([]string, error)
	// JobCounts returns a job's process details as committed (and, in a
	// write transaction, as this transaction last wrote them).
	JobCounts(id string) (store.ProcessDetails, error)
	// JobTask returns a job's unfinished background work, or nil.
	JobTask(id string) (*Task, error)
	// Document returns a job's document (before documentParameters were
	// substituted, with before), and whether there is one.
	Document(id string, seq uint64, before bool) (string, bool, error)
	// EachJob calls fn for the jobs that pass f, newest first, from the
	// job with sequence number from (0: the newest), until fn returns
	// false. concurrent is the job's isConcurrent.
	EachJob(from uint64, f *JobFilter, fn func(job *store.Job, concurrent bool) (bool, error)) error
	// GroupJobs lists the jobs that target any of groups, each once,
	// sorted.
	GroupJobs(groups []string) ([]string, error)
	// Settling reports whether a job may have executions that its
	// cancellation or deletion has not written out yet. False lets the
	// engine skip reading the job when it meets one of its executions.
	Settling(job string) bool

	// Execution returns one execution, or nil.
	Execution(thing, job string, n int64) (*store.Execution, error)
	// LatestExecution returns the execution of job on thing with the
	// highest number, or nil.
	LatestExecution(thing, job string) (*store.Execution, error)
	// EachExecutionOfJob calls fn for the executions of job by thing name
	// and number, after the cursor, until fn returns false.
	EachExecutionOfJob(job string, after Cursor, fn func(e *store.Execution) (bool, error)) error
	// EachExecutionOfThing calls fn for the executions of thing (of job
	// only, when job is set) by job id and number, after the cursor,
	// until fn returns false.
	EachExecutionOfThing(thing, job string, after Cursor, fn func(e *store.Execution) (bool, error)) error
	// Queue returns up to limit entries of the thing's queue of job
	// namespace ns (its pending executions whose Namespace is ns, in
	// "next" order: IN_PROGRESS first, then by QueueSeq), those after
	// after, or from the head when after is nil.
	Queue(thing, ns string, after *store.PendingExecution, limit int) ([]store.PendingExecution, error)
	// QueueNamespaces lists the namespaces whose queues on the thing may
	// hold entries, in any order.
	QueueNamespaces(thing string) ([]string, error)

	// Thing returns a registered thing, or nil.
	Thing(name string, lock LockMode) (*store.Thing, error)
	// EachThing calls fn for the registered things after the name after,
	// by name, until fn returns false.
	EachThing(after string, fn func(th *store.Thing) (bool, error)) error
	// Group returns a thing group with its ancestors, or nil.
	Group(name string, lock LockMode) (*store.ThingGroup, error)
	// GroupNames lists every group's name, or only parent's children
	// when parent is set, in any order.
	GroupNames(parent string) ([]string, error)
	// Subtree returns group and all its descendants, the group first.
	Subtree(group string) ([]string, error)
	// GroupThings returns the direct members of groups, each once,
	// sorted.
	GroupThings(groups []string) ([]string, error)
	// GroupsOf returns the groups a thing belongs to directly, sorted.
	GroupsOf(thing string) ([]string, error)
	// EnclosingGroups returns every group that contains the thing: its
	// direct groups and their ancestors.
	EnclosingGroups(thing string) (map[string]bool, error)

	// Template returns a job template, or nil.
	Template(id string) (*store.JobTemplate, error)
	// EachTemplate calls fn for the templates after the id after, by id,
	// until fn returns false.
	EachTemplate(after string, fn func(t *store.JobTemplate) (bool, error)) error

	// EventConfig returns the stored event configuration (zero when none
	// was ever stored).
	EventConfig(lock LockMode) (store.EventConfigurations, error)
}

// Tx is one write transaction: the reads of Reader, which see the
// transaction's own writes, and the writes. Writes may be sent to the
// database later (PostgreSQL batches them with the next read); errors
// they meet surface then, or at the commit.
type Tx interface {
	Reader

	// Now is the transaction's time.
	Now() time.Time
	// NextSeq hands out the next sequence number (job creation order and
	// queue order). Take it after locking the thing it orders.
	NextSeq() (uint64, error)
	// ReserveSeqs tells the backend that n sequence numbers are about to
	// be taken, so that it can fetch them at once.
	ReserveSeqs(n int) error
	// Full reports whether the transaction holds as much as a background
	// step should write; the step carries on in the next one.
	Full() bool

	// LockThings takes the row locks of things (in name order, where the
	// backend has locks) before the transaction reads or writes their
	// executions, and returns the names it holds: with skipLocked, things
	// another transaction holds are left out. create makes the rows of
	// things that never had an execution. A thing already held is held.
	LockThings(names []string, create, skipLocked bool) ([]string, error)
	// LockThing is LockThings for one thing, waiting for its lock.
	LockThing(name string, create bool) error
	// ThingChanged records that the operation changed a thing's queue
	// (that of namespace c.Namespace): c carries the notifications the
	// change calls for (c.Notify and c.NotifyNext may both be false),
	// head is the queue's head after it (nil when empty).
	ThingChanged(c store.Change, head *store.PendingExecution)
	// Emit records a change (an event message) for the change handler.
	Emit(c store.Change)
	// AfterCommit runs f once the transaction has committed.
	AfterCommit(f func())
	// TimersChanged says that the timer index changed; TasksChanged that
	// a job's task did (the background loops look again).
	TimersChanged()
	TasksChanged()

	// InsertJob stores a new job (record, targets, document and the
	// document before substitution when it differs, creation order, zero
	// counts, no task). It reports false when a job with the id exists.
	InsertJob(job *store.Job, doc, before string) (bool, error)
	// WriteJob writes what the transaction changed of a job and returns
	// the job's counts with those changes and whether its task, as
	// committed with this transaction, is rolling out. It fails with a
	// retryable error when the job changed under the transaction.
	WriteJob(w *JobWrite) (counts store.ProcessDetails, rollingOut bool, err error)
	// DeleteJob removes a job whose executions are gone, with everything
	// kept for it (document, counts, order, task, rollout targets, group
	// index), and returns its last counts.
	DeleteJob(id string) (store.ProcessDetails, error)
	// AddGroupJob records that job targets group.
	AddGroupJob(group, job string) error
	// DeletionsInProgress counts the jobs being deleted.
	DeletionsInProgress() (int, error)
	// BeginSettle marks a job as having executions its cancellation
	// (or, with deleting, deletion) has yet to write out; EndSettle, once
	// the transaction that wrote out the last of them commits, unmarks it.
	BeginSettle(job string, deleting bool)
	EndSettle(job string)
	// SetRolloutTargets replaces the things a job's rollout visits, in
	// order; RolloutTargets reads limit of them from position from.
	SetRolloutTargets(job string, things []string) error
	RolloutTargets(job string, from, limit int) ([]string, error)
	DropRolloutTargets(job string) error

	// PutExecution writes an execution with its index entries (by job,
	// timer, the thing's queue of its Namespace); old is its previous
	// state, nil for a new execution.
	PutExecution(old, cur *store.Execution) error
	// DeleteExecution removes an execution with its index entries.
	DeleteExecution(e *store.Execution) error

	// InsertThing stores a thing the transaction found unregistered; a
	// backend on which another transaction may have registered it since
	// fails with an error that makes the operation run again.
	// DeleteThing removes one.
	InsertThing(th *store.Thing) error
	DeleteThing(name string) error
	// InsertGroup stores a group the transaction found missing (and its
	// place under its parent), as InsertThing does. DeleteGroup removes
	// one and the jobs' references to it.
	InsertGroup(g *store.ThingGroup) error
	DeleteGroup(g *store.ThingGroup) error
	// AddMember and RemoveMember change a group's direct members; they
	// report whether anything changed.
	AddMember(group, thing string) (bool, error)
	RemoveMember(group, thing string) (bool, error)
	// InsertTemplate stores a new template; it reports false when one
	// with the id exists. DeleteTemplate reports whether there was one.
	InsertTemplate(t *store.JobTemplate) (bool, error)
	DeleteTemplate(id string) (bool, error)
	// SetEventConfig stores the event configuration.
	SetEventConfig(cfg store.EventConfigurations) error
}

// JobWrite is what a transaction changed of one job.
type JobWrite struct {
	ID string
	// Job is the new record, when it changed (its Targets are ignored).
	Job *store.Job
	// Targets are the new target ARNs, when they changed.
	Targets []string
	// Task, when TaskSet, replaces the job's task (nil: none); Wake is
	// when its next step is due.
	Task    *Task
	TaskSet bool
	Wake    time.Time
	// Delta moves the counts.
	Delta store.ProcessDetails
}

// Task is the unfinished background work of one job.
type Task struct {
	Schedule *ScheduleTask `json:"schedule,omitempty"`
	Rollout  *RolloutTask  `json:"rollout,omitempty"`
	Settle   *SettleTask   `json:"settle,omitempty"`
}

// ScheduleTask holds a scheduled job's start and end.
type ScheduleTask struct {
	Start       time.Time `json:"start,omitzero"`
	End         time.Time `json:"end,omitzero"`
	EndBehavior string    `json:"endBehavior,omitempty"`
}

// RolloutTask walks the job's remaining targets queueing an execution for
// each, at the job's rollout rate. The pacing state is stored with it, so
// a restarted broker (or another node) continues at the rate the rollout
// had, without a burst.
type RolloutTask struct {
	Next     int       `json:"next"`
	Total    int       `json:"total"`
	Notified int64     `json:"notified"` // executions queued by the rollout
	Tokens   float64   `json:"tokens"`   // things that may be queued now
	Refilled time.Time `json:"refilled"` // when Tokens was last topped up
}

// SettleTask walks the job's executions writing out a cancellation or a
// deletion; After is the last execution handled. (Stores written before
// the engine kept the position under other names; a task that finds none
// starts over, which writes out nothing twice.)
type SettleTask struct {
	Delete bool   `json:"delete,omitempty"`
	After  Cursor `json:"cursor,omitzero"`
}

// Concurrent reports whether the task is rolling out or settling
// (isConcurrent).
func (t *Task) Concurrent() bool { return t != nil && (t.Rollout != nil || t.Settle != nil) }

// StepResult says when a job's task wants to run again.
type StepResult struct {
	Done bool      // nothing left
	Wake time.Time // zero: as soon as possible
}
