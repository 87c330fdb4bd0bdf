package jobshook

import (
	"context"
	"errors"

	"github.com/jobsbroker/jobsbroker/store"
)

// The rejection codes of the MQTT Jobs API (RejectedErrorCode).
const (
	CodeInvalidTopic           = "InvalidTopic"
	CodeInvalidJSON            = "InvalidJson"
	CodeInvalidRequest         = "InvalidRequest"
	CodeInvalidStateTransition = "InvalidStateTransition"
	CodeResourceNotFound       = "ResourceNotFound"
	CodeVersionMismatch        = "VersionMismatch"
	CodeInternalError          = "InternalError"
	CodeRequestThrottled       = "RequestThrottled"
	CodeTerminalStateReached   = "TerminalStateReached"
)

// RejectionCodes lists every rejection code, for observers that report
// them (a metric initialises a series for each).
var RejectionCodes = []string{
	CodeInvalidTopic, CodeInvalidJSON, CodeInvalidRequest, CodeInvalidStateTransition, CodeResourceNotFound,
	CodeVersionMismatch, CodeInternalError, CodeRequestThrottled, CodeTerminalStateReached,
}

// NotificationKinds lists the kinds Observer.Notification reports.
var NotificationKinds = []string{"notify", "notify-next", "event"}

// rejection is a request the hook answers on /rejected.
type rejection struct {
	code    string
	message string
	state   *store.ExecutionState
}

// rejectionFor maps an operation error to its MQTT rejection. This is the
// one place where store errors become wire codes.
func rejectionFor(err error) *rejection {
	var se *store.Error
	msg := err.Error()
	if errors.As(err, &se) {
		msg = se.Message
	}
	switch {
	case errors.Is(err, store.ErrVersionMismatch):
		return &rejection{code: CodeVersionMismatch, message: msg, state: stateOf(se)}
	case errors.Is(err, store.ErrInvalidStateTransition):
		return &rejection{code: CodeInvalidStateTransition, message: msg, state: stateOf(se)}
	case errors.Is(err, store.ErrInvalidRequest), errors.Is(err, store.ErrLimitExceeded):
		return &rejection{code: CodeInvalidRequest, message: msg}
	case errors.Is(err, store.ErrNotFound):
		return &rejection{code: CodeResourceNotFound, message: msg}
	case errors.Is(err, store.ErrTerminalState):
		return &rejection{code: CodeTerminalStateReached, message: msg}
	case errors.Is(err, store.ErrThrottled):
		return &rejection{code: CodeRequestThrottled, message: msg}
	case errors.Is(err, context.DeadlineExceeded):
		return &rejection{code: CodeInternalError, message: "the request timed out"}
	}
	return &rejection{code: CodeInternalError, message: "the broker could not complete the request"}
}

func stateOf(se *store.Error) *store.ExecutionState {
	if se == nil {
		return nil
	}
	return se.State
}
