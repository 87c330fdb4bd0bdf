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
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// wtx is one attempt of an operation: the engine's Tx (and, in read-only
// views, its Reader), over one database transaction.
//
// Locks are taken in a fixed order, so that transactions cannot deadlock
// on them: things (thing_state rows) in name order, when the engine asks
// for them (LockThings), and jobs only at the end, in job-id order, when
// the transaction's changes to them are written (WriteJob). A job is held
// by its guard, a transaction-scoped advisory lock: shared by the
// transactions that only move its counts (an execution's change), which
// add them to a row of their own session (job_count_shards) and so never
// wait on each other, exclusive for those that change the job's row (its
// record, status or task) or decide on its counts (completion, abort
// criteria). A job's row is read without a lock; once the guard is held,
// the transaction checks that the job's revision has not moved, and starts
// again if it has.
type wtx struct {
	tx
	now           time.Time
	changes       []store.Change
	jobs          map[string]*jobState
	things        map[string]*thingState
	execs         map[execKey]*store.Execution // nil: deleted
	seqs          []int64                      // sequence numbers fetched ahead
	wantSeqs      int                          // sequence numbers asked for by ReserveSeqs
	timersChanged bool
	tasksChanged  bool // wake the task loops here and on the other nodes
	configChanged bool
	writes        int
	after         []func()
	delivered     []queueKey  // queues whose baselines this commit moves
	hints         []string    // for the hint bus, after the commit
	silent        bool        // no other node listens: hints are not sent (peers.go)
	quiet         silentHints // the hints not sent, kept for a node that appears
	// guards are the job guards the transaction holds; late are the jobs
	// whose abort and completion checks wait for the commit (CheckLater),
	// due those of them that the committed counts call for.
	guards map[string]guardMode
	late   map[string]*store.Job
	due    []string
	// exclusive makes the transaction hold every job it writes
	// exclusively, so that its abort and completion checks are made in
	// the transaction, with its changes: for background work that no
	// reply waits for, whose result a reader must see whole (a timeout
	// and the completion it brings commit together).
	exclusive bool
}

var (
	_ engine.Tx     = (*wtx)(nil)
	_ engine.Reader = (*wtx)(nil)
)

func newWtx(ctx context.Context, s *Store, conn *pgxpool.Conn) *wtx {
	return &wtx{
		tx:     tx{ctx: ctx, s: s, conn: conn},
		now:    s.clock.Now(),
		jobs:   map[string]*jobState{},
		things: map[string]*thingState{},
		execs:  map[execKey]*store.Execution{},
	}
}

// ---- jobs ----

// jobCols are the columns of a job's head, in noteJob's order.
const jobCols = "rev, seq, status, force_canceled, updated_ns, target_selection, namespace_id"

// jobState is what a transaction knows about one job.
type jobState struct {
	id          string
	missing     bool
	rev         int64
	head        *store.Job // what the execution rules need
	loaded      bool       // the task was read with the record
	task        *engine.Task
	counts      store.ProcessDetails
	countsKnown bool
	inserted    bool
}

// noteJob records a job's head as read. A second read that finds another
// revision means the job changed during the transaction.
func (w *wtx) noteJob(id string, found bool, rev, seq int64, status string, force bool, updated int64, sel, ns string) (*jobState, error) {
	js := w.jobs[id]
	if js != nil {
		if js.inserted {
			return js, nil
		}
		if js.missing != !found || (found && js.rev != rev) {
			return nil, errConflict
		}
		return js, nil
	}
	js = &jobState{id: id, missing: !found}
	if found {
		js.rev = rev
		js.head = &store.Job{JobID: id, Seq: uint64(seq), Status: store.JobStatus(status), ForceCanceled: force,
			LastUpdatedAt: fromNanos(updated), TargetSelection: store.TargetSelection(sel), NamespaceID: ns}
	}
	w.jobs[id] = js
	return js, nil
}

// jobHeadState returns what the transaction knows of a job, reading its
// head if it knows nothing yet.
func (w *wtx) jobHeadState(id string) (*jobState, error) {
	if js := w.jobs[id]; js != nil {
		return js, nil
	}
	var rev, seq, updated int64
	var status, sel, ns string
	var force bool
	err := w.queryRow("SELECT "+jobCols+" FROM jobs WHERE job_id = $1", []any{id}, &rev, &seq, &status, &force, &updated, &sel, &ns)
	if errors.Is(err, pgx.ErrNoRows) {
		return w.noteJob(id, false, 0, 0, "", false, 0, "", "")
	}
	if err != nil {
		return nil, err
	}
	return w.noteJob(id, true, rev, seq, status, force, updated, sel, ns)
}

// JobHead returns a job's head.
func (w *wtx) JobHead(id string) (*store.Job, error) {
	js, err := w.jobHeadState(id)
	if err != nil || js.missing {
		return nil, err
	}
	return js.head, nil
}

// Job loads a job's record with its task.
func (w *wtx) Job(id string) (*store.Job, error) {
	if js := w.jobs[id]; js != nil && js.missing {
		return nil, nil
	}
	var rev, seq, updated int64
	var status, sel, ns string
	var force bool
	var rec, taskJSON []byte
	err := w.queryRow("SELECT "+jobCols+", record, task FROM jobs WHERE job_id = $1", []any{id},
		&rev, &seq, &status, &force, &updated, &sel, &ns, &rec, &taskJSON)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err := w.noteJob(id, false, 0, 0, "", false, 0, "", "")
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	js, err := w.noteJob(id, true, rev, seq, status, force, updated, sel, ns)
	if err != nil {
		return nil, err
	}
	job, err := decode[store.Job](rec, "job "+id)
	if err != nil {
		return nil, err
	}
	if !js.loaded {
		js.loaded = true
		if taskJSON != nil {
			if js.task, err = decode[engine.Task](taskJSON, "task of job "+id); err != nil {
				return nil, err
			}
		}
	}
	return job, nil
}

