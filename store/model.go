package store

import (
	"slices"
	"time"
)

// ExecutionStatus is the status of one job execution on one thing.
type ExecutionStatus string

// The execution statuses of AWS IoT Jobs.
const (
	StatusQueued     ExecutionStatus = "QUEUED"
	StatusInProgress ExecutionStatus = "IN_PROGRESS"
	StatusSucceeded  ExecutionStatus = "SUCCEEDED"
	StatusFailed     ExecutionStatus = "FAILED"
	StatusTimedOut   ExecutionStatus = "TIMED_OUT"
	StatusRejected   ExecutionStatus = "REJECTED"
	StatusRemoved    ExecutionStatus = "REMOVED"
	StatusCanceled   ExecutionStatus = "CANCELED"
)

// Valid reports whether s is one of the eight execution statuses.
func (s ExecutionStatus) Valid() bool {
	switch s {
	case StatusQueued, StatusInProgress, StatusSucceeded, StatusFailed,
		StatusTimedOut, StatusRejected, StatusRemoved, StatusCanceled:
		return true
	}
	return false
}

// Terminal reports whether no further transition is possible from s.
func (s ExecutionStatus) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusTimedOut, StatusRejected, StatusRemoved, StatusCanceled:
		return true
	}
	return false
}

// Pending reports whether s is QUEUED or IN_PROGRESS.
func (s ExecutionStatus) Pending() bool { return s == StatusQueued || s == StatusInProgress }

// DeviceSettable reports whether a device may report s in UpdateJobExecution.
func (s ExecutionStatus) DeviceSettable() bool {
	switch s {
	case StatusInProgress, StatusSucceeded, StatusFailed, StatusRejected:
		return true
	}
	return false
}

// JobStatus is the status of a job.
type JobStatus string

// The job statuses of AWS IoT Jobs.
const (
	JobInProgress         JobStatus = "IN_PROGRESS"
	JobCanceled           JobStatus = "CANCELED"
	JobCompleted          JobStatus = "COMPLETED"
	JobDeletionInProgress JobStatus = "DELETION_IN_PROGRESS"
	JobScheduled          JobStatus = "SCHEDULED"
)

// Valid reports whether s is a job status.
func (s JobStatus) Valid() bool {
	switch s {
	case JobInProgress, JobCanceled, JobCompleted, JobDeletionInProgress, JobScheduled:
		return true
	}
	return false
}

// TargetSelection says whether a job's targets are fixed at creation.
type TargetSelection string

// The target selections of AWS IoT Jobs.
const (
	Snapshot   TargetSelection = "SNAPSHOT"
	Continuous TargetSelection = "CONTINUOUS"
)

// Execution is one run of a job on one thing. A thing can hold several
// executions of the same job (retries); ExecutionNumber tells them apart.
type Execution struct {
	JobID              string            `json:"jobId"`
	ThingName          string            `json:"thingName"`
	ExecutionNumber    int64             `json:"executionNumber"`
	Status             ExecutionStatus   `json:"status"`
	StatusDetails      map[string]string `json:"statusDetails,omitempty"`
	QueuedAt           time.Time         `json:"queuedAt"`
	StartedAt          time.Time         `json:"startedAt,omitzero"`
	LastUpdatedAt      time.Time         `json:"lastUpdatedAt"`
	VersionNumber      int64             `json:"versionNumber"`
	ForceCanceled      bool              `json:"forceCanceled,omitempty"`
	RetryAttempt       int32             `json:"retryAttempt,omitempty"`      // retries so far for this thing
	FailedRetries      int32             `json:"failedRetries,omitempty"`     // of which after FAILED
	TimedOutRetries    int32             `json:"timedOutRetries,omitempty"`   // of which after TIMED_OUT
	StepDeadline       time.Time         `json:"stepDeadline,omitzero"`       // zero: no step timer
	InProgressDeadline time.Time         `json:"inProgressDeadline,omitzero"` // zero: no in-progress timer
	QueueSeq           uint64            `json:"queueSeq"`                    // global creation order, breaks queuedAt ties
	JobSeq             uint64            `json:"jobSeq"`                      // Seq of the job this execution belongs to
	// Namespace is the namespaceId of its job: the thing's queue it is
	// pending in.
	Namespace string `json:"namespace,omitempty"`
}

