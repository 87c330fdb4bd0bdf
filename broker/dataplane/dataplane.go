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
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Options configures the API.
type Options struct {
	Store  store.Store
	Clock  clock.Clock
	Logger *slog.Logger
	// RequestTimeout bounds one call (default 10 s).
	RequestTimeout time.Duration
}

// API is the data-plane HTTP handler.
type API struct {
	opts Options
	mux  *http.ServeMux
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
	a.routes()
	return a
}

func (a *API) routes() {
	a.handle("GET /things/{thingName}/jobs", a.getPending)
	a.handle("PUT /things/{thingName}/jobs/{jobId}", a.startNext)
	a.handle("GET /things/{thingName}/jobs/{jobId}", a.describe)
	a.handle("POST /things/{thingName}/jobs/{jobId}", a.update)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		awsapi.WriteError(w, awsapi.Errorf(http.StatusNotFound, "UnknownOperationException",
			"no operation of the IoT Jobs data plane matches "+r.Method+" "+r.URL.Path))
	})
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

type handlerFunc func(ctx context.Context, w http.ResponseWriter, r *http.Request) error

func (a *API) handle(pattern string, h handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		// MQTT notifications caused by this request wait for its response.
		replied := make(chan struct{})
		defer close(replied)
		ctx, cancel := context.WithTimeout(store.WithNotifyAfter(r.Context(), replied), a.opts.RequestTimeout)
		defer cancel()
		if err := h(ctx, w, r); err != nil {
			e := errorFor(err)
			if e.Status >= 500 {
				a.opts.Logger.Error("data-plane request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			}
			awsapi.WriteError(w, e)
		}
	})
}

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

// Wire shapes (iot-jobs-data 2017-09-29): timestamps are integer epoch
// seconds and jobDocument is a string.

type wireExecution struct {
	JobID                            string            `json:"jobId"`
	ThingName                        string            `json:"thingName"`
	Status                           string            `json:"status"`
	StatusDetails                    map[string]string `json:"statusDetails,omitempty"`
	QueuedAt                         int64             `json:"queuedAt"`
	StartedAt                        int64             `json:"startedAt,omitempty"`
	LastUpdatedAt                    int64             `json:"lastUpdatedAt"`
	ApproximateSecondsBeforeTimedOut *int64            `json:"approximateSecondsBeforeTimedOut,omitempty"`
	VersionNumber                    int64             `json:"versionNumber"`
	ExecutionNumber                  int64             `json:"executionNumber"`
	JobDocument                      *string           `json:"jobDocument,omitempty"`
}

type wireSummary struct {
	JobID           string `json:"jobId"`
	QueuedAt        int64  `json:"queuedAt"`
	StartedAt       int64  `json:"startedAt,omitempty"`
	LastUpdatedAt   int64  `json:"lastUpdatedAt"`
	VersionNumber   int64  `json:"versionNumber"`
	ExecutionNumber int64  `json:"executionNumber"`
}

type wireState struct {
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails,omitempty"`
	VersionNumber int64             `json:"versionNumber"`
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

func seconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (a *API) execution(e *store.Execution, doc string, withDoc bool) *wireExecution {
	w := &wireExecution{
		JobID:           e.JobID,
		ThingName:       e.ThingName,
		Status:          string(e.Status),
		StatusDetails:   e.StatusDetails,
		QueuedAt:        seconds(e.QueuedAt),
		StartedAt:       seconds(e.StartedAt),
		LastUpdatedAt:   seconds(e.LastUpdatedAt),
		VersionNumber:   e.VersionNumber,
		ExecutionNumber: e.ExecutionNumber,
	}
	if s, ok := e.SecondsBeforeTimedOut(a.opts.Clock.Now()); ok {
		w.ApproximateSecondsBeforeTimedOut = &s
	}
	if withDoc {
		w.JobDocument = &doc
	}
	return w
}

func summaries(list []store.PendingExecution) []wireSummary {
	out := make([]wireSummary, len(list))
	for i, p := range list {
		out[i] = wireSummary{
			JobID:           p.JobID,
			QueuedAt:        seconds(p.QueuedAt),
			StartedAt:       seconds(p.StartedAt),
			LastUpdatedAt:   seconds(p.LastUpdatedAt),
			VersionNumber:   p.VersionNumber,
			ExecutionNumber: p.ExecutionNumber,
		}
	}
	return out
}

func (a *API) getPending(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	out, err := a.opts.Store.GetPendingJobExecutions(ctx, r.PathValue("thingName"))
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string][]wireSummary{
		"inProgressJobs": summaries(out.InProgress),
		"queuedJobs":     summaries(out.Queued),
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
	writeExecution(w, a, out, true)
	return nil
}

func writeExecution(w http.ResponseWriter, a *API, out *store.ExecutionOutput, withDoc bool) {
	if out.Execution == nil {
		awsapi.WriteEmpty(w)
		return
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string]any{"execution": a.execution(out.Execution, out.Document, withDoc)})
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
	writeExecution(w, a, out, include)
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
		ExecutionState *wireState `json:"executionState,omitempty"`
		JobDocument    *string    `json:"jobDocument,omitempty"`
	}{}
	if req.IncludeJobExecutionState != nil && *req.IncludeJobExecutionState {
		resp.ExecutionState = &wireState{Status: string(out.Execution.Status), StatusDetails: out.Execution.StatusDetails, VersionNumber: out.Execution.VersionNumber}
	}
	if in.IncludeJobDocument {
		resp.JobDocument = &out.Document
	}
	awsapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}
