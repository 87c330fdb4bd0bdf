package store

import (
	"errors"
	"fmt"
)

// Sentinel errors of the job model. Operations return them wrapped in an
// *Error that adds a message for the wire (and, for device updates, the
// current execution state); compare with errors.Is.
var (
	// ErrInvalidRequest means the request is well-formed but its contents
	// break a rule (a range, a pattern, a required field).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNotFound means the job or execution addressed does not exist.
	ErrNotFound = errors.New("resource not found")
	// ErrAlreadyExists means a job with the same id exists.
	ErrAlreadyExists = errors.New("resource already exists")
	// ErrInvalidStateTransition means the change is not allowed from the
	// current status (for example any device update on a terminal execution).
	ErrInvalidStateTransition = errors.New("invalid state transition")
	// ErrVersionMismatch means a device's expectedVersion differs from the
	// stored versionNumber (MQTT VersionMismatch).
	ErrVersionMismatch = errors.New("version mismatch")
	// ErrVersionConflict means a control-plane expectedVersion differs from
	// the stored versionNumber (VersionConflictException).
	ErrVersionConflict = errors.New("version conflict")
	// ErrTerminalState means the addressed job has reached a terminal state
	// (TerminalStateReached / TerminalStateException).
	ErrTerminalState = errors.New("terminal state reached")
	// ErrLimitExceeded means a quota would be exceeded.
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrThrottled means the caller exceeded its request rate.
	ErrThrottled = errors.New("request throttled")
	// ErrConflict means a concurrent change prevents this one (ConflictException).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means the store cannot serve the request right now
	// (closed, out of disk, failing writes).
	ErrUnavailable = errors.New("store unavailable")
)

// Error is an operation failure that the transports turn into an AWS error.
type Error struct {
	Kind    error           // one of the sentinel errors above
	Message string          // human readable, sent on the wire
	State   *ExecutionState // current state, for ErrInvalidStateTransition and ErrVersionMismatch on device updates
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Unavailable wraps a backend failure as ErrUnavailable, keeping the cause
// for logs.
func Unavailable(op string, err error) error {
	return &unavailableError{op: op, err: err}
}

type unavailableError struct {
	op  string
	err error
}

func (e *unavailableError) Error() string { return e.op + ": " + e.err.Error() }

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// The errors that several operations report in the same words.

// ErrJobNotFound reports a job that does not exist.
func ErrJobNotFound(id string) *Error { return Errorf(ErrNotFound, "job %s does not exist", id) }

// ErrNoExecution reports that a thing has no execution of a job.
func ErrNoExecution(job, thing string) *Error {
	return Errorf(ErrNotFound, "no execution of job %s exists for thing %s", job, thing)
}

// ErrNoExecutionNumber reports that a thing has no execution n of a job.
func ErrNoExecutionNumber(n int64, job, thing string) *Error {
	return Errorf(ErrNotFound, "no execution %d of job %s exists for thing %s", n, job, thing)
}

// ErrThingNotFound reports a thing that is not registered.
func ErrThingNotFound(name string) *Error {
	return Errorf(ErrNotFound, "thing %s does not exist", name)
}

// ErrGroupNotFound reports a thing group that does not exist.
func ErrGroupNotFound(name string) *Error {
	return Errorf(ErrNotFound, "thing group %s does not exist", name)
}

// ErrTemplateNotFound reports a job template that does not exist.
func ErrTemplateNotFound(id string) *Error {
	return Errorf(ErrNotFound, "job template %s does not exist", id)
}

// ErrJobExists reports a job id that is taken.
func ErrJobExists(id string) *Error { return Errorf(ErrAlreadyExists, "job %s already exists", id) }

// ErrBadToken reports a nextToken the store did not hand out.
func ErrBadToken() *Error { return Errorf(ErrInvalidRequest, "nextToken is not valid") }

// ErrDuplicateNode means another running node of a shared store has this
// node's node ID: opening the store refuses, since the two would take
// each other's sessions and hints.
var ErrDuplicateNode = errors.New("another running node has this node ID")
