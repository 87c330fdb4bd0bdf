// Package controlplane serves job management over HTTP in the shape of the
// AWS IoT control-plane API (2015-05-28): CreateJob, DescribeJob, ListJobs,
// CancelJob and the rest, with the paths, bodies, timestamp format and
// errors that the AWS SDKs and the AWS CLI expect, so that they work when
// pointed at the broker with --endpoint-url.
package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/jobshook/presign"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/schedule"
	"github.com/jobsbroker/jobsbroker/topics"
)

// maxNamespaceLength bounds namespaceId, which the model leaves
// unbounded, so that the namespaced topics fit AWS IoT's 256-byte topic
// limit with the longest thing name.
const maxNamespaceLength = 64

// Options configures the API.
type Options struct {
	Store store.Store
	// Region and Account fill the ARNs the API returns (jobArn, thingArn).
	Region  string
	Account string
	// Endpoints maps DescribeEndpoint's endpointType (iot:Data-ATS,
	// iot:Jobs ...) to the address it returns.
	Endpoints map[string]string
	Clock     clock.Clock
	Logger    *slog.Logger
	// RequestTimeout bounds one call (default 30 s).
	RequestTimeout time.Duration
	// Observe, if set, is told about every call (see awsapi.Router).
	Observe func(operation string, status int, exception string, took time.Duration)
	// Artifacts signs the presigned-URL placeholders of job documents; nil
	// when no artifact store is configured, in which case documents with
	// such placeholders are refused.
	Artifacts *presign.Signer
}

// API is the control-plane HTTP handler.
type API struct {
	opts Options
	mux  *http.ServeMux
	rt   awsapi.Router
}

// New returns the control-plane handler.
func New(opts Options) *API {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	a := &API{opts: opts, mux: http.NewServeMux()}
	a.rt = awsapi.Router{Mux: a.mux, Service: "AWS IoT", Timeout: opts.RequestTimeout, Errors: errorFor, Log: opts.Logger, Observe: opts.Observe}
	a.routes()
	return a
}

// routes lists the whole API surface.
func (a *API) routes() {
	h := a.rt.Handle
	h("CreateJob", "PUT /jobs/{jobId}", a.createJob)
	h("DescribeJob", "GET /jobs/{jobId}", a.describeJob)
	h("ListJobs", "GET /jobs", a.listJobs)
	h("CancelJob", "PUT /jobs/{jobId}/cancel", a.cancelJob)
	h("DeleteJob", "DELETE /jobs/{jobId}", a.deleteJob)
	h("GetJobDocument", "GET /jobs/{jobId}/job-document", a.getJobDocument)
	h("ListJobExecutionsForJob", "GET /jobs/{jobId}/things", a.listExecutionsForJob)
	h("ListJobExecutionsForThing", "GET /things/{thingName}/jobs", a.listExecutionsForThing)
	h("DescribeJobExecution", "GET /things/{thingName}/jobs/{jobId}", a.describeExecution)
	h("CancelJobExecution", "PUT /things/{thingName}/jobs/{jobId}/cancel", a.cancelExecution)
	h("DeleteJobExecution", "DELETE /things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}", a.deleteExecution)
	h("DescribeEndpoint", "GET /endpoint", a.describeEndpoint)
	h("UpdateJob", "PATCH /jobs/{jobId}", a.updateJob)
	h("AssociateTargetsWithJob", "POST /jobs/{jobId}/targets", a.associateTargetsWithJob)

	h("CreateJobTemplate", "PUT /job-templates/{jobTemplateId}", a.createJobTemplate)
	h("DescribeJobTemplate", "GET /job-templates/{jobTemplateId}", a.describeJobTemplate)
	h("ListJobTemplates", "GET /job-templates", a.listJobTemplates)
	h("DeleteJobTemplate", "DELETE /job-templates/{jobTemplateId}", a.deleteJobTemplate)
	h("DescribeManagedJobTemplate", "GET /managed-job-templates/{templateName}", a.describeManagedJobTemplate)
	h("ListManagedJobTemplates", "GET /managed-job-templates", a.listManagedJobTemplates)

	h("CreateThing", "POST /things/{thingName}", a.createThing)
	h("DescribeThing", "GET /things/{thingName}", a.describeThing)
	h("DeleteThing", "DELETE /things/{thingName}", a.deleteThing)
	h("ListThings", "GET /things", a.listThings)
	h("ListThingGroupsForThing", "GET /things/{thingName}/thing-groups", a.listThingGroupsForThing)
	h("CreateThingGroup", "POST /thing-groups/{thingGroupName}", a.createThingGroup)
	h("DescribeThingGroup", "GET /thing-groups/{thingGroupName}", a.describeThingGroup)
	h("DeleteThingGroup", "DELETE /thing-groups/{thingGroupName}", a.deleteThingGroup)
	h("ListThingGroups", "GET /thing-groups", a.listThingGroups)
	h("ListThingsInThingGroup", "GET /thing-groups/{thingGroupName}/things", a.listThingsInThingGroup)
	h("AddThingToThingGroup", "PUT /thing-groups/addThingToThingGroup", a.addThingToThingGroup)
	h("RemoveThingFromThingGroup", "PUT /thing-groups/removeThingFromThingGroup", a.removeThingFromThingGroup)

	h("UpdateEventConfigurations", "PATCH /event-configurations", a.updateEventConfigurations)
	h("DescribeEventConfigurations", "GET /event-configurations", a.describeEventConfigurations)
	a.commandRoutes()
	a.rt.NotFound()
}

