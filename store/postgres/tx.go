package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsbroker/jobsbroker/store"
)

// tx is one database transaction of an operation, on one pooled
// connection. Statements that return nothing the operation needs (BEGIN,
// writes, notifications, COMMIT) are queued and sent in the same round
// trip as the next read (a pgx batch, which the server runs in order), so
// a read always sees the transaction's own writes and most operations
// cost a few round trips.
type tx struct {
	ctx   context.Context
	s     *Store
	conn  *pgxpool.Conn
	batch pgx.Batch
	// sent counts the statements the server has run.
	sent int
}

// queue queues a statement whose result is not needed.
func (t *tx) queue(sql string, args ...any) { t.batch.Queue(sql, args...) }

// batchRows are the rows of the last statement of a batch; closing them
// finishes the batch.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

// Close closes the rows and finishes the batch.
func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		if err := r.br.Close(); err != nil && r.err == nil {
			r.err = err
		}
		r.br = nil
	}
}

// Err returns the rows' error, or the batch's.
func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// sendQueued sends the queued statements followed by sql, and returns the
// rows of sql.
func (t *tx) sendQueued(sql string, args []any) (pgx.Rows, error) {
	if t.batch.Len() == 0 {
		t.sent++
		return t.conn.Query(t.ctx, sql, args...)
	}
	t.batch.Queue(sql, args...)
	b := t.batch
	t.batch = pgx.Batch{}
	br := t.conn.SendBatch(t.ctx, &b)
	for range b.Len() - 1 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
		t.sent++
	}
	t.sent++
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// batchQuery is one query of queryMany and what to do with its rows.
type batchQuery struct {
	sql  string
	args []any
	scan func(rows pgx.Rows) error
}

// queryMany sends the queued statements and several queries in one round
// trip; the server runs them in order.
func (t *tx) queryMany(qs ...batchQuery) error {
	for _, q := range qs {
		t.batch.Queue(q.sql, q.args...)
	}
	b := t.batch
	t.batch = pgx.Batch{}
	br := t.conn.SendBatch(t.ctx, &b)
	defer br.Close()
	for range b.Len() - len(qs) {
		if _, err := br.Exec(); err != nil {
			return err
		}
		t.sent++
	}
	for _, q := range qs {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		t.sent++
		err = q.scan(rows)
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return err
		}
	}
	return br.Close()
}

// flush sends the queued statements.
func (t *tx) flush() error {
	if t.batch.Len() == 0 {
		return nil
	}
	b := t.batch
	t.batch = pgx.Batch{}
	br := t.conn.SendBatch(t.ctx, &b)
	for range b.Len() {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		t.sent++
	}
	return br.Close()
}

// query sends the queued statements and runs a query.
func (t *tx) query(sql string, args ...any) (pgx.Rows, error) { return t.sendQueued(sql, args) }

