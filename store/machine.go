package store

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// StartExecution moves a QUEUED execution to IN_PROGRESS for
// StartNextPendingJobExecution: startedAt is set, statusDetails replaced when
// given, the version bumped, and the step and in-progress timers armed. An
// execution that is already IN_PROGRESS is returned unchanged: start-next
// neither changes its details nor re-arms its step timer.
func StartExecution(e *Execution, job *Job, in *StartNextInput, now time.Time) *Execution {
	if e.Status != StatusQueued {
		return e
	}
	return moveToInProgress(e, job, in.StatusDetails, in.StepTimeoutInMinutes, now)
}

func moveToInProgress(e *Execution, job *Job, details map[string]string, step *int64, now time.Time) *Execution {
	n := e.Clone()
	n.Status = StatusInProgress
	n.StartedAt = now
	n.LastUpdatedAt = now
	n.VersionNumber++
	if details != nil {
		n.StatusDetails = details
	}
	if job != nil {
		if d := job.InProgressTimeout(); d > 0 {
			n.InProgressDeadline = now.Add(d)
		}
	}
	applyStepTimeout(n, step, now)
	return n
}

func applyStepTimeout(e *Execution, step *int64, now time.Time) {
	if step == nil {
		return
	}
	if *step == CancelStepTimer {
		e.StepDeadline = time.Time{}
		return
	}
	e.StepDeadline = now.Add(time.Duration(*step) * time.Minute)
}

// ApplyDeviceUpdate applies an UpdateJobExecution request to the current
// execution. It checks, in this order, expectedVersion (VersionMismatch) and
// whether the execution is terminal (InvalidStateTransition); both errors
// carry the current state. The request's shape must have been checked with
// ValidateUpdate.
func ApplyDeviceUpdate(e *Execution, job *Job, in *UpdateExecutionInput, now time.Time) (*Execution, error) {
	if in.ExpectedVersion != nil && *in.ExpectedVersion != e.VersionNumber {
		return nil, &Error{
			Kind:    ErrVersionMismatch,
			Message: "expectedVersion " + strconv.FormatInt(*in.ExpectedVersion, 10) + " does not match the execution's versionNumber " + strconv.FormatInt(e.VersionNumber, 10),
			State:   e.State(),
		}
	}
	if e.Status.Terminal() {
		return nil, &Error{
			Kind:    ErrInvalidStateTransition,
			Message: "job execution " + e.JobID + " on " + e.ThingName + " is already " + string(e.Status) + " and cannot change to " + string(in.Status),
			State:   e.State(),
		}
	}
	if e.Status == StatusQueued && in.Status == StatusInProgress {
		return moveToInProgress(e, job, in.StatusDetails, in.StepTimeoutInMinutes, now), nil
	}
	n := e.Clone()
	n.Status = in.Status
	n.LastUpdatedAt = now
	n.VersionNumber++
	if in.StatusDetails != nil {
		n.StatusDetails = in.StatusDetails
	}
	if in.Status.Terminal() {
		n.StepDeadline, n.InProgressDeadline = time.Time{}, time.Time{}
	} else {
		applyStepTimeout(n, in.StepTimeoutInMinutes, now)
	}
	return n, nil
}

// TimeOut moves an IN_PROGRESS execution whose deadline has passed to
// TIMED_OUT. It returns nil when the execution is not due (it changed since
// the timer was armed).
func TimeOut(e *Execution, now time.Time) *Execution {
	d := e.Deadline()
	if e.Status != StatusInProgress || d.IsZero() || d.After(now) {
		return nil
	}
	n := e.Clone()
	n.Status = StatusTimedOut
	n.LastUpdatedAt = now
	n.VersionNumber++
	n.StepDeadline, n.InProgressDeadline = time.Time{}, time.Time{}
	return n
}

