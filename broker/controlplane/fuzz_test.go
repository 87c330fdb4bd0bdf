package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/broker/awsapi/awsapitest"
	"github.com/jobsbroker/jobsbroker/broker/controlplane"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/schedule"
)

// FuzzControlPlane sends arbitrary requests (method, path, query string
// and body) to the AWS IoT control-plane handler, built once per fuzz
// worker the way broker.New builds it (controlplane.New behind
// awsapi.WithRequestID) on a real Badger store in a temporary directory
// that holds things, thing groups, a job template and jobs in several
// states. For every request it checks (PROTOCOL.md §11):
//
//   - the handler does not panic;
//   - the status is 200 or one of the client-error statuses of §11.7; a
//     5xx is a failure, since the store is healthy (InternalFailure means
//     an error escaped the mapping to exceptions);
//   - every error carries x-amzn-ErrorType equal to the body's __type, a
//     non-empty message and an x-amzn-RequestId; the exception has the
//     status §11.7 gives it and is one the operation's model declares
//     (SDKs only raise typed errors for those), UnknownOperationException
//     for routes the API does not have;
//     ResourceAlreadyExistsException names resourceId and resourceArn;
//   - a 200 body is a JSON object of the operation's shape, its
//     timestamps epoch seconds (numbers, fraction allowed);
//   - a rejected request changed nothing: the fixture's jobs,
//     executions, things, groups, memberships, template and event
//     configuration, and the resource the path names, are the same
//     before and after;
//   - CreateJob: a rejected one creates no job (and leaves an existing
//     one alone); an accepted one created exactly the job of the path,
//     which did not exist before.
//
// After an accepted request, repair puts the fixture back: things,
// groups, memberships and the template are recreated if the input removed
// them, and a fixture job whose state it changed is deleted and created
// again (at most ten a second: the store's deletion limit).
func FuzzControlPlane(f *testing.F) {
	fx := newCPFixture(f)
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		fx.run(t, method, path, query, body)
	})
}

const (
	cpStartUnix = 1717000000
	cpAccount   = "arn:aws:iot:us-east-1:123456789012:"
	cpThing     = "pump-42"
	cpColon     = "a:b"
	cpGroup     = "fleet"
	cpChild     = "fleet-eu"
	cpTemplate  = "tmpl-1"
)

var (
	cpThings    = []string{cpThing, cpColon}
	cpGroups    = []string{cpGroup, cpChild}
	cpTemplates = []string{cpTemplate}
	cpJobs      = []string{"job-1", "job-2", "job-done", "job-canceled", "job-sched"}
)

type cpFixture struct {
	store   *badger.Store
	clock   *clock.Fake
	handler http.Handler
	digests map[string]string // each fixture job's state as created
}

