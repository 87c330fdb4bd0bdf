package controlplane

import (
	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/store"
)

// Wire shapes of the AWS IoT control plane (2015-05-28), as the AWS SDKs
// read them. Timestamps are epoch seconds with a fraction.

type wireJob struct {
	JobArn                     string                    `json:"jobArn"`
	JobID                      string                    `json:"jobId"`
	TargetSelection            string                    `json:"targetSelection,omitempty"`
	Status                     string                    `json:"status"`
	ForceCanceled              bool                      `json:"forceCanceled"`
	ReasonCode                 string                    `json:"reasonCode,omitempty"`
	Comment                    string                    `json:"comment,omitempty"`
	Targets                    []string                  `json:"targets"`
	Description                string                    `json:"description,omitempty"`
	PresignedURLConfig         *store.PresignedURLConfig `json:"presignedUrlConfig,omitempty"`
	RolloutConfig              *store.RolloutConfig      `json:"jobExecutionsRolloutConfig,omitempty"`
	AbortConfig                *store.AbortConfig        `json:"abortConfig,omitempty"`
	CreatedAt                  *awsapi.EpochSeconds      `json:"createdAt,omitempty"`
	LastUpdatedAt              *awsapi.EpochSeconds      `json:"lastUpdatedAt,omitempty"`
	CompletedAt                *awsapi.EpochSeconds      `json:"completedAt,omitempty"`
	JobProcessDetails          wireProcessDetails        `json:"jobProcessDetails"`
	TimeoutConfig              *store.TimeoutConfig      `json:"timeoutConfig,omitempty"`
	NamespaceID                string                    `json:"namespaceId,omitempty"`
	JobTemplateArn             string                    `json:"jobTemplateArn,omitempty"`
	RetryConfig                *store.RetryConfig        `json:"jobExecutionsRetryConfig,omitempty"`
	DocumentParameters         map[string]string         `json:"documentParameters,omitempty"`
	IsConcurrent               bool                      `json:"isConcurrent"`
	SchedulingConfig           *store.SchedulingConfig   `json:"schedulingConfig,omitempty"`
	ScheduledJobRollouts       []wireScheduledRollout    `json:"scheduledJobRollouts,omitempty"`
	DestinationPackageVersions []string                  `json:"destinationPackageVersions,omitempty"`
}

// wireScheduledRollout is one upcoming maintenance-window start.
type wireScheduledRollout struct {
	StartTime string `json:"startTime"`
}

type wireProcessDetails struct {
	ProcessingTargets        []string `json:"processingTargets,omitempty"`
	NumberOfCanceledThings   int64    `json:"numberOfCanceledThings"`
	NumberOfSucceededThings  int64    `json:"numberOfSucceededThings"`
	NumberOfFailedThings     int64    `json:"numberOfFailedThings"`
	NumberOfRejectedThings   int64    `json:"numberOfRejectedThings"`
	NumberOfQueuedThings     int64    `json:"numberOfQueuedThings"`
	NumberOfInProgressThings int64    `json:"numberOfInProgressThings"`
	NumberOfRemovedThings    int64    `json:"numberOfRemovedThings"`
	NumberOfTimedOutThings   int64    `json:"numberOfTimedOutThings"`
}

type wireJobSummary struct {
	JobArn          string               `json:"jobArn"`
	JobID           string               `json:"jobId"`
	ThingGroupID    string               `json:"thingGroupId,omitempty"`
	TargetSelection string               `json:"targetSelection,omitempty"`
	Status          string               `json:"status"`
	CreatedAt       *awsapi.EpochSeconds `json:"createdAt,omitempty"`
	LastUpdatedAt   *awsapi.EpochSeconds `json:"lastUpdatedAt,omitempty"`
	CompletedAt     *awsapi.EpochSeconds `json:"completedAt,omitempty"`
	IsConcurrent    bool                 `json:"isConcurrent"`
}