// Cancel moves a pending execution to CANCELED, replacing its statusDetails
// when details is not nil. An execution that was IN_PROGRESS (which only a
// forced cancel may stop) is marked forceCanceled.
func Cancel(e *Execution, details map[string]string, now time.Time) *Execution {
	n := e.Clone()
	if n.Status == StatusInProgress {
		n.ForceCanceled = true
	}
	n.Status = StatusCanceled
	n.LastUpdatedAt = now
	n.VersionNumber++
	n.StepDeadline, n.InProgressDeadline = time.Time{}, time.Time{}
	if details != nil {
		n.StatusDetails = details
	}
	return n
}

// JobEffect is what a job-level change does to one of the job's executions.
type JobEffect uint8

// The effects of a job's status on its executions.
const (
	// EffectNone leaves the execution as it is.
	EffectNone JobEffect = iota
	// EffectCancel cancels the execution (CancelJob).
	EffectCancel
	// EffectDelete removes the execution (DeleteJob).
	EffectDelete
)

// JobStateEffect returns what the job's current status does to execution
// e: a canceled job cancels its QUEUED executions (and its IN_PROGRESS ones
// when force-canceled); a job being deleted deletes all of them. Backends
// apply this lazily, so a job-level change over many things is exact from
// the moment it commits even while it is still being written out.
func JobStateEffect(job *Job, e *Execution) JobEffect {
	if job == nil || job.Seq != e.JobSeq || job.Status == JobDeletionInProgress {
		return EffectDelete
	}
	if job.Status == JobCanceled {
		if e.Status == StatusQueued || (e.Status == StatusInProgress && job.ForceCanceled) {
			return EffectCancel
		}
	}
	return EffectNone
}

// CancelByJob cancels an execution because its job was canceled. The
// execution's lastUpdatedAt is the job's cancellation time, so that the
// result is the same whenever it is written.
func CancelByJob(e *Execution, job *Job) *Execution {
	return Cancel(e, nil, job.LastUpdatedAt)
}

// Remove moves a pending execution to REMOVED: its thing was deleted, or
// left every group through which a continuous job targeted it.
func Remove(e *Execution, now time.Time) *Execution {
	n := e.Clone()
	n.Status = StatusRemoved
	n.LastUpdatedAt = now
	n.VersionNumber++
	n.StepDeadline, n.InProgressDeadline = time.Time{}, time.Time{}
	return n
}

// RetryAllowed reports whether an execution that ended FAILED or TIMED_OUT
// gets another attempt under the job's retry configuration: a criterion
// for its failure type limits the retries of that type; otherwise an ALL
// criterion limits all retries (PROTOCOL.md §9.4).
func RetryAllowed(cfg *RetryConfig, e *Execution) bool {
	if cfg == nil || (e.Status != StatusFailed && e.Status != StatusTimedOut) {
		return false
	}
	var typed, all *int64
	for i := range cfg.CriteriaList {
		c := &cfg.CriteriaList[i]
		switch c.FailureType {
		case string(e.Status):
			typed = &c.NumberOfRetries
		case "ALL":
			all = &c.NumberOfRetries
		}
	}
	const maxRetries = 10
	switch {
	case e.RetryAttempt >= maxRetries:
		return false
	case typed != nil:
		used := e.FailedRetries
		if e.Status == StatusTimedOut {
			used = e.TimedOutRetries
		}
		return int64(used) < *typed
	case all != nil:
		return int64(e.RetryAttempt) < *all
	}
	return false
}

// Retry returns the next attempt of an execution that failed: QUEUED, the
// next execution number, version 1, its retry counters advanced.
func Retry(e *Execution, now time.Time, queueSeq uint64) *Execution {
	n := &Execution{
		JobID:           e.JobID,
		ThingName:       e.ThingName,
		ExecutionNumber: e.ExecutionNumber + 1,
		Status:          StatusQueued,
		QueuedAt:        now,
		LastUpdatedAt:   now,
		VersionNumber:   1,
		RetryAttempt:    e.RetryAttempt + 1,
		FailedRetries:   e.FailedRetries,
		TimedOutRetries: e.TimedOutRetries,
		QueueSeq:        queueSeq,
		JobSeq:          e.JobSeq,
		Namespace:       e.Namespace,
	}
	if e.Status == StatusTimedOut {
		n.TimedOutRetries++
	} else {
		n.FailedRetries++
	}
	return n
}