// Operations lists the names of the API's operations, as metrics and logs
// report them.
func (a *API) Operations() []string { return a.rt.Operations() }

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// errorFor maps an operation error to the control plane's exceptions
// (PROTOCOL.md §11.7). This is the one place where that mapping lives.
func errorFor(err error) *awsapi.Error {
	var ae *awsapi.Error
	if errors.As(err, &ae) {
		return ae
	}
	msg := err.Error()
	switch {
	case errors.Is(err, store.ErrInvalidRequest):
		return awsapi.Errorf(http.StatusBadRequest, "InvalidRequestException", msg)
	case errors.Is(err, store.ErrNotFound):
		return awsapi.Errorf(http.StatusNotFound, "ResourceNotFoundException", msg)
	case errors.Is(err, store.ErrAlreadyExists):
		return awsapi.Errorf(http.StatusConflict, "ResourceAlreadyExistsException", msg)
	case errors.Is(err, store.ErrInvalidStateTransition), errors.Is(err, store.ErrTerminalState):
		return awsapi.Errorf(http.StatusConflict, "InvalidStateTransitionException", msg)
	case errors.Is(err, store.ErrVersionConflict), errors.Is(err, store.ErrVersionMismatch):
		return awsapi.Errorf(http.StatusConflict, "VersionConflictException", msg)
	case errors.Is(err, store.ErrConflict):
		return awsapi.Errorf(http.StatusConflict, "ConflictException", msg)
	case errors.Is(err, store.ErrLimitExceeded):
		return awsapi.Errorf(http.StatusGone, "LimitExceededException", msg)
	case errors.Is(err, store.ErrThrottled):
		return awsapi.Errorf(http.StatusBadRequest, "ThrottlingException", msg)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, store.ErrUnavailable):
		return awsapi.Errorf(http.StatusServiceUnavailable, "ServiceUnavailableException", "the service cannot complete the request right now")
	}
	return awsapi.Errorf(http.StatusInternalServerError, "InternalFailureException", "internal failure")
}

func (a *API) jobArn(id string) string {
	return "arn:aws:iot:" + a.opts.Region + ":" + a.opts.Account + ":job/" + id
}

func (a *API) thingArn(thing string) string {
	return "arn:aws:iot:" + a.opts.Region + ":" + a.opts.Account + ":thing/" + thing
}

func invalid(msg string) error {
	return awsapi.Errorf(http.StatusBadRequest, "InvalidRequestException", msg)
}