// cpJobSetups creates the fixture's jobs: a continuous job on the group
// with an in-progress timeout, a snapshot job with retries whose
// execution is IN_PROGRESS, a COMPLETED job, a CANCELED job and a
// SCHEDULED job.
var cpJobSetups = map[string]func(ctx context.Context, st store.Store, now time.Time) error{
	"job-1": func(ctx context.Context, st store.Store, _ time.Time) error {
		sixty := int64(60)
		_, err := st.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "job-1", TargetSelection: store.Continuous,
			Targets: []string{cpAccount + "thinggroup/" + cpGroup}, Description: "Pump firmware 2.1",
			TimeoutConfig: &store.TimeoutConfig{InProgressTimeoutInMinutes: &sixty}},
			Document: `{"operation":"install","url":"https://example.invalid/fw.bin"}`})
		return err
	},
	"job-2": func(ctx context.Context, st store.Store, _ time.Time) error {
		_, err := st.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "job-2", Targets: []string{cpAccount + "thing/" + cpThing},
			RetryConfig: &store.RetryConfig{CriteriaList: []store.RetryCriteria{{FailureType: "FAILED", NumberOfRetries: 2}}}},
			Document: `{"operation":"reboot"}`})
		if err == nil {
			_, err = st.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: cpThing, JobID: "job-2",
				Status: store.StatusInProgress, StatusDetails: map[string]string{"progress": "10"}})
		}
		return err
	},
	"job-done": func(ctx context.Context, st store.Store, _ time.Time) error {
		_, err := st.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "job-done", Targets: []string{cpAccount + "thing/" + cpColon}},
			Document: `{"operation":"done"}`})
		if err == nil {
			_, err = st.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: cpColon, JobID: "job-done",
				Status: store.StatusSucceeded, StatusDetails: map[string]string{"result": "ok"}})
		}
		return err
	},
	"job-canceled": func(ctx context.Context, st store.Store, _ time.Time) error {
		_, err := st.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "job-canceled", Targets: []string{cpAccount + "thing/" + cpThing}},
			Document: `{"operation":"stop"}`})
		if err == nil {
			reason := "NO_LONGER_NEEDED"
			_, err = st.CancelJob(ctx, &store.CancelJobInput{JobID: "job-canceled", ReasonCode: &reason})
		}
		return err
	},
	"job-sched": func(ctx context.Context, st store.Store, now time.Time) error {
		_, err := st.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "job-sched", Targets: []string{cpAccount + "thing/" + cpThing},
			SchedulingConfig: &store.SchedulingConfig{StartTime: schedule.FormatTime(now.Add(2 * time.Hour))}},
			Document: `{"operation":"later"}`})
		return err
	},
}

func newCPFixture(tb testing.TB) *cpFixture {
	clk := clock.NewFake(time.Unix(cpStartUnix, 0))
	quiet := slog.New(slog.DiscardHandler)
	// NoSync: fsync per commit would dominate the time per input.
	st, err := badger.Open(badger.Options{Dir: tb.TempDir(), NoSync: true, Clock: clk, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	fx := &cpFixture{store: st, clock: clk, digests: map[string]string{}}
	if err := fx.repair(); err != nil {
		tb.Fatal(err)
	}
	api := controlplane.New(controlplane.Options{
		Store: st, Region: "us-east-1", Account: "123456789012", Clock: clk, Logger: quiet,
		Endpoints: map[string]string{"iot:Data": "localhost:1883", "iot:Data-ATS": "localhost:1883", "iot:Jobs": "localhost:8081"},
	})
	fx.handler = awsapi.WithRequestID(quiet, "control", api)
	return fx
}

// repair (re)creates the fixture's things, thing groups, memberships and
// job template where they are missing.
func (fx *cpFixture) repair() error {
	ctx := context.Background()
	for _, g := range []*store.CreateThingGroupInput{
		{Name: cpGroup, Description: "all pumps", Attributes: map[string]string{"site": "plant-1"}},
		{Name: cpChild, ParentName: cpGroup},
	} {
		if _, err := fx.store.DescribeThingGroup(ctx, g.Name); errors.Is(err, store.ErrNotFound) {
			if _, err := fx.store.CreateThingGroup(ctx, g); err != nil {
				return fmt.Errorf("create group %s: %w", g.Name, err)
			}
		}
	}
	for i, th := range cpThings {
		if _, err := fx.store.DescribeThing(ctx, th); errors.Is(err, store.ErrNotFound) {
			if _, err := fx.store.CreateThing(ctx, &store.CreateThingInput{ThingName: th,
				Attributes: map[string]string{"model": "p1"}}); err != nil {
				return fmt.Errorf("create thing %s: %w", th, err)
			}
		}
		// AddThingToThingGroup is a no-op for a member.
		if err := fx.store.AddThingToThingGroup(ctx, &store.MembershipInput{ThingGroupName: cpGroups[i], ThingName: th}); err != nil {
			return fmt.Errorf("add %s to %s: %w", th, cpGroups[i], err)
		}
	}
	if _, err := fx.store.DescribeJobTemplate(ctx, cpTemplate); errors.Is(err, store.ErrNotFound) {
		if _, err := fx.store.CreateJobTemplate(ctx, &store.CreateJobTemplateInput{Template: store.JobTemplate{
			JobTemplateID: cpTemplate, Description: "reboot template", Document: `{"operation":"reboot","delay":"${aws:iot:parameter:delay}"}`,
		}}); err != nil {
			return fmt.Errorf("create template: %w", err)
		}
	}
	for _, id := range cpJobs {
		d, err := fx.jobDigest(id)
		if err != nil {
			return err
		}
		if d == fx.digests[id] {
			continue
		}
		if d != "" {
			// Deleting a job this small finishes in the same commit. Ten
			// deletions a second hit the store's limit; the job is then
			// restored after a later input.
			err := fx.store.DeleteJob(ctx, &store.DeleteJobInput{JobID: id, Force: true})
			switch {
			case errors.Is(err, store.ErrLimitExceeded), errors.Is(err, store.ErrInvalidStateTransition):
				continue
			case err != nil:
				return fmt.Errorf("delete %s: %w", id, err)
			}
		}
		if err := cpJobSetups[id](ctx, fx.store, fx.clock.Now()); err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
		if fx.digests[id], err = fx.jobDigest(id); err != nil {
			return err
		}
	}
	return nil
}

// jobDigest is a job's status and its executions' statuses and versions
// ("" if it does not exist).
func (fx *cpFixture) jobDigest(id string) (string, error) {
	ctx := context.Background()
	job, err := fx.store.DescribeJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	d := fmt.Sprintf("%s %v %q %q %q", job.Status, job.ForceCanceled, job.Description, job.ReasonCode, job.Comment)
	for _, th := range cpThings {
		out, err := fx.store.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: th, JobID: id})
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return "", err
		default:
			d += fmt.Sprintf("; %s %d %s v%d %v", th, out.Execution.ExecutionNumber, out.Execution.Status, out.Execution.VersionNumber, out.Execution.StatusDetails)
		}
	}
	return d, nil
}