// Failures counts the things whose latest execution ended with an abort
// criterion's failure type: FAILED, REJECTED, TIMED_OUT, or all three for
// ALL.
func (p *ProcessDetails) Failures(failureType string) int64 {
	switch failureType {
	case "FAILED":
		return p.Failed
	case "REJECTED":
		return p.Rejected
	case "TIMED_OUT":
		return p.TimedOut
	case "ALL":
		return p.Failed + p.Rejected + p.TimedOut
	}
	return 0
}

// AbortTriggered returns the first abort criterion the job's counts meet,
// or nil. A criterion applies once at least minNumberOfExecutedThings
// things have received the job (been given an execution); it is met when
// the things whose latest execution ended with its failure type (FAILED,
// REJECTED, TIMED_OUT, or all three for ALL) make up at least
// thresholdPercentage of them.
func AbortTriggered(cfg *AbortConfig, p *ProcessDetails) *AbortCriteria {
	if cfg == nil {
		return nil
	}
	notified := p.Total()
	for i := range cfg.CriteriaList {
		c := &cfg.CriteriaList[i]
		if notified == 0 || notified < c.MinNumberOfExecutedThings {
			continue
		}
		failed := p.Failures(c.FailureType)
		if float64(failed)*100 >= c.ThresholdPercentage*float64(notified) {
			return c
		}
	}
	return nil
}

// RolloutRate returns a job's rollout rate in things per minute, given how
// many things the rollout has notified and how many have succeeded; 0
// means no limit. An exponential rate starts at baseRatePerMinute and is
// multiplied by incrementFactor each time another numberOfNotifiedThings
// (or numberOfSucceededThings) is reached; maximumPerMinute caps it.
func RolloutRate(cfg *RolloutConfig, notified, succeeded int64) float64 {
	if cfg == nil {
		return 0
	}
	var rate float64
	if e := cfg.ExponentialRate; e != nil {
		var steps int64
		if n := e.RateIncreaseCriteria.NumberOfNotifiedThings; n != nil && *n > 0 {
			steps = notified / *n
		} else if n := e.RateIncreaseCriteria.NumberOfSucceededThings; n != nil && *n > 0 {
			steps = succeeded / *n
		}
		rate = float64(e.BaseRatePerMinute) * math.Pow(e.IncrementFactor, float64(min(steps, 64)))
	}
	if m := cfg.MaximumPerMinute; m != nil && (rate == 0 || float64(*m) < rate) {
		rate = float64(*m)
	}
	return rate
}

// AbortComment is the comment of a job its abort criterion c canceled.
func AbortComment(c *AbortCriteria, counts *ProcessDetails) string {
	return fmt.Sprintf("aborted: %s executions reached %.2f%% of %d things (threshold %.2f%%)",
		c.FailureType, 100*float64(counts.Failures(c.FailureType))/float64(counts.Total()), counts.Total(), c.ThresholdPercentage)
}

// JobStart is what a new job's schedulingConfig asks of its start.
type JobStart struct {
	Scheduled   bool // the job has a start or an end time
	Start, End  time.Time
	EndBehavior string
}

// StartJob sets what a job created at now gets from the store (its
// status, times and default target selection; a startTime makes it
// SCHEDULED) and returns its schedule.
func StartJob(job *Job, now time.Time) JobStart {
	job.Status = JobInProgress
	job.CreatedAt, job.LastUpdatedAt = now, now
	job.CompletedAt = time.Time{}
	if job.TargetSelection == "" {
		job.TargetSelection = Snapshot
	}
	job.ForceCanceled, job.ReasonCode, job.Comment = false, "", ""
	var s JobStart
	if sc := job.SchedulingConfig; sc != nil && (sc.StartTime != "" || sc.EndTime != "") {
		s.Scheduled, s.EndBehavior = true, sc.EndBehavior
		s.Start, _ = schedule.ParseTime(sc.StartTime)
		s.End, _ = schedule.ParseTime(sc.EndTime)
		if !s.Start.IsZero() {
			job.Status = JobScheduled
		}
	}
	return s
}