// Clone returns a deep copy.
func (e *Execution) Clone() *Execution {
	c := *e
	if e.StatusDetails != nil {
		c.StatusDetails = make(map[string]string, len(e.StatusDetails))
		for k, v := range e.StatusDetails {
			c.StatusDetails[k] = v
		}
	}
	return &c
}

// Deadline returns when the execution times out: the earlier of its step
// and in-progress deadlines. It is zero when no timer runs or the execution
// is not IN_PROGRESS.
func (e *Execution) Deadline() time.Time {
	if e.Status != StatusInProgress {
		return time.Time{}
	}
	d := e.StepDeadline
	if !e.InProgressDeadline.IsZero() && (d.IsZero() || e.InProgressDeadline.Before(d)) {
		d = e.InProgressDeadline
	}
	return d
}

// SecondsBeforeTimedOut returns approximateSecondsBeforeTimedOut and whether
// it applies (a timer runs and the execution is not terminal).
func (e *Execution) SecondsBeforeTimedOut(now time.Time) (int64, bool) {
	d := e.Deadline()
	if d.IsZero() {
		return 0, false
	}
	s := int64(d.Sub(now).Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	return s, true
}

// Summary returns the execution's entry in a pending list.
func (e *Execution) Summary() PendingExecution {
	return PendingExecution{
		JobID:           e.JobID,
		ExecutionNumber: e.ExecutionNumber,
		Status:          e.Status,
		QueuedAt:        e.QueuedAt,
		StartedAt:       e.StartedAt,
		LastUpdatedAt:   e.LastUpdatedAt,
		VersionNumber:   e.VersionNumber,
		QueueSeq:        e.QueueSeq,
		JobSeq:          e.JobSeq,
	}
}

// State returns the JobExecutionState of the execution.
func (e *Execution) State() *ExecutionState {
	return &ExecutionState{Status: e.Status, StatusDetails: e.StatusDetails, VersionNumber: e.VersionNumber}
}

// ExecutionState is the JobExecutionState shape: what UpdateJobExecution
// returns when asked, and what the InvalidStateTransition and
// VersionMismatch rejections carry.
type ExecutionState struct {
	Status        ExecutionStatus
	StatusDetails map[string]string
	VersionNumber int64
}

// PendingExecution is a pending (QUEUED or IN_PROGRESS) execution as listed
// by GetPendingJobExecutions and the notify message.
type PendingExecution struct {
	JobID           string          `json:"j"`
	ExecutionNumber int64           `json:"n"`
	Status          ExecutionStatus `json:"s"`
	QueuedAt        time.Time       `json:"q"`
	StartedAt       time.Time       `json:"st,omitzero"`
	LastUpdatedAt   time.Time       `json:"u"`
	VersionNumber   int64           `json:"v"`
	QueueSeq        uint64          `json:"o"`
	JobSeq          uint64          `json:"g"`
}

// Job is a job as the control plane describes it.
type Job struct {
	JobID                      string              `json:"jobId"`
	Seq                        uint64              `json:"seq"` // unique per creation; a re-created job id gets a new Seq
	Description                string              `json:"description,omitempty"`
	TargetSelection            TargetSelection     `json:"targetSelection"`
	Targets                    []string            `json:"targets"`
	Status                     JobStatus           `json:"status"`
	ForceCanceled              bool                `json:"forceCanceled,omitempty"`
	ReasonCode                 string              `json:"reasonCode,omitempty"`
	Comment                    string              `json:"comment,omitempty"`
	DocumentSource             string              `json:"documentSource,omitempty"`
	CreatedAt                  time.Time           `json:"createdAt"`
	LastUpdatedAt              time.Time           `json:"lastUpdatedAt"`
	CompletedAt                time.Time           `json:"completedAt,omitzero"`
	NamespaceID                string              `json:"namespaceId,omitempty"`
	JobTemplateArn             string              `json:"jobTemplateArn,omitempty"`
	DocumentParameters         map[string]string   `json:"documentParameters,omitempty"`
	PresignedURLConfig         *PresignedURLConfig `json:"presignedUrlConfig,omitempty"`
	RolloutConfig              *RolloutConfig      `json:"jobExecutionsRolloutConfig,omitempty"`
	AbortConfig                *AbortConfig        `json:"abortConfig,omitempty"`
	TimeoutConfig              *TimeoutConfig      `json:"timeoutConfig,omitempty"`
	RetryConfig                *RetryConfig        `json:"jobExecutionsRetryConfig,omitempty"`
	SchedulingConfig           *SchedulingConfig   `json:"schedulingConfig,omitempty"`
	DestinationPackageVersions []string            `json:"destinationPackageVersions,omitempty"`
	Tags                       []Tag               `json:"tags,omitempty"`

	// Filled in when the job is read; not stored with the job record.
	ProcessDetails    ProcessDetails `json:"-"`
	IsConcurrent      bool           `json:"-"`
	ScheduledRollouts []time.Time    `json:"-"` // the next maintenance-window starts
}

// Clone returns a copy that shares no slices or maps with j.
func (j *Job) Clone() *Job {
	c := *j
	c.Targets = slices.Clone(j.Targets)
	c.DestinationPackageVersions = slices.Clone(j.DestinationPackageVersions)
	c.Tags = slices.Clone(j.Tags)
	c.ProcessDetails.ProcessingTargets = slices.Clone(j.ProcessDetails.ProcessingTargets)
	if j.DocumentParameters != nil {
		c.DocumentParameters = make(map[string]string, len(j.DocumentParameters))
		for k, v := range j.DocumentParameters {
			c.DocumentParameters[k] = v
		}
	}
	return &c
}

// InProgressTimeout returns the job-level in-progress timeout, or zero.
func (j *Job) InProgressTimeout() time.Duration {
	if j.TimeoutConfig == nil || j.TimeoutConfig.InProgressTimeoutInMinutes == nil {
		return 0
	}
	return time.Duration(*j.TimeoutConfig.InProgressTimeoutInMinutes) * time.Minute
}

// ProcessDetails counts the things of a job by the status of their latest
// execution (jobProcessDetails).
type ProcessDetails struct {
	Queued     int64 `json:"queued,omitempty"`
	InProgress int64 `json:"inProgress,omitempty"`
	Succeeded  int64 `json:"succeeded,omitempty"`
	Failed     int64 `json:"failed,omitempty"`
	Rejected   int64 `json:"rejected,omitempty"`
	Canceled   int64 `json:"canceled,omitempty"`
	Removed    int64 `json:"removed,omitempty"`
	TimedOut   int64 `json:"timedOut,omitempty"`
	// ProcessingTargets lists the targets still being rolled out.
	ProcessingTargets []string `json:"-"`
}

// Add moves the count of status by delta.
func (p *ProcessDetails) Add(s ExecutionStatus, delta int64) {
	switch s {
	case StatusQueued:
		p.Queued += delta
	case StatusInProgress:
		p.InProgress += delta
	case StatusSucceeded:
		p.Succeeded += delta
	case StatusFailed:
		p.Failed += delta
	case StatusRejected:
		p.Rejected += delta
	case StatusCanceled:
		p.Canceled += delta
	case StatusRemoved:
		p.Removed += delta
	case StatusTimedOut:
		p.TimedOut += delta
	}
}

// Count returns the count of status s.
func (p *ProcessDetails) Count(s ExecutionStatus) int64 {
	switch s {
	case StatusQueued:
		return p.Queued
	case StatusInProgress:
		return p.InProgress
	case StatusSucceeded:
		return p.Succeeded
	case StatusFailed:
		return p.Failed
	case StatusRejected:
		return p.Rejected
	case StatusCanceled:
		return p.Canceled
	case StatusRemoved:
		return p.Removed
	case StatusTimedOut:
		return p.TimedOut
	}
	return 0
}

// Statuses lists every execution status.
var Statuses = []ExecutionStatus{StatusQueued, StatusInProgress, StatusSucceeded, StatusFailed,
	StatusTimedOut, StatusRejected, StatusRemoved, StatusCanceled}

// Move records that one thing went from status from to status to.
func (p *ProcessDetails) Move(from, to ExecutionStatus) {
	if from == to {
		return
	}
	p.Add(from, -1)
	p.Add(to, 1)
}

// Pending returns how many things are QUEUED or IN_PROGRESS.
func (p *ProcessDetails) Pending() int64 { return p.Queued + p.InProgress }

// Total returns the number of things counted.
func (p *ProcessDetails) Total() int64 {
	return p.Queued + p.InProgress + p.Succeeded + p.Failed + p.Rejected + p.Canceled + p.Removed + p.TimedOut
}

// PresignedURLConfig is the job's presignedUrlConfig.
type PresignedURLConfig struct {
	RoleArn      string `json:"roleArn,omitempty"`
	ExpiresInSec *int64 `json:"expiresInSec,omitempty"`
}

// RolloutConfig is jobExecutionsRolloutConfig.
type RolloutConfig struct {
	MaximumPerMinute *int64           `json:"maximumPerMinute,omitempty"`
	ExponentialRate  *ExponentialRate `json:"exponentialRate,omitempty"`
}

// ExponentialRate is the exponential part of a rollout config.
type ExponentialRate struct {
	BaseRatePerMinute    int64                `json:"baseRatePerMinute"`
	IncrementFactor      float64              `json:"incrementFactor"`
	RateIncreaseCriteria RateIncreaseCriteria `json:"rateIncreaseCriteria"`
}

// RateIncreaseCriteria says when an exponential rollout speeds up.
type RateIncreaseCriteria struct {
	NumberOfNotifiedThings  *int64 `json:"numberOfNotifiedThings,omitempty"`
	NumberOfSucceededThings *int64 `json:"numberOfSucceededThings,omitempty"`
}

// AbortConfig is the job's abortConfig.
type AbortConfig struct {
	CriteriaList []AbortCriteria `json:"criteriaList"`
}

// AbortCriteria is one rule that cancels a job when too many executions fail.
type AbortCriteria struct {
	FailureType               string  `json:"failureType"`
	Action                    string  `json:"action"`
	ThresholdPercentage       float64 `json:"thresholdPercentage"`
	MinNumberOfExecutedThings int64   `json:"minNumberOfExecutedThings"`
}

// TimeoutConfig is the job's timeoutConfig.
type TimeoutConfig struct {
	InProgressTimeoutInMinutes *int64 `json:"inProgressTimeoutInMinutes,omitempty"`
}

// RetryConfig is jobExecutionsRetryConfig.
type RetryConfig struct {
	CriteriaList []RetryCriteria `json:"criteriaList"`
}

// RetryCriteria is one retry rule.
type RetryCriteria struct {
	FailureType     string `json:"failureType"`
	NumberOfRetries int64  `json:"numberOfRetries"`
}

// SchedulingConfig is the job's schedulingConfig.
type SchedulingConfig struct {
	StartTime          string              `json:"startTime,omitempty"`
	EndTime            string              `json:"endTime,omitempty"`
	EndBehavior        string              `json:"endBehavior,omitempty"`
	MaintenanceWindows []MaintenanceWindow `json:"maintenanceWindows,omitempty"`
}

// MaintenanceWindow is a recurring window in which a scheduled job rolls out.
type MaintenanceWindow struct {
	StartTime         string `json:"startTime"`
	DurationInMinutes int64  `json:"durationInMinutes"`
}

// Tag is a resource tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value,omitempty"`
}
