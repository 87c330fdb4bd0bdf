package badger

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// CreateJob creates a job and starts its rollout: as many executions as
// the rollout rate and TaskBatch allow in the same commit, the rest by the
// task loop. A job whose schedulingConfig has a startTime is SCHEDULED
// until then.
func (s *Store) CreateJob(ctx context.Context, in *store.CreateJobInput) (*store.Job, error) {
	if err := store.ValidateCreateJob(in); err != nil {
		return nil, err
	}
	if err := store.ValidateSchedule(in.Job.SchedulingConfig, s.clock.Now()); err != nil {
		return nil, err
	}
	var out *store.Job
	err := s.submit(ctx, func(w *wtx) error {
		out = nil
		exists, err := w.has(jobKey(in.Job.JobID))
		if err != nil {
			return err
		}
		if exists {
			return &store.Error{Kind: store.ErrAlreadyExists, Message: "job " + in.Job.JobID + " already exists"}
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
		job.Seq = w.s.nextSeq()
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
		for _, write := range []func() error{
			func() error { return w.saveJob(job) },
			func() error { return w.saveTargetARNs(job) },
			func() error { return w.set(docKey(job.JobID), []byte(doc)) },
			func() error { return w.set(jobOrderKey(job.Seq), []byte(job.JobID)) },
		} {
			if err := write(); err != nil {
				return err
			}
		}
		if before != "" {
			if err := w.set(docBeforeKey(job.JobID), []byte(before)); err != nil {
				return err
			}
		}
		for _, g := range groups {
			if err := w.set(groupJobKey(g, job.JobID), nil); err != nil {
				return err
			}
		}
		if _, err := w.jobCounts(job.JobID); err != nil {
			return err
		}
		if job.Status == store.JobInProgress {
			if err := w.beginRollout(job, t); err != nil {
				return err
			}
			if _, err := w.rolloutStep(job, t); err != nil {
				return err
			}
		}
		out = job
		if t.Rollout == nil && t.Schedule == nil {
			return w.maybeComplete(job)
		}
		return w.saveTask(job.JobID, t)
	})
	if err != nil {
		return nil, err
	}
	return s.DescribeJob(ctx, out.JobID)
}

// queueExecution gives thing a new QUEUED execution of job, unless it
// already has one pending. lookup says whether the thing may already have
// executions of the job (a re-join); a thing that cannot gets execution
// number 1 without a read.
func (w *wtx) queueExecution(job *store.Job, thing string, lookup bool) error {
	t, err := w.openThing(thing)
	if err != nil {
		return err
	}
	if err := w.queueInto(t, job, lookup); err != nil {
		return err
	}
	return w.closeThing(t)
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
	e := &store.Execution{
		JobID:           job.JobID,
		ThingName:       t.name,
		ExecutionNumber: n,
		Status:          store.StatusQueued,
		QueuedAt:        w.now,
		LastUpdatedAt:   w.now,
		VersionNumber:   1,
		QueueSeq:        w.s.nextSeq(),
		JobSeq:          job.Seq,
	}
	return w.putExec(t, prev, e)
}

// DescribeJob returns a job with its counts.
func (s *Store) DescribeJob(ctx context.Context, jobID string) (*store.Job, error) {
	if err := store.ValidateJobID(jobID); err != nil {
		return nil, err
	}
	var out *store.Job
	err := s.view(ctx, func(r *rtx) error {
		job, err := r.fullJob(jobID)
		out = job
		return err
	})
	return out, err
}

// fullJob loads a job with its counts and rollout state.
func (r *rtx) fullJob(jobID string) (*store.Job, error) {
	job, err := r.job(jobID)
	if err != nil {
		return nil, err
	}
	counts, err := r.counts(jobID)
	if err != nil {
		return nil, err
	}
	job.ProcessDetails = *counts
	if err := r.getJSON(jobTargetsKey(jobID), &job.Targets); err != nil && !errors.Is(err, errMissing) {
		return nil, err
	}
	t, err := r.task(jobID)
	if err != nil {
		return nil, err
	}
	job.IsConcurrent = t.concurrent()
	if t != nil && t.Rollout != nil {
		job.ProcessDetails.ProcessingTargets = append([]string(nil), job.Targets...)
	}
	if sc := job.SchedulingConfig; sc != nil && len(sc.MaintenanceWindows) > 0 {
		if ws, err := store.ParseWindows(sc.MaintenanceWindows); err == nil {
			job.ScheduledRollouts = schedule.NextStarts(ws, r.s.clock.Now(), 7)
		}
	}
	return job, nil
}

// GetJobDocument returns a job's document.
func (s *Store) GetJobDocument(ctx context.Context, jobID string, beforeSubstitution bool) (string, error) {
	if err := store.ValidateJobID(jobID); err != nil {
		return "", err
	}
	var doc string
	err := s.view(ctx, func(r *rtx) error {
		job, err := r.job(jobID)
		if err != nil {
			return err
		}
		if beforeSubstitution {
			b, err := r.get(docBeforeKey(jobID))
			if err == nil {
				doc = string(b)
				return nil
			}
			if !errors.Is(err, errMissing) {
				return err
			}
		}
		doc, err = r.document(jobID, job.Seq)
		return err
	})
	return doc, err
}

// ListJobs lists jobs, newest first.
func (s *Store) ListJobs(ctx context.Context, in *store.ListJobsInput) (*store.ListJobsOutput, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	var start []byte
	if in.NextToken != "" {
		b, err := store.DecodeListToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		if len(b) != 8 {
			return nil, store.Errorf(store.ErrInvalidRequest, "nextToken is not valid")
		}
		start = jobOrderKey(binary.BigEndian.Uint64(b))
	}
	if in.ThingGroupName != "" {
		if err := store.ValidateThingGroupName(in.ThingGroupName); err != nil {
			return nil, err
		}
	}
	out := &store.ListJobsOutput{}
	err = s.view(ctx, func(r *rtx) error {
		var groupJobs map[string]bool
		if in.ThingGroupName != "" {
			if _, err := r.group(in.ThingGroupName); err != nil {
				return err
			}
			groupJobs = map[string]bool{}
			if err := r.eachKey(groupJobPrefix(in.ThingGroupName), nil, false, func(k []byte) (bool, error) {
				groupJobs[lastPart(k)] = true
				return true, nil
			}); err != nil {
				return err
			}
		}
		return r.each([]byte{prefixJobOrder}, start, true, func(k, v []byte) (bool, error) {
			if groupJobs != nil && !groupJobs[string(v)] {
				return true, nil
			}
			job, err := r.job(string(v))
			if errors.Is(err, store.ErrNotFound) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			if (in.Status != "" && job.Status != in.Status) || (in.TargetSelection != "" && job.TargetSelection != in.TargetSelection) ||
				(in.NamespaceID != "" && job.NamespaceID != in.NamespaceID) {
				return true, nil
			}
			if len(out.Jobs) == limit {
				out.NextToken = store.EncodeListToken(k[1:])
				return false, nil
			}
			t, err := r.task(job.JobID)
			if err != nil {
				return false, err
			}
			job.IsConcurrent = t.concurrent()
			out.Jobs = append(out.Jobs, job)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CancelJob cancels a job: QUEUED executions become CANCELED (and
// IN_PROGRESS ones with Force), and the rollout stops.
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
	err := s.submit(ctx, func(w *wtx) error {
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
	return s.DescribeJob(ctx, in.JobID)
}

// DeleteJob deletes a job and its executions.
func (s *Store) DeleteJob(ctx context.Context, in *store.DeleteJobInput) error {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return err
	}
	return s.submit(ctx, func(w *wtx) error {
		job, err := w.job(in.JobID)
		if err != nil {
			return err
		}
		switch {
		case job.Status == store.JobDeletionInProgress:
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is already being deleted", job.JobID)
		case !in.Force && job.Status != store.JobCompleted && job.Status != store.JobCanceled:
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is %s; only COMPLETED or CANCELED jobs can be deleted without force", job.JobID, job.Status)
		case w.s.deletionsInProgress() >= maxDeletionsInProgress:
			return store.Errorf(store.ErrLimitExceeded, "%d jobs are already being deleted", maxDeletionsInProgress)
		}
		job.Status = store.JobDeletionInProgress
		job.LastUpdatedAt = w.now
		if err := w.saveJob(job); err != nil {
			return err
		}
		if err := w.jobEvent(job, "deletion_in_progress"); err != nil {
			return err
		}
		return w.startSettle(job, true)
	})
}

// cancelJob cancels a job (by CancelJob, its abort criteria or its
// schedule's end): the job becomes CANCELED, its rollout stops, and its
// QUEUED executions (and IN_PROGRESS ones with force) are canceled.
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
	if err := w.saveJob(job); err != nil {
		return err
	}
	if err := w.jobEvent(job, "cancellation_in_progress"); err != nil {
		return err
	}
	return w.startSettle(job, false)
}

// maxDeletionsInProgress is AWS's limit of jobs in DELETION_IN_PROGRESS.
const maxDeletionsInProgress = 10

// startSettle replaces the job's task by a cancel or delete task and runs
// its first step in the same commit.
func (w *wtx) startSettle(job *store.Job, deleting bool) error {
	t := &task{Settle: &settleTask{Delete: deleting}}
	if err := w.dropTargets(job.JobID); err != nil {
		return err
	}
	w.s.setUnsettled(job.JobID, deleting)
	_, err := w.settleStep(job, t)
	return err
}

// ListJobExecutionsForJob lists the executions of a job, by thing name.
func (s *Store) ListJobExecutionsForJob(ctx context.Context, in *store.ListExecutionsInput) (*store.ListExecutionsOutput, error) {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return nil, err
	}
	return s.listExecutions(ctx, in, jobExecPrefix(in.JobID), func(r *rtx, k []byte) (*store.Execution, error) {
		thing, n, ok := parseJobExecKey(k, in.JobID)
		if !ok {
			return nil, nil
		}
		return r.exec(thing, in.JobID, n)
	}, func(r *rtx) error {
		_, err := r.job(in.JobID)
		return err
	})
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
	namespaces := map[string]string{} // job id -> namespace, for the namespaceId filter
	return s.listExecutions(ctx, in, execPrefix(in.ThingName, in.JobID), func(r *rtx, k []byte) (*store.Execution, error) {
		jobID, n, ok := parseExecKey(k, in.ThingName)
		if !ok {
			return nil, nil
		}
		if in.NamespaceID != "" {
			ns, seen := namespaces[jobID]
			if !seen {
				job, err := r.job(jobID)
				if err != nil {
					return nil, err
				}
				ns = job.NamespaceID
				namespaces[jobID] = ns
			}
			if ns != in.NamespaceID {
				return nil, nil
			}
		}
		return r.exec(in.ThingName, jobID, n)
	}, nil)
}

func (s *Store) listExecutions(ctx context.Context, in *store.ListExecutionsInput, prefix []byte,
	load func(r *rtx, k []byte) (*store.Execution, error), check func(r *rtx) error) (*store.ListExecutionsOutput, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	if in.Status != "" && !in.Status.Valid() {
		return nil, store.Errorf(store.ErrInvalidRequest, "status %q is not a job execution status", in.Status)
	}
	var start []byte
	if in.NextToken != "" {
		b, err := store.DecodeListToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		start = append(append(append([]byte(nil), prefix...), b...), 0)
	}
	out := &store.ListExecutionsOutput{}
	err = s.view(ctx, func(r *rtx) error {
		if check != nil {
			if err := check(r); err != nil {
				return err
			}
		}
		var last []byte
		return r.eachKey(prefix, start, false, func(k []byte) (bool, error) {
			e, err := load(r, k)
			if errors.Is(err, store.ErrNotFound) || (err == nil && e == nil) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			if e, err = r.effective(e); errors.Is(err, store.ErrNotFound) {
				return true, nil
			} else if err != nil {
				return false, err
			}
			if in.Status != "" && e.Status != in.Status {
				return true, nil
			}
			if len(out.Executions) == limit {
				out.NextToken = store.EncodeListToken(last[len(prefix):])
				return false, nil
			}
			out.Executions = append(out.Executions, e)
			last = k
			return true, nil
		})
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
	return s.onThing(ctx, in.ThingName, func(w *wtx, t *thingTx) error { return w.cancelExec(t, in) })
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
	return s.onThing(ctx, in.ThingName, func(w *wtx, t *thingTx) error { return w.deleteExec(t, in) })
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
		counts, err := w.jobCounts(in.JobID)
		if err != nil {
			return err
		}
		counts.Add(e.Status, -1)
		prev, err := w.latestExec(t.name, in.JobID, t.set)
		switch {
		case err == nil:
			counts.Add(prev.Status, 1)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	return w.maybeComplete(job)
}
