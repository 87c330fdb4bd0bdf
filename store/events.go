package store

import "time"

// EventConfigurations says which event messages ($aws/events/...) the
// broker publishes.
type EventConfigurations struct {
	Job            bool
	JobExecution   bool
	CreatedAt      time.Time
	LastModifiedAt time.Time
}

// EventKind says whether an event is about a job or one execution.
type EventKind uint8

// The kinds of events.
const (
	EventJob EventKind = iota + 1
	EventJobExecution
)

// Event is one $aws/events message, carried by a Change.
type Event struct {
	Kind EventKind
	// Operation is the last topic level: completed, canceled, deleted,
	// cancellation_in_progress or deletion_in_progress for jobs;
	// succeeded, failed, rejected, canceled, timed_out, removed or deleted
	// for executions.
	Operation string
	ID        string // eventId, unique
	At        time.Time
	// Job is the job as of the event (with its counts), for job events;
	// for execution events it carries at least the job id.
	Job *Job
	// Execution is the execution as of the event, for execution events.
	Execution *Execution
}

// ExecutionEventOperation returns the event operation of a terminal
// execution status ("" for a pending one).
func ExecutionEventOperation(s ExecutionStatus) string {
	switch s {
	case StatusSucceeded:
		return "succeeded"
	case StatusFailed:
		return "failed"
	case StatusRejected:
		return "rejected"
	case StatusCanceled:
		return "canceled"
	case StatusTimedOut:
		return "timed_out"
	case StatusRemoved:
		return "removed"
	}
	return ""
}