// loaded returns the job's state read with its record.
func (w *wtx) loaded(id string) (*jobState, error) {
	js := w.jobs[id]
	if js == nil || (!js.loaded && !js.missing) {
		if _, err := w.Job(id); err != nil {
			return nil, err
		}
		js = w.jobs[id]
	}
	return js, nil
}

// JobTask returns a job's task.
func (w *wtx) JobTask(id string) (*engine.Task, error) {
	js, err := w.loaded(id)
	if err != nil {
		return nil, err
	}
	return js.task, nil
}

// JobCounts returns a job's counts: its row's and its shards', summed in
// one statement, so that a view (DescribeJob) sees them exact as of its
// snapshot; or as this transaction last wrote them.
func (w *wtx) JobCounts(id string) (store.ProcessDetails, error) {
	js, err := w.jobHeadState(id)
	if err != nil || js.missing {
		return store.ProcessDetails{}, err
	}
	if !js.countsKnown {
		var p store.ProcessDetails
		err := w.queryRow(countsQuery+" WHERE j.job_id = $1", []any{id}, countDest(&p)...)
		if errors.Is(err, pgx.ErrNoRows) {
			return p, nil
		}
		if err != nil {
			return p, err
		}
		js.counts, js.countsKnown = p, true
	}
	return js.counts, nil
}

