package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// maxDeletionsInProgress is AWS's limit of jobs in DELETION_IN_PROGRESS.
const maxDeletionsInProgress = 10

// CreateJob creates a job and starts its rollout: as many executions as
// the rollout rate and TaskBatch allow in the same transaction, the rest by
// the task loops. A job whose schedulingConfig has a startTime is SCHEDULED
// until then.
func (s *Store) CreateJob(ctx context.Context, in *store.CreateJobInput) (*store.Job, error) {
	if err := store.ValidateCreateJob(in); err != nil {
		return nil, err
	}
	if err := store.ValidateSchedule(in.Job.SchedulingConfig, s.clock.Now()); err != nil {
		return nil, err
	}
	var id string
	err := s.update(ctx, "create job", func(w *wtx) error {
		id = ""
		var exists bool
		if err := w.queryRow("SELECT EXISTS (SELECT 1 FROM jobs WHERE job_id = $1)", []any{in.Job.JobID}, &exists); err != nil {
			return err
		}
		if exists {
			return store.Errorf(store.ErrAlreadyExists, "job %s already exists", in.Job.JobID)
		}
		job := in.Job.Clone()
		doc, before, err := store.JobDocument(job, in, w.template)
		if err != nil {
			return err
		}
		groups, err := store.TargetGroups(job.Targets, w.group)
		if err != nil {
			return err
		}
		seq, err := w.nextSeq()
		if err != nil {
			return err
		}
		job.Seq = seq
		job.Status = store.JobInProgress
		job.CreatedAt, job.LastUpdatedAt = w.now, w.now
		job.CompletedAt = time.Time{}
		if job.TargetSelection == "" {
			job.TargetSelection = store.Snapshot
		}
		job.ForceCanceled, job.ReasonCode, job.Comment = false, "", ""
		t := &task{}
		if sc := job.SchedulingConfig; sc != nil && (sc.StartTime != "" || sc.EndTime != "") {
			t.Schedule = &scheduleTask{EndBehavior: sc.EndBehavior}
			t.Schedule.Start, _ = schedule.ParseTime(sc.StartTime)
			t.Schedule.End, _ = schedule.ParseTime(sc.EndTime)
			if !t.Schedule.Start.IsZero() {
				job.Status = store.JobScheduled
			}
		}
		rec := *job
		rec.Targets = nil
		recJSON, err := json.Marshal(&rec)
		if err != nil {
			return err
		}
		targetsJSON, err := json.Marshal(job.Targets)
		if err != nil {
			return err
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
		if err != nil {
			return err
		}
		if n == 0 {
			return store.Errorf(store.ErrAlreadyExists, "job %s already exists", in.Job.JobID)
		}
		w.jobs[job.JobID] = &jobState{id: job.JobID, rev: 1, seq: job.Seq, status: job.Status, updated: job.LastUpdatedAt,
			job: job, targets: job.Targets, taskLoaded: true, inserted: true}
		w.s.docs.Put(job.Seq, doc)
		for _, g := range groups {
			w.queue("INSERT INTO group_jobs (group_name, job_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", g, job.JobID)
		}
		if job.Status == store.JobInProgress {
			if err := w.beginRollout(job, t); err != nil {
				return err
			}
			if _, err := w.rolloutStep(job, t); err != nil {
				return err
			}
		}
		id = job.JobID
		if t.Rollout == nil && t.Schedule == nil {
			w.jobs[job.JobID].checkComplete = true
			return nil
		}
		w.setTask(job.JobID, t, w.now)
		w.tasksChanged = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.DescribeJob(ctx, id)
}

// queueMany gives each thing a new QUEUED execution of job, unless it has
// one pending. lookup says whether a thing may already have executions of
// the job (a re-join); one that cannot gets execution number 1 without a
// read. The things are locked together, in name order.
func (w *wtx) queueMany(job *store.Job, things []string, lookup bool) error {
	if len(things) == 0 {
		return nil
	}
	held, err := w.loadThingsSeqs(things, true, false, len(things))
	if err != nil {
		return err
	}
	if err := w.reserveSeqs(len(held)); err != nil {
		return err
	}
	for _, name := range held {
		t, err := w.viewThing(name)
		if err != nil {
			return err
		}
		if err := w.queueInto(t, job, lookup); err != nil {
			return err
		}
		if err := w.closeThing(t); err != nil {
			return err
		}
	}
	return nil
}

// queueInto queues a new execution of job on the open thing, unless one
// is pending. Its retry counters start afresh.
func (w *wtx) queueInto(t *thingTx, job *store.Job, lookup bool) error {
	for _, p := range t.set {
		if p.JobID == job.JobID {
			return nil
		}
	}
	var prev *store.Execution
	n := int64(1)
	if lookup {
		var err error
		prev, err = w.latestExec(t.name, job.JobID, t.set)
		switch {
		case err == nil:
			n = prev.ExecutionNumber + 1
		case errors.Is(err, store.ErrNotFound):
			prev = nil
		default:
			return err
		}
	}
	seq, err := w.nextSeq()
	if err != nil {
		return err
	}
	e := &store.Execution{
		JobID:           job.JobID,
		ThingName:       t.name,
		ExecutionNumber: n,
		Status:          store.StatusQueued,
		QueuedAt:        w.now,
		LastUpdatedAt:   w.now,
		VersionNumber:   1,
		QueueSeq:        seq,
		JobSeq:          job.Seq,
	}
	return w.putExec(t, prev, e)
}

// fullJobQuery reads everything DescribeJob returns.
const fullJobQuery = `SELECT record, targets, task, n_queued, n_in_progress, n_succeeded, n_failed, n_rejected,
	n_canceled, n_removed, n_timed_out FROM jobs WHERE job_id = $1`

// DescribeJob returns a job with its counts.
func (s *Store) DescribeJob(ctx context.Context, jobID string) (*store.Job, error) {
	if err := store.ValidateJobID(jobID); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, store.Unavailable("describe job", errors.New("store is closed"))
	}
	var rec, targets, taskJSON []byte
	var p store.ProcessDetails
	err := s.pool.QueryRow(ctx, fullJobQuery, jobID).Scan(&rec, &targets, &taskJSON, &p.Queued, &p.InProgress,
		&p.Succeeded, &p.Failed, &p.Rejected, &p.Canceled, &p.Removed, &p.TimedOut)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.Errorf(store.ErrNotFound, "job %s does not exist", jobID)
	}
	if err != nil {
		return nil, s.mapErr("describe job", err)
	}
	s.deliveries.settle()
	job, err := decode[store.Job](rec, "job "+jobID)
	if err != nil {
		return nil, s.mapErr("describe job", err)
	}
	job.ProcessDetails = p
	if err := json.Unmarshal(targets, &job.Targets); err != nil {
		return nil, s.mapErr("describe job", err)
	}
	var t *task
	if taskJSON != nil {
		if t, err = decode[task](taskJSON, "task"); err != nil {
			return nil, s.mapErr("describe job", err)
		}
	}
	job.IsConcurrent = t.concurrent()
	if t != nil && t.Rollout != nil {
		job.ProcessDetails.ProcessingTargets = append([]string(nil), job.Targets...)
	}
	if sc := job.SchedulingConfig; sc != nil && len(sc.MaintenanceWindows) > 0 {
		if ws, err := store.ParseWindows(sc.MaintenanceWindows); err == nil {
			job.ScheduledRollouts = schedule.NextStarts(ws, s.clock.Now(), 7)
		}
	}
	return job, nil
}

// GetJobDocument returns a job's document.
func (s *Store) GetJobDocument(ctx context.Context, jobID string, beforeSubstitution bool) (string, error) {
	if err := store.ValidateJobID(jobID); err != nil {
		return "", err
	}
	if s.isClosed() {
		return "", store.Unavailable("get job document", errors.New("store is closed"))
	}
	var doc string
	var before *string
	err := s.pool.QueryRow(ctx, "SELECT document, document_before FROM jobs WHERE job_id = $1", jobID).Scan(&doc, &before)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", store.Errorf(store.ErrNotFound, "job %s does not exist", jobID)
	}
	if err != nil {
		return "", s.mapErr("get job document", err)
	}
	if beforeSubstitution && before != nil {
		return *before, nil
	}
	return doc, nil
}

