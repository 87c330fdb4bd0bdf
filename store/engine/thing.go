package engine

import (
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// thingTx follows one thing through part of an operation. A thing has a
// queue per job namespace (store.Change); for each queue the operation
// looks at, thingTx keeps its head when the operation first looked and
// every entry the operation touched, so that close can tell whether
// notify or notify-next is due without reading the rest of the queue.
// Queues are looked at lazily: an operation on jobs without a namespace
// never reads another namespace's queue.
type thingTx struct {
	name   string
	queues []*queueTx

	q0       queueTx // the first queue looked at, without an allocation
	queueArr [1]*queueTx
}

// queueTx is what an operation knows of one of the thing's queues.
type queueTx struct {
	ns      string
	before  *store.PendingExecution // the head when first looked at; nil when the queue was empty
	touched []touch

	head     store.PendingExecution // before points here
	touchArr [2]touch
}

// touch is one execution whose queue entry the operation changed.
type touch struct {
	job     string
	n       int64
	was     bool                   // pending before the operation touched it
	pending bool                   // pending now
	now     store.PendingExecution // its entry now, when pending
}

// touch records an execution's change from old (nil: new) to cur (nil:
// deleted).
func (q *queueTx) touch(old, cur *store.Execution) {
	e := cur
	if e == nil {
		e = old
	}
	var tc *touch
	for i := range q.touched {
		if q.touched[i].job == e.JobID && q.touched[i].n == e.ExecutionNumber {
			tc = &q.touched[i]
			break
		}
	}
	if tc == nil {
		if q.touched == nil {
			q.touched = q.touchArr[:0]
		}
		q.touched = append(q.touched, touch{job: e.JobID, n: e.ExecutionNumber, was: old != nil && old.Status.Pending()})
		tc = &q.touched[len(q.touched)-1]
	}
	tc.pending = cur != nil && cur.Status.Pending()
	if tc.pending {
		tc.now = cur.Summary()
	}
}

// open locks a thing (making its row with create, for operations that may
// queue an execution) and starts following it.
func (t *txn) open(name string, create bool) (*thingTx, error) {
	if err := t.tx.LockThing(name, create); err != nil {
		return nil, err
	}
	return t.follow(name), nil
}

// follow starts following a thing the transaction holds.
func (t *txn) follow(name string) *thingTx {
	th := &t.thing0
	if th.name != "" {
		th = &thingTx{}
	}
	th.name = name
	return th
}

// queueOf returns what the operation knows of the thing's queue of
// namespace ns, reading its head the first time: before the operation
// writes to it.
func (t *txn) queueOf(th *thingTx, ns string) (*queueTx, error) {
	for _, q := range th.queues {
		if q.ns == ns {
			return q, nil
		}
	}
	head, err := t.r.Queue(th.name, ns, nil, 1)
	if err != nil {
		return nil, err
	}
	q := &th.q0
	if len(th.queues) > 0 {
		q = &queueTx{}
	} else {
		th.queues = th.queueArr[:0]
	}
	q.ns = ns
	if len(head) > 0 {
		q.head = head[0]
		q.before = &q.head
	}
	th.queues = append(th.queues, q)
	return q, nil
}

func sameEntry(a, b *store.PendingExecution) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.JobID == b.JobID && a.ExecutionNumber == b.ExecutionNumber
}

