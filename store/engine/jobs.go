package engine

import (
	"context"
	"encoding/binary"
	"slices"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// maxDeletionsInProgress is AWS's limit of jobs in DELETION_IN_PROGRESS.
const maxDeletionsInProgress = 10

// CreateJob creates a job and starts its rollout: as many executions as
// the rollout rate and TaskBatch allow in the same transaction, the rest
// by the backend's task loop. A job whose schedulingConfig has a
// startTime is SCHEDULED until then.
func (e *Engine) CreateJob(ctx context.Context, in *store.CreateJobInput) (*store.Job, error) {
	if err := store.ValidateCreateJob(in); err != nil {
		return nil, err
	}
	if err := store.ValidateSchedule(in.Job.SchedulingConfig, e.clock.Now()); err != nil {
		return nil, err
	}
	err := e.update(ctx, "create job", func(t *txn) error {
		existing, err := t.r.JobHead(in.Job.JobID)
		if err != nil {
			return err
		}
		if existing != nil {
			return store.ErrJobExists(in.Job.JobID)
		}
		job := in.Job.Clone()
		doc, before, err := store.JobDocument(job, in, t.template)
		if err != nil {
			return err
		}
		groups, err := store.TargetGroups(job.Targets, t.group)
		if err != nil {
			return err
		}
		if job.Seq, err = t.tx.NextSeq(); err != nil {
			return err
		}
		task := store.StartJob(job, t.now)
		tk := &Task{}
		if task.Scheduled {
			tk.Schedule = &ScheduleTask{Start: task.Start, End: task.End, EndBehavior: task.EndBehavior}
		}
		inserted, err := t.tx.InsertJob(job, doc, before)
		if err != nil {
			return err
		}
		if !inserted {
			return store.ErrJobExists(in.Job.JobID)
		}
		e.docs.Put(job.Seq, doc)
		js := t.state(job.JobID)
		js.job, js.loaded, js.created = job, true, true
		js.targets, js.targetsLoaded = job.Targets, true
		js.taskLoaded, js.known = true, true
		for _, g := range groups {
			if err := t.tx.AddGroupJob(g, job.JobID); err != nil {
				return err
			}
		}
		if job.Status == store.JobInProgress {
			if err := t.beginRollout(job, tk); err != nil {
				return err
			}
			if _, err := t.rolloutStep(job, tk); err != nil {
				return err
			}
		}
		if tk.Rollout == nil && tk.Schedule == nil {
			js.checkComplete = true
			return nil
		}
		t.setTask(job.JobID, tk, t.now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e.DescribeJob(ctx, in.Job.JobID)
}

// queueInto queues a new execution of job on the thing, unless one is
// pending. lookup says whether the thing may already have executions of
// the job (a re-join, whose retries start afresh); one that cannot gets
// execution number 1 without a read.
func (t *txn) queueInto(th *thingTx, job *store.Job, lookup bool) error {
	var prev *store.Execution
	n := int64(1)
	if lookup {
		var err error
		if prev, err = t.r.LatestExecution(th.name, job.JobID); err != nil {
			return err
		}
		if prev != nil {
			if prev.Status.Pending() {
				return nil
			}
			n = prev.ExecutionNumber + 1
		}
	}
	seq, err := t.tx.NextSeq()
	if err != nil {
		return err
	}
	ex := &store.Execution{
		JobID:           job.JobID,
		ThingName:       th.name,
		ExecutionNumber: n,
		Status:          store.StatusQueued,
		QueuedAt:        t.now,
		LastUpdatedAt:   t.now,
		VersionNumber:   1,
		QueueSeq:        seq,
		JobSeq:          job.Seq,
		Namespace:       job.NamespaceID,
	}
	return t.putExec(th, prev, ex)
}

// queueMany gives each thing a new QUEUED execution of job, unless it has
// one pending, locking the things together.
func (t *txn) queueMany(job *store.Job, things []string, lookup bool) error {
	if len(things) == 0 {
		return nil
	}
	held, err := t.tx.LockThings(things, true, false)
	if err != nil {
		return err
	}
	if err := t.tx.ReserveSeqs(len(held)); err != nil {
		return err
	}
	for _, name := range held {
		if err := t.queueOn(job, name, lookup); err != nil {
			return err
		}
	}
	return nil
}

// queueOn queues an execution of job on one held thing, with its
// notifications.
func (t *txn) queueOn(job *store.Job, thing string, lookup bool) error {
	th := t.follow(thing)
	if err := t.queueInto(th, job, lookup); err != nil {
		return err
	}
	return t.close(th)
}

// DescribeJob returns a job with its counts.
func (e *Engine) DescribeJob(ctx context.Context, jobID string) (*store.Job, error) {
	if err := store.ValidateJobID(jobID); err != nil {
		return nil, err
	}
	var out *store.Job
	err := e.view(ctx, "describe job", func(t *txn) error {
		out = nil
		job, err := t.job(jobID)
		if err != nil {
			return err
		}
		if job.ProcessDetails, err = t.r.JobCounts(jobID); err != nil {
			return err
		}
		if job.Targets, err = t.r.JobTargets(jobID); err != nil {
			return err
		}
		task, err := t.r.JobTask(jobID)
		if err != nil {
			return err
		}
		job.IsConcurrent = task.Concurrent()
		if task != nil && task.Rollout != nil {
			job.ProcessDetails.ProcessingTargets = slices.Clone(job.Targets)
		}
		if sc := job.SchedulingConfig; sc != nil && len(sc.MaintenanceWindows) > 0 {
			if ws, err := store.ParseWindows(sc.MaintenanceWindows); err == nil {
				job.ScheduledRollouts = schedule.NextStarts(ws, t.now, 7)
			}
		}
		out = job
		return nil
	})
	return out, err
}

// GetJobDocument returns a job's document.
func (e *Engine) GetJobDocument(ctx context.Context, jobID string, beforeSubstitution bool) (string, error) {
	if err := store.ValidateJobID(jobID); err != nil {
		return "", err
	}
	var doc string
	err := e.view(ctx, "get job document", func(t *txn) error {
		job, err := t.job(jobID)
		if err != nil {
			return err
		}
		if beforeSubstitution {
			d, ok, err := t.r.Document(jobID, job.Seq, true)
			if err != nil {
				return err
			}
			if ok {
				doc = d
				return nil
			}
		}
		doc, err = t.document(jobID, job.Seq)
		return err
	})
	return doc, err
}

// JobFilter narrows ListJobs.
type JobFilter struct {
	Status          store.JobStatus
	TargetSelection store.TargetSelection
	NamespaceID     string
	Group           string // only jobs that target this group
}

// Match reports whether a job passes the filter's status, target
// selection and namespace (the group is the backend's to check).
func (f *JobFilter) Match(j *store.Job) bool {
	return (f.Status == "" || j.Status == f.Status) && (f.TargetSelection == "" || j.TargetSelection == f.TargetSelection) &&
		(f.NamespaceID == "" || j.NamespaceID == f.NamespaceID)
}

// ListJobs lists jobs, newest first.
func (e *Engine) ListJobs(ctx context.Context, in *store.ListJobsInput) (*store.ListJobsOutput, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	var from uint64
	if in.NextToken != "" {
		b, err := store.DecodeListToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		if len(b) != 8 {
			return nil, store.ErrBadToken()
		}
		from = binary.BigEndian.Uint64(b)
	}
	if in.ThingGroupName != "" {
		if err := store.ValidateThingGroupName(in.ThingGroupName); err != nil {
			return nil, err
		}
	}
	f := &JobFilter{Status: in.Status, TargetSelection: in.TargetSelection, NamespaceID: in.NamespaceID, Group: in.ThingGroupName}
	out := &store.ListJobsOutput{}
	err = e.view(ctx, "list jobs", func(t *txn) error {
		out.Jobs, out.NextToken = nil, ""
		if in.ThingGroupName != "" {
			if _, err := t.group(in.ThingGroupName); err != nil {
				return err
			}
		}
		return t.r.EachJob(from, f, func(job *store.Job, concurrent bool) (bool, error) {
			if len(out.Jobs) == limit {
				out.NextToken = store.EncodeListToken(binary.BigEndian.AppendUint64(nil, job.Seq))
				return false, nil
			}
			job.IsConcurrent = concurrent
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
// IN_PROGRESS ones with Force), and the rollout stops. The job's status
// changes in one transaction; its first background step, which writes the
// cancellation out for the first things, runs before CancelJob returns.
func (e *Engine) CancelJob(ctx context.Context, in *store.CancelJobInput) (*store.Job, error) {
	if err := store.ValidateCancelJob(in); err != nil {
		return nil, err
	}
	err := e.update(ctx, "cancel job", func(t *txn) error {
		job, err := t.job(in.JobID)
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
		return t.cancelJob(job, in.Force, in.ReasonCode, in.Comment)
	})
	if err != nil {
		return nil, err
	}
	e.b.StepNow(ctx, in.JobID)
	return e.DescribeJob(ctx, in.JobID)
}

// DeleteJob deletes a job and its executions.
func (e *Engine) DeleteJob(ctx context.Context, in *store.DeleteJobInput) error {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return err
	}
	err := e.update(ctx, "delete job", func(t *txn) error {
		job, err := t.job(in.JobID)
		if err != nil {
			return err
		}
		switch {
		case job.Status == store.JobDeletionInProgress:
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is already being deleted", job.JobID)
		case !in.Force && job.Status != store.JobCompleted && job.Status != store.JobCanceled:
			return store.Errorf(store.ErrInvalidStateTransition, "job %s is %s; only COMPLETED or CANCELED jobs can be deleted without force", job.JobID, job.Status)
		}
		deleting, err := t.tx.DeletionsInProgress()
		if err != nil {
			return err
		}
		if deleting >= maxDeletionsInProgress {
			return store.Errorf(store.ErrLimitExceeded, "%d jobs are already being deleted", maxDeletionsInProgress)
		}
		job.Status = store.JobDeletionInProgress
		job.LastUpdatedAt = t.now
		t.saveJob(job)
		t.jobEvent(job, "deletion_in_progress")
		return t.startSettle(job, true)
	})
	if err != nil {
		return err
	}
	e.b.StepNow(ctx, in.JobID)
	return nil
}

// cancelJob cancels a job (by CancelJob, its abort criteria or its
// schedule's end): the job becomes CANCELED, its rollout stops, and its
// QUEUED executions (and IN_PROGRESS ones with force) read as canceled at
// once and are written out by the settle task it gets.
func (t *txn) cancelJob(job *store.Job, force bool, reasonCode, comment *string) error {
	job.Status = store.JobCanceled
	job.ForceCanceled = job.ForceCanceled || force
	job.LastUpdatedAt = t.now
	if reasonCode != nil {
		job.ReasonCode = *reasonCode
	}
	if comment != nil {
		job.Comment = *comment
	}
	t.saveJob(job)
	t.jobEvent(job, "cancellation_in_progress")
	return t.startSettle(job, false)
}

// startSettle replaces the job's task by a cancel or delete task.
func (t *txn) startSettle(job *store.Job, deleting bool) error {
	if err := t.tx.DropRolloutTargets(job.JobID); err != nil {
		return err
	}
	t.setTask(job.JobID, &Task{Settle: &SettleTask{Delete: deleting}}, t.now)
	t.tx.BeginSettle(job.JobID, deleting)
	return nil
}

// ListJobExecutionsForJob lists the executions of a job, by thing name.
func (e *Engine) ListJobExecutionsForJob(ctx context.Context, in *store.ListExecutionsInput) (*store.ListExecutionsOutput, error) {
	if err := store.ValidateJobID(in.JobID); err != nil {
		return nil, err
	}
	return e.listExecutions(ctx, in, func(t *txn, after Cursor, fn func(*store.Execution) (bool, error)) error {
		if _, err := t.job(in.JobID); err != nil {
			return err
		}
		return t.r.EachExecutionOfJob(in.JobID, after, fn)
	}, func(ex *store.Execution) Cursor { return Cursor{ex.ThingName, ex.ExecutionNumber} })
}

// ListJobExecutionsForThing lists the executions of a thing, by job id.
func (e *Engine) ListJobExecutionsForThing(ctx context.Context, in *store.ListExecutionsInput) (*store.ListExecutionsOutput, error) {
	if err := store.ValidateThingName(in.ThingName); err != nil {
		return nil, err
	}
	if in.JobID != "" {
		if err := store.ValidateJobID(in.JobID); err != nil {
			return nil, err
		}
	}
	return e.listExecutions(ctx, in, func(t *txn, after Cursor, fn func(*store.Execution) (bool, error)) error {
		namespaces := map[string]string{} // job id -> namespace, for the namespaceId filter
		return t.r.EachExecutionOfThing(in.ThingName, in.JobID, after, func(ex *store.Execution) (bool, error) {
			if in.NamespaceID != "" {
				ns, seen := namespaces[ex.JobID]
				if !seen {
					job, err := t.r.Job(ex.JobID)
					if err != nil {
						return false, err
					}
					if job != nil {
						ns = job.NamespaceID
					}
					namespaces[ex.JobID] = ns
				}
				if ns != in.NamespaceID {
					return true, nil
				}
			}
			return fn(ex)
		})
	}, func(ex *store.Execution) Cursor { return Cursor{ex.JobID, ex.ExecutionNumber} })
}

// listExecutions pages executions in the order each walks them, as they
// read given their jobs' status, filtered by status; pos is an
// execution's place in that order.
func (e *Engine) listExecutions(ctx context.Context, in *store.ListExecutionsInput,
	each func(t *txn, after Cursor, fn func(*store.Execution) (bool, error)) error,
	pos func(*store.Execution) Cursor) (*store.ListExecutionsOutput, error) {
	limit, err := store.PageSize(in.MaxResults)
	if err != nil {
		return nil, err
	}
	if err := store.ValidateStatusFilter(in.Status); err != nil {
		return nil, err
	}
	var after Cursor
	if in.NextToken != "" {
		b, err := store.DecodeListToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		if after, err = parsePosition(b); err != nil {
			return nil, err
		}
	}
	out := &store.ListExecutionsOutput{}
	err = e.view(ctx, "list executions", func(t *txn) error {
		out.Executions, out.NextToken = nil, ""
		var last Cursor
		return each(t, after, func(found *store.Execution) (bool, error) {
			ex, err := t.effective(found)
			if err != nil || ex == nil {
				return err == nil, err
			}
			if in.Status != "" && ex.Status != in.Status {
				return true, nil
			}
			if len(out.Executions) == limit {
				out.NextToken = store.EncodeListToken(position(last))
				return false, nil
			}
			out.Executions = append(out.Executions, ex)
			last = pos(found)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// position encodes a list position: a name, 0, and an execution number.
func position(c Cursor) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(c.Name), 0), uint64(c.N))
}

func parsePosition(b []byte) (Cursor, error) {
	i := len(b) - 9
	if i < 0 || b[i] != 0 {
		return Cursor{}, store.ErrBadToken()
	}
	return Cursor{string(b[:i]), int64(binary.BigEndian.Uint64(b[i+1:]))}, nil
}

// UpdateJob changes a job's description and configuration. A new rollout
// configuration paces the rest of the rollout; a new timeout applies to
// executions that start from now on.
func (e *Engine) UpdateJob(ctx context.Context, in *store.UpdateJobInput) error {
	if err := store.ValidateUpdateJob(in); err != nil {
		return err
	}
	return e.update(ctx, "update job", func(t *txn) error {
		job, err := t.job(in.JobID)
		if err != nil {
			return err
		}
		if err := store.ApplyJobUpdate(job, in, t.now); err != nil {
			return err
		}
		t.saveJob(job)
		// The rollout's pace may have changed: its next step is due now.
		task, err := t.task(job.JobID)
		if err != nil {
			return err
		}
		if task != nil {
			t.setTask(job.JobID, task, t.now)
		}
		// New abort criteria may already be met.
		t.state(job.JobID).checkAbort = true
		return nil
	})
}

// AssociateTargetsWithJob adds targets to a continuous job that is in
// progress; the things they cover get executions at once.
func (e *Engine) AssociateTargetsWithJob(ctx context.Context, in *store.AssociateTargetsInput) (*store.Job, error) {
	if err := store.ValidateAssociateTargets(in); err != nil {
		return nil, err
	}
	err := e.update(ctx, "associate targets", func(t *txn) error {
		job, err := t.job(in.JobID)
		if err != nil {
			return err
		}
		if job.TargetSelection != store.Continuous || job.Status != store.JobInProgress {
			return store.Errorf(store.ErrInvalidRequest, "targets can only be added to a CONTINUOUS job that is IN_PROGRESS; %s is a %s job in %s", job.JobID, job.TargetSelection, job.Status)
		}
		targets, err := t.targets(job.JobID)
		if err != nil {
			return err
		}
		var added []string
		for _, arn := range in.Targets {
			if !slices.Contains(targets, arn) && !slices.Contains(added, arn) {
				added = append(added, arn)
			}
		}
		if len(targets)+len(added) > store.MaxJobTargets {
			return store.Errorf(store.ErrLimitExceeded, "a job may have at most %d targets", store.MaxJobTargets)
		}
		groups, err := store.TargetGroups(added, t.group)
		if err != nil {
			return err
		}
		js := t.state(job.JobID)
		js.targets = append(slices.Clone(targets), added...)
		js.targetsDirty = true
		if in.Comment != nil {
			job.Comment = *in.Comment
		}
		job.LastUpdatedAt = t.now
		t.saveJob(job)
		for _, g := range groups {
			if err := t.tx.AddGroupJob(g, job.JobID); err != nil {
				return err
			}
		}
		things, err := t.resolveTargets(added)
		if err != nil {
			return err
		}
		return t.queueMany(job, things, true)
	})
	if err != nil {
		return nil, err
	}
	return e.DescribeJob(ctx, in.JobID)
}
