package controlplane

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Custom job templates (CreateJobTemplate, DescribeJobTemplate,
// ListJobTemplates, DeleteJobTemplate), and the job operations that came
// with them: UpdateJob and AssociateTargetsWithJob. CreateJob takes a
// template through jobTemplateArn (see createJob).

func (a *API) jobTemplateArn(id string) string { return a.arn("jobtemplate/" + id) }

// pathTemplateID returns the jobTemplateId of the path: 1-64 characters
// from [a-zA-Z0-9_-], the pattern of job ids.
func pathTemplateID(r *http.Request) (string, error) {
	id := r.PathValue("jobTemplateId")
	if !topics.ValidJobID(id) {
		return "", invalid("jobTemplateId " + strconv.Quote(id) + " must be 1-64 characters from [a-zA-Z0-9_-]")
	}
	return id, nil
}

// jobIDFromARN returns the job id of a job ARN,
// arn:{partition}:iot:{region}:{account}:job/{jobId}.
func jobIDFromARN(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	bad := invalid("jobArn " + strconv.Quote(arn) + " is not an AWS IoT job ARN")
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iot" || parts[3] == "" || parts[4] == "" {
		return "", bad
	}
	id, ok := strings.CutPrefix(parts[5], "job/")
	if !ok || !topics.ValidJobID(id) {
		return "", bad
	}
	return id, nil
}

func (a *API) createJobTemplate(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, createTemplateErrors)
	id, err := pathTemplateID(r)
	if err != nil {
		return err
	}
	var req createJobTemplateRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	if req.Description == nil {
		return invalid("description is required")
	}
	in := &store.CreateJobTemplateInput{Template: store.JobTemplate{
		JobTemplateID:              id,
		Description:                *req.Description,
		Document:                   deref(req.Document),
		DocumentSource:             deref(req.DocumentSource),
		PresignedURLConfig:         req.PresignedURLConfig,
		RolloutConfig:              req.RolloutConfig,
		AbortConfig:                req.AbortConfig,
		TimeoutConfig:              req.TimeoutConfig,
		RetryConfig:                req.RetryConfig,
		MaintenanceWindows:         req.MaintenanceWindows,
		DestinationPackageVersions: req.DestinationPackageVersions,
		Tags:                       req.Tags,
	}}
	if arn := deref(req.JobArn); arn != "" {
		if in.JobID, err = jobIDFromARN(arn); err != nil {
			return err
		}
	}
	if err := a.checkDocument(in.Template.Document); err != nil {
		return err
	}
	t, err := a.opts.Store.CreateJobTemplate(ctx, in)
	if errors.Is(err, store.ErrAlreadyExists) {
		// The model declares ConflictException, not
		// ResourceAlreadyExistsException, for a template id in use.
		return &awsapi.Error{Status: http.StatusConflict, Type: exConflict, Message: err.Error(),
			Extra: map[string]any{"resourceId": id}}
	}
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, wireJobTemplateRef{JobTemplateArn: a.jobTemplateArn(t.JobTemplateID), JobTemplateID: t.JobTemplateID})
	return nil
}

func (a *API) describeJobTemplate(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, templateErrors)
	id, err := pathTemplateID(r)
	if err != nil {
		return err
	}
	t, err := a.opts.Store.DescribeJobTemplate(ctx, id)
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, wireJobTemplate{
		JobTemplateArn:             a.jobTemplateArn(t.JobTemplateID),
		JobTemplateID:              t.JobTemplateID,
		Description:                t.Description,
		DocumentSource:             t.DocumentSource,
		Document:                   t.Document,
		CreatedAt:                  awsapi.Epoch(t.CreatedAt),
		PresignedURLConfig:         t.PresignedURLConfig,
		RolloutConfig:              t.RolloutConfig,
		AbortConfig:                t.AbortConfig,
		TimeoutConfig:              t.TimeoutConfig,
		RetryConfig:                t.RetryConfig,
		MaintenanceWindows:         t.MaintenanceWindows,
		DestinationPackageVersions: t.DestinationPackageVersions,
	})
	return nil
}

func (a *API) listJobTemplates(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, listTemplatesErrors)
	page, err := pageInput(r)
	if err != nil {
		return err
	}
	res, err := a.opts.Store.ListJobTemplates(ctx, &page)
	if err != nil {
		return err
	}
	out := struct {
		JobTemplates []wireJobTemplateSummary `json:"jobTemplates"`
		NextToken    string                   `json:"nextToken,omitempty"`
	}{JobTemplates: []wireJobTemplateSummary{}, NextToken: res.NextToken}
	for _, t := range res.Templates {
		out.JobTemplates = append(out.JobTemplates, wireJobTemplateSummary{
			JobTemplateArn: a.jobTemplateArn(t.JobTemplateID), JobTemplateID: t.JobTemplateID,
			Description: t.Description, CreatedAt: awsapi.Epoch(t.CreatedAt),
		})
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteJobTemplate(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, templateErrors)
	id, err := pathTemplateID(r)
	if err != nil {
		return err
	}
	if err := a.opts.Store.DeleteJobTemplate(ctx, id); err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

// updateJob changes a job's description and configuration. namespaceId
// is accepted and not checked, as for DeleteJob: job ids are unique
// across namespaces.
func (a *API) updateJob(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, updateJobErrors)
	id := r.PathValue("jobId")
	if err := store.ValidateJobID(id); err != nil {
		return err
	}
	var req updateJobRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	err = a.opts.Store.UpdateJob(ctx, &store.UpdateJobInput{
		JobID:              id,
		Description:        req.Description,
		PresignedURLConfig: req.PresignedURLConfig,
		RolloutConfig:      req.RolloutConfig,
		AbortConfig:        req.AbortConfig,
		TimeoutConfig:      req.TimeoutConfig,
		RetryConfig:        req.RetryConfig,
	})
	if err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

// associateTargetsWithJob adds targets to a continuous job. namespaceId is
// accepted and not checked, as for UpdateJob.
func (a *API) associateTargetsWithJob(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, associateTargetsErrors)
	id := r.PathValue("jobId")
	if err := store.ValidateJobID(id); err != nil {
		return err
	}
	var req associateTargetsRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	if len(req.Targets) == 0 {
		return invalid("targets must list at least one thing or thing group ARN")
	}
	job, err := a.opts.Store.AssociateTargetsWithJob(ctx, &store.AssociateTargetsInput{JobID: id, Targets: req.Targets, Comment: req.Comment})
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusOK, jobRef{JobArn: a.jobArn(job.JobID), JobID: job.JobID, Description: job.Description})
	return nil
}