func maxResults(r *http.Request) (int, error) {
	n, e := awsapi.QueryInt(r, "maxResults")
	if e != nil {
		return 0, e
	}
	if n == nil {
		return 0, nil
	}
	if *n < 1 || *n > store.MaxListResults {
		return 0, invalid("maxResults must be between 1 and 250")
	}
	return int(*n), nil
}

func (a *API) createJob(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req createJobRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	in := &store.CreateJobInput{Job: store.Job{
		JobID:                      r.PathValue("jobId"),
		Targets:                    req.Targets,
		Description:                deref(req.Description),
		DocumentSource:             deref(req.DocumentSource),
		TargetSelection:            store.TargetSelection(deref(req.TargetSelection)),
		PresignedURLConfig:         req.PresignedURLConfig,
		RolloutConfig:              req.RolloutConfig,
		AbortConfig:                req.AbortConfig,
		TimeoutConfig:              req.TimeoutConfig,
		RetryConfig:                req.RetryConfig,
		SchedulingConfig:           req.SchedulingConfig,
		NamespaceID:                deref(req.NamespaceID),
		JobTemplateArn:             deref(req.JobTemplateArn),
		DocumentParameters:         req.DocumentParameters,
		DestinationPackageVersions: req.DestinationPackageVersions,
		Tags:                       req.Tags,
	}, Document: deref(req.Document)}
	if ns := in.Job.NamespaceID; ns != "" && (!topics.ValidNamespace(ns) || len(ns) > maxNamespaceLength) {
		return invalid("namespaceId " + strconv.Quote(ns) + " must be 1-64 characters from [a-zA-Z0-9_-]")
	}
	if err := managedJob(in); err != nil {
		return err
	}
	if err := a.checkJobDocument(ctx, in); err != nil {
		return err
	}
	job, err := a.opts.Store.CreateJob(ctx, in)
	if err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			e := errorFor(err)
			e.Extra = map[string]any{"resourceId": in.Job.JobID, "resourceArn": a.jobArn(in.Job.JobID)}
			return e
		}
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, jobRef{JobArn: a.jobArn(job.JobID), JobID: job.JobID, Description: job.Description})
	return nil
}

func (a *API) describeJob(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if _, e := awsapi.QueryBool(r, "beforeSubstitution"); e != nil {
		return e
	}
	job, err := a.opts.Store.DescribeJob(ctx, r.PathValue("jobId"))
	if err != nil {
		return err
	}
	out := struct {
		DocumentSource string  `json:"documentSource,omitempty"`
		Job            wireJob `json:"job"`
	}{DocumentSource: job.DocumentSource, Job: a.job(job)}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) job(j *store.Job) wireJob {
	var rollouts []wireScheduledRollout
	for _, t := range j.ScheduledRollouts {
		rollouts = append(rollouts, wireScheduledRollout{StartTime: schedule.FormatTime(t)})
	}
	return wireJob{
		ScheduledJobRollouts:       rollouts,
		JobArn:                     a.jobArn(j.JobID),
		JobID:                      j.JobID,
		TargetSelection:            string(j.TargetSelection),
		Status:                     string(j.Status),
		ForceCanceled:              j.ForceCanceled,
		ReasonCode:                 j.ReasonCode,
		Comment:                    j.Comment,
		Targets:                    j.Targets,
		Description:                j.Description,
		PresignedURLConfig:         j.PresignedURLConfig,
		RolloutConfig:              j.RolloutConfig,
		AbortConfig:                j.AbortConfig,
		CreatedAt:                  awsapi.Epoch(j.CreatedAt),
		LastUpdatedAt:              awsapi.Epoch(j.LastUpdatedAt),
		CompletedAt:                awsapi.Epoch(j.CompletedAt),
		JobProcessDetails:          processDetails(j.ProcessDetails),
		TimeoutConfig:              j.TimeoutConfig,
		NamespaceID:                j.NamespaceID,
		JobTemplateArn:             j.JobTemplateArn,
		RetryConfig:                j.RetryConfig,
		DocumentParameters:         j.DocumentParameters,
		IsConcurrent:               j.IsConcurrent,
		SchedulingConfig:           j.SchedulingConfig,
		DestinationPackageVersions: j.DestinationPackageVersions,
	}
}