// cpOps maps each route of the API to its operation and the exceptions
// the AWS IoT model (2015-05-28) declares for it, as the AWS SDK for Go v2
// (service/iot v1.75.0, deserializers.go) reads them.
var cpOps = []struct {
	op, pattern string
	declared    []string
}{
	{"CreateJob", "PUT /jobs/{jobId}", []string{"InvalidRequestException", "LimitExceededException", "ResourceAlreadyExistsException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"DescribeJob", "GET /jobs/{jobId}", []string{"InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"ListJobs", "GET /jobs", []string{"InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"CancelJob", "PUT /jobs/{jobId}/cancel", []string{"InvalidRequestException", "LimitExceededException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"DeleteJob", "DELETE /jobs/{jobId}", []string{"InvalidRequestException", "InvalidStateTransitionException", "LimitExceededException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"GetJobDocument", "GET /jobs/{jobId}/job-document", []string{"InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"ListJobExecutionsForJob", "GET /jobs/{jobId}/things", []string{"InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"ListJobExecutionsForThing", "GET /things/{thingName}/jobs", []string{"InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"DescribeJobExecution", "GET /things/{thingName}/jobs/{jobId}", []string{"InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"CancelJobExecution", "PUT /things/{thingName}/jobs/{jobId}/cancel", []string{"InvalidRequestException", "InvalidStateTransitionException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException", "VersionConflictException"}},
	{"DeleteJobExecution", "DELETE /things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}", []string{"InvalidRequestException", "InvalidStateTransitionException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"DescribeEndpoint", "GET /endpoint", []string{"InternalFailureException", "InvalidRequestException", "ThrottlingException", "UnauthorizedException"}},
	{"UpdateJob", "PATCH /jobs/{jobId}", []string{"InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"AssociateTargetsWithJob", "POST /jobs/{jobId}/targets", []string{"InvalidRequestException", "LimitExceededException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException"}},
	{"CreateJobTemplate", "PUT /job-templates/{jobTemplateId}", []string{"ConflictException", "InternalFailureException", "InvalidRequestException", "LimitExceededException", "ResourceNotFoundException", "ThrottlingException"}},
	{"DescribeJobTemplate", "GET /job-templates/{jobTemplateId}", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"ListJobTemplates", "GET /job-templates", []string{"InternalFailureException", "InvalidRequestException", "ThrottlingException"}},
	{"DeleteJobTemplate", "DELETE /job-templates/{jobTemplateId}", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"DescribeManagedJobTemplate", "GET /managed-job-templates/{templateName}", []string{"InternalServerException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"ListManagedJobTemplates", "GET /managed-job-templates", []string{"InternalServerException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"CreateThing", "POST /things/{thingName}", []string{"InternalFailureException", "InvalidRequestException", "ResourceAlreadyExistsException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException", "UnauthorizedException"}},
	{"DescribeThing", "GET /things/{thingName}", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException", "UnauthorizedException"}},
	{"DeleteThing", "DELETE /things/{thingName}", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ServiceUnavailableException", "ThrottlingException", "UnauthorizedException", "VersionConflictException"}},
	{"ListThings", "GET /things", []string{"InternalFailureException", "InvalidRequestException", "ServiceUnavailableException", "ThrottlingException", "UnauthorizedException"}},
	{"ListThingGroupsForThing", "GET /things/{thingName}/thing-groups", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"CreateThingGroup", "POST /thing-groups/{thingGroupName}", []string{"InternalFailureException", "InvalidRequestException", "ResourceAlreadyExistsException", "ThrottlingException"}},
	{"DescribeThingGroup", "GET /thing-groups/{thingGroupName}", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"DeleteThingGroup", "DELETE /thing-groups/{thingGroupName}", []string{"InternalFailureException", "InvalidRequestException", "ThrottlingException", "VersionConflictException"}},
	{"ListThingGroups", "GET /thing-groups", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"ListThingsInThingGroup", "GET /thing-groups/{thingGroupName}/things", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"AddThingToThingGroup", "PUT /thing-groups/addThingToThingGroup", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"RemoveThingFromThingGroup", "PUT /thing-groups/removeThingFromThingGroup", []string{"InternalFailureException", "InvalidRequestException", "ResourceNotFoundException", "ThrottlingException"}},
	{"UpdateEventConfigurations", "PATCH /event-configurations", []string{"InternalFailureException", "InvalidRequestException", "ThrottlingException"}},
	{"DescribeEventConfigurations", "GET /event-configurations", []string{"InternalFailureException", "ThrottlingException"}},
}

// exceptionStatus is the HTTP status of each exception (PROTOCOL.md §11.7;
// UnknownOperationException for routes the API does not have).
var exceptionStatus = map[string]int{
	"InvalidRequestException":         400,
	"ThrottlingException":             400,
	"UnauthorizedException":           401,
	"ResourceNotFoundException":       404,
	"UnknownOperationException":       404,
	"ResourceAlreadyExistsException":  409,
	"InvalidStateTransitionException": 409,
	"VersionConflictException":        409,
	"ConflictException":               409,
	"LimitExceededException":          410,
	"InternalFailureException":        500,
	"ServiceUnavailableException":     503,
}

// cpRoute is what a request addresses, read independently of the
// handler: the escaped path split on "/", each segment percent-decoded,
// matched against the model's templates (a label matches one non-empty
// segment). GET routes also serve HEAD, as http.ServeMux does.
type cpRoute struct {
	op       string
	declared []string
	labels   map[string]string
}

func routeOf(method string, u *url.URL) cpRoute {
	segs := strings.Split(u.EscapedPath(), "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return cpRoute{}
		}
		segs[i] = d
	}
	if method == http.MethodHead {
		method = http.MethodGet
	}
	for _, r := range cpOps {
		m, p, _ := strings.Cut(r.pattern, " ")
		tmpl := strings.Split(p, "/")
		if m != method || len(tmpl) != len(segs) {
			continue
		}
		labels := map[string]string{}
		ok := true
		for i, t := range tmpl {
			switch {
			case strings.HasPrefix(t, "{"):
				labels[strings.Trim(t, "{}")] = segs[i]
				ok = ok && segs[i] != ""
			default:
				ok = ok && t == segs[i]
			}
		}
		if ok {
			return cpRoute{op: r.op, declared: r.declared, labels: labels}
		}
	}
	return cpRoute{}
}

func (fx *cpFixture) run(t *testing.T, method, path, query string, body []byte) {
	req, ok := awsapitest.RawRequest("iot.local", method, path, query, body)
	if !ok {
		return
	}
	rt := routeOf(method, req.URL)
	before := fx.snapshot(t, rt)
	rec := httptest.NewRecorder()
	fx.handler.ServeHTTP(rec, req)
	after := fx.snapshot(t, rt)
	res := rec.Result()
	raw, _ := io.ReadAll(res.Body)
	desc := fmt.Sprintf("%s %s body %q -> %d %s", method, req.RequestURI, truncate(body), res.StatusCode, truncate(raw))
	if rt.op == "" {
		desc += " (no such operation)"
	} else {
		desc += " (" + rt.op + ")"
	}

	if res.Header.Get("x-amzn-RequestId") == "" {
		t.Errorf("%s: no x-amzn-RequestId", desc)
	}
	if res.StatusCode != http.StatusOK {
		fx.checkError(t, desc, rt, len(body), res, raw)
		if rt.op == "DeleteJob" && res.StatusCode == http.StatusGone {
			fx.checkDeletionLimit(t, desc)
		}
		if before != after {
			t.Fatalf("%s: a rejected request changed the store:\nbefore %s\nafter  %s", desc, before, after)
		}
		return
	}
	if rt.op == "" {
		t.Fatalf("%s: 200 for a route the API does not have", desc)
	}
	v := fx.checkBody(t, desc, rt, raw)
	if rt.op == "CreateJob" {
		fx.checkCreated(t, desc, rt, v, before)
	}
	if strings.HasPrefix(rt.op, "Describe") || strings.HasPrefix(rt.op, "List") || strings.HasPrefix(rt.op, "Get") {
		if before != after {
			t.Fatalf("%s: a read changed the store:\nbefore %s\nafter  %s", desc, before, after)
		}
		return
	}
	if err := fx.repair(); err != nil {
		t.Fatal(err)
	}
}

// checkError checks the rest-json error shape and the exception.
func (fx *cpFixture) checkError(t *testing.T, desc string, rt cpRoute, bodyLen int, res *http.Response, raw []byte) {
	t.Helper()
	typ := awsapitest.ErrorType(t, desc, res, raw)
	if res.StatusCode >= 500 {
		t.Fatalf("%s: %d on a healthy store", desc, res.StatusCode)
	}
	want, known := exceptionStatus[typ]
	if res.StatusCode == http.StatusRequestEntityTooLarge && typ == "InvalidRequestException" && bodyLen > awsapi.MaxBodyBytes {
		want = res.StatusCode
	}
	if !known || want != res.StatusCode {
		t.Fatalf("%s: exception %s with status %d (§11.7 gives it %d)", desc, typ, res.StatusCode, want)
	}
	switch {
	case rt.op == "" && typ != "UnknownOperationException":
		t.Fatalf("%s: %s for a route the API does not have; want UnknownOperationException", desc, typ)
	case rt.op != "" && !slices.Contains(rt.declared, typ):
		t.Fatalf("%s: %s declares no %s (it declares %v)", desc, rt.op, typ, rt.declared)
	}
	if typ == "ResourceAlreadyExistsException" {
		var body map[string]any
		json.Unmarshal(raw, &body) // ErrorType has checked it is an object
		id, _ := body["resourceId"].(string)
		arn, _ := body["resourceArn"].(string)
		if id == "" || !strings.HasPrefix(arn, cpAccount) {
			t.Fatalf("%s: ResourceAlreadyExistsException without resourceId and resourceArn", desc)
		}
	}
}

// cpShapes gives, for each operation, the members a 200 body must have
// with their JSON types, the members it may have, and whether it may have
// others (closed: it may not; a closed shape without members is {}).
type cpShape struct {
	required, optional map[string]string
	closed             bool
}

var (
	jobRefShape = cpShape{map[string]string{"jobArn": "string", "jobId": "string"}, map[string]string{"description": "string"}, true}
	emptyShape  = cpShape{closed: true}
	pageOf      = func(k string) cpShape {
		return cpShape{map[string]string{k: "array"}, map[string]string{"nextToken": "string"}, true}
	}
	singleMember = func(k, typ string) cpShape { return cpShape{map[string]string{k: typ}, nil, true} }
)

var cpShapes = map[string]cpShape{
	"CreateJob":                   jobRefShape,
	"DescribeJob":                 {map[string]string{"job": "object"}, map[string]string{"documentSource": "string"}, true},
	"ListJobs":                    pageOf("jobs"),
	"CancelJob":                   jobRefShape,
	"DeleteJob":                   emptyShape,
	"GetJobDocument":              singleMember("document", "string"),
	"ListJobExecutionsForJob":     pageOf("executionSummaries"),
	"ListJobExecutionsForThing":   pageOf("executionSummaries"),
	"DescribeJobExecution":        singleMember("execution", "object"),
	"CancelJobExecution":          emptyShape,
	"DeleteJobExecution":          emptyShape,
	"DescribeEndpoint":            singleMember("endpointAddress", "string"),
	"UpdateJob":                   emptyShape,
	"AssociateTargetsWithJob":     jobRefShape,
	"CreateJobTemplate":           cpShape{map[string]string{"jobTemplateArn": "string", "jobTemplateId": "string"}, nil, true},
	"DescribeJobTemplate":         cpShape{map[string]string{"jobTemplateArn": "string", "jobTemplateId": "string"}, nil, false},
	"ListJobTemplates":            pageOf("jobTemplates"),
	"DeleteJobTemplate":           emptyShape,
	"CreateThing":                 cpShape{map[string]string{"thingName": "string", "thingArn": "string", "thingId": "string"}, nil, true},
	"DescribeThing":               cpShape{map[string]string{"thingName": "string", "thingArn": "string", "thingId": "string", "version": "number"}, nil, false},
	"DeleteThing":                 emptyShape,
	"ListThings":                  pageOf("things"),
	"ListThingGroupsForThing":     pageOf("thingGroups"),
	"CreateThingGroup":            cpShape{map[string]string{"thingGroupName": "string", "thingGroupArn": "string", "thingGroupId": "string"}, nil, true},
	"DescribeThingGroup":          cpShape{map[string]string{"thingGroupName": "string", "thingGroupArn": "string", "thingGroupId": "string", "version": "number"}, nil, false},
	"DeleteThingGroup":            emptyShape,
	"ListThingGroups":             pageOf("thingGroups"),
	"ListThingsInThingGroup":      pageOf("things"),
	"AddThingToThingGroup":        emptyShape,
	"RemoveThingFromThingGroup":   emptyShape,
	"UpdateEventConfigurations":   emptyShape,
	"DescribeEventConfigurations": cpShape{map[string]string{"eventConfigurations": "object"}, nil, false},
}

// timestampKeys are the members that hold AWS timestamp shapes.
var timestampKeys = map[string]bool{
	"createdAt": true, "lastUpdatedAt": true, "completedAt": true, "queuedAt": true, "startedAt": true,
	"creationDate": true, "lastModifiedDate": true,
}

func (fx *cpFixture) checkBody(t *testing.T, desc string, rt cpRoute, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil || v == nil || dec.More() {
		t.Fatalf("%s: 200 body is not one JSON object: %v", desc, err)
	}
	shape := cpShapes[rt.op]
	for k, typ := range shape.required {
		if jsonType(v[k]) != typ {
			t.Fatalf("%s: %s of %s is %s, want %s", desc, k, rt.op, jsonType(v[k]), typ)
		}
	}
	for k, val := range v {
		if typ, ok := shape.optional[k]; ok && jsonType(val) != typ {
			t.Fatalf("%s: %s is %s, want %s", desc, k, jsonType(val), typ)
		}
		if _, ok := shape.required[k]; !ok && shape.closed && shape.optional[k] == "" {
			t.Fatalf("%s: unexpected member %q in %s", desc, k, rt.op)
		}
	}
	fx.walkTimestamps(t, desc, "", v)
	switch rt.op {
	case "DescribeJob":
		job := v["job"].(map[string]any)
		if id, _ := job["jobId"].(string); id != rt.labels["jobId"] || job["jobArn"] != cpAccount+"job/"+id {
			t.Fatalf("%s: described job %v (%v), asked for %s", desc, job["jobId"], job["jobArn"], rt.labels["jobId"])
		}
		if s, _ := job["status"].(string); !store.JobStatus(s).Valid() {
			t.Fatalf("%s: job status %v", desc, job["status"])
		}
	case "DescribeJobExecution":
		e := v["execution"].(map[string]any)
		if e["jobId"] != rt.labels["jobId"] || e["thingArn"] != cpAccount+"thing/"+rt.labels["thingName"] {
			t.Fatalf("%s: described %v on %v, asked for %s on %s", desc, e["jobId"], e["thingArn"], rt.labels["jobId"], rt.labels["thingName"])
		}
		if s, _ := e["status"].(string); !store.ExecutionStatus(s).Valid() {
			t.Fatalf("%s: execution status %v", desc, e["status"])
		}
	case "CancelJob", "AssociateTargetsWithJob":
		if v["jobId"] != rt.labels["jobId"] || v["jobArn"] != cpAccount+"job/"+rt.labels["jobId"] {
			t.Fatalf("%s: answered for job %v (%v), the path names %s", desc, v["jobId"], v["jobArn"], rt.labels["jobId"])
		}
	}
	return v
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "absent or null"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// walkTimestamps checks every timestamp member anywhere in v: a JSON
// number of epoch seconds (with a fraction at most), not milliseconds,
// and not after the (fake) clock.
func (fx *cpFixture) walkTimestamps(t *testing.T, desc, where string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			if timestampKeys[k] {
				n, ok := val.(json.Number)
				f, err := n.Float64()
				if !ok || err != nil || f < cpStartUnix-1 || f > float64(fx.clock.Now().Unix())+1 {
					t.Fatalf("%s: %s%s = %v is not epoch seconds", desc, where, k, val)
				}
				continue
			}
			fx.walkTimestamps(t, desc, where+k+".", val)
		}
	case []any:
		for _, val := range v {
			fx.walkTimestamps(t, desc, where, val)
		}
	}
}

// checkCreated checks an accepted CreateJob: it created the job of the
// path, which did not exist before.
func (fx *cpFixture) checkCreated(t *testing.T, desc string, rt cpRoute, v map[string]any, before cpState) {
	t.Helper()
	id := rt.labels["jobId"]
	if v["jobId"] != id || v["jobArn"] != cpAccount+"job/"+id {
		t.Fatalf("%s: created %v (%v), the path names %s", desc, v["jobId"], v["jobArn"], id)
	}
	if strings.Contains(string(before), "job "+id+" exists") {
		t.Fatalf("%s: CreateJob succeeded over an existing job", desc)
	}
	job, err := fx.store.DescribeJob(context.Background(), id)
	if err != nil {
		t.Fatalf("%s: the created job cannot be described: %v", desc, err)
	}
	switch job.Status {
	case store.JobInProgress, store.JobScheduled, store.JobCompleted:
	default:
		t.Fatalf("%s: a new job is %s", desc, job.Status)
	}
}

// checkDeletionLimit checks a LimitExceededException from DeleteJob:
// AWS allows 10 jobs in DELETION_IN_PROGRESS per account (PROTOCOL.md
// §11.6, §13), so there must be 10 of them.
func (fx *cpFixture) checkDeletionLimit(t *testing.T, desc string) {
	t.Helper()
	n := 0
	in := &store.ListJobsInput{Status: store.JobDeletionInProgress, MaxResults: store.MaxListResults}
	for {
		page, err := fx.store.ListJobs(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Jobs)
		if page.NextToken == "" {
			break
		}
		in.NextToken = page.NextToken
	}
	if n < 10 {
		t.Fatalf("%s: LimitExceededException while %d jobs are DELETION_IN_PROGRESS (the limit is 10)", desc, n)
	}
}

// cpState is a digest of the fixture and of the resource the request's
// path names.
type cpState string

func (fx *cpFixture) snapshot(t *testing.T, rt cpRoute) cpState {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	add := func(what string, v any, err error) {
		switch {
		case errors.Is(err, store.ErrNotFound):
			fmt.Fprintf(&b, "%s missing\n", what)
		case errors.Is(err, store.ErrInvalidRequest):
			// The path names nothing that could exist.
		case err != nil:
			t.Fatalf("snapshot %s: %v", what, err)
		default:
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s exists %s\n", what, j)
		}
	}
	jobs := slices.Clone(cpJobs)
	things := slices.Clone(cpThings)
	groups := slices.Clone(cpGroups)
	templates := slices.Clone(cpTemplates)
	if id, ok := rt.labels["jobId"]; ok && !slices.Contains(jobs, id) {
		jobs = append(jobs, id)
	}
	if th, ok := rt.labels["thingName"]; ok && !slices.Contains(things, th) {
		things = append(things, th)
	}
	if g, ok := rt.labels["thingGroupName"]; ok && !slices.Contains(groups, g) {
		groups = append(groups, g)
	}
	if id, ok := rt.labels["jobTemplateId"]; ok && !slices.Contains(templates, id) {
		templates = append(templates, id)
	}
	for _, id := range jobs {
		j, err := fx.store.DescribeJob(ctx, id)
		if err == nil {
			add("job "+id, struct {
				*store.Job
				Details store.ProcessDetails
				Busy    bool
			}{j, j.ProcessDetails, j.IsConcurrent}, nil)
		} else {
			add("job "+id, nil, err)
		}
		for _, th := range things {
			e, err := fx.store.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: th, JobID: id})
			if err == nil {
				add("execution "+th+"/"+id, e.Execution, nil)
			} else {
				add("execution "+th+"/"+id, nil, err)
			}
		}
	}
	for _, th := range things {
		v, err := fx.store.DescribeThing(ctx, th)
		add("thing "+th, v, err)
		if err == nil {
			g, err := fx.store.ListThingGroupsForThing(ctx, th, &store.PageInput{})
			add("groups of "+th, g, err)
		}
	}
	for _, name := range groups {
		g, err := fx.store.DescribeThingGroup(ctx, name)
		add("group "+name, g, err)
		if err == nil {
			m, err := fx.store.ListThingsInThingGroup(ctx, &store.ListThingsInGroupInput{ThingGroupName: name})
			add("members of "+name, m, err)
		}
	}
	for _, id := range templates {
		v, err := fx.store.DescribeJobTemplate(ctx, id)
		add("template "+id, v, err)
	}
	ev, err := fx.store.DescribeEventConfigurations(ctx)
	add("events", ev, err)
	return cpState(b.String())
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