type wireExecution struct {
	JobID                            string               `json:"jobId"`
	Status                           string               `json:"status"`
	ForceCanceled                    bool                 `json:"forceCanceled"`
	StatusDetails                    wireStatusDetails    `json:"statusDetails"`
	ThingArn                         string               `json:"thingArn"`
	QueuedAt                         *awsapi.EpochSeconds `json:"queuedAt,omitempty"`
	StartedAt                        *awsapi.EpochSeconds `json:"startedAt,omitempty"`
	LastUpdatedAt                    *awsapi.EpochSeconds `json:"lastUpdatedAt,omitempty"`
	ExecutionNumber                  int64                `json:"executionNumber"`
	VersionNumber                    int64                `json:"versionNumber"`
	ApproximateSecondsBeforeTimedOut *int64               `json:"approximateSecondsBeforeTimedOut,omitempty"`
}

type wireStatusDetails struct {
	DetailsMap map[string]string `json:"detailsMap,omitempty"`
}

type wireExecutionSummary struct {
	Status          string               `json:"status"`
	QueuedAt        *awsapi.EpochSeconds `json:"queuedAt,omitempty"`
	StartedAt       *awsapi.EpochSeconds `json:"startedAt,omitempty"`
	LastUpdatedAt   *awsapi.EpochSeconds `json:"lastUpdatedAt,omitempty"`
	ExecutionNumber int64                `json:"executionNumber"`
	RetryAttempt    int32                `json:"retryAttempt"`
}

type wireExecutionForJob struct {
	ThingArn            string               `json:"thingArn"`
	JobExecutionSummary wireExecutionSummary `json:"jobExecutionSummary"`
}

type wireExecutionForThing struct {
	JobID               string               `json:"jobId"`
	JobExecutionSummary wireExecutionSummary `json:"jobExecutionSummary"`
}

// createJobRequest is the CreateJob body; jobId is in the path.
type createJobRequest struct {
	Targets                    []string                  `json:"targets"`
	DocumentSource             *string                   `json:"documentSource"`
	Document                   *string                   `json:"document"`
	Description                *string                   `json:"description"`
	PresignedURLConfig         *store.PresignedURLConfig `json:"presignedUrlConfig"`
	TargetSelection            *string                   `json:"targetSelection"`
	RolloutConfig              *store.RolloutConfig      `json:"jobExecutionsRolloutConfig"`
	AbortConfig                *store.AbortConfig        `json:"abortConfig"`
	TimeoutConfig              *store.TimeoutConfig      `json:"timeoutConfig"`
	Tags                       []store.Tag               `json:"tags"`
	NamespaceID                *string                   `json:"namespaceId"`
	JobTemplateArn             *string                   `json:"jobTemplateArn"`
	RetryConfig                *store.RetryConfig        `json:"jobExecutionsRetryConfig"`
	DocumentParameters         map[string]string         `json:"documentParameters"`
	SchedulingConfig           *store.SchedulingConfig   `json:"schedulingConfig"`
	DestinationPackageVersions []string                  `json:"destinationPackageVersions"`
}

type cancelJobRequest struct {
	ReasonCode *string `json:"reasonCode"`
	Comment    *string `json:"comment"`
}

type cancelExecutionRequest struct {
	ExpectedVersion *int64            `json:"expectedVersion"`
	StatusDetails   map[string]string `json:"statusDetails"`
}

type jobRef struct {
	JobArn      string `json:"jobArn"`
	JobID       string `json:"jobId"`
	Description string `json:"description,omitempty"`
}

func processDetails(p store.ProcessDetails) wireProcessDetails {
	return wireProcessDetails{
		ProcessingTargets:        p.ProcessingTargets,
		NumberOfCanceledThings:   p.Canceled,
		NumberOfSucceededThings:  p.Succeeded,
		NumberOfFailedThings:     p.Failed,
		NumberOfRejectedThings:   p.Rejected,
		NumberOfQueuedThings:     p.Queued,
		NumberOfInProgressThings: p.InProgress,
		NumberOfRemovedThings:    p.Removed,
		NumberOfTimedOutThings:   p.TimedOut,
	}
}

func executionSummary(e *store.Execution) wireExecutionSummary {
	return wireExecutionSummary{
		Status:          string(e.Status),
		QueuedAt:        awsapi.Epoch(e.QueuedAt),
		StartedAt:       awsapi.Epoch(e.StartedAt),
		LastUpdatedAt:   awsapi.Epoch(e.LastUpdatedAt),
		ExecutionNumber: e.ExecutionNumber,
		RetryAttempt:    e.RetryAttempt,
	}
}