// ListJobs lists jobs, newest first.
func (s *Store) ListJobs(ctx context.Context, in *store.ListJobsInput) (*store.ListJobsOutput, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	var from *int64
	if in.NextToken != "" {
		b, err := store.DecodeListToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		if len(b) != 8 {
			return nil, store.Errorf(store.ErrInvalidRequest, "nextToken is not valid")
		}
		n := int64(binary.BigEndian.Uint64(b))
		from = &n
	}
	if in.ThingGroupName != "" {
		if err := store.ValidateThingGroupName(in.ThingGroupName); err != nil {
			return nil, err
		}
	}
	out := &store.ListJobsOutput{}
	err = s.view(ctx, "list jobs", func(r *wtx) error {
		out.Jobs, out.NextToken = nil, ""
		if in.ThingGroupName != "" {
			if _, err := r.group(in.ThingGroupName); err != nil {
				return err
			}
		}
		rows, err := r.query(`SELECT seq, record, coalesce(task ? 'rollout' OR task ? 'settle', false) FROM jobs
			WHERE ($1::bigint IS NULL OR seq <= $1) AND ($2 = '' OR status = $2) AND ($3 = '' OR target_selection = $3)
			AND ($4 = '' OR namespace_id = $4)
			AND ($5 = '' OR job_id IN (SELECT job_id FROM group_jobs WHERE group_name = $5))
			ORDER BY seq DESC LIMIT $6`,
			from, string(in.Status), string(in.TargetSelection), in.NamespaceID, in.ThingGroupName, limit+1)
		if err != nil {
			return err
		}
		var seq int64
		var rec []byte
		var concurrent bool
		_, err = pgx.ForEachRow(rows, []any{&seq, &rec, &concurrent}, func() error {
			if len(out.Jobs) == limit {
				out.NextToken = store.EncodeListToken(binary.BigEndian.AppendUint64(nil, uint64(seq)))
				return nil
			}
			job, err := decode[store.Job](rec, "job")
			if err != nil {
				return err
			}
			job.IsConcurrent = concurrent
			out.Jobs = append(out.Jobs, job)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CancelJob cancels a job: QUEUED executions become CANCELED (and
// IN_PROGRESS ones with Force), and the rollout stops. The job's status
// changes in one transaction; its first background step, which writes the
// cancellation out for the first TaskBatch executions, runs before
// CancelJob returns.
func (s *Store) CancelJob(ctx context.Context, in *store.CancelJobInput) (*store.Job, error) {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return nil, err
	}
	if in.ReasonCode != nil {
		if err := store.ValidateReasonCode(*in.ReasonCode); err != nil {
			return nil, err
		}
	}
	if in.Comment != nil {
		if err := store.ValidateComment(*in.Comment); err != nil {
			return nil, err
		}
	}
	err := s.update(ctx, "cancel job", func(w *wtx) error {
		job, err := w.job(in.JobID)
		if err != nil {
			return err
		}
		switch {
		case job.Status == store.JobDeletionInProgress:
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is being deleted", job.JobID)
		case job.Status == store.JobCompleted:
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is already COMPLETED", job.JobID)
		case job.Status == store.JobCanceled && (!in.Force || job.ForceCanceled):
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is already CANCELED", job.JobID)
		}
		return w.cancelJob(job, in.Force, in.ReasonCode, in.Comment)
	})
	if err != nil {
		return nil, err
	}
	s.stepNow(ctx, in.JobID)
	return s.DescribeJob(ctx, in.JobID)
}

// stepNow runs one step of a job's task at once, waiting for another
// node's step of the same job to finish first. Its failure is only
// logged: the task loops finish the work.
func (s *Store) stepNow(ctx context.Context, jobID string) {
	if _, _, err := s.runStep(ctx, jobID, true); err != nil && ctx.Err() == nil {
		s.log.Warn("job step failed; the task loop carries on", "op", "job step", "job", jobID, "error", err)
	}
}

// DeleteJob deletes a job and its executions.
func (s *Store) DeleteJob(ctx context.Context, in *store.DeleteJobInput) error {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return err
	}
	err := s.update(ctx, "delete job", func(w *wtx) error {
		job, err := w.job(in.JobID)
		if err != nil {
			return err
		}
		switch {
		case job.Status == store.JobDeletionInProgress:
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is already being deleted", job.JobID)
		case !in.Force && job.Status != store.JobCompleted && job.Status != store.JobCanceled:
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is %s; only COMPLETED or CANCELED jobs can be deleted without force", job.JobID, job.Status)
		}
		var deleting int
		if err := w.queryRow("SELECT count(*) FROM jobs WHERE status = $1", []any{string(store.JobDeletionInProgress)}, &deleting); err != nil {
			return err
		}
		if deleting >= maxDeletionsInProgress {
			return store.Errorf(store.ErrLimitExceeded, "%d jobs are already being deleted", maxDeletionsInProgress)
		}
		job.Status = store.JobDeletionInProgress
		job.LastUpdatedAt = w.now
		w.saveJob(job)
		w.jobEvent(job, "deletion_in_progress")
		w.startSettle(job, true)
		return nil
	})
	if err != nil {
		return err
	}
	s.stepNow(ctx, in.JobID)
	return nil
}

// cancelJob cancels a job (by CancelJob, its abort criteria or its
// schedule's end): the job becomes CANCELED, its rollout stops, and its
// QUEUED executions (and IN_PROGRESS ones with force) are canceled by the
// settle task it gets, and read as canceled until then.
func (w *wtx) cancelJob(job *store.Job, force bool, reasonCode, comment *string) error {
	job.Status = store.JobCanceled
	job.ForceCanceled = job.ForceCanceled || force
	job.LastUpdatedAt = w.now
	if reasonCode != nil {
		job.ReasonCode = *reasonCode
	}
	if comment != nil {
		job.Comment = *comment
	}
	w.saveJob(job)
	w.jobEvent(job, "cancellation_in_progress")
	w.startSettle(job, false)
	return nil
}

// startSettle replaces the job's task by a cancel or delete task.
func (w *wtx) startSettle(job *store.Job, deleting bool) {
	w.queue("DELETE FROM rollout_targets WHERE job_id = $1", job.JobID)
	w.setTask(job.JobID, &task{Settle: &settleTask{Delete: deleting}}, w.now)
	w.tasksChanged = true
}

// position encodes a list position: a name and an execution number.
func position(name string, n int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(name), 0), uint64(n))
}

func parsePosition(b []byte) (string, int64, error) {
	i := len(b) - 9
	if i < 0 || b[i] != 0 {
		return "", 0, store.Errorf(store.ErrInvalidRequest, "nextToken is not valid")
	}
	return string(b[:i]), int64(binary.BigEndian.Uint64(b[i+1:])), nil
}

// ListJobExecutionsForJob lists the executions of a job, by thing name.
func (s *Store) ListJobExecutionsForJob(ctx context.Context, in *store.ListExecutionsInput) (*store.ListExecutionsOutput, error) {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return nil, err
	}
	return s.listExecutions(ctx, in, func(r *wtx) error {
		_, err := r.job(in.JobID)
		return err
	}, `SELECT e.record, e.thing_name, e.execution_number, '' FROM executions e
		WHERE e.job_id = $1 AND (e.thing_name, e.execution_number) > ($2, $3)
		ORDER BY e.thing_name, e.execution_number LIMIT $4`, in.JobID)
}

// ListJobExecutionsForThing lists the executions of a thing, by job id.
func (s *Store) ListJobExecutionsForThing(ctx context.Context, in *store.ListExecutionsInput) (*store.ListExecutionsOutput, error) {
	if err := store.ValidateThingName(in.ThingName); err != nil {
		return nil, err
	}
	if in.JobID != "" {
		if err := store.ValidateJobID(in.JobID); err != nil {
			return nil, err
		}
	}
	q := `SELECT e.record, e.job_id, e.execution_number, coalesce(j.namespace_id, '') FROM executions e
		LEFT JOIN jobs j ON j.job_id = e.job_id
		WHERE e.thing_name = $1 AND (e.job_id, e.execution_number) > ($2, $3)`
	if in.JobID != "" {
		q += " AND e.job_id = " + quoteLiteral(in.JobID)
	}
	q += " ORDER BY e.job_id, e.execution_number LIMIT $4"
	return s.listExecutions(ctx, in, nil, q, in.ThingName)
}

// quoteLiteral quotes a validated id ([a-zA-Z0-9_-]) as an SQL literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// listExecutions pages executions in the order of q, which takes the
// list's key, the position after which to start and a row limit, and
// returns each execution's record, position and job namespace. Statuses
// are filtered after the job's own status has been applied, so the query
// reads ahead in chunks.
func (s *Store) listExecutions(ctx context.Context, in *store.ListExecutionsInput, check func(r *wtx) error, q, key string) (*store.ListExecutionsOutput, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	if in.Status != "" && !in.Status.Valid() {
		return nil, store.Errorf(store.ErrInvalidRequest, "status %q is not a job execution status", in.Status)
	}
	afterName, afterN := "", int64(-1)
	if in.NextToken != "" {
		b, err := store.DecodeListToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		if afterName, afterN, err = parsePosition(b); err != nil {
			return nil, err
		}
	}
	out := &store.ListExecutionsOutput{}
	err = s.view(ctx, "list executions", func(r *wtx) error {
		out.Executions, out.NextToken = nil, ""
		if check != nil {
			if err := check(r); err != nil {
				return err
			}
		}
		chunk := max(limit+1, 64)
		var lastName string
		var lastN int64
		for {
			rows, err := r.query(q, key, afterName, afterN, chunk)
			if err != nil {
				return err
			}
			type row struct {
				rec  []byte
				name string
				n    int64
				ns   string
			}
			var got []row
			var x row
			if _, err := pgx.ForEachRow(rows, []any{&x.rec, &x.name, &x.n, &x.ns}, func() error {
				got = append(got, row{append([]byte(nil), x.rec...), x.name, x.n, x.ns})
				return nil
			}); err != nil {
				return err
			}
			for _, g := range got {
				afterName, afterN = g.name, g.n
				if in.NamespaceID != "" && g.ns != in.NamespaceID {
					continue
				}
				e, err := decode[store.Execution](g.rec, "execution")
				if err != nil {
					return err
				}
				e, err = r.effective(e)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if in.Status != "" && e.Status != in.Status {
					continue
				}
				if len(out.Executions) == limit {
					out.NextToken = store.EncodeListToken(position(lastName, lastN))
					return nil
				}
				out.Executions = append(out.Executions, e)
				lastName, lastN = g.name, g.n
			}
			if len(got) < chunk {
				return nil
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CancelJobExecution cancels the latest execution of a job on a thing.
func (s *Store) CancelJobExecution(ctx context.Context, in *store.CancelExecutionInput) error {
	if err := store.ValidateCancelExecution(in); err != nil {
		return err
	}
	return s.onThing(ctx, "cancel execution", in.ThingName, false, func(w *wtx, t *thingTx) error { return w.cancelExec(t, in) })
}

func (w *wtx) cancelExec(t *thingTx, in *store.CancelExecutionInput) error {
	e, err := w.latestExec(t.name, in.JobID, t.set)
	if err != nil {
		return err
	}
	job, err := w.job(in.JobID)
	if err != nil {
		return err
	}
	if store.JobStateEffect(job, e) == store.EffectDelete {
		return store.Errorf(store.ErrNotFound, "no execution of job %s exists for thing %s", in.JobID, t.name)
	}
	if err := store.CheckCancelExecution(e, t.name, in); err != nil {
		return err
	}
	canceled := store.Cancel(e, in.StatusDetails, w.now)
	if err := w.putExec(t, e, canceled); err != nil {
		return err
	}
	return w.finished(t, job, canceled)
}

// DeleteJobExecution deletes one execution; a pending one only with Force.
func (s *Store) DeleteJobExecution(ctx context.Context, in *store.DeleteExecutionInput) error {
	if err := store.ValidateThingName(in.ThingName); err != nil {
		return err
	}
	if err := store.ValidateJobID(in.JobID); err != nil {
		return err
	}
	return s.onThing(ctx, "delete execution", in.ThingName, false, func(w *wtx, t *thingTx) error { return w.deleteExec(t, in) })
}

func (w *wtx) deleteExec(t *thingTx, in *store.DeleteExecutionInput) error {
	e, err := w.exec(t.name, in.JobID, in.ExecutionNumber)
	if err != nil {
		return err
	}
	job, err := w.job(in.JobID)
	if err != nil {
		return err
	}
	if store.JobStateEffect(job, e) == store.EffectDelete {
		return store.Errorf(store.ErrNotFound, "no execution %d of job %s exists for thing %s", in.ExecutionNumber, in.JobID, t.name)
	}
	if !e.Status.Terminal() && !in.Force {
		return store.Errorf(store.ErrInvalidStateTransition, "job execution %s on %s is %s; delete it with force", in.JobID, t.name, e.Status)
	}
	latest, err := w.latestExec(t.name, in.JobID, t.set)
	if err != nil {
		return err
	}
	if err := w.dropExec(t, e); err != nil {
		return err
	}
	if latest.ExecutionNumber == e.ExecutionNumber {
		// The thing is counted by its latest execution; the one before
		// takes its place, if there is one.
		if err := w.addCount(in.JobID, e.Status, -1); err != nil {
			return err
		}
		prev, err := w.latestExec(t.name, in.JobID, t.set)
		switch {
		case err == nil:
			if err := w.addCount(in.JobID, prev.Status, 1); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	w.jobs[in.JobID].checkComplete = true
	return nil
}

// UpdateJob changes a job's description and configuration. A new rollout
// configuration paces the rest of the rollout; a new timeout applies to
// executions that start from now on.
func (s *Store) UpdateJob(ctx context.Context, in *store.UpdateJobInput) error {
	if err := store.ValidateUpdateJob(in); err != nil {
		return err
	}
	return s.update(ctx, "update job", func(w *wtx) error {
		job, err := w.job(in.JobID)
		if err != nil {
			return err
		}
		if err := store.ApplyJobUpdate(job, in, w.now); err != nil {
			return err
		}
		w.saveJob(job)
		// The rollout's pace may have changed: its next step is due now.
		if t := w.jobs[job.JobID].task; t != nil {
			w.setTask(job.JobID, t, w.now)
			w.tasksChanged = true
		}
		// New abort criteria may already be met.
		w.jobs[job.JobID].checkAbort = true
		return nil
	})
}

// AssociateTargetsWithJob adds targets to a continuous job that is in
// progress; the things they cover get executions at once.
func (s *Store) AssociateTargetsWithJob(ctx context.Context, in *store.AssociateTargetsInput) (*store.Job, error) {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return nil, err
	}
	if len(in.Targets) == 0 {
		return nil, store.Errorf(store.ErrInvalidRequest, "targets must list at least one thing or thing group ARN")
	}
	for _, t := range in.Targets {
		if _, _, err := store.ParseTargetARN(t); err != nil {
			return nil, err
		}
	}
	if in.Comment != nil {
		if err := store.ValidateComment(*in.Comment); err != nil {
			return nil, err
		}
	}
	err := s.update(ctx, "associate targets", func(w *wtx) error {
		job, err := w.job(in.JobID)
		if err != nil {
			return err
		}
		if job.TargetSelection != store.Continuous || job.Status != store.JobInProgress {
			return store.Errorf(store.ErrInvalidRequest, "targets can only be added to a CONTINUOUS job that is IN_PROGRESS; %s is a %s job in %s", job.JobID, job.TargetSelection, job.Status)
		}
		targets, err := w.jobTargets(job.JobID)
		if err != nil {
			return err
		}
		var added []string
		for _, t := range in.Targets {
			if !slices.Contains(targets, t) && !slices.Contains(added, t) {
				added = append(added, t)
			}
		}
		if len(targets)+len(added) > store.MaxJobTargets {
			return store.Errorf(store.ErrLimitExceeded, "a job may have at most %d targets", store.MaxJobTargets)
		}
		groups, err := store.TargetGroups(added, w.group)
		if err != nil {
			return err
		}
		js := w.jobs[job.JobID]
		js.targets = append(append([]string(nil), targets...), added...)
		js.targetsDirty = true
		if in.Comment != nil {
			job.Comment = *in.Comment
		}
		job.LastUpdatedAt = w.now
		w.saveJob(job)
		for _, g := range groups {
			w.queue("INSERT INTO group_jobs (group_name, job_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", g, job.JobID)
		}
		things, err := w.resolveTargets(added)
		if err != nil {
			return err
		}
		return w.queueMany(job, things, true)
	})
	if err != nil {
		return nil, err
	}
	return s.DescribeJob(ctx, in.JobID)
}

// itoa is strconv.Itoa, for log values.
func itoa(n int) string { return strconv.Itoa(n) }