func (a *API) listJobs(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	in := &store.ListJobsInput{
		Status:          store.JobStatus(q.Get("status")),
		TargetSelection: store.TargetSelection(q.Get("targetSelection")),
		NamespaceID:     q.Get("namespaceId"),
		ThingGroupName:  q.Get("thingGroupName"),
		NextToken:       q.Get("nextToken"),
	}
	if in.ThingGroupName == "" && q.Get("thingGroupId") != "" {
		return awsapi.Errorf(http.StatusNotFound, "ResourceNotFoundException", "thing group id "+q.Get("thingGroupId")+" does not exist")
	}
	if in.Status != "" && !in.Status.Valid() {
		return invalid("status must be IN_PROGRESS, CANCELED, COMPLETED, DELETION_IN_PROGRESS or SCHEDULED")
	}
	if in.TargetSelection != "" && in.TargetSelection != store.Snapshot && in.TargetSelection != store.Continuous {
		return invalid("targetSelection must be SNAPSHOT or CONTINUOUS")
	}
	var err error
	if in.MaxResults, err = maxResults(r); err != nil {
		return err
	}
	page, err := a.opts.Store.ListJobs(ctx, in)
	if err != nil {
		return err
	}
	out := struct {
		Jobs      []wireJobSummary `json:"jobs"`
		NextToken string           `json:"nextToken,omitempty"`
	}{Jobs: []wireJobSummary{}, NextToken: page.NextToken}
	for _, j := range page.Jobs {
		out.Jobs = append(out.Jobs, wireJobSummary{
			JobArn:          a.jobArn(j.JobID),
			JobID:           j.JobID,
			TargetSelection: string(j.TargetSelection),
			Status:          string(j.Status),
			CreatedAt:       awsapi.Epoch(j.CreatedAt),
			LastUpdatedAt:   awsapi.Epoch(j.LastUpdatedAt),
			CompletedAt:     awsapi.Epoch(j.CompletedAt),
			IsConcurrent:    j.IsConcurrent,
		})
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getJobDocument(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	before, e := awsapi.QueryBool(r, "beforeSubstitution")
	if e != nil {
		return e
	}
	doc, err := a.opts.Store.GetJobDocument(ctx, r.PathValue("jobId"), before)
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string]string{"document": doc})
	return nil
}

func (a *API) cancelJob(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	force, e := awsapi.QueryBool(r, "force")
	if e != nil {
		return e
	}
	var req cancelJobRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	job, err := a.opts.Store.CancelJob(ctx, &store.CancelJobInput{
		JobID: r.PathValue("jobId"), Force: force, ReasonCode: req.ReasonCode, Comment: req.Comment,
	})
	if errors.Is(err, store.ErrInvalidStateTransition) {
		// CancelJob's model declares no InvalidStateTransitionException;
		// a job that cannot be canceled is an invalid request there.
		return invalid(err.Error())
	}
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, jobRef{JobArn: a.jobArn(job.JobID), JobID: job.JobID, Description: job.Description})
	return nil
}

func (a *API) deleteJob(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	force, e := awsapi.QueryBool(r, "force")
	if e != nil {
		return e
	}
	if err := a.opts.Store.DeleteJob(ctx, &store.DeleteJobInput{JobID: r.PathValue("jobId"), Force: force}); err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

func (a *API) describeExecution(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	n, e := awsapi.QueryInt(r, "executionNumber")
	if e != nil {
		return e
	}
	in := &store.DescribeExecutionInput{ThingName: r.PathValue("thingName"), JobID: r.PathValue("jobId"), ExecutionNumber: n}
	if err := store.ValidateDescribe(in, false); err != nil {
		return err
	}
	out, err := a.opts.Store.DescribeJobExecution(ctx, in)
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string]any{"execution": a.execution(out.Execution)})
	return nil
}