// close records, for each of the thing's queues the operation changed,
// the change and the notifications it calls for: notify when an execution
// joined or left the queue, notify-next when its head changed.
func (t *txn) close(th *thingTx) error {
	for _, q := range th.queues {
		if err := t.closeQueue(th, q); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) closeQueue(th *thingTx, q *queueTx) error {
	if len(q.touched) == 0 {
		return nil
	}
	head, err := t.headAfter(th, q)
	if err != nil {
		return err
	}
	notify := false
	for _, tc := range q.touched {
		if tc.was != tc.pending {
			notify = true
			break
		}
	}
	next := !sameEntry(q.before, head)
	c := store.Change{ThingName: th.name, Namespace: q.ns, At: t.now}
	if notify {
		list, err := t.queue(th.name, q.ns, store.MaxPendingListed)
		if err != nil {
			return err
		}
		c.Notify, c.Pending = true, list
	}
	if next {
		c.NotifyNext = true
		if head != nil {
			e, err := t.r.Execution(th.name, head.JobID, head.ExecutionNumber)
			if err != nil {
				return err
			}
			if e == nil {
				return store.ErrNoExecutionNumber(head.ExecutionNumber, head.JobID, th.name)
			}
			doc, err := t.document(head.JobID, head.JobSeq)
			if err != nil {
				return err
			}
			c.Next, c.NextDocument = e, doc
		}
	}
	t.tx.ThingChanged(c, head)
	return nil
}

// headAfter works out the head of a queue after the operation. The head
// it was first looked at with stays the head unless the operation removed
// it or touched an entry that now sorts before it; only when it was
// removed is the queue read, and an execution found there whose job's
// cancellation or deletion is not written out yet is written out first.
func (t *txn) headAfter(th *thingTx, q *queueTx) (*store.PendingExecution, error) {
	head := q.before
	for _, tc := range q.touched {
		if q.before != nil && tc.job == q.before.JobID && tc.n == q.before.ExecutionNumber {
			if !tc.pending {
				return t.effectiveHead(th, q)
			}
			head = nil // its entry as it is now comes below
			break
		}
	}
	for i := range q.touched {
		if tc := &q.touched[i]; tc.pending && (head == nil || store.ComparePending(&tc.now, head) < 0) {
			head = &tc.now
		}
	}
	return head, nil
}

// effectiveHead reads the head of a queue, writing out first the
// executions there that a canceled or deleted job has ended.
func (t *txn) effectiveHead(th *thingTx, q *queueTx) (*store.PendingExecution, error) {
	if h := q.before; h != nil && len(q.touched) == 0 && !t.r.Settling(h.JobID) {
		return h, nil
	}
	for {
		list, err := t.r.Queue(th.name, q.ns, nil, 1)
		if err != nil || len(list) == 0 {
			return nil, err
		}
		h := &list[0]
		if !t.r.Settling(h.JobID) {
			return h, nil
		}
		e, err := t.r.Execution(th.name, h.JobID, h.ExecutionNumber)
		if err != nil {
			return nil, err
		}
		if e == nil {
			return nil, store.ErrNoExecutionNumber(h.ExecutionNumber, h.JobID, th.name)
		}
		cur, err := t.current(th, e)
		if err != nil {
			return nil, err
		}
		if cur != nil && cur.Status.Pending() {
			return h, nil
		}
	}
}

// effect returns what the status of an execution's job does to it (see
// store.JobStateEffect), reading the job only when the backend says it
// may be settling.
func (t *txn) effect(jobID string, seq uint64, status store.ExecutionStatus) (*store.Job, store.JobEffect, error) {
	if !t.r.Settling(jobID) {
		return nil, store.EffectNone, nil
	}
	job, err := t.jobHead(jobID)
	if err != nil {
		return nil, store.EffectNone, err
	}
	return job, store.JobStateEffect(job, &store.Execution{JobSeq: seq, Status: status}), nil
}

// current writes out what a canceled or deleted job has done to an
// execution the operation is about to use, and returns the execution as
// it now stands: nil when it was deleted.
func (t *txn) current(th *thingTx, e *store.Execution) (*store.Execution, error) {
	job, eff, err := t.effect(e.JobID, e.JobSeq, e.Status)
	if err != nil {
		return nil, err
	}
	switch eff {
	case store.EffectCancel:
		c := store.CancelByJob(e, job)
		if err := t.putExec(th, e, c); err != nil {
			return nil, err
		}
		return c, nil
	case store.EffectDelete:
		return nil, t.dropExec(th, e)
	}
	return e, nil
}

// effective returns e as it reads given its job's status, without writing
// anything: executions of a canceled job that are not written out yet
// read as CANCELED, those of a job being deleted (or gone) as missing
// (nil).
func (t *txn) effective(e *store.Execution) (*store.Execution, error) {
	job, eff, err := t.effect(e.JobID, e.JobSeq, e.Status)
	switch {
	case err != nil:
		return nil, err
	case eff == store.EffectCancel:
		return store.CancelByJob(e, job), nil
	case eff == store.EffectDelete:
		return nil, nil
	}
	return e, nil
}

// queue returns the first limit entries of the thing's queue of
// namespace ns as they read: entries a canceled or deleted job has ended
// are left out.
func (t *txn) queue(thing, ns string, limit int) ([]store.PendingExecution, error) {
	var out []store.PendingExecution
	var after *store.PendingExecution
	for len(out) < limit {
		want := limit - len(out)
		got, err := t.r.Queue(thing, ns, after, want)
		if err != nil {
			return nil, err
		}
		if out == nil && t.allEffective(got) {
			return got, nil
		}
		for i := range got {
			_, eff, err := t.effect(got[i].JobID, got[i].JobSeq, got[i].Status)
			if err != nil {
				return nil, err
			}
			if eff == store.EffectNone {
				out = append(out, got[i])
			}
		}
		if len(got) < want {
			break
		}
		after = &got[len(got)-1]
	}
	return out, nil
}

// allEffective reports whether no job's status ends any of entries.
func (t *txn) allEffective(entries []store.PendingExecution) bool {
	for i := range entries {
		if t.r.Settling(entries[i].JobID) {
			return false
		}
	}
	return true
}

// putExec writes an execution's new state. old is the state it replaces:
// the same execution before the change, or for a new execution the
// previous execution of the same job on the thing (nil if none), whose
// place in the job's counts it takes.
func (t *txn) putExec(th *thingTx, old, cur *store.Execution) error {
	var same *store.Execution
	if old != nil && old.ExecutionNumber == cur.ExecutionNumber {
		same = old
	}
	var q *queueTx
	if cur.Status.Pending() || (same != nil && same.Status.Pending()) {
		var err error
		if q, err = t.queueOf(th, cur.Namespace); err != nil {
			return err
		}
	}
	if err := t.tx.PutExecution(same, cur); err != nil {
		return err
	}
	if q != nil {
		q.touch(same, cur)
	}
	switch {
	case old == nil:
		t.addCount(cur.JobID, cur.Status, 1)
	case old.Status != cur.Status:
		t.addCount(cur.JobID, old.Status, -1)
		t.addCount(cur.JobID, cur.Status, 1)
	}
	var od time.Time
	if same != nil {
		od = same.Deadline()
		if !same.Status.Terminal() && cur.Status.Terminal() {
			t.executionEvent(cur, store.ExecutionEventOperation(cur.Status))
		}
	}
	if !od.Equal(cur.Deadline()) {
		t.tx.TimersChanged()
	}
	return nil
}

// dropExec deletes an execution; counts are the caller's business.
func (t *txn) dropExec(th *thingTx, e *store.Execution) error {
	var q *queueTx
	if e.Status.Pending() {
		var err error
		if q, err = t.queueOf(th, e.Namespace); err != nil {
			return err
		}
	}
	if err := t.tx.DeleteExecution(e); err != nil {
		return err
	}
	if q != nil {
		q.touch(e, nil)
	}
	t.executionEvent(e, "deleted")
	if !e.Deadline().IsZero() {
		t.tx.TimersChanged()
	}
	return nil
}

// exec loads one execution, or fails with ErrNotFound.
func (t *txn) exec(thing, job string, n int64) (*store.Execution, error) {
	e, err := t.r.Execution(thing, job, n)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, store.ErrNoExecutionNumber(n, job, thing)
	}
	return e, nil
}

// latestExec loads the execution of job on thing with the highest number,
// or fails with ErrNotFound.
func (t *txn) latestExec(thing, job string) (*store.Execution, error) {
	e, err := t.r.LatestExecution(thing, job)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, store.ErrNoExecution(job, thing)
	}
	return e, nil
}

// findExec loads execution n of job on thing, or the latest when n is nil.
func (t *txn) findExec(thing, job string, n *int64) (*store.Execution, error) {
	if n != nil {
		return t.exec(thing, job, *n)
	}
	return t.latestExec(thing, job)
}