// queryRow sends the queued statements and runs a one-row query; it
// returns pgx.ErrNoRows when there is none.
func (t *tx) queryRow(sql string, args []any, dest ...any) error {
	rows, err := t.sendQueued(sql, args)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// execNow sends the queued statements and runs one more at once,
// returning the rows it affected.
func (t *tx) execNow(sql string, args ...any) (int64, error) {
	rows, err := t.sendQueued(sql, args)
	if err != nil {
		return 0, err
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return rows.CommandTag().RowsAffected(), nil
}

func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func decode[T any](b []byte, what string) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, nil
}

// ---- jobs ----

// jobCols are the columns every job load reads, in jobState.scan order.
const jobCols = "rev, seq, status, force_canceled, updated_ns"

// jobState is what a transaction knows about one job.
type jobState struct {
	id      string
	missing bool // no such job
	rev     int64
	seq     uint64
	status  store.JobStatus
	force   bool
	updated time.Time
	job     *store.Job // the full record, once loaded

	targets      []string // once loaded
	targetsDirty bool

	task       *task // once loaded (nil: no task)
	taskLoaded bool
	dueAt      time.Time // when the task's step was due, as loaded

	nextTargets []string // the rollout's next things, read with the job
	prefetched  bool
	taskSet     bool // write task and taskWake
	taskWake    time.Time

	delta    store.ProcessDetails
	counted  bool // delta holds changes
	counts   store.ProcessDetails
	known    bool // counts hold the committed counts, this transaction's included
	rollout  bool // the job's task, as committed with this transaction, is rolling out
	dirty    bool // the record changed
	inserted bool
	deleted  bool

	checkComplete bool
	checkAbort    bool
	jobEvents     []string
}

// head returns the job as far as the execution rules need it (status,
// sequence number, force, last update), or nil if it does not exist.
func (js *jobState) head() *store.Job {
	if js == nil || js.missing {
		return nil
	}
	if js.job != nil {
		return js.job
	}
	return &store.Job{JobID: js.id, Seq: js.seq, Status: js.status, ForceCanceled: js.force, LastUpdatedAt: js.updated}
}

// noteJob records a job's head columns as read. A second read that finds
// another revision means the job changed during the transaction.
func (w *wtx) noteJob(id string, found bool, rev int64, seq int64, status string, force bool, updated int64) (*jobState, error) {
	js := w.jobs[id]
	if js != nil {
		if js.inserted || js.deleted {
			return js, nil
		}
		if js.missing != !found || (found && js.rev != rev) {
			return nil, errConflict
		}
		return js, nil
	}
	js = &jobState{id: id, missing: !found}
	if found {
		js.rev, js.seq, js.status, js.force, js.updated = rev, uint64(seq), store.JobStatus(status), force, fromNanos(updated)
	}
	w.jobs[id] = js
	return js, nil
}

// jobHead returns what the transaction knows of a job, reading its head
// columns if it knows nothing yet.
func (w *wtx) jobHead(id string) (*jobState, error) {
	if js := w.jobs[id]; js != nil {
		return js, nil
	}
	var rev, seq, updated int64
	var status string
	var force bool
	err := w.queryRow("SELECT "+jobCols+" FROM jobs WHERE job_id = $1", []any{id}, &rev, &seq, &status, &force, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return w.noteJob(id, false, 0, 0, "", false, 0)
	}
	if err != nil {
		return nil, err
	}
	return w.noteJob(id, true, rev, seq, status, force, updated)
}

// job loads a job's full record (without targets or counts). The
// transaction keeps it: callers change it and call saveJob.
func (w *wtx) job(id string) (*store.Job, error) { return w.loadJob(id, 0) }

// loadJob is job that, with prefetch > 0, also reads the next prefetch
// things of the job's rollout (for a background step).
func (w *wtx) loadJob(id string, prefetch int) (*store.Job, error) {
	js := w.jobs[id]
	if js != nil && js.job != nil {
		return js.job, nil
	}
	if js != nil && js.missing {
		return nil, store.Errorf(store.ErrNotFound, "job %s does not exist", id)
	}
	var rev, seq, updated int64
	var status string
	var force bool
	var rec, taskJSON []byte
	var due *int64
	var next []string
	err := w.queryRow("SELECT "+jobCols+`, record, task, task_wake,
			CASE WHEN $2 > 0 AND task ? 'rollout' THEN (SELECT array_agg(thing_name ORDER BY pos) FROM (
				SELECT thing_name, pos FROM rollout_targets WHERE job_id = $1 AND pos >= (task->'rollout'->>'next')::int
				ORDER BY pos LIMIT $2) n) END
		FROM jobs WHERE job_id = $1`, []any{id, prefetch},
		&rev, &seq, &status, &force, &updated, &rec, &taskJSON, &due, &next)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := w.noteJob(id, false, 0, 0, "", false, 0); err != nil {
			return nil, err
		}
		return nil, store.Errorf(store.ErrNotFound, "job %s does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	js, err = w.noteJob(id, true, rev, seq, status, force, updated)
	if err != nil {
		return nil, err
	}
	job, err := decode[store.Job](rec, "job "+id)
	if err != nil {
		return nil, err
	}
	js.job = job
	if prefetch > 0 {
		js.nextTargets, js.prefetched = next, true
	}
	if !js.taskLoaded {
		js.taskLoaded = true
		if due != nil {
			js.dueAt = fromNanos(*due)
		}
		if taskJSON != nil {
			if js.task, err = decode[task](taskJSON, "task of job "+id); err != nil {
				return nil, err
			}
		}
	}
	return job, nil
}

// jobTask returns a job's background task (nil when it has none).
func (w *wtx) jobTask(id string) (*task, error) {
	if _, err := w.job(id); err != nil {
		return nil, err
	}
	return w.jobs[id].task, nil
}

// setTask replaces a job's task; wake is when it wants to run (zero: now).
func (w *wtx) setTask(id string, t *task, wake time.Time) {
	js := w.jobs[id]
	js.task, js.taskLoaded, js.taskSet = t, true, true
	if wake.IsZero() {
		wake = w.now
	}
	js.taskWake = wake
}

// jobTargets returns a job's target ARNs.
func (w *wtx) jobTargets(id string) ([]string, error) {
	js, err := w.jobHead(id)
	if err != nil {
		return nil, err
	}
	if js.targets != nil || js.missing {
		return js.targets, nil
	}
	var raw []byte
	if err := w.queryRow("SELECT targets FROM jobs WHERE job_id = $1", []any{id}, &raw); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		return nil, err
	}
	var targets []string
	if err := json.Unmarshal(raw, &targets); err != nil {
		return nil, fmt.Errorf("decode targets of job %s: %w", id, err)
	}
	js.targets = targets
	return targets, nil
}

// saveJob records that the job's record changed; it is written when the
// transaction ends.
func (w *wtx) saveJob(j *store.Job) {
	js := w.jobs[j.JobID]
	js.job, js.dirty = j, true
	js.status, js.force, js.updated = j.Status, j.ForceCanceled, j.LastUpdatedAt
}

// jobEvent emits a job event when the transaction ends, with the job's
// counts as they then are.
func (w *wtx) jobEvent(j *store.Job, operation string) {
	if !w.s.events.Load().Job {
		return
	}
	js := w.jobs[j.JobID]
	js.jobEvents = append(js.jobEvents, operation)
}

// addCount moves a job's counts.
func (w *wtx) addCount(jobID string, s store.ExecutionStatus, delta int64) error {
	js, err := w.jobHead(jobID)
	if err != nil {
		return err
	}
	js.delta.Add(s, delta)
	js.counted = true
	if js.known {
		js.counts.Add(s, delta)
	}
	return nil
}

// committedCounts reads a job's counts as committed (this transaction's
// unflushed changes not included); for pacing rollouts.
func (w *wtx) committedCounts(jobID string) (*store.ProcessDetails, error) {
	var p store.ProcessDetails
	err := w.queryRow("SELECT n_queued, n_in_progress, n_succeeded, n_failed, n_rejected, n_canceled, n_removed, n_timed_out FROM jobs WHERE job_id = $1",
		[]any{jobID}, &p.Queued, &p.InProgress, &p.Succeeded, &p.Failed, &p.Rejected, &p.Canceled, &p.Removed, &p.TimedOut)
	if errors.Is(err, pgx.ErrNoRows) {
		return &p, nil
	}
	return &p, err
}

// document returns a job's document.
func (t *tx) document(job string, seq uint64) (string, error) {
	if d, ok := t.s.docs.Get(seq); ok {
		return d, nil
	}
	var doc string
	err := t.queryRow("SELECT document FROM jobs WHERE job_id = $1 AND seq = $2", []any{job, int64(seq)}, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", store.Errorf(store.ErrNotFound, "job %s has no document", job)
	}
	if err != nil {
		return "", err
	}
	t.s.docs.Put(seq, doc)
	return doc, nil
}

// ---- executions ----

type execKey struct {
	thing, job string
	n          int64
}

func keyOf(e *store.Execution) execKey { return execKey{e.ThingName, e.JobID, e.ExecutionNumber} }

// exec loads one execution.
func (w *wtx) exec(thing, job string, n int64) (*store.Execution, error) {
	k := execKey{thing, job, n}
	if e, ok := w.execs[k]; ok {
		if e == nil {
			return nil, store.Errorf(store.ErrNotFound, "no execution %d of job %s exists for thing %s", n, job, thing)
		}
		return e, nil
	}
	var rec []byte
	err := w.queryRow("SELECT record FROM executions WHERE thing_name = $1 AND job_id = $2 AND execution_number = $3",
		[]any{thing, job, n}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.Errorf(store.ErrNotFound, "no execution %d of job %s exists for thing %s", n, job, thing)
	}
	if err != nil {
		return nil, err
	}
	e, err := decode[store.Execution](rec, "execution")
	if err != nil {
		return nil, err
	}
	w.execs[k] = e
	return e, nil
}

// latestExec loads the execution of job on thing with the highest number.
// A pending execution is always the latest of its job, which set (the
// thing's pending set) tells without a read.
func (w *wtx) latestExec(thing, job string, set store.PendingSet) (*store.Execution, error) {
	for _, p := range set {
		if p.JobID == job {
			return w.exec(thing, job, p.ExecutionNumber)
		}
	}
	var rec []byte
	err := w.queryRow(`SELECT record FROM executions WHERE thing_name = $1 AND job_id = $2
		ORDER BY execution_number DESC LIMIT 1`, []any{thing, job}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.Errorf(store.ErrNotFound, "no execution of job %s exists for thing %s", job, thing)
	}
	if err != nil {
		return nil, err
	}
	e, err := decode[store.Execution](rec, "execution")
	if err != nil {
		return nil, err
	}
	w.execs[keyOf(e)] = e
	return e, nil
}

// findExec loads execution n of job on thing, or the latest when n is nil.
func (w *wtx) findExec(thing, job string, n *int64, set store.PendingSet) (*store.Execution, error) {
	if n != nil {
		return w.exec(thing, job, *n)
	}
	return w.latestExec(thing, job, set)
}

func (w *wtx) saveExec(e *store.Execution) error {
	rec, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode execution: %w", err)
	}
	w.queue(`INSERT INTO executions (thing_name, job_id, execution_number, status, deadline_ns, record)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (thing_name, job_id, execution_number) DO UPDATE
		SET status = EXCLUDED.status, deadline_ns = EXCLUDED.deadline_ns, record = EXCLUDED.record`,
		e.ThingName, e.JobID, e.ExecutionNumber, string(e.Status), nanos(e.Deadline()), rec)
	w.execs[keyOf(e)] = e
	w.writes++
	return nil
}