func (a *API) execution(e *store.Execution) wireExecution {
	w := wireExecution{
		JobID:           e.JobID,
		Status:          string(e.Status),
		ForceCanceled:   e.ForceCanceled,
		StatusDetails:   wireStatusDetails{DetailsMap: e.StatusDetails},
		ThingArn:        a.thingArn(e.ThingName),
		QueuedAt:        awsapi.Epoch(e.QueuedAt),
		StartedAt:       awsapi.Epoch(e.StartedAt),
		LastUpdatedAt:   awsapi.Epoch(e.LastUpdatedAt),
		ExecutionNumber: e.ExecutionNumber,
		VersionNumber:   e.VersionNumber,
	}
	if s, ok := e.SecondsBeforeTimedOut(a.opts.Clock.Now()); ok {
		w.ApproximateSecondsBeforeTimedOut = &s
	}
	return w
}

func (a *API) listExecutionsForJob(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	in, err := listInput(r)
	if err != nil {
		return err
	}
	in.JobID = r.PathValue("jobId")
	page, err := a.opts.Store.ListJobExecutionsForJob(ctx, in)
	if err != nil {
		return err
	}
	out := struct {
		ExecutionSummaries []wireExecutionForJob `json:"executionSummaries"`
		NextToken          string                `json:"nextToken,omitempty"`
	}{ExecutionSummaries: []wireExecutionForJob{}, NextToken: page.NextToken}
	for _, e := range page.Executions {
		out.ExecutionSummaries = append(out.ExecutionSummaries, wireExecutionForJob{ThingArn: a.thingArn(e.ThingName), JobExecutionSummary: executionSummary(e)})
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listExecutionsForThing(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	in, err := listInput(r)
	if err != nil {
		return err
	}
	in.ThingName = r.PathValue("thingName")
	in.JobID = r.URL.Query().Get("jobId")
	in.NamespaceID = r.URL.Query().Get("namespaceId")
	page, err := a.opts.Store.ListJobExecutionsForThing(ctx, in)
	if err != nil {
		return err
	}
	out := struct {
		ExecutionSummaries []wireExecutionForThing `json:"executionSummaries"`
		NextToken          string                  `json:"nextToken,omitempty"`
	}{ExecutionSummaries: []wireExecutionForThing{}, NextToken: page.NextToken}
	for _, e := range page.Executions {
		out.ExecutionSummaries = append(out.ExecutionSummaries, wireExecutionForThing{JobID: e.JobID, JobExecutionSummary: executionSummary(e)})
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func listInput(r *http.Request) (*store.ListExecutionsInput, error) {
	q := r.URL.Query()
	in := &store.ListExecutionsInput{Status: store.ExecutionStatus(q.Get("status")), NextToken: q.Get("nextToken")}
	if in.Status != "" && !in.Status.Valid() {
		return nil, invalid("status must be a job execution status")
	}
	var err error
	in.MaxResults, err = maxResults(r)
	return in, err
}

func (a *API) cancelExecution(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	force, e := awsapi.QueryBool(r, "force")
	if e != nil {
		return e
	}
	var req cancelExecutionRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	err := a.opts.Store.CancelJobExecution(ctx, &store.CancelExecutionInput{
		JobID: r.PathValue("jobId"), ThingName: r.PathValue("thingName"), Force: force,
		ExpectedVersion: req.ExpectedVersion, StatusDetails: req.StatusDetails,
	})
	if err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

func (a *API) deleteExecution(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	force, e := awsapi.QueryBool(r, "force")
	if e != nil {
		return e
	}
	n, err := strconv.ParseInt(r.PathValue("executionNumber"), 10, 64)
	if err != nil || n < 0 {
		return invalid("executionNumber must be a non-negative integer")
	}
	err = a.opts.Store.DeleteJobExecution(ctx, &store.DeleteExecutionInput{
		JobID: r.PathValue("jobId"), ThingName: r.PathValue("thingName"), ExecutionNumber: n, Force: force,
	})
	if err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

func (a *API) describeEndpoint(_ context.Context, w http.ResponseWriter, r *http.Request) error {
	t := r.URL.Query().Get("endpointType")
	if t == "" {
		t = "iot:Data"
	}
	addr, ok := a.opts.Endpoints[t]
	if !ok {
		return invalid("endpointType " + t + " is not served by this broker")
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string]string{"endpointAddress": addr})
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