// JobTargets returns a job's target ARNs.
func (w *wtx) JobTargets(id string) ([]string, error) {
	var raw []byte
	err := w.queryRow("SELECT targets FROM jobs WHERE job_id = $1", []any{id}, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var targets []string
	if err := json.Unmarshal(raw, &targets); err != nil {
		return nil, fmt.Errorf("decode targets of job %s: %w", id, err)
	}
	return targets, nil
}

// Document returns a job's document.
func (w *wtx) Document(id string, seq uint64, before bool) (string, bool, error) {
	col := "document"
	if before {
		col = "document_before"
	}
	var doc *string
	err := w.queryRow("SELECT "+col+" FROM jobs WHERE job_id = $1 AND seq = $2", []any{id, int64(seq)}, &doc)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && doc == nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return *doc, true, nil
}

// listChunk is how many rows a walk reads at a time.
const listChunk = 100

// EachJob walks the jobs newest first, filtered in the query.
func (w *wtx) EachJob(from uint64, f *engine.JobFilter, fn func(*store.Job, bool) (bool, error)) error {
	upto := int64(from)
	if from == 0 {
		upto = -1
	}
	for {
		rows, err := w.query(`SELECT seq, record, coalesce(task ? 'rollout' OR task ? 'settle', false) FROM jobs
			WHERE ($1 < 0 OR seq <= $1) AND ($2 = '' OR status = $2) AND ($3 = '' OR target_selection = $3)
			AND ($4 = '' OR namespace_id = $4)
			AND ($5 = '' OR job_id IN (SELECT job_id FROM group_jobs WHERE group_name = $5))
			ORDER BY seq DESC LIMIT $6`,
			upto, string(f.Status), string(f.TargetSelection), f.NamespaceID, f.Group, listChunk)
		if err != nil {
			return err
		}
		type row struct {
			seq        int64
			rec        []byte
			concurrent bool
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.seq, &x.rec, &x.concurrent)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, x := range got {
			job, err := decode[store.Job](x.rec, "job")
			if err != nil {
				return err
			}
			if more, err := fn(job, x.concurrent); err != nil || !more {
				return err
			}
			upto = x.seq - 1
		}
		if len(got) < listChunk {
			return nil
		}
	}
}

// GroupJobs lists the jobs that target groups.
func (w *wtx) GroupJobs(groups []string) ([]string, error) {
	rows, err := w.query("SELECT DISTINCT job_id FROM group_jobs WHERE group_name = ANY($1) ORDER BY job_id", groups)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Settling reports whether a job's status may end executions: unless the
// transaction has read the job and found it running or finished, the
// engine must look.
func (w *wtx) Settling(job string) bool {
	js := w.jobs[job]
	if js == nil || js.missing {
		return true
	}
	switch js.head.Status {
	case store.JobInProgress, store.JobCompleted, store.JobScheduled:
		return false
	}
	return true
}

// InsertJob stores a new job.
func (w *wtx) InsertJob(job *store.Job, doc, before string) (bool, error) {
	rec := *job
	rec.Targets = nil
	recJSON, err := json.Marshal(&rec)
	if err != nil {
		return false, err
	}
	targetsJSON, err := json.Marshal(job.Targets)
	if err != nil {
		return false, err
	}
	var docBefore *string
	if before != "" {
		docBefore = &before
	}
	n, err := w.execNow(`INSERT INTO jobs (job_id, seq, status, target_selection, namespace_id, force_canceled,
			updated_ns, rev, record, targets, document, document_before)
		VALUES ($1, $2, $3, $4, $5, false, $6, 1, $7, $8, $9, $10) ON CONFLICT (job_id) DO NOTHING`,
		job.JobID, int64(job.Seq), string(job.Status), string(job.TargetSelection), job.NamespaceID,
		job.LastUpdatedAt.UnixNano(), recJSON, targetsJSON, doc, docBefore)
	if err != nil || n == 0 {
		return false, err
	}
	w.jobs[job.JobID] = &jobState{id: job.JobID, rev: 1, head: job, loaded: true, countsKnown: true, inserted: true}
	return true, nil
}

// guardMode is how a transaction holds a job's guard.
type guardMode uint8

const (
	guardNone guardMode = iota
	guardShared
	guardExclusive
)

// guard queues the statement that takes a job's guard in mode, unless the
// transaction holds it so already; it is taken before the next read.
func (w *wtx) guard(id string, mode guardMode) {
	if w.guards[id] >= mode {
		return
	}
	if w.guards == nil {
		w.guards = map[string]guardMode{}
	}
	w.guards[id] = mode
	fn := "pg_advisory_xact_lock_shared"
	if mode == guardExclusive {
		fn = "pg_advisory_xact_lock"
	}
	w.queue("SELECT "+fn+"($1, hashtext($2))", lockClassGuard, id)
}

// countCols are the count columns, in the order the queries scan them.
var countCols = []string{"n_queued", "n_in_progress", "n_succeeded", "n_failed", "n_rejected", "n_canceled", "n_removed", "n_timed_out"}

// countDest are the scan destinations of the counts, in countCols' order.
func countDest(p *store.ProcessDetails) []any {
	return []any{&p.Queued, &p.InProgress, &p.Succeeded, &p.Failed, &p.Rejected, &p.Canceled, &p.Removed, &p.TimedOut}
}

// Count queries. countsQuery selects the counts of the jobs j its WHERE
// clause picks, its row's and its shards' summed; jobCountsQuery also the
// revision and whether the job is rolling out, first. The statement sees
// one snapshot, so that the sum is exact as of it.
var (
	shardSums = func() string {
		var b strings.Builder
		b.WriteString("(SELECT ")
		for i, c := range countCols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("coalesce(sum(" + c + "), 0)::bigint AS " + c)
		}
		b.WriteString(" FROM job_count_shards WHERE job_id = j.job_id) s")
		return b.String()
	}()
	countSums = func() string {
		var out []string
		for _, c := range countCols {
			out = append(out, "j."+c+" + s."+c)
		}
		return strings.Join(out, ", ")
	}()
	countsQuery    = "SELECT " + countSums + " FROM jobs j CROSS JOIN LATERAL " + shardSums
	jobCountsQuery = "SELECT j.rev, coalesce(j.task ? 'rollout', false), " + countSums + " FROM jobs j CROSS JOIN LATERAL " + shardSums
	// shardUpsert adds a transaction's count changes to its session's
	// shard of the job's counts.
	shardUpsert = func() string {
		var set, vals []string
		for i, c := range countCols {
			vals = append(vals, "$"+strconv.Itoa(i+3))
			set = append(set, c+" = job_count_shards."+c+" + EXCLUDED."+c)
		}
		return "INSERT INTO job_count_shards (job_id, shard, updated_ns, " + strings.Join(countCols, ", ") + ") VALUES ($1, pg_backend_pid(), $2, " +
			strings.Join(vals, ", ") + ") ON CONFLICT (job_id, shard) DO UPDATE SET updated_ns = EXCLUDED.updated_ns, " + strings.Join(set, ", ")
	}()
	// foldShards moves the counts of a job's shards last changed before
	// $2 into its row, skipping those a running transaction holds.
	foldShards = func() string {
		var set []string
		for _, c := range countCols {
			set = append(set, c+" = "+c+" + (SELECT coalesce(sum("+c+"), 0) FROM d)")
		}
		return `WITH d AS (DELETE FROM job_count_shards WHERE job_id = $1 AND shard IN (
				SELECT shard FROM job_count_shards WHERE job_id = $1 AND updated_ns < $2 FOR UPDATE SKIP LOCKED)
			RETURNING *)
			UPDATE jobs SET ` + strings.Join(set, ", ") + " WHERE job_id = $1 AND EXISTS (SELECT FROM d)"
	}()
	// dropShards deletes a job's shards and returns their sums.
	dropShards = func() string {
		var sums []string
		for _, c := range countCols {
			sums = append(sums, "coalesce(sum("+c+"), 0)::bigint")
		}
		return "WITH d AS (DELETE FROM job_count_shards WHERE job_id = $1 RETURNING *) SELECT " + strings.Join(sums, ", ") + " FROM d"
	}()
)

// WriteJob writes what the transaction changed of a job, once it holds the
// job's guard and only if the job's revision is still the one the
// transaction read, and reads back the counts and whether the job is
// rolling out. Counts alone go to the session's shard under the shared
// guard; anything else takes the guard exclusively, and the counts then go
// to the job's row with the rest.
func (w *wtx) WriteJob(jw *engine.JobWrite) (store.ProcessDetails, bool, error) {
	js, err := w.jobHeadState(jw.ID)
	if err != nil {
		return store.ProcessDetails{}, false, err
	}
	if js.missing {
		return store.ProcessDetails{}, false, errConflict
	}
	var set []string
	args := []any{jw.ID, js.rev}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	newRev := js.rev
	if jw.Job != nil {
		rec := *jw.Job
		rec.Targets = nil
		b, err := json.Marshal(&rec)
		if err != nil {
			return store.ProcessDetails{}, false, fmt.Errorf("encode job %s: %w", jw.ID, err)
		}
		newRev++
		set = append(set, "record = "+arg(b), "status = "+arg(string(rec.Status)),
			"force_canceled = "+arg(rec.ForceCanceled), "updated_ns = "+arg(rec.LastUpdatedAt.UnixNano()),
			"rev = "+arg(newRev))
	}
	if jw.Targets != nil {
		b, err := json.Marshal(jw.Targets)
		if err != nil {
			return store.ProcessDetails{}, false, err
		}
		set = append(set, "targets = "+arg(b))
	}
	if jw.TaskSet {
		if jw.Task == nil {
			set = append(set, "task = NULL", "task_wake = NULL")
		} else {
			b, err := json.Marshal(jw.Task)
			if err != nil {
				return store.ProcessDetails{}, false, err
			}
			set = append(set, "task = "+arg(b), "task_wake = "+arg(jw.Wake.UnixNano()))
		}
	}
	mode := guardShared
	if len(set) > 0 || w.exclusive || w.guards[jw.ID] == guardExclusive {
		mode = guardExclusive
	}
	moved := false
	delta := []any{jw.ID, w.now.UnixNano()}
	for i, d := range countDest(&jw.Delta) {
		n := *d.(*int64)
		moved = moved || n != 0
		delta = append(delta, n)
		if n != 0 && mode == guardExclusive {
			// The job is held exclusively: its row takes the counts.
			set = append(set, countCols[i]+" = "+countCols[i]+" + "+arg(n))
		}
	}
	if moved && mode == guardShared {
		w.queue(shardUpsert, delta...)
	}
	w.guard(jw.ID, mode)
	var p store.ProcessDetails
	var rev int64
	var rollout bool
	dest := append([]any{&rev, &rollout}, countDest(&p)...)
	read := batchQuery{sql: jobCountsQuery + " WHERE j.job_id = $1 AND j.rev = $2", args: []any{jw.ID, newRev},
		scan: func(rows pgx.Rows) error {
			if !rows.Next() {
				if err := rows.Err(); err != nil {
					return err
				}
				return errConflict
			}
			return rows.Scan(dest...)
		}}
	if len(set) == 0 {
		err = w.queryMany(read)
	} else {
		update := batchQuery{sql: "UPDATE jobs SET " + strings.Join(set, ", ") + " WHERE job_id = $1 AND rev = $2", args: args,
			scan: func(rows pgx.Rows) error {
				for rows.Next() {
				}
				if err := rows.Err(); err != nil {
					return err
				}
				if rows.CommandTag().RowsAffected() == 0 {
					return errConflict
				}
				return nil
			}}
		err = w.queryMany(update, read)
	}
	if err != nil {
		return p, false, err
	}
	js.rev, js.counts, js.countsKnown = rev, p, true
	if jw.Job != nil {
		js.head = jw.Job
	}
	if jw.TaskSet {
		js.task, js.loaded = jw.Task, true
	}
	return p, rollout, nil
}

// CheckLater takes over the abort and completion checks of a job whose
// guard the transaction does not hold exclusively: its counts may miss
// changes that other transactions have yet to commit. Once the
// transaction commits, its committed counts are read (in the same round
// trip as COMMIT), and a job whose checks they call for is checked in a
// transaction of its own (checkJob).
func (w *wtx) CheckLater(job *store.Job) bool {
	if w.guards[job.JobID] == guardExclusive {
		return false
	}
	if w.late == nil {
		w.late = map[string]*store.Job{}
	}
	w.late[job.JobID] = &store.Job{JobID: job.JobID, Status: job.Status, TargetSelection: job.TargetSelection, AbortConfig: job.AbortConfig}
	return true
}

// lateOne and lateMany read what a late job's checks need, of one job
// and of several.
var (
	lateSelect = "SELECT j.job_id, j.status, coalesce(j.task ? 'rollout', false), " + countSums + " FROM jobs j CROSS JOIN LATERAL " + shardSums
	lateOne    = lateSelect + " WHERE j.job_id = $1"
	lateMany   = lateSelect + " WHERE j.job_id = ANY($1)"
)

// lateQuery reads, after the commit, what the checks of the late jobs
// need.
func (w *wtx) lateQuery() batchQuery {
	ids := make([]string, 0, len(w.late))
	for id := range w.late {
		ids = append(ids, id)
	}
	// One job (nearly always) is read by key equality: PostgreSQL caches
	// a generic plan for a statement it has run a few times, and for
	// "= ANY($1)" one chosen while the jobs table was still small scans
	// the whole table on every commit from then on (seen in a benchmark's
	// first minute, until autovacuum analyzed the table: 1.4 ms a commit
	// at 12,000 jobs); equality on the key is an index lookup in any plan.
	sql, args := lateOne, []any{ids[0]}
	if len(ids) > 1 {
		sql, args = lateMany, []any{ids}
	}
	return batchQuery{sql: sql, args: args,
		scan: func(rows pgx.Rows) error {
			var id, status string
			var rollout bool
			var p store.ProcessDetails
			dest := append([]any{&id, &status, &rollout}, countDest(&p)...)
			_, err := pgx.ForEachRow(rows, dest, func() error {
				if job := w.late[id]; job != nil {
					job.Status = store.JobStatus(status)
					if engine.ChecksDue(job, &p, rollout) {
						w.due = append(w.due, id)
					}
				}
				return nil
			})
			return err
		}}
}

// DeleteJob removes a job whose deletion has been written out, with its
// shards.
func (w *wtx) DeleteJob(id string) (store.ProcessDetails, error) {
	js, err := w.jobHeadState(id)
	if err != nil {
		return store.ProcessDetails{}, err
	}
	w.guard(id, guardExclusive)
	var p, shards store.ProcessDetails
	err = w.queryMany(batchQuery{sql: "DELETE FROM jobs WHERE job_id = $1 AND rev = $2 RETURNING " + strings.Join(countCols, ", "),
		args: []any{id, js.rev}, scan: func(rows pgx.Rows) error {
			if !rows.Next() {
				if err := rows.Err(); err != nil {
					return err
				}
				return errConflict
			}
			return rows.Scan(countDest(&p)...)
		}}, batchQuery{sql: dropShards, args: []any{id}, scan: func(rows pgx.Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		return rows.Scan(countDest(&shards)...)
	}})
	if err != nil {
		return p, err
	}
	for _, st := range store.Statuses {
		p.Add(st, shards.Count(st))
	}
	w.queue("DELETE FROM rollout_targets WHERE job_id = $1", id)
	w.queue("DELETE FROM group_jobs WHERE job_id = $1", id)
	return p, nil
}

// AddGroupJob records that job targets group.
func (w *wtx) AddGroupJob(group, job string) error {
	w.queue("INSERT INTO group_jobs (group_name, job_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", group, job)
	return nil
}

// DeletionsInProgress counts the jobs being deleted.
func (w *wtx) DeletionsInProgress() (int, error) {
	var n int
	err := w.queryRow("SELECT count(*) FROM jobs WHERE status = $1", []any{string(store.JobDeletionInProgress)}, &n)
	return n, err
}

// BeginSettle does nothing: the job's row says it is settling.
func (*wtx) BeginSettle(string, bool) {}

// EndSettle does nothing (see BeginSettle).
func (*wtx) EndSettle(string) {}

// SetRolloutTargets replaces the things a rollout visits.
func (w *wtx) SetRolloutTargets(job string, things []string) error {
	w.queue("DELETE FROM rollout_targets WHERE job_id = $1", job)
	w.queue(`INSERT INTO rollout_targets (job_id, pos, thing_name)
		SELECT $1, u.ord - 1, u.thing FROM unnest($2::text[]) WITH ORDINALITY AS u(thing, ord)`, job, things)
	return nil
}

// RolloutTargets reads limit things of a rollout from position from.
func (w *wtx) RolloutTargets(job string, from, limit int) ([]string, error) {
	rows, err := w.query(`SELECT thing_name FROM rollout_targets WHERE job_id = $1 AND pos >= $2 ORDER BY pos LIMIT $3`,
		job, from, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// DropRolloutTargets deletes a rollout's things.
func (w *wtx) DropRolloutTargets(job string) error {
	w.queue("DELETE FROM rollout_targets WHERE job_id = $1", job)
	return nil
}

// ---- executions ----

type execKey struct {
	thing, job string
	n          int64
}

func keyOf(e *store.Execution) execKey { return execKey{e.ThingName, e.JobID, e.ExecutionNumber} }

// Execution loads one execution.
func (w *wtx) Execution(thing, job string, n int64) (*store.Execution, error) {
	k := execKey{thing, job, n}
	if e, ok := w.execs[k]; ok {
		if e == nil {
			return nil, nil
		}
		return e.Clone(), nil
	}
	var rec []byte
	err := w.queryRow("SELECT record FROM executions WHERE thing_name = $1 AND job_id = $2 AND execution_number = $3",
		[]any{thing, job, n}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e, err := decode[store.Execution](rec, "execution")
	if err != nil {
		return nil, err
	}
	w.execs[k] = e
	return e.Clone(), nil
}

// LatestExecution loads the execution of job on thing with the highest
// number: the pending one, when the view of the thing's queue of jobs
// without a namespace holds it.
func (w *wtx) LatestExecution(thing, job string) (*store.Execution, error) {
	if st := w.things[thing]; st != nil && st.plain.view != nil {
		if n, ok := st.plain.view.Find(job); ok {
			return w.Execution(thing, job, n)
		}
	}
	var rec []byte
	err := w.queryRow(`SELECT record FROM executions WHERE thing_name = $1 AND job_id = $2
		ORDER BY execution_number DESC LIMIT 1`, []any{thing, job}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e, err := decode[store.Execution](rec, "execution")
	if err != nil {
		return nil, err
	}
	w.execs[keyOf(e)] = e
	return e.Clone(), nil
}

// eachExecution walks executions in the order of q, which takes the
// list's key, the position after which to start and a row limit, and
// returns records.
func (w *wtx) eachExecution(q, key string, after engine.Cursor, fn func(*store.Execution) (bool, error), pos func(*store.Execution) engine.Cursor) error {
	return walk(w, "execution", func(last *store.Execution) (pgx.Rows, error) {
		if last != nil {
			after = pos(last)
		}
		return w.query(q, key, after.Name, after.N, listChunk)
	}, fn)
}

// walk decodes the JSON records a query returns, listChunk at a time:
// rows reads the chunk after the last record seen (nil at first), until
// a chunk comes short or fn returns false.
func walk[T any](w *wtx, what string, rows func(last *T) (pgx.Rows, error), fn func(*T) (bool, error)) error {
	var last *T
	for {
		r, err := rows(last)
		if err != nil {
			return err
		}
		recs, err := pgx.CollectRows(r, pgx.RowTo[[]byte])
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if last, err = decode[T](rec, what); err != nil {
				return err
			}
			if more, err := fn(last); err != nil || !more {
				return err
			}
		}
		if len(recs) < listChunk {
			return nil
		}
	}
}

// EachExecutionOfJob walks a job's executions by thing and number.
func (w *wtx) EachExecutionOfJob(job string, after engine.Cursor, fn func(*store.Execution) (bool, error)) error {
	return w.eachExecution(`SELECT record FROM executions WHERE job_id = $1 AND (thing_name, execution_number) > ($2, $3)
		ORDER BY thing_name, execution_number LIMIT $4`, job, after, fn,
		func(e *store.Execution) engine.Cursor { return engine.Cursor{Name: e.ThingName, N: e.ExecutionNumber} })
}

// EachExecutionOfThing walks a thing's executions by job and number.
func (w *wtx) EachExecutionOfThing(thing, job string, after engine.Cursor, fn func(*store.Execution) (bool, error)) error {
	q := `SELECT record FROM executions WHERE thing_name = $1 AND (job_id, execution_number) > ($2, $3)`
	if job != "" {
		q += " AND job_id = " + quoteLiteral(job)
	}
	return w.eachExecution(q+" ORDER BY job_id, execution_number LIMIT $4", thing, after, fn,
		func(e *store.Execution) engine.Cursor { return engine.Cursor{Name: e.JobID, N: e.ExecutionNumber} })
}

// quoteLiteral quotes a validated id ([a-zA-Z0-9_-]) as an SQL literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// saveExec queues an execution's upsert.
func (w *wtx) saveExec(e *store.Execution) error {
	rec, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode execution: %w", err)
	}
	w.queue(`INSERT INTO executions (thing_name, job_id, execution_number, status, deadline_ns, queue_seq, namespace_id, record)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (thing_name, job_id, execution_number) DO UPDATE
		SET status = EXCLUDED.status, deadline_ns = EXCLUDED.deadline_ns, queue_seq = EXCLUDED.queue_seq, record = EXCLUDED.record`,
		e.ThingName, e.JobID, e.ExecutionNumber, string(e.Status), nanos(e.Deadline()), int64(e.QueueSeq), e.Namespace, rec)
	w.execs[keyOf(e)] = e.Clone()
	w.writes++
	return nil
}

// PutExecution writes an execution; the thing's queue view follows.
func (w *wtx) PutExecution(old, cur *store.Execution) error {
	if err := w.saveExec(cur); err != nil {
		return err
	}
	w.requeue(old, cur)
	return nil
}

// DeleteExecution deletes an execution.
func (w *wtx) DeleteExecution(e *store.Execution) error {
	w.queue("DELETE FROM executions WHERE thing_name = $1 AND job_id = $2 AND execution_number = $3",
		e.ThingName, e.JobID, e.ExecutionNumber)
	w.writes++
	w.execs[keyOf(e)] = nil
	w.requeue(e, nil)
	return nil
}

// requeue keeps the view of the execution's queue in step with its
// change.
func (w *wtx) requeue(old, cur *store.Execution) {
	e := cur
	if e == nil {
		e = old
	}
	st := w.things[e.ThingName]
	if st == nil {
		return
	}
	q := st.known(e.Namespace)
	if q == nil || q.view == nil {
		return // read from the database when needed, with this write
	}
	if oe, ce, was, is := engine.Entries(old, cur); was || is {
		q.view.PutEntries(&oe, &ce, was, is)
	}
}

// ---- queues and things ----

// thingState is what a transaction knows about one thing: the row lock it
// holds, and its queues.
type thingState struct {
	name   string
	locked bool
	plain  queueState    // the queue of jobs without a namespace
	ns     []*queueState // the namespaced queues, as met
}

// queueState is what a transaction knows about one of a thing's queues.
// Its revisions are thing_state.rev and members_rev for the plain queue,
// and kept in thing_state.ns_state for the others.
type queueState struct {
	ns         string
	rev        int64 // as locked, then as this transaction leaves it
	lockedRev  int64 // as locked
	membersRev int64 // as locked, then as this transaction leaves it
	view       *engine.QueueView
	changed    bool // the queue changed: rev moves by one
	notify     bool // a change with notify was produced: members_rev moves by one
	next       bool // a change with notify-next was produced
	head       *store.PendingExecution
}

// known returns the state of the thing's queue of namespace ns, nil when
// the transaction has not met it.
func (st *thingState) known(ns string) *queueState {
	if ns == "" {
		return &st.plain
	}
	for _, q := range st.ns {
		if q.ns == ns {
			return q
		}
	}
	return nil
}

// queue returns the state of the thing's queue of namespace ns, starting
// one (a queue the thing never had: revisions 0).
func (st *thingState) queue(ns string) *queueState {
	if q := st.known(ns); q != nil {
		return q
	}
	q := &queueState{ns: ns}
	st.ns = append(st.ns, q)
	return q
}

// queues lists the thing's queues the transaction knows, the plain one
// first.
func (st *thingState) queues() []*queueState {
	return append([]*queueState{&st.plain}, st.ns...)
}

// setNSState reads thing_state.ns_state into the namespaced queues.
func (st *thingState) setNSState(raw []byte) error {
	if len(raw) <= 2 { // {}
		return nil
	}
	var m map[string][2]int64
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decode the queue revisions of %s: %w", st.name, err)
	}
	for ns, revs := range m {
		q := st.queue(ns)
		q.rev, q.lockedRev, q.membersRev = revs[0], revs[0], revs[1]
	}
	return nil
}

// nsState encodes the revisions of the namespaced queues for
// thing_state.ns_state.
func (st *thingState) nsState() ([]byte, error) {
	m := make(map[string][2]int64, len(st.ns))
	for _, q := range st.ns {
		if q.rev != 0 || q.membersRev != 0 {
			m[q.ns] = [2]int64{q.rev, q.membersRev}
		}
	}
	return json.Marshal(m)
}

// queueCols are what a queue read returns: the execution, and the head of
// its job.
const queueCols = `e.record, j.rev, j.seq, j.status, j.force_canceled, j.updated_ns, j.target_selection, j.namespace_id`

// Queue reads a thing's queue of namespace ns: through its view when the
// transaction holds the thing (reading the first entries into one the
// first time), else from the index.
func (w *wtx) Queue(thing, ns string, after *store.PendingExecution, limit int) ([]store.PendingExecution, error) {
	st := w.things[thing]
	if st == nil || !st.locked {
		return w.readQueue(thing, ns, after, limit)
	}
	q := st.queue(ns)
	if q.view == nil {
		list, err := w.readQueue(thing, ns, nil, engine.QueueWindow)
		if err != nil {
			return nil, err
		}
		q.view = engine.NewQueueView(list, len(list) < engine.QueueWindow)
	}
	return q.view.Read(after, limit, func(bound *store.PendingExecution, n int) ([]store.PendingExecution, error) {
		return w.readQueue(thing, ns, bound, n)
	})
}

// QueueNamespaces lists the namespaces of the thing's pending executions.
func (w *wtx) QueueNamespaces(thing string) ([]string, error) {
	rows, err := w.query(`SELECT DISTINCT namespace_id FROM executions
		WHERE thing_name = $1 AND status IN ('QUEUED', 'IN_PROGRESS')`, thing)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// readQueue reads up to limit entries of a thing's queue of namespace ns
// after after.
func (w *wtx) readQueue(thing, ns string, after *store.PendingExecution, limit int) ([]store.PendingExecution, error) {
	queued, seq := false, int64(-1)
	if after != nil {
		queued, seq = after.Status != store.StatusInProgress, int64(after.QueueSeq)
	}
	rows, err := w.query(`SELECT `+queueCols+` FROM executions e LEFT JOIN jobs j ON j.job_id = e.job_id
		WHERE e.thing_name = $1 AND e.namespace_id = $2 AND e.status IN ('QUEUED', 'IN_PROGRESS')
		AND ((e.status = 'QUEUED'), e.queue_seq) > ($3, $4)
		ORDER BY (e.status = 'QUEUED'), e.queue_seq LIMIT $5`, thing, ns, queued, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]store.PendingExecution, 0, limit)
	return out, w.scanQueue(rows, func(_ string, e *store.Execution) { out = append(out, e.Summary()) })
}

// scanQueue reads queue rows (the thing's name first when withThing),
// noting the executions and their jobs' heads.
func (w *wtx) scanQueue(rows pgx.Rows, fn func(thing string, e *store.Execution), withThing ...bool) error {
	defer rows.Close()
	for rows.Next() {
		var thing string
		var rec []byte
		var rev, seq, updated *int64
		var status, sel, ns *string
		var force *bool
		dest := []any{&rec, &rev, &seq, &status, &force, &updated, &sel, &ns}
		if len(withThing) > 0 {
			dest = append([]any{&thing}, dest...)
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if rec == nil {
			fn(thing, nil)
			continue
		}
		e, err := decode[store.Execution](rec, "execution")
		if err != nil {
			return err
		}
		if rev != nil {
			_, err = w.noteJob(e.JobID, true, *rev, *seq, *status, *force, *updated, *sel, *ns)
		} else {
			_, err = w.noteJob(e.JobID, false, 0, 0, "", false, 0, "", "")
		}
		if err != nil {
			return err
		}
		if _, cached := w.execs[keyOf(e)]; !cached {
			w.execs[keyOf(e)] = e
		}
		fn(thing, e)
	}
	return rows.Err()
}

// ReserveSeqs asks for n sequence numbers with the next things locked.
func (w *wtx) ReserveSeqs(n int) error {
	w.wantSeqs = max(w.wantSeqs, n)
	return nil
}

// LockThing locks one thing.
func (w *wtx) LockThing(name string, create bool) error {
	_, err := w.LockThings([]string{name}, create, false)
	return err
}

// LockThings locks (or, with skipLocked, tries to lock) the things not
// yet held, in name order, and reads the first entries of their queues
// (and the sequence numbers asked for) in one more round trip. create
// makes the rows of things that have none.
func (w *wtx) LockThings(names []string, create, skipLocked bool) ([]string, error) {
	var fresh []string
	for _, n := range names {
		if st := w.things[n]; (st == nil || !st.locked) && !slices.Contains(fresh, n) {
			fresh = append(fresh, n)
		}
	}
	if len(fresh) > 0 {
		slices.Sort(fresh)
		// One thing (a device's operation) is named by key equality, so
		// that PostgreSQL settles on one cached plan (see lateQuery).
		var key any = fresh
		insert, q := "INSERT INTO thing_state (thing_name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", lockThings
		if len(fresh) == 1 {
			key, insert, q = fresh[0], "INSERT INTO thing_state (thing_name) VALUES ($1) ON CONFLICT DO NOTHING", lockThing
		}
		if create {
			w.queue(insert, key)
		}
		if skipLocked {
			q += " SKIP LOCKED"
		}
		type lock struct {
			rev, members int64
			ns           []byte
		}
		locked := map[string]lock{}
		lockQuery := batchQuery{sql: q, args: []any{key}, scan: func(rows pgx.Rows) error {
			var name string
			var l lock
			_, err := pgx.ForEachRow(rows, []any{&name, &l.rev, &l.members, &l.ns}, func() error {
				locked[name] = l
				l.ns = nil
				return nil
			})
			return err
		}}
		// The queues are read in the same round trip, after the lock (the
		// server runs a batch in order, and each statement sees what was
		// committed before it started); those of things not locked are
		// dropped.
		views, viewsQuery := w.viewsQuery(fresh)
		qs := []batchQuery{lockQuery, viewsQuery}
		if n := w.wantSeqs - len(w.seqs); n > 0 {
			qs = append(qs, w.seqQuery(n))
			w.wantSeqs = 0
		}
		if err := w.queryMany(qs...); err != nil {
			return nil, err
		}
		for _, n := range fresh {
			l, ok := locked[n]
			if !ok && skipLocked {
				continue
			}
			// A thing without a row has never had an execution: its
			// queues are empty.
			st := &thingState{name: n, locked: true,
				plain: queueState{rev: l.rev, lockedRev: l.rev, membersRev: l.members, view: engine.NewQueueView(nil, true)}}
			if err := st.setNSState(l.ns); err != nil {
				return nil, err
			}
			if !ok {
				for _, q := range st.ns {
					q.view = engine.NewQueueView(nil, true)
				}
			}
			if ok {
				st.plain.view = views(n)
			}
			w.things[n] = st
		}
	}
	held := make([]string, 0, len(names))
	for _, n := range names {
		if st := w.things[n]; st != nil && st.locked {
			held = append(held, n)
		}
	}
	return held, nil
}

// viewsQuery reads the first entries of the plain queues of things;
// views returns a thing's, once the query has run.
func (w *wtx) viewsQuery(things []string) (views func(thing string) *engine.QueueView, q batchQuery) {
	got := map[string][]store.PendingExecution{}
	views = func(thing string) *engine.QueueView {
		list := got[thing]
		slices.SortFunc(list, func(a, b store.PendingExecution) int { return store.ComparePending(&a, &b) })
		return engine.NewQueueView(list, len(list) < engine.QueueWindow)
	}
	q = batchQuery{sql: viewsMany, args: []any{things}}
	if len(things) == 1 {
		q = batchQuery{sql: viewsOne, args: []any{things[0]}}
	}
	q.scan = func(rows pgx.Rows) error {
		return w.scanQueue(rows, func(thing string, e *store.Execution) {
			got[thing] = append(got[thing], e.Summary())
		}, true)
	}
	return views, q
}

// The statements that lock things and read the first entries of their
// plain queues, for one thing and for several. A device's operation uses
// the ones for one thing: their generic plans cost what custom ones do,
// so PostgreSQL stops planning them after a few runs, where the forms
// over arrays were planned again on every run (0.3 ms of the server's
// CPU an operation), and they are index lookups in any plan.
var (
	lockThing  = "SELECT thing_name, rev, members_rev, ns_state FROM thing_state WHERE thing_name = $1 FOR UPDATE"
	lockThings = "SELECT thing_name, rev, members_rev, ns_state FROM thing_state WHERE thing_name = ANY($1) ORDER BY thing_name FOR UPDATE"
	viewsOne   = `SELECT $1::text, ` + queueCols + ` FROM ` + plainQueueHead("$1")
	viewsMany  = `SELECT t.name, ` + queueCols + ` FROM unnest($1::text[]) t(name) CROSS JOIN LATERAL ` + plainQueueHead("t.name")
)

// plainQueueHead is the first entries of the plain queue of the thing
// named by name (an SQL expression), with their jobs (queueCols).
func plainQueueHead(name string) string {
	return `(SELECT * FROM executions e WHERE e.thing_name = ` + name + ` AND e.namespace_id = ''
			AND e.status IN ('QUEUED', 'IN_PROGRESS')
			ORDER BY (e.status = 'QUEUED'), e.queue_seq LIMIT ` + strconv.Itoa(engine.QueueWindow) + `) e
		LEFT JOIN jobs j ON j.job_id = e.job_id`
}

// ThingChanged records the change of one of a thing's queues: its
// revision moves when the transaction ends, and the change goes to the
// handler after the commit.
func (w *wtx) ThingChanged(c store.Change, head *store.PendingExecution) {
	st := w.things[c.ThingName]
	if st == nil {
		st = &thingState{name: c.ThingName}
		w.things[c.ThingName] = st
	}
	q := st.queue(c.Namespace)
	q.changed = true
	q.notify = q.notify || c.Notify
	q.next = q.next || c.NotifyNext
	q.head = head
	if c.Notify || c.NotifyNext {
		w.changes = append(w.changes, c)
	}
}

// Emit keeps a change for the handler.
func (w *wtx) Emit(c store.Change) { w.changes = append(w.changes, c) }

// AfterCommit runs f once the transaction has committed.
func (w *wtx) AfterCommit(f func()) { w.after = append(w.after, f) }

// TimersChanged wakes the timer loops here and on the other nodes.
func (w *wtx) TimersChanged() { w.timersChanged = true }

// TasksChanged wakes the task loops here and on the other nodes.
func (w *wtx) TasksChanged() { w.tasksChanged = true }

// Now is the transaction's time.
func (w *wtx) Now() time.Time { return w.now }

// Full reports whether a background step has written enough for one
// transaction; it carries on in the next.
func (w *wtx) Full() bool { return w.writes >= 8*w.s.Engine.TaskBatch()+1024 }

// NextSeq hands out the next sequence number (queue order, job order).
func (w *wtx) NextSeq() (uint64, error) {
	if len(w.seqs) == 0 {
		if err := w.queryMany(w.seqQuery(max(1, w.wantSeqs))); err != nil {
			return 0, err
		}
		w.wantSeqs = 0
	}
	n := w.seqs[0]
	w.seqs = w.seqs[1:]
	return uint64(n), nil
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

// finish writes what the transaction leaves for last: the revisions of
// the queues it changed, and the notifications to the other nodes.
func (w *wtx) finish() error {
	for _, name := range slices.Sorted(maps.Keys(w.things)) {
		st := w.things[name]
		changed, nsChanged := false, false
		for _, q := range st.queues() {
			if !q.changed {
				continue
			}
			q.rev++
			if q.notify {
				q.membersRev++
			}
			changed, nsChanged = true, nsChanged || q.ns != ""
			w.delivered = append(w.delivered, queueKey{name, q.ns})
		}
		if !changed {
			continue
		}
		if !nsChanged {
			w.queue(`INSERT INTO thing_state (thing_name, rev, members_rev) VALUES ($1, $2, $3)
				ON CONFLICT (thing_name) DO UPDATE SET rev = EXCLUDED.rev, members_rev = EXCLUDED.members_rev`,
				name, st.plain.rev, st.plain.membersRev)
			continue
		}
		ns, err := st.nsState()
		if err != nil {
			return err
		}
		w.queue(`INSERT INTO thing_state (thing_name, rev, members_rev, ns_state) VALUES ($1, $2, $3, $4)
			ON CONFLICT (thing_name) DO UPDATE SET rev = EXCLUDED.rev, members_rev = EXCLUDED.members_rev, ns_state = EXCLUDED.ns_state`,
			name, st.plain.rev, st.plain.membersRev, ns)
	}
	w.queueHints()
	return nil
}