// ---- things ----

// thingState is what a transaction knows about one thing.
type thingState struct {
	name      string
	rev       int64 // as locked, then as this transaction leaves it
	lockedRev int64 // as locked
	set       store.PendingSet
	head      *store.Execution // the head of set once it changed
	headDoc   string
	changed   bool // the pending set changed: rev moves by one
	notify    bool // a change with notify was produced
	next      bool // a change with notify-next was produced
}

// thingTx follows one thing's pending set through part of an operation,
// so that closeThing can tell whether notify or notify-next is due.
type thingTx struct {
	name   string
	before store.PendingSet
	set    store.PendingSet
}

// pendingQuery reads the pending executions of things with what the
// execution rules need of their jobs.
const pendingQuery = `SELECT e.record, j.rev, j.seq, j.status, j.force_canceled, j.updated_ns
	FROM executions e LEFT JOIN jobs j ON j.job_id = e.job_id
	WHERE e.thing_name = ANY($1) AND e.status IN ('QUEUED', 'IN_PROGRESS')`

// loadThings locks (or, with skipLocked, tries to lock) the things not yet
// known to the transaction, in name order, and reads their pending sets.
// create makes the rows of things that have none. It returns the names it
// holds: with skipLocked, those locked by others are left out.
func (w *wtx) loadThings(names []string, create, skipLocked bool) ([]string, error) {
	return w.loadThingsSeqs(names, create, skipLocked, 0)
}

