package dataplane

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
)

// TestErrorFor checks the mapping to the exceptions the iot-jobs-data
// model declares, with their statuses (PROTOCOL.md §10.3).
func TestErrorFor(t *testing.T) {
	cases := []struct {
		err    error
		status int
		typ    string
	}{
		{store.Errorf(store.ErrInvalidRequest, "bad"), http.StatusBadRequest, "InvalidRequestException"},
		{store.Errorf(store.ErrLimitExceeded, "big"), http.StatusBadRequest, "InvalidRequestException"},
		{store.Errorf(store.ErrNotFound, "gone"), http.StatusNotFound, "ResourceNotFoundException"},
		{store.Errorf(store.ErrInvalidStateTransition, "done"), http.StatusConflict, "InvalidStateTransitionException"},
		{store.Errorf(store.ErrVersionMismatch, "stale"), http.StatusConflict, "InvalidStateTransitionException"},
		{store.Errorf(store.ErrTerminalState, "over"), http.StatusGone, "TerminalStateException"},
		{store.Errorf(store.ErrThrottled, "slow down"), http.StatusTooManyRequests, "ThrottlingException"},
		{store.Unavailable("commit", errors.New("disk full")), http.StatusServiceUnavailable, "ServiceUnavailableException"},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, "ServiceUnavailableException"},
		{errors.New("anything else"), http.StatusServiceUnavailable, "ServiceUnavailableException"},
	}
	for _, c := range cases {
		e := errorFor(c.err)
		if e.Status != c.status || e.Type != c.typ || e.Message == "" {
			t.Errorf("errorFor(%v) = %d %s %q, want %d %s", c.err, e.Status, e.Type, e.Message, c.status, c.typ)
		}
	}
	if e := errorFor(store.Unavailable("commit", errors.New("secret path /var/x"))); e.Message != "the service cannot complete the request right now" {
		t.Errorf("internal causes must not leak: %q", e.Message)
	}
}
