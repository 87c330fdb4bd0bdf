// Package dataplane serves the AWS IoT Jobs data-plane API (iot-jobs-data,
// 2017-09-29) over HTTP: the four device operations that devices polling
// over HTTPS call, with the model's paths, shapes and errors
// (PROTOCOL.md §10). It runs the same store operations as the MQTT hook,
// so a device may mix the two, and its changes notify MQTT subscribers
// the same way.
//
// Its paths collide with the control plane's (GET /things/{thing}/jobs is
// both GetPendingJobExecutions and ListJobExecutionsForThing), so it has a
// listener of its own.
package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/jobshook/presign"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/wire"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Options configures the API.
type Options struct {
	Store  store.Store
	Clock  clock.Clock
	Logger *slog.Logger
	// RequestTimeout bounds one call (default 10 s).
	RequestTimeout time.Duration
	// Observe, if set, is told about every call (see awsapi.Router).
	Observe func(operation string, status int, exception string, took time.Duration)
	// Documents, if set, prepares every job document a device receives:
	// it replaces presigned-URL placeholders.
	Documents *presign.Deliverer
}

// API is the data-plane HTTP handler.
type API struct {
	opts Options
	mux  *http.ServeMux
	rt   awsapi.Router
}

// New returns the data-plane handler.
func New(opts Options) *API {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	a := &API{opts: opts, mux: http.NewServeMux()}
	a.rt = awsapi.Router{Mux: a.mux, Service: "IoT Jobs data plane", Timeout: opts.RequestTimeout, Errors: errorFor, Log: opts.Logger, Observe: opts.Observe}
	a.routes()
	return a
}

func (a *API) routes() {
	a.rt.Handle("GetPendingJobExecutions", "GET /things/{thingName}/jobs", a.getPending)
	a.rt.Handle("StartNextPendingJobExecution", "PUT /things/{thingName}/jobs/{jobId}", a.startNext)
	a.rt.Handle("DescribeJobExecution", "GET /things/{thingName}/jobs/{jobId}", a.describe)
	a.rt.Handle("UpdateJobExecution", "POST /things/{thingName}/jobs/{jobId}", a.update)
	a.rt.Handle("StartCommandExecution", "POST /command-executions", a.startCommandExecution)
	a.rt.NotFound()
}

// Operations lists the names of the API's operations, as metrics and logs
// report them.
func (a *API) Operations() []string { return a.rt.Operations() }

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// errorFor maps an operation error to the exceptions the iot-jobs-data
// model declares. A stale expectedVersion has no exception of its own
// there; it is InvalidStateTransitionException, so that SDKs raise a typed
// error.
func errorFor(err error) *awsapi.Error {
	var ae *awsapi.Error
	if errors.As(err, &ae) {
		return ae
	}
	msg := err.Error()
	switch {
	case errors.Is(err, store.ErrInvalidRequest), errors.Is(err, store.ErrLimitExceeded):
		return awsapi.Errorf(http.StatusBadRequest, "InvalidRequestException", msg)
	case errors.Is(err, store.ErrNotFound):
		return awsapi.Errorf(http.StatusNotFound, "ResourceNotFoundException", msg)
	case errors.Is(err, store.ErrInvalidStateTransition), errors.Is(err, store.ErrVersionMismatch):
		return awsapi.Errorf(http.StatusConflict, "InvalidStateTransitionException", msg)
	case errors.Is(err, store.ErrTerminalState):
		return awsapi.Errorf(http.StatusGone, "TerminalStateException", msg)
	case errors.Is(err, store.ErrThrottled):
		return awsapi.Errorf(http.StatusTooManyRequests, "ThrottlingException", msg)
	}
	return awsapi.Errorf(http.StatusServiceUnavailable, "ServiceUnavailableException", "the service cannot complete the request right now")
}

func invalid(msg string) error {
	return awsapi.Errorf(http.StatusBadRequest, "InvalidRequestException", msg)
}

type startNextRequest struct {
	StatusDetails        map[string]string `json:"statusDetails"`
	StepTimeoutInMinutes *int64            `json:"stepTimeoutInMinutes"`
}