// loadThingsSeqs is loadThings that also fetches up to seqs sequence
// numbers (see nextSeq), in the round trip that reads the pending sets.
func (w *wtx) loadThingsSeqs(names []string, create, skipLocked bool, seqs int) ([]string, error) {
	var fresh []string
	for _, n := range names {
		if _, ok := w.things[n]; !ok && !slices.Contains(fresh, n) {
			fresh = append(fresh, n)
		}
	}
	if len(fresh) > 0 {
		slices.Sort(fresh)
		if create {
			w.queue("INSERT INTO thing_state (thing_name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", fresh)
		}
		q := "SELECT thing_name, rev FROM thing_state WHERE thing_name = ANY($1) ORDER BY thing_name FOR UPDATE"
		if skipLocked {
			q += " SKIP LOCKED"
		}
		rows, err := w.query(q, fresh)
		if err != nil {
			return nil, err
		}
		locked := map[string]int64{}
		var name string
		var rev int64
		_, err = pgx.ForEachRow(rows, []any{&name, &rev}, func() error {
			locked[name] = rev
			return nil
		})
		if err != nil {
			return nil, err
		}
		var read []string
		for _, n := range fresh {
			rev, ok := locked[n]
			if !ok && skipLocked {
				continue
			}
			w.things[n] = &thingState{name: n, rev: rev, lockedRev: rev}
			if ok {
				read = append(read, n)
			}
		}
		if len(read) > 0 {
			qs := []batchQuery{w.pendingQuery(read)}
			if n := seqs - len(w.seqs); n > 0 {
				qs = append(qs, w.seqQuery(n))
			}
			if err := w.queryMany(qs...); err != nil {
				return nil, err
			}
		}
	}
	held := make([]string, 0, len(names))
	for _, n := range names {
		if _, ok := w.things[n]; ok && !slices.Contains(held, n) {
			held = append(held, n)
		}
	}
	return held, nil
}

