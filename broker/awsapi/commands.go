package awsapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/jobsbroker/jobsbroker/store"
)

// CommandError maps an error of an AWS IoT commands operation to its
// exception (COMMANDS.md §2.0). Commands use their own exception names
// (ValidationException, not InvalidRequestException), on both APIs;
// ThrottlingException is 400 on the control plane and 429 on the jobs
// data plane, which throttleStatus says.
func CommandError(err error, throttleStatus int) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		if ae.Type == "InvalidRequestException" {
			return &Error{Status: ae.Status, Type: "ValidationException", Message: ae.Message, Extra: ae.Extra}
		}
		return ae
	}
	msg := err.Error()
	switch {
	case errors.Is(err, store.ErrInvalidRequest):
		return Errorf(http.StatusBadRequest, "ValidationException", msg)
	case errors.Is(err, store.ErrNotFound):
		return Errorf(http.StatusNotFound, "ResourceNotFoundException", msg)
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrAlreadyExists),
		errors.Is(err, store.ErrInvalidStateTransition), errors.Is(err, store.ErrTerminalState):
		return Errorf(http.StatusConflict, "ConflictException", msg)
	case errors.Is(err, store.ErrLimitExceeded):
		return Errorf(http.StatusPaymentRequired, "ServiceQuotaExceededException", msg)
	case errors.Is(err, store.ErrThrottled):
		return Errorf(throttleStatus, "ThrottlingException", msg)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, store.ErrUnavailable):
		return Errorf(http.StatusInternalServerError, "InternalServerException", "the service cannot complete the request right now")
	}
	return Errorf(http.StatusInternalServerError, "InternalServerException", "internal failure")
}