type updateRequest struct {
	Status                   *string           `json:"status"`
	StatusDetails            map[string]string `json:"statusDetails"`
	StepTimeoutInMinutes     *int64            `json:"stepTimeoutInMinutes"`
	ExpectedVersion          *int64            `json:"expectedVersion"`
	IncludeJobExecutionState *bool             `json:"includeJobExecutionState"`
	IncludeJobDocument       *bool             `json:"includeJobDocument"`
	ExecutionNumber          *int64            `json:"executionNumber"`
}

// execution renders an execution; over HTTP the job document is a string.
func (a *API) execution(ctx context.Context, e *store.Execution, doc string, withDoc bool) *wire.Execution {
	var raw []byte
	if withDoc {
		raw = wire.StringDocument(a.opts.Documents.Document(ctx, e.JobID, e.JobSeq, doc))
	}
	return wire.NewExecution(e, raw, true, a.opts.Clock.Now())
}

func (a *API) getPending(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	out, err := a.opts.Store.GetPendingJobExecutions(ctx, r.PathValue("thingName"))
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string][]wire.Summary{
		"inProgressJobs": wire.Summaries(out.InProgress),
		"queuedJobs":     wire.Summaries(out.Queued),
	})
	return nil
}

// startNext serves PUT /things/{thing}/jobs/$next; any other job id is not
// an operation.
func (a *API) startNext(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if r.PathValue("jobId") != topics.Next {
		return awsapi.Errorf(http.StatusNotFound, "UnknownOperationException", "PUT is only defined for /things/{thingName}/jobs/$next")
	}
	var req startNextRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	out, err := a.opts.Store.StartNextPendingJobExecution(ctx, &store.StartNextInput{
		ThingName: r.PathValue("thingName"), StatusDetails: req.StatusDetails, StepTimeoutInMinutes: req.StepTimeoutInMinutes,
	})
	if err != nil {
		return err
	}
	writeExecution(ctx, w, a, out, true)
	return nil
}

func writeExecution(ctx context.Context, w http.ResponseWriter, a *API, out *store.ExecutionOutput, withDoc bool) {
	if out.Execution == nil {
		awsapi.WriteEmpty(w)
		return
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string]any{"execution": a.execution(ctx, out.Execution, out.Document, withDoc)})
}

func (a *API) describe(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	n, e := awsapi.QueryInt(r, "executionNumber")
	if e != nil {
		return e
	}
	include := true
	if r.URL.Query().Get("includeJobDocument") != "" {
		if include, e = awsapi.QueryBool(r, "includeJobDocument"); e != nil {
			return e
		}
	}
	out, err := a.opts.Store.DescribeJobExecution(ctx, &store.DescribeExecutionInput{
		ThingName: r.PathValue("thingName"), JobID: r.PathValue("jobId"), ExecutionNumber: n, IncludeJobDocument: include,
	})
	if err != nil {
		return err
	}
	writeExecution(ctx, w, a, out, include)
	return nil
}

func (a *API) update(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req updateRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	if req.Status == nil {
		return invalid("status is required")
	}
	in := &store.UpdateExecutionInput{
		ThingName:            r.PathValue("thingName"),
		JobID:                r.PathValue("jobId"),
		Status:               store.ExecutionStatus(*req.Status),
		StatusDetails:        req.StatusDetails,
		ExpectedVersion:      req.ExpectedVersion,
		ExecutionNumber:      req.ExecutionNumber,
		StepTimeoutInMinutes: req.StepTimeoutInMinutes,
		IncludeJobDocument:   req.IncludeJobDocument != nil && *req.IncludeJobDocument,
	}
	out, err := a.opts.Store.UpdateJobExecution(ctx, in)
	if err != nil {
		return err
	}
	resp := struct {
		ExecutionState *wire.State `json:"executionState,omitempty"`
		JobDocument    *string     `json:"jobDocument,omitempty"`
	}{}
	if req.IncludeJobExecutionState != nil && *req.IncludeJobExecutionState {
		resp.ExecutionState = wire.NewState(out.Execution.State())
	}
	if in.IncludeJobDocument {
		doc := a.opts.Documents.Document(ctx, out.Execution.JobID, out.Execution.JobSeq, out.Document)
		resp.JobDocument = &doc
	}
	awsapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}