// readPending reads the pending sets of things into the transaction.
func (w *wtx) readPending(names []string) error { return w.queryMany(w.pendingQuery(names)) }

// pendingQuery reads the pending sets of things into the transaction.
func (w *wtx) pendingQuery(names []string) batchQuery {
	return batchQuery{sql: pendingQuery, args: []any{names}, scan: w.scanPending}
}

func (w *wtx) scanPending(rows pgx.Rows) error {
	for rows.Next() {
		var rec []byte
		var rev, seq, updated *int64
		var status *string
		var force *bool
		if err := rows.Scan(&rec, &rev, &seq, &status, &force, &updated); err != nil {
			return err
		}
		e, err := decode[store.Execution](rec, "execution")
		if err != nil {
			return err
		}
		if rev != nil {
			_, err = w.noteJob(e.JobID, true, *rev, *seq, *status, *force, *updated)
		} else {
			_, err = w.noteJob(e.JobID, false, 0, 0, "", false, 0)
		}
		if err != nil {
			return err
		}
		st := w.things[e.ThingName]
		if _, cached := w.execs[keyOf(e)]; !cached {
			w.execs[keyOf(e)] = e
		}
		st.set = st.set.Put(e.Summary())
	}
	return rows.Err()
}

// openThing locks a thing and writes out whatever canceled or deleted jobs
// have done to its pending executions (store.JobStateEffect). create makes
// its row when it has none (operations that may queue an execution).
func (w *wtx) openThing(name string, create bool) (*thingTx, error) {
	if _, err := w.loadThings([]string{name}, create, false); err != nil {
		return nil, err
	}
	return w.viewThing(name)
}

// viewThing starts following a thing the transaction holds.
func (w *wtx) viewThing(name string) (*thingTx, error) {
	st := w.things[name]
	t := &thingTx{name: name, before: st.set, set: st.set}
	for _, p := range slices.Clone(t.set) {
		e, err := w.exec(name, p.JobID, p.ExecutionNumber)
		if errors.Is(err, store.ErrNotFound) {
			t.set = t.set.Remove(p.JobID, p.ExecutionNumber)
			continue
		}
		if err != nil {
			return nil, err
		}
		js, err := w.jobHead(p.JobID)
		if err != nil {
			return nil, err
		}
		job := js.head()
		switch store.JobStateEffect(job, e) {
		case store.EffectCancel:
			if err := w.putExec(t, e, store.CancelByJob(e, job)); err != nil {
				return nil, err
			}
		case store.EffectDelete:
			if err := w.dropExec(t, e); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// putExec writes an execution's new state and keeps the thing's pending
// set, the job's counts and the timers in step. old is the state it
// replaces: the same execution before the change, or for a new execution
// the previous execution of the same job on the thing (nil if none), whose
// place in the counts it takes.
func (w *wtx) putExec(t *thingTx, old, cur *store.Execution) error {
	if err := w.saveExec(cur); err != nil {
		return err
	}
	t.set = t.set.Put(cur.Summary())
	if old == nil {
		if err := w.addCount(cur.JobID, cur.Status, 1); err != nil {
			return err
		}
	} else if old.Status != cur.Status {
		if err := w.addCount(cur.JobID, old.Status, -1); err != nil {
			return err
		}
		if err := w.addCount(cur.JobID, cur.Status, 1); err != nil {
			return err
		}
	}
	var od time.Time
	if old != nil && old.ExecutionNumber == cur.ExecutionNumber {
		od = old.Deadline()
		if !old.Status.Terminal() && cur.Status.Terminal() {
			w.executionEvent(cur, store.ExecutionEventOperation(cur.Status))
		}
	}
	if !od.Equal(cur.Deadline()) {
		w.timersChanged = true
	}
	return nil
}

// dropExec deletes an execution; counts are the caller's business.
func (w *wtx) dropExec(t *thingTx, e *store.Execution) error {
	w.queue("DELETE FROM executions WHERE thing_name = $1 AND job_id = $2 AND execution_number = $3",
		e.ThingName, e.JobID, e.ExecutionNumber)
	w.writes++
	w.execs[keyOf(e)] = nil
	if t != nil {
		t.set = t.set.Remove(e.JobID, e.ExecutionNumber)
	}
	w.executionEvent(e, "deleted")
	if !e.Deadline().IsZero() {
		w.timersChanged = true
	}
	return nil
}

// closeThing records the thing's new pending set and the notifications
// its change calls for.
func (w *wtx) closeThing(t *thingTx) error {
	st := w.things[t.name]
	if t.before.Same(t.set) {
		return nil
	}
	st.set, st.changed = t.set, true
	st.head, st.headDoc = nil, ""
	if h := t.set.Head(); h != nil {
		e, err := w.exec(t.name, h.JobID, h.ExecutionNumber)
		if err != nil {
			return err
		}
		doc, err := w.document(h.JobID, h.JobSeq)
		if err != nil {
			return err
		}
		st.head, st.headDoc = e, doc
	}
	notify := !store.SameMembers(t.before, t.set)
	next := !store.SameHead(t.before, t.set)
	if !notify && !next {
		return nil
	}
	c := store.Change{ThingName: t.name, At: w.now, Pending: t.set, Before: t.before}
	if notify {
		c.Notify = true
		st.notify = true
	}
	if next {
		c.NotifyNext = true
		st.next = true
		c.Next, c.NextDocument = st.head, st.headDoc
	}
	if w.changeSets == nil {
		w.changeSets = map[int]store.PendingSet{}
	}
	w.changeSets[len(w.changes)] = t.set
	w.changes = append(w.changes, c)
	return nil
}

// onThing runs an operation on one thing: it opens the thing, runs fn,
// and closes the thing whether or not fn rejected the request, since
// opening may already have written (settling a canceled job) and what it
// wrote must be kept and notified.
func (s *Store) onThing(ctx context.Context, op, thing string, create bool, fn func(w *wtx, t *thingTx) error) error {
	return s.update(ctx, op, func(w *wtx) error {
		t, err := w.openThing(thing, create)
		if err != nil {
			return err
		}
		ferr := fn(w, t)
		var se *store.Error
		if ferr != nil && !errors.As(ferr, &se) {
			return ferr
		}
		if err := w.closeThing(t); err != nil {
			return err
		}
		return ferr
	})
}

// ---- the write transaction ----

// wtx is one attempt of a write operation.
type wtx struct {
	tx
	now           time.Time
	changes       []store.Change
	jobs          map[string]*jobState
	things        map[string]*thingState
	execs         map[execKey]*store.Execution // nil: deleted
	seqs          []int64                      // sequence numbers fetched ahead
	timersChanged bool
	tasksChanged  bool // wake the task loops here and on the other nodes
	configChanged bool
	writes        int
	after         []func()
	delivered     []string                 // things whose baselines this commit moves
	changeSets    map[int]store.PendingSet // the pending set after each change, by index in changes
}

func newWtx(ctx context.Context, s *Store, conn *pgxpool.Conn) *wtx {
	return &wtx{
		tx:     tx{ctx: ctx, s: s, conn: conn},
		now:    s.clock.Now(),
		jobs:   map[string]*jobState{},
		things: map[string]*thingState{},
		execs:  map[execKey]*store.Execution{},
	}
}

// full reports whether a background step has written enough for one
// transaction; it carries on in the next.
func (w *wtx) full() bool { return w.writes >= 8*w.s.opts.TaskBatch+1024 }

// nextSeq hands out the next sequence number (queue order, job order).
// Take it after locking the thing it orders.
func (w *wtx) nextSeq() (uint64, error) {
	if len(w.seqs) == 0 {
		if err := w.reserveSeqs(1); err != nil {
			return 0, err
		}
	}
	n := w.seqs[0]
	w.seqs = w.seqs[1:]
	return uint64(n), nil
}

// reserveSeqs fetches n sequence numbers in one round trip.
func (w *wtx) reserveSeqs(n int) error {
	if len(w.seqs) >= n {
		return nil
	}
	return w.queryMany(w.seqQuery(n - len(w.seqs)))
}

// seqQuery fetches n sequence numbers.
func (w *wtx) seqQuery(n int) batchQuery {
	return batchQuery{sql: "SELECT nextval('jobsbroker_seq') FROM generate_series(1, $1)", args: []any{n},
		scan: func(rows pgx.Rows) error {
			got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			slices.Sort(got)
			w.seqs = append(w.seqs, got...)
			return nil
		}}
}

// finish writes what the operation left for the end: the jobs it changed
// (counts, records, tasks, in job-id order, checking that none changed
// under it), the completions and abort cancellations those counts call
// for, the things' revisions and the notifications to the other nodes.
func (w *wtx) finish() error {
	for _, id := range slices.Sorted(maps.Keys(w.jobs)) {
		if err := w.flushJob(w.jobs[id]); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(w.things)) {
		st := w.things[name]
		if !st.changed {
			continue
		}
		st.rev++
		w.queue(`INSERT INTO thing_state (thing_name, rev) VALUES ($1, $2)
			ON CONFLICT (thing_name) DO UPDATE SET rev = EXCLUDED.rev`, name, st.rev)
		w.delivered = append(w.delivered, name)
	}
	w.queueHints()
	return nil
}

// needsWrite reports whether the job row must be updated.
func (js *jobState) needsWrite() bool {
	return js.counted || js.dirty || js.taskSet || js.targetsDirty
}

// flushJob brings one job's row up to date, then runs the checks that
// need its committed counts: abort criteria and completion.
func (w *wtx) flushJob(js *jobState) error {
	if js.missing {
		return nil
	}
	if js.deleted {
		return w.deleteJobRow(js)
	}
	needCounts := js.checkComplete || js.checkAbort || len(js.jobEvents) > 0
	if !js.needsWrite() && !needCounts {
		return nil
	}
	for round := 0; round < 3; round++ {
		if js.needsWrite() || !js.known {
			if err := w.writeJobRow(js); err != nil {
				return err
			}
		}
		if !js.checkAbort && !js.checkComplete {
			break
		}
		abort, complete := js.checkAbort, js.checkComplete
		js.checkAbort, js.checkComplete = false, false
		job, err := w.job(js.id)
		if err != nil {
			return err
		}
		if abort {
			if err := w.checkAbort(job, &js.counts); err != nil {
				return err
			}
		}
		if complete {
			w.maybeComplete(job, &js.counts, js.rollout)
		}
		if !js.needsWrite() {
			break
		}
	}
	for _, op := range js.jobEvents {
		if err := w.emitJobEvent(js, op); err != nil {
			return err
		}
	}
	js.jobEvents = nil
	return nil
}

// countCols are the count columns, in the order the queries scan them.
var countCols = []string{"n_queued", "n_in_progress", "n_succeeded", "n_failed", "n_rejected", "n_canceled", "n_removed", "n_timed_out"}

// countCol is the column that counts status.
var countCol = map[store.ExecutionStatus]string{
	store.StatusQueued: "n_queued", store.StatusInProgress: "n_in_progress", store.StatusSucceeded: "n_succeeded",
	store.StatusFailed: "n_failed", store.StatusRejected: "n_rejected", store.StatusCanceled: "n_canceled",
	store.StatusRemoved: "n_removed", store.StatusTimedOut: "n_timed_out",
}

// writeJobRow updates the job row with the transaction's counts and
// changes, only if its revision is still the one the transaction read,
// and reads back the counts.
func (w *wtx) writeJobRow(js *jobState) error {
	var set []string
	args := []any{js.id, js.rev}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, st := range store.Statuses {
		if d := js.delta.Count(st); d != 0 {
			col := countCol[st]
			set = append(set, col+" = "+col+" + "+arg(d))
		}
	}
	newRev := js.rev
	if js.dirty {
		rec := *js.job
		rec.Targets = nil
		b, err := json.Marshal(&rec)
		if err != nil {
			return fmt.Errorf("encode job %s: %w", js.id, err)
		}
		newRev++
		set = append(set, "record = "+arg(b), "status = "+arg(string(js.job.Status)),
			"force_canceled = "+arg(js.job.ForceCanceled), "updated_ns = "+arg(js.job.LastUpdatedAt.UnixNano()),
			"rev = "+arg(newRev))
	}
	if js.targetsDirty {
		b, err := json.Marshal(js.targets)
		if err != nil {
			return err
		}
		set = append(set, "targets = "+arg(b))
	}
	if js.taskSet {
		if js.task == nil {
			set = append(set, "task = NULL", "task_wake = NULL")
		} else {
			b, err := json.Marshal(js.task)
			if err != nil {
				return err
			}
			set = append(set, "task = "+arg(b), "task_wake = "+arg(js.taskWake.UnixNano()))
		}
	}
	sql := "SELECT rev, n_queued, n_in_progress, n_succeeded, n_failed, n_rejected, n_canceled, n_removed, n_timed_out, coalesce(task ? 'rollout', false) FROM jobs WHERE job_id = $1 AND rev = $2 FOR NO KEY UPDATE"
	if len(set) > 0 {
		sql = "UPDATE jobs SET " + strings.Join(set, ", ") + " WHERE job_id = $1 AND rev = $2 RETURNING rev, " +
			strings.Join(countCols, ", ") + ", coalesce(task ? 'rollout', false)"
	}
	var p store.ProcessDetails
	var rev int64
	var rollout bool
	err := w.queryRow(sql, args, &rev, &p.Queued, &p.InProgress, &p.Succeeded, &p.Failed, &p.Rejected, &p.Canceled, &p.Removed, &p.TimedOut, &rollout)
	if errors.Is(err, pgx.ErrNoRows) {
		return errConflict
	}
	if err != nil {
		return err
	}
	js.rev, js.counts, js.known, js.rollout = rev, p, true, rollout
	js.delta, js.counted, js.dirty, js.targetsDirty, js.taskSet = store.ProcessDetails{}, false, false, false, false
	return nil
}

// deleteJobRow removes a job whose deletion has been written out.
func (w *wtx) deleteJobRow(js *jobState) error {
	if len(js.jobEvents) > 0 {
		if _, err := w.jobTargets(js.id); err != nil {
			return err
		}
	}
	var p store.ProcessDetails
	err := w.queryRow("DELETE FROM jobs WHERE job_id = $1 AND rev = $2 RETURNING "+strings.Join(countCols, ", "), []any{js.id, js.rev},
		&p.Queued, &p.InProgress, &p.Succeeded, &p.Failed, &p.Rejected, &p.Canceled, &p.Removed, &p.TimedOut)
	if errors.Is(err, pgx.ErrNoRows) {
		return errConflict
	}
	if err != nil {
		return err
	}
	js.counts, js.known = p, true
	w.queue("DELETE FROM rollout_targets WHERE job_id = $1", js.id)
	w.queue("DELETE FROM group_jobs WHERE job_id = $1", js.id)
	for _, op := range js.jobEvents {
		if err := w.emitJobEvent(js, op); err != nil {
			return err
		}
	}
	js.jobEvents = nil
	return nil
}

// maybeComplete marks a SNAPSHOT job COMPLETED once none of its executions
// is pending and its rollout is over.
func (w *wtx) maybeComplete(job *store.Job, counts *store.ProcessDetails, rollingOut bool) {
	if job.Status != store.JobInProgress || job.TargetSelection != store.Snapshot || counts.Pending() > 0 || rollingOut {
		return
	}
	job.Status = store.JobCompleted
	job.CompletedAt, job.LastUpdatedAt = w.now, w.now
	w.saveJob(job)
	w.jobEvent(job, "completed")
}

// checkAbort cancels the job when its abort criteria are met.
func (w *wtx) checkAbort(job *store.Job, counts *store.ProcessDetails) error {
	if job.AbortConfig == nil || job.Status != store.JobInProgress {
		return nil
	}
	c := store.AbortTriggered(job.AbortConfig, counts)
	if c == nil {
		return nil
	}
	comment := fmt.Sprintf("aborted: %s executions reached %.2f%% of %d things (threshold %.2f%%)",
		c.FailureType, 100*float64(counts.Failures(c.FailureType))/float64(counts.Total()), counts.Total(), c.ThresholdPercentage)
	return w.cancelJob(job, false, nil, &comment)
}

// finished runs what follows an execution reaching a terminal status: a
// retry when the job's retry configuration allows one, then (when the
// transaction ends and the counts are known) the job's abort criteria and
// its completion.
func (w *wtx) finished(t *thingTx, job *store.Job, e *store.Execution) error {
	if job.Status == store.JobInProgress && store.RetryAllowed(job.RetryConfig, e) {
		seq, err := w.nextSeq()
		if err != nil {
			return err
		}
		if err := w.putExec(t, e, store.Retry(e, w.now, seq)); err != nil {
			return err
		}
	}
	js := w.jobs[job.JobID]
	js.checkAbort, js.checkComplete = true, true
	return nil
}
