package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// The tests in this file drive the control plane (PROTOCOL.md §11) through
// the real AWS SDK for Go v2 and, where the SDK hides the wire, through
// plain net/http; device-side effects are checked with real MQTT clients.

const cpAccountArn = "arn:aws:iot:us-east-1:123456789012:"

// cpStart starts a broker and returns it with an SDK client for its API.
func cpStart(t *testing.T) (*brokertest.Instance, *iot.Client) {
	t.Helper()
	b := brokertest.Start(t)
	return b, b.IoT()
}

func cpARNs(things ...string) []string {
	out := make([]string, len(things))
	for i, th := range things {
		out[i] = brokertest.ThingARN(th)
	}
	return out
}

// cpCreateJob creates a job for things through the SDK; its document is
// {"operation":id}.
func cpCreateJob(t *testing.T, api *iot.Client, id string, things ...string) {
	t.Helper()
	_, err := api.CreateJob(context.Background(), &iot.CreateJobInput{
		JobId: aws.String(id), Targets: cpARNs(things...), Document: aws.String(`{"operation":"` + id + `"}`),
	})
	if err != nil {
		t.Fatalf("CreateJob %s: %v", id, err)
	}
}

func cpDescribeJob(t *testing.T, api *iot.Client, id string) *types.Job {
	t.Helper()
	out, err := api.DescribeJob(context.Background(), &iot.DescribeJobInput{JobId: aws.String(id)})
	if err != nil {
		t.Fatalf("DescribeJob %s: %v", id, err)
	}
	if out.Job == nil {
		t.Fatalf("DescribeJob %s: no job in the response", id)
	}
	return out.Job
}

func cpExecution(t *testing.T, api *iot.Client, thing, job string) *types.JobExecution {
	t.Helper()
	out, err := api.DescribeJobExecution(context.Background(), &iot.DescribeJobExecutionInput{ThingName: aws.String(thing), JobId: aws.String(job)})
	if err != nil {
		t.Fatalf("DescribeJobExecution %s/%s: %v", thing, job, err)
	}
	if out.Execution == nil {
		t.Fatalf("DescribeJobExecution %s/%s: no execution in the response", thing, job)
	}
	return out.Execution
}

// cpSDKError checks that err is the SDK's typed exception E, that the
// response had the given HTTP status, a message and a request id.
func cpSDKError[E error](t *testing.T, err error, status int) E {
	t.Helper()
	var typed E
	if !errors.As(err, &typed) {
		t.Fatalf("error %v (%T), want %T", err, err, typed)
	}
	cpSDKStatus(t, err, status)
	return typed
}

// cpSDKCode checks an error by its code, for exceptions the SDK does not
// model for the operation (it returns them as generic API errors).
func cpSDKCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae interface{ ErrorCode() string }
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("error %v (%T), want code %s", err, err, code)
	}
	cpSDKStatus(t, err, status)
}

func cpSDKStatus(t *testing.T, err error, status int) {
	t.Helper()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) carries no HTTP response", err, err)
	}
	if re.HTTPStatusCode() != status {
		t.Fatalf("HTTP status %d, want %d: %v", re.HTTPStatusCode(), status, err)
	}
	if re.ServiceRequestID() == "" {
		t.Fatalf("no request id in the error: %v", err)
	}
	var msg interface{ ErrorMessage() string }
	if !errors.As(err, &msg) || msg.ErrorMessage() == "" {
		t.Fatalf("no error message: %v", err)
	}
}

// cpResponse is a raw HTTP response of the API.
type cpResponse struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// cpDo sends a raw request (body: nil, a string, or a value encoded as
// JSON) and checks that the response carries a request id and, when it
// has a body, that the body is a JSON object.
func cpDo(t *testing.T, b *brokertest.Instance, method, path string, body any) cpResponse {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(enc))
	}
	req, err := http.NewRequest(method, b.APIURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := cpResponse{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, path, err, raw)
		}
	}
	if resp.Header.Get("x-amzn-RequestId") == "" {
		t.Fatalf("%s %s: no x-amzn-RequestId header", method, path)
	}
	return r
}

// cpExpectError checks the AWS rest-json error format (PROTOCOL.md §10.3):
// status, x-amzn-ErrorType, body __type and message.
func cpExpectError(t *testing.T, r cpResponse, status int, typ string) {
	t.Helper()
	if r.Status != status || r.Header.Get("x-amzn-ErrorType") != typ || r.Body["__type"] != typ {
		t.Fatalf("got %d, x-amzn-ErrorType %q, body %s; want %d %s", r.Status, r.Header.Get("x-amzn-ErrorType"), r.Raw, status, typ)
	}
	if msg, _ := r.Body["message"].(string); msg == "" {
		t.Fatalf("error without a message: %s", r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q", ct)
	}
}

func cpObject(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is not a JSON object: %v", what, v)
	}
	return m
}

// cpDevice connects a device without subscriptions; replies reach it anyway.
func cpDevice(t *testing.T, b *brokertest.Instance, thing string, version int) *brokertest.Client {
	t.Helper()
	return brokertest.Connect(t, b.MQTTAddr(), thing, version)
}

func cpUpdateTopic(thing, job string) string {
	return "$aws/things/" + thing + "/jobs/" + job + "/update"
}

// cpUpdate reports status for the device's execution of job.
func cpUpdate(t *testing.T, d *brokertest.Client, job, status string) map[string]any {
	t.Helper()
	return d.MustAccept(cpUpdateTopic(d.ID, job), map[string]any{"status": status})
}

func cpCounts(p *types.JobProcessDetails) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("queued=%d inProgress=%d succeeded=%d failed=%d rejected=%d canceled=%d removed=%d timedOut=%d",
		aws.ToInt32(p.NumberOfQueuedThings), aws.ToInt32(p.NumberOfInProgressThings), aws.ToInt32(p.NumberOfSucceededThings),
		aws.ToInt32(p.NumberOfFailedThings), aws.ToInt32(p.NumberOfRejectedThings), aws.ToInt32(p.NumberOfCanceledThings),
		aws.ToInt32(p.NumberOfRemovedThings), aws.ToInt32(p.NumberOfTimedOutThings))
}

func cpJobIDs(jobs []types.JobSummary) []string {
	var ids []string
	for _, j := range jobs {
		ids = append(ids, aws.ToString(j.JobId))
	}
	slices.Sort(ids)
	return ids
}

func cpSorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func cpListJobs(t *testing.T, api *iot.Client, in *iot.ListJobsInput) []types.JobSummary {
	t.Helper()
	out, err := api.ListJobs(context.Background(), in)
	if err != nil {
		t.Fatalf("ListJobs: %v", err)
	}
	return out.Jobs
}

func cpWantTime(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if got == nil || !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// cpNumber checks that a raw JSON member is a number of epoch seconds.
func cpNumber(t *testing.T, obj map[string]any, key string, want float64) {
	t.Helper()
	if got, ok := obj[key].(float64); !ok || got != want {
		t.Fatalf("%s = %#v, want the JSON number %v", key, obj[key], want)
	}
}

func TestControlPlaneCreateJob(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()

	t.Run("fields are echoed by DescribeJob", func(t *testing.T) {
		targets := []string{brokertest.ThingARN("pump-1"), "arn:aws:iot:eu-west-1:210987654321:thing/pump-2"}
		in := &iot.CreateJobInput{
			JobId:       aws.String("fw-1"),
			Targets:     targets,
			Document:    aws.String(`{"operation":"install","url":"https://example.invalid/fw.bin"}`),
			Description: aws.String("Pump firmware 2.1"),
			PresignedUrlConfig: &types.PresignedUrlConfig{
				RoleArn: aws.String("arn:aws:iam::123456789012:role/JobsS3"), ExpiresInSec: aws.Int64(900),
			},
			JobExecutionsRolloutConfig: &types.JobExecutionsRolloutConfig{
				MaximumPerMinute: aws.Int32(200),
				ExponentialRate: &types.ExponentialRolloutRate{
					BaseRatePerMinute: aws.Int32(10), IncrementFactor: aws.Float64(2.5),
					RateIncreaseCriteria: &types.RateIncreaseCriteria{NumberOfNotifiedThings: aws.Int32(50)},
				},
			},
			AbortConfig: &types.AbortConfig{CriteriaList: []types.AbortCriteria{{
				FailureType: types.JobExecutionFailureTypeFailed, Action: types.AbortActionCancel,
				ThresholdPercentage: aws.Float64(20.5), MinNumberOfExecutedThings: aws.Int32(10),
			}}},
			TimeoutConfig: &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(60)},
			JobExecutionsRetryConfig: &types.JobExecutionsRetryConfig{CriteriaList: []types.RetryCriteria{
				{FailureType: types.RetryableFailureTypeFailed, NumberOfRetries: aws.Int32(2)},
				{FailureType: types.RetryableFailureTypeTimedOut, NumberOfRetries: aws.Int32(1)},
			}},
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("pumps")}},
		}
		out, err := api.CreateJob(ctx, in)
		if err != nil {
			t.Fatalf("CreateJob: %v", err)
		}
		if aws.ToString(out.JobArn) != cpAccountArn+"job/fw-1" || aws.ToString(out.JobId) != "fw-1" || aws.ToString(out.Description) != "Pump firmware 2.1" {
			t.Fatalf("CreateJob output: arn %q id %q description %q", aws.ToString(out.JobArn), aws.ToString(out.JobId), aws.ToString(out.Description))
		}

		// The rollout is paced (10 a minute to start with): one thing at
		// once, the other within a minute.
		b.Clock.Advance(time.Minute)
		brokertest.Eventually(t, "rollout of fw-1", func() error {
			if j := cpDescribeJob(t, api, "fw-1"); aws.ToBool(j.IsConcurrent) {
				return fmt.Errorf("still rolling out")
			}
			return nil
		})
		job := cpDescribeJob(t, api, "fw-1")
		if aws.ToString(job.JobArn) != cpAccountArn+"job/fw-1" || aws.ToString(job.JobId) != "fw-1" ||
			aws.ToString(job.Description) != "Pump firmware 2.1" || job.Status != types.JobStatusInProgress {
			t.Fatalf("job: arn %q id %q description %q status %s", aws.ToString(job.JobArn), aws.ToString(job.JobId), aws.ToString(job.Description), job.Status)
		}
		if job.TargetSelection != types.TargetSelectionSnapshot {
			t.Fatalf("targetSelection = %q, want the default SNAPSHOT", job.TargetSelection)
		}
		if !reflect.DeepEqual(job.Targets, targets) {
			t.Fatalf("targets = %q, want %q", job.Targets, targets)
		}
		for _, c := range []struct {
			name      string
			got, want any
		}{
			{"presignedUrlConfig", job.PresignedUrlConfig, in.PresignedUrlConfig},
			{"jobExecutionsRolloutConfig", job.JobExecutionsRolloutConfig, in.JobExecutionsRolloutConfig},
			{"abortConfig", job.AbortConfig, in.AbortConfig},
			{"timeoutConfig", job.TimeoutConfig, in.TimeoutConfig},
			{"jobExecutionsRetryConfig", job.JobExecutionsRetryConfig, in.JobExecutionsRetryConfig},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				gotJSON, _ := json.Marshal(c.got)
				wantJSON, _ := json.Marshal(c.want)
				t.Errorf("%s = %s, want %s", c.name, gotJSON, wantJSON)
			}
		}
		if job.ForceCanceled == nil || *job.ForceCanceled || job.IsConcurrent == nil || *job.IsConcurrent {
			t.Fatalf("forceCanceled %v isConcurrent %v, want false and false", job.ForceCanceled, job.IsConcurrent)
		}
		if got := cpCounts(job.JobProcessDetails); got != cpCounts(&types.JobProcessDetails{NumberOfQueuedThings: aws.Int32(2)}) {
			t.Fatalf("jobProcessDetails: %s", got)
		}
		// The thing of another region and account was targeted too.
		for _, th := range []string{"pump-1", "pump-2"} {
			if e := cpExecution(t, api, th, "fw-1"); e.Status != types.JobExecutionStatusQueued {
				t.Fatalf("%s execution status %s", th, e.Status)
			}
		}
		// Raw: the configs are JSON objects with the AWS member names.
		r := cpDo(t, b, "GET", "/jobs/fw-1", nil)
		raw := cpObject(t, r.Body["job"], "job")
		rollout := cpObject(t, raw["jobExecutionsRolloutConfig"], "jobExecutionsRolloutConfig")
		if rollout["maximumPerMinute"] != float64(200) {
			t.Fatalf("raw rollout config: %s", r.Raw)
		}
		if _, ok := r.Body["documentSource"]; ok {
			t.Fatalf("documentSource present for a job created with a document: %s", r.Raw)
		}
	})

	t.Run("duplicate id", func(t *testing.T) {
		if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("dup-1"), Targets: cpARNs("pump-1"),
			Document: aws.String(`{"operation":"install"}`), Description: aws.String("the first")}); err != nil {
			t.Fatalf("CreateJob: %v", err)
		}
		_, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("dup-1"), Targets: cpARNs("other"), Document: aws.String(`{"v":2}`), Description: aws.String("second")})
		exists := cpSDKError[*types.ResourceAlreadyExistsException](t, err, http.StatusConflict)
		if aws.ToString(exists.ResourceId) != "dup-1" || aws.ToString(exists.ResourceArn) != cpAccountArn+"job/dup-1" {
			t.Fatalf("resourceId %q resourceArn %q", aws.ToString(exists.ResourceId), aws.ToString(exists.ResourceArn))
		}
		r := cpDo(t, b, "PUT", "/jobs/dup-1", map[string]any{"targets": cpARNs("other"), "document": `{"v":2}`})
		cpExpectError(t, r, http.StatusConflict, "ResourceAlreadyExistsException")
		if r.Body["resourceId"] != "dup-1" || r.Body["resourceArn"] != cpAccountArn+"job/dup-1" {
			t.Fatalf("body lacks resourceId/resourceArn: %s", r.Raw)
		}
		// The first job is untouched and "other" was not targeted.
		if job := cpDescribeJob(t, api, "dup-1"); aws.ToString(job.Description) != "the first" {
			t.Fatalf("description changed to %q", aws.ToString(job.Description))
		}
		doc, err := api.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("dup-1")})
		if err != nil || !strings.Contains(aws.ToString(doc.Document), "install") {
			t.Fatalf("document after duplicate create: %v %v", doc, err)
		}
		list, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("other")})
		if err != nil || len(list.ExecutionSummaries) != 0 {
			t.Fatalf("executions of other: %+v %v", list, err)
		}
	})

	t.Run("invalid input", func(t *testing.T) {
		valid := func(id string) *iot.CreateJobInput {
			return &iot.CreateJobInput{JobId: aws.String(id), Targets: cpARNs("victim"), Document: aws.String(`{"operation":"x"}`)}
		}
		cases := []struct {
			name string
			mod  func(*iot.CreateJobInput)
		}{
			{"empty targets", func(in *iot.CreateJobInput) { in.Targets = []string{} }},
			{"target is a bare name", func(in *iot.CreateJobInput) { in.Targets = []string{"victim"} }},
			{"target is a job ARN", func(in *iot.CreateJobInput) { in.Targets = []string{cpAccountArn + "job/x"} }},
			{"target thing name invalid", func(in *iot.CreateJobInput) { in.Targets = []string{cpAccountArn + "thing/bad name"} }},
			{"no document", func(in *iot.CreateJobInput) { in.Document = nil }},
			{"document not JSON", func(in *iot.CreateJobInput) { in.Document = aws.String(`{"operation":`) }},
			{"document an array", func(in *iot.CreateJobInput) { in.Document = aws.String(`[1,2]`) }},
			{"document too long", func(in *iot.CreateJobInput) {
				in.Document = aws.String(`{"a":"` + strings.Repeat("x", 32768) + `"}`)
			}},
			{"document and documentSource", func(in *iot.CreateJobInput) {
				in.DocumentSource = aws.String("https://s3.amazonaws.com/bkt/doc.json")
			}},
			{"description with a control character", func(in *iot.CreateJobInput) { in.Description = aws.String("bad\x07bell") }},
			{"description too long", func(in *iot.CreateJobInput) { in.Description = aws.String(strings.Repeat("d", 2029)) }},
			{"unknown targetSelection", func(in *iot.CreateJobInput) { in.TargetSelection = types.TargetSelection("SOMETIMES") }},
			{"in-progress timeout 0", func(in *iot.CreateJobInput) {
				in.TimeoutConfig = &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(0)}
			}},
			{"in-progress timeout 10081", func(in *iot.CreateJobInput) {
				in.TimeoutConfig = &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(10081)}
			}},
			{"maximumPerMinute 0", func(in *iot.CreateJobInput) {
				in.JobExecutionsRolloutConfig = &types.JobExecutionsRolloutConfig{MaximumPerMinute: aws.Int32(0)}
			}},
			{"incrementFactor with two decimals", func(in *iot.CreateJobInput) {
				in.JobExecutionsRolloutConfig = &types.JobExecutionsRolloutConfig{ExponentialRate: &types.ExponentialRolloutRate{
					BaseRatePerMinute: aws.Int32(10), IncrementFactor: aws.Float64(1.25),
					RateIncreaseCriteria: &types.RateIncreaseCriteria{NumberOfNotifiedThings: aws.Int32(5)},
				}}
			}},
			{"baseRatePerMinute 1001", func(in *iot.CreateJobInput) {
				in.JobExecutionsRolloutConfig = &types.JobExecutionsRolloutConfig{ExponentialRate: &types.ExponentialRolloutRate{
					BaseRatePerMinute: aws.Int32(1001), IncrementFactor: aws.Float64(2),
					RateIncreaseCriteria: &types.RateIncreaseCriteria{NumberOfSucceededThings: aws.Int32(5)},
				}}
			}},
			{"abort threshold above 100", func(in *iot.CreateJobInput) {
				in.AbortConfig = &types.AbortConfig{CriteriaList: []types.AbortCriteria{{
					FailureType: types.JobExecutionFailureTypeAll, Action: types.AbortActionCancel,
					ThresholdPercentage: aws.Float64(101), MinNumberOfExecutedThings: aws.Int32(1),
				}}}
			}},
			{"abort with no criteria", func(in *iot.CreateJobInput) {
				in.AbortConfig = &types.AbortConfig{CriteriaList: []types.AbortCriteria{}}
			}},
			{"retry 11 times", func(in *iot.CreateJobInput) {
				in.JobExecutionsRetryConfig = &types.JobExecutionsRetryConfig{CriteriaList: []types.RetryCriteria{
					{FailureType: types.RetryableFailureTypeAll, NumberOfRetries: aws.Int32(11)},
				}}
			}},
			{"retry on REJECTED", func(in *iot.CreateJobInput) {
				in.JobExecutionsRetryConfig = &types.JobExecutionsRetryConfig{CriteriaList: []types.RetryCriteria{
					{FailureType: types.RetryableFailureType("REJECTED"), NumberOfRetries: aws.Int32(1)},
				}}
			}},
			{"presigned URLs valid 59 s", func(in *iot.CreateJobInput) {
				in.PresignedUrlConfig = &types.PresignedUrlConfig{RoleArn: aws.String("arn:aws:iam::123456789012:role/JobsS3"), ExpiresInSec: aws.Int64(59)}
			}},
			{"job id with a dot", func(in *iot.CreateJobInput) { in.JobId = aws.String("bad.id") }},
			{"job id of 65 characters", func(in *iot.CreateJobInput) { in.JobId = aws.String(strings.Repeat("j", 65)) }},
		}
		for i, c := range cases {
			in := valid(fmt.Sprintf("bad-%d", i))
			c.mod(in)
			_, err := api.CreateJob(ctx, in)
			if err == nil {
				t.Errorf("%s: CreateJob succeeded", c.name)
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
				if !strings.Contains(aws.ToString(in.JobId), ".") && len(aws.ToString(in.JobId)) <= 64 {
					_, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: in.JobId})
					cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
				}
			})
		}
		list, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("victim")})
		if err != nil || len(list.ExecutionSummaries) != 0 {
			t.Fatalf("rejected jobs left executions: %+v %v", list, err)
		}

		// The wire format of the error, and bodies the SDK would not send.
		for _, c := range []struct{ name, body string }{
			{"document an array", `{"targets":["` + brokertest.ThingARN("victim") + `"],"document":"[1]"}`},
			{"malformed JSON", `{"targets":`},
			{"targets a string", `{"targets":"` + brokertest.ThingARN("victim") + `","document":"{}"}`},
			{"timeout a string", `{"targets":["` + brokertest.ThingARN("victim") + `"],"document":"{}","timeoutConfig":{"inProgressTimeoutInMinutes":"5"}}`},
		} {
			t.Run("raw "+c.name, func(t *testing.T) {
				cpExpectError(t, cpDo(t, b, "PUT", "/jobs/raw-bad", c.body), http.StatusBadRequest, "InvalidRequestException")
				cpExpectError(t, cpDo(t, b, "GET", "/jobs/raw-bad", nil), http.StatusNotFound, "ResourceNotFoundException")
			})
		}
	})

	t.Run("missing thing group", func(t *testing.T) {
		group := cpAccountArn + "thinggroup/pumps"
		_, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("grp"), Targets: []string{group}, Document: aws.String(`{"a":1}`)})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		cpExpectError(t, cpDo(t, b, "PUT", "/jobs/grp", map[string]any{"targets": []string{group, brokertest.ThingARN("t")}, "document": `{"a":1}`}),
			http.StatusNotFound, "ResourceNotFoundException")
		_, err = api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("grp")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
	})
}

func TestControlPlaneDescribeJob(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	cpCreateJob(t, api, "j", "d1", "d2", "d3")
	d1, d2, d3 := cpDevice(t, b, "d1", 4), cpDevice(t, b, "d2", 5), cpDevice(t, b, "d3", 4)

	t.Run("timestamps", func(t *testing.T) {
		job := cpDescribeJob(t, api, "j")
		cpWantTime(t, "createdAt", job.CreatedAt, brokertest.Epoch)
		cpWantTime(t, "lastUpdatedAt", job.LastUpdatedAt, brokertest.Epoch)
		if job.CompletedAt != nil {
			t.Fatalf("completedAt = %v on a job in progress", job.CompletedAt)
		}
		raw := cpObject(t, cpDo(t, b, "GET", "/jobs/j", nil).Body["job"], "job")
		cpNumber(t, raw, "createdAt", float64(brokertest.Epoch.Unix()))
		cpNumber(t, raw, "lastUpdatedAt", float64(brokertest.Epoch.Unix()))
	})

	t.Run("process details", func(t *testing.T) {
		cpUpdate(t, d1, "j", "IN_PROGRESS")
		cpUpdate(t, d2, "j", "SUCCEEDED")
		job := cpDescribeJob(t, api, "j")
		want := &types.JobProcessDetails{NumberOfQueuedThings: aws.Int32(1), NumberOfInProgressThings: aws.Int32(1), NumberOfSucceededThings: aws.Int32(1)}
		if got := cpCounts(job.JobProcessDetails); got != cpCounts(want) {
			t.Fatalf("jobProcessDetails: %s, want %s", got, cpCounts(want))
		}
		if len(job.JobProcessDetails.ProcessingTargets) != 0 {
			t.Fatalf("processingTargets after the rollout: %q", job.JobProcessDetails.ProcessingTargets)
		}
		if job.Status != types.JobStatusInProgress || aws.ToBool(job.IsConcurrent) || job.IsConcurrent == nil {
			t.Fatalf("status %s isConcurrent %v", job.Status, job.IsConcurrent)
		}
	})

	t.Run("COMPLETED when every execution is terminal", func(t *testing.T) {
		created := b.Clock.Now()
		cpCreateJob(t, api, "k", "d1", "d2", "d3")
		cpUpdate(t, d1, "k", "IN_PROGRESS")
		cpUpdate(t, d2, "k", "SUCCEEDED")
		b.Clock.Advance(90 * time.Second)
		done := b.Clock.Now()
		cpUpdate(t, d1, "k", "FAILED")
		if job := cpDescribeJob(t, api, "k"); job.Status != types.JobStatusInProgress || job.CompletedAt != nil {
			t.Fatalf("with one execution queued: status %s completedAt %v", job.Status, job.CompletedAt)
		}
		cpUpdate(t, d3, "k", "REJECTED")
		job := cpDescribeJob(t, api, "k")
		if job.Status != types.JobStatusCompleted {
			t.Fatalf("status %s, want COMPLETED", job.Status)
		}
		cpWantTime(t, "completedAt", job.CompletedAt, done)
		cpWantTime(t, "lastUpdatedAt", job.LastUpdatedAt, done)
		cpWantTime(t, "createdAt", job.CreatedAt, created)
		want := &types.JobProcessDetails{NumberOfSucceededThings: aws.Int32(1), NumberOfFailedThings: aws.Int32(1), NumberOfRejectedThings: aws.Int32(1)}
		if got := cpCounts(job.JobProcessDetails); got != cpCounts(want) {
			t.Fatalf("jobProcessDetails: %s, want %s", got, cpCounts(want))
		}
		raw := cpObject(t, cpDo(t, b, "GET", "/jobs/k", nil).Body["job"], "job")
		cpNumber(t, raw, "completedAt", float64(done.Unix()))
		// A terminal device update does not reopen the job.
		d3.MustReject(cpUpdateTopic("d3", "k"), map[string]any{"status": "SUCCEEDED"})
		if job := cpDescribeJob(t, api, "k"); job.Status != types.JobStatusCompleted {
			t.Fatalf("status %s after a rejected update", job.Status)
		}
	})

	t.Run("isConcurrent false once a large rollout is over", func(t *testing.T) {
		var things []string
		for i := range 300 {
			things = append(things, fmt.Sprintf("fleet-%03d", i))
		}
		cpCreateJob(t, api, "fleet", things...)
		brokertest.Eventually(t, "rollout of 300 things", func() error {
			job := cpDescribeJob(t, api, "fleet")
			if job.IsConcurrent == nil || *job.IsConcurrent || len(job.JobProcessDetails.ProcessingTargets) != 0 ||
				aws.ToInt32(job.JobProcessDetails.NumberOfQueuedThings) != 300 {
				return fmt.Errorf("isConcurrent %v processingTargets %d %s", job.IsConcurrent,
					len(job.JobProcessDetails.ProcessingTargets), cpCounts(job.JobProcessDetails))
			}
			return nil
		})
		for _, s := range cpListJobs(t, api, &iot.ListJobsInput{}) {
			if s.IsConcurrent == nil || *s.IsConcurrent {
				t.Fatalf("ListJobs %s isConcurrent %v", aws.ToString(s.JobId), s.IsConcurrent)
			}
		}
	})

	t.Run("unknown job", func(t *testing.T) {
		_, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("nope")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		cpExpectError(t, cpDo(t, b, "GET", "/jobs/nope", nil), http.StatusNotFound, "ResourceNotFoundException")
	})
}

func TestControlPlaneListJobs(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	var all []string
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("s%d", i)
		cpCreateJob(t, api, id, "t")
		all = append(all, id)
	}
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("c1"), Targets: cpARNs("t"),
		Document: aws.String(`{"operation":"c1"}`), TargetSelection: types.TargetSelectionContinuous}); err != nil {
		t.Fatal(err)
	}
	cpCreateJob(t, api, "x1", "t")
	if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("x1")}); err != nil {
		t.Fatal(err)
	}
	cpCreateJob(t, api, "done", "u")
	cpUpdate(t, cpDevice(t, b, "u", 4), "done", "SUCCEEDED")
	all = cpSorted(append(all, "c1", "x1", "done")...)

	t.Run("status filter", func(t *testing.T) {
		for _, c := range []struct {
			status types.JobStatus
			want   []string
		}{
			{types.JobStatusCanceled, []string{"x1"}},
			{types.JobStatusCompleted, []string{"done"}},
			{types.JobStatusInProgress, []string{"c1", "s1", "s2", "s3", "s4", "s5"}},
			{types.JobStatusScheduled, nil},
		} {
			jobs := cpListJobs(t, api, &iot.ListJobsInput{Status: c.status})
			if got := cpJobIDs(jobs); !slices.Equal(got, c.want) {
				t.Errorf("status %s: %q, want %q", c.status, got, c.want)
			}
			for _, j := range jobs {
				if j.Status != c.status {
					t.Errorf("status %s lists %s with status %s", c.status, aws.ToString(j.JobId), j.Status)
				}
			}
		}
		// The summary shape.
		s := cpListJobs(t, api, &iot.ListJobsInput{Status: types.JobStatusCompleted})[0]
		if aws.ToString(s.JobArn) != cpAccountArn+"job/done" || s.TargetSelection != types.TargetSelectionSnapshot ||
			s.IsConcurrent == nil || *s.IsConcurrent {
			t.Fatalf("summary: arn %q targetSelection %q isConcurrent %v", aws.ToString(s.JobArn), s.TargetSelection, s.IsConcurrent)
		}
		cpWantTime(t, "createdAt", s.CreatedAt, brokertest.Epoch)
		cpWantTime(t, "lastUpdatedAt", s.LastUpdatedAt, brokertest.Epoch)
		cpWantTime(t, "completedAt", s.CompletedAt, brokertest.Epoch)
	})

	t.Run("targetSelection filter", func(t *testing.T) {
		if got := cpJobIDs(cpListJobs(t, api, &iot.ListJobsInput{TargetSelection: types.TargetSelectionContinuous})); !slices.Equal(got, []string{"c1"}) {
			t.Fatalf("CONTINUOUS: %q", got)
		}
		if got := cpJobIDs(cpListJobs(t, api, &iot.ListJobsInput{TargetSelection: types.TargetSelectionSnapshot})); len(got) != 7 || slices.Contains(got, "c1") {
			t.Fatalf("SNAPSHOT: %q", got)
		}
		got := cpJobIDs(cpListJobs(t, api, &iot.ListJobsInput{TargetSelection: types.TargetSelectionSnapshot, Status: types.JobStatusInProgress}))
		if !slices.Equal(got, []string{"s1", "s2", "s3", "s4", "s5"}) {
			t.Fatalf("SNAPSHOT and IN_PROGRESS: %q", got)
		}
	})

	t.Run("maxResults and nextToken", func(t *testing.T) {
		for _, c := range []struct {
			status types.JobStatus
			max    int32
			sizes  []int
			want   []string
		}{
			{"", 3, []int{3, 3, 2}, all},
			{types.JobStatusInProgress, 4, []int{4, 2}, []string{"c1", "s1", "s2", "s3", "s4", "s5"}},
			{"", 8, []int{8}, all},
			{"", 9, []int{8}, all},
		} {
			var got []string
			var sizes []int
			var token *string
			for page := 0; ; page++ {
				if page > 10 {
					t.Fatalf("status %q max %d: paging does not end", c.status, c.max)
				}
				out, err := api.ListJobs(ctx, &iot.ListJobsInput{Status: c.status, MaxResults: aws.Int32(c.max), NextToken: token})
				if err != nil {
					t.Fatalf("ListJobs page %d: %v", page, err)
				}
				sizes = append(sizes, len(out.Jobs))
				for _, j := range out.Jobs {
					got = append(got, aws.ToString(j.JobId))
				}
				if out.NextToken == nil {
					break
				}
				token = out.NextToken
			}
			if !slices.Equal(sizes, c.sizes) {
				t.Errorf("status %q max %d: page sizes %v, want %v", c.status, c.max, sizes, c.sizes)
			}
			if sorted := cpSorted(got...); !slices.Equal(sorted, c.want) {
				t.Errorf("status %q max %d: listed %q, want %q once each", c.status, c.max, got, c.want)
			}
		}
	})

	t.Run("paginator", func(t *testing.T) {
		p := iot.NewListJobsPaginator(api, &iot.ListJobsInput{}, func(o *iot.ListJobsPaginatorOptions) { o.Limit = 2 })
		var got []string
		pages := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("page %d: %v", pages, err)
			}
			pages++
			if len(out.Jobs) > 2 {
				t.Fatalf("page of %d jobs with Limit 2", len(out.Jobs))
			}
			for _, j := range out.Jobs {
				got = append(got, aws.ToString(j.JobId))
			}
		}
		if pages != 4 || !slices.Equal(cpSorted(got...), all) {
			t.Fatalf("%d pages listing %q, want 4 pages listing %q once each", pages, got, all)
		}
	})

	t.Run("thingGroupName filter", func(t *testing.T) {
		out, err := api.ListJobs(ctx, &iot.ListJobsInput{ThingGroupName: aws.String("no-job-targets-this-group")})
		if err != nil {
			cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
			return
		}
		if len(out.Jobs) != 0 {
			t.Fatalf("thingGroupName filter listed %q; no job targets that group", cpJobIDs(out.Jobs))
		}
	})

	t.Run("namespaceId filter", func(t *testing.T) {
		_, api := cpStart(t) // its own broker: the jobs above stay as they are
		cpCreateJob(t, api, "plain", "t")
		if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("gg"), Targets: cpARNs("t"), Document: aws.String(`{"operation":"gg"}`),
			NamespaceId: aws.String("AWSIoTGreengrassV2")}); err != nil {
			t.Fatal(err)
		}
		if got := cpJobIDs(cpListJobs(t, api, &iot.ListJobsInput{NamespaceId: aws.String("AWSIoTGreengrassV2")})); !slices.Equal(got, []string{"gg"}) {
			t.Errorf("ListJobs namespaceId=AWSIoTGreengrassV2: %q, want [gg]", got)
		}
		if got := cpListJobs(t, api, &iot.ListJobsInput{NamespaceId: aws.String("other")}); len(got) != 0 {
			t.Errorf("ListJobs namespaceId=other: %q, want none", cpJobIDs(got))
		}
		out, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("t"), NamespaceId: aws.String("AWSIoTGreengrassV2")})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range out.ExecutionSummaries {
			ids = append(ids, aws.ToString(e.JobId))
		}
		if !slices.Equal(ids, []string{"gg"}) {
			t.Errorf("ListJobExecutionsForThing namespaceId=AWSIoTGreengrassV2: %q, want [gg]", ids)
		}
	})

	t.Run("invalid parameters", func(t *testing.T) {
		for _, n := range []int32{0, 251, -1} {
			_, err := api.ListJobs(ctx, &iot.ListJobsInput{MaxResults: aws.Int32(n)})
			cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		}
		if jobs := cpListJobs(t, api, &iot.ListJobsInput{MaxResults: aws.Int32(250)}); len(jobs) != len(all) {
			t.Fatalf("maxResults 250 listed %d jobs", len(jobs))
		}
		_, err := api.ListJobs(ctx, &iot.ListJobsInput{Status: types.JobStatus("RUNNING")})
		cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		for _, q := range []string{"maxResults=0", "maxResults=251", "maxResults=ten", "status=RUNNING", "targetSelection=ALWAYS", "nextToken=%21%21"} {
			t.Run(q, func(t *testing.T) {
				cpExpectError(t, cpDo(t, b, "GET", "/jobs?"+q, nil), http.StatusBadRequest, "InvalidRequestException")
			})
		}
	})
}

func TestControlPlaneGetJobDocument(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	doc := `{"version":"1.0","steps":[{"action":{"type":"runCommand","input":{"command":"echo,hi"}}}],"note":"ünïcode \u00e9"}`
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("doc"), Targets: cpARNs("t"), Document: aws.String(doc)}); err != nil {
		t.Fatal(err)
	}
	out, err := api.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("doc")})
	if err != nil {
		t.Fatalf("GetJobDocument: %v", err)
	}
	if aws.ToString(out.Document) != doc {
		t.Fatalf("document %q, want %q", aws.ToString(out.Document), doc)
	}
	// On the wire the document is a string, not an object (CLIENTS.md §1.2).
	r := cpDo(t, b, "GET", "/jobs/doc/job-document", nil)
	if s, ok := r.Body["document"].(string); r.Status != http.StatusOK || !ok || s != doc {
		t.Fatalf("raw GetJobDocument: %d %s", r.Status, r.Raw)
	}
	if r := cpDo(t, b, "GET", "/jobs/doc/job-document?beforeSubstitution=true", nil); r.Body["document"] != doc {
		t.Fatalf("beforeSubstitution=true: %s", r.Raw)
	}
	_, err = api.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("nope")})
	cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
	cpExpectError(t, cpDo(t, b, "GET", "/jobs/nope/job-document", nil), http.StatusNotFound, "ResourceNotFoundException")
}

func TestControlPlaneCancelJob(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()

	t.Run("without force", func(t *testing.T) {
		cpCreateJob(t, api, "soft", "a", "b")
		da := cpDevice(t, b, "a", 4)
		cpUpdate(t, da, "soft", "IN_PROGRESS")
		out, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("soft"), ReasonCode: aws.String("FW_RECALLED_2"), Comment: aws.String("bad build")})
		if err != nil {
			t.Fatalf("CancelJob: %v", err)
		}
		if aws.ToString(out.JobArn) != cpAccountArn+"job/soft" || aws.ToString(out.JobId) != "soft" {
			t.Fatalf("CancelJob output: %q %q", aws.ToString(out.JobArn), aws.ToString(out.JobId))
		}
		job := cpDescribeJob(t, api, "soft")
		if job.Status != types.JobStatusCanceled || aws.ToString(job.ReasonCode) != "FW_RECALLED_2" ||
			aws.ToString(job.Comment) != "bad build" || job.ForceCanceled == nil || *job.ForceCanceled {
			t.Fatalf("job: status %s reasonCode %q comment %q forceCanceled %v", job.Status, aws.ToString(job.ReasonCode), aws.ToString(job.Comment), job.ForceCanceled)
		}
		want := &types.JobProcessDetails{NumberOfInProgressThings: aws.Int32(1), NumberOfCanceledThings: aws.Int32(1)}
		if got := cpCounts(job.JobProcessDetails); got != cpCounts(want) {
			t.Fatalf("jobProcessDetails: %s, want %s", got, cpCounts(want))
		}
		if e := cpExecution(t, api, "a", "soft"); e.Status != types.JobExecutionStatusInProgress || aws.ToBool(e.ForceCanceled) {
			t.Fatalf("IN_PROGRESS execution after a cancel without force: %s forceCanceled %v", e.Status, e.ForceCanceled)
		}
		if e := cpExecution(t, api, "b", "soft"); e.Status != types.JobExecutionStatusCanceled || aws.ToBool(e.ForceCanceled) {
			t.Fatalf("QUEUED execution: %s forceCanceled %v", e.Status, e.ForceCanceled)
		}
		// The device may still finish its execution; the job stays CANCELED.
		cpUpdate(t, da, "soft", "SUCCEEDED")
		job = cpDescribeJob(t, api, "soft")
		want = &types.JobProcessDetails{NumberOfSucceededThings: aws.Int32(1), NumberOfCanceledThings: aws.Int32(1)}
		if got := cpCounts(job.JobProcessDetails); job.Status != types.JobStatusCanceled || got != cpCounts(want) {
			t.Fatalf("after the device finished: status %s, %s", job.Status, got)
		}
		// The raw response carries the same members.
		r := cpDo(t, b, "GET", "/jobs/soft", nil)
		raw := cpObject(t, r.Body["job"], "job")
		if raw["reasonCode"] != "FW_RECALLED_2" || raw["comment"] != "bad build" || raw["forceCanceled"] != false {
			t.Fatalf("raw job: %s", r.Raw)
		}
	})

	t.Run("with force", func(t *testing.T) {
		cpCreateJob(t, api, "hard", "c", "d")
		dc := cpDevice(t, b, "c", 5)
		cpUpdate(t, dc, "hard", "IN_PROGRESS")
		if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("hard"), Force: true}); err != nil {
			t.Fatalf("CancelJob force: %v", err)
		}
		job := cpDescribeJob(t, api, "hard")
		if job.Status != types.JobStatusCanceled || !aws.ToBool(job.ForceCanceled) {
			t.Fatalf("job: status %s forceCanceled %v", job.Status, job.ForceCanceled)
		}
		if got, want := cpCounts(job.JobProcessDetails), cpCounts(&types.JobProcessDetails{NumberOfCanceledThings: aws.Int32(2)}); got != want {
			t.Fatalf("jobProcessDetails: %s, want %s", got, want)
		}
		e := cpExecution(t, api, "c", "hard")
		if e.Status != types.JobExecutionStatusCanceled || !aws.ToBool(e.ForceCanceled) || e.ApproximateSecondsBeforeTimedOut != nil {
			t.Fatalf("IN_PROGRESS execution after a forced cancel: %s forceCanceled %v", e.Status, e.ForceCanceled)
		}
		if e := cpExecution(t, api, "d", "hard"); e.Status != types.JobExecutionStatusCanceled {
			t.Fatalf("QUEUED execution after a forced cancel: %s", e.Status)
		}
		reply := dc.MustReject(cpUpdateTopic("c", "hard"), map[string]any{"status": "SUCCEEDED"})
		state, _ := reply["executionState"].(map[string]any)
		if reply["code"] != "InvalidStateTransition" || state["status"] != "CANCELED" {
			t.Fatalf("device update after a forced cancel: %v", reply)
		}
	})

	t.Run("completed job", func(t *testing.T) {
		cpCreateJob(t, api, "done", "e")
		cpUpdate(t, cpDevice(t, b, "e", 4), "done", "SUCCEEDED")
		if job := cpDescribeJob(t, api, "done"); job.Status != types.JobStatusCompleted {
			t.Fatalf("status %s, want COMPLETED", job.Status)
		}
		// CancelJob's model has no InvalidStateTransitionException, so the
		// SDKs get a typed InvalidRequestException.
		_, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("done")})
		cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		_, err = api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("done"), Force: true})
		cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		cpExpectError(t, cpDo(t, b, "PUT", "/jobs/done/cancel", `{}`), http.StatusBadRequest, "InvalidRequestException")
		if job := cpDescribeJob(t, api, "done"); job.Status != types.JobStatusCompleted || aws.ToBool(job.ForceCanceled) {
			t.Fatalf("after the refused cancel: status %s forceCanceled %v", job.Status, job.ForceCanceled)
		}
	})

	t.Run("invalid reasonCode or comment", func(t *testing.T) {
		cpCreateJob(t, api, "keep", "f")
		for _, in := range []*iot.CancelJobInput{
			{JobId: aws.String("keep"), ReasonCode: aws.String("lower_case")},
			{JobId: aws.String("keep"), ReasonCode: aws.String("HAS SPACE")},
			{JobId: aws.String("keep"), ReasonCode: aws.String(strings.Repeat("R", 129))},
			{JobId: aws.String("keep"), Comment: aws.String(strings.Repeat("c", 2029))},
		} {
			_, err := api.CancelJob(ctx, in)
			cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		}
		cpExpectError(t, cpDo(t, b, "PUT", "/jobs/keep/cancel", map[string]any{"reasonCode": "oops"}), http.StatusBadRequest, "InvalidRequestException")
		cpExpectError(t, cpDo(t, b, "PUT", "/jobs/keep/cancel?force=maybe", `{}`), http.StatusBadRequest, "InvalidRequestException")
		if job := cpDescribeJob(t, api, "keep"); job.Status != types.JobStatusInProgress || job.ReasonCode != nil {
			t.Fatalf("after refused cancels: status %s reasonCode %q", job.Status, aws.ToString(job.ReasonCode))
		}
		if e := cpExecution(t, api, "f", "keep"); e.Status != types.JobExecutionStatusQueued {
			t.Fatalf("execution %s after refused cancels", e.Status)
		}
	})

	t.Run("unknown job", func(t *testing.T) {
		_, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("nope")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
	})
}

func TestControlPlaneDeleteJob(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	cpCreateJob(t, api, "live", "a")

	t.Run("in progress without force", func(t *testing.T) {
		err := func() error { _, err := api.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("live")}); return err }()
		cpSDKError[*types.InvalidStateTransitionException](t, err, http.StatusConflict)
		cpExpectError(t, cpDo(t, b, "DELETE", "/jobs/live", nil), http.StatusConflict, "InvalidStateTransitionException")
		if job := cpDescribeJob(t, api, "live"); job.Status != types.JobStatusInProgress {
			t.Fatalf("status %s after a refused delete", job.Status)
		}
		if e := cpExecution(t, api, "a", "live"); e.Status != types.JobExecutionStatusQueued {
			t.Fatalf("execution %s after a refused delete", e.Status)
		}
	})

	t.Run("with force", func(t *testing.T) {
		if _, err := api.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("live"), Force: true}); err != nil {
			t.Fatalf("DeleteJob force: %v", err)
		}
		brokertest.Eventually(t, "job deleted", func() error {
			_, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("live")})
			var nf *types.ResourceNotFoundException
			if !errors.As(err, &nf) {
				return fmt.Errorf("DescribeJob: %v", err)
			}
			return nil
		})
		_, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("live")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		_, err = api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String("a"), JobId: aws.String("live")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		_, err = api.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("live")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		if list, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("a")}); err != nil || len(list.ExecutionSummaries) != 0 {
			t.Fatalf("executions of a deleted job: %+v %v", list, err)
		}
		if ids := cpJobIDs(cpListJobs(t, api, &iot.ListJobsInput{})); slices.Contains(ids, "live") {
			t.Fatalf("ListJobs still lists the deleted job: %q", ids)
		}

		// The id can be used again, for a new job.
		if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("live"), Targets: cpARNs("a"), Document: aws.String(`{"operation":"again"}`)}); err != nil {
			t.Fatalf("CreateJob with the id of a deleted job: %v", err)
		}
		job := cpDescribeJob(t, api, "live")
		if job.Status != types.JobStatusInProgress || cpCounts(job.JobProcessDetails) != cpCounts(&types.JobProcessDetails{NumberOfQueuedThings: aws.Int32(1)}) {
			t.Fatalf("re-created job: status %s %s", job.Status, cpCounts(job.JobProcessDetails))
		}
		e := cpExecution(t, api, "a", "live")
		if e.Status != types.JobExecutionStatusQueued || aws.ToInt64(e.ExecutionNumber) != 1 || e.VersionNumber != 1 {
			t.Fatalf("execution of the re-created job: %s #%d v%d", e.Status, aws.ToInt64(e.ExecutionNumber), e.VersionNumber)
		}
		doc, err := api.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("live")})
		if err != nil || aws.ToString(doc.Document) != `{"operation":"again"}` {
			t.Fatalf("document of the re-created job: %v %v", doc, err)
		}
	})

	t.Run("terminal job without force", func(t *testing.T) {
		cpCreateJob(t, api, "old", "b")
		if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("old")}); err != nil {
			t.Fatal(err)
		}
		if _, err := api.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("old")}); err != nil {
			t.Fatalf("DeleteJob of a CANCELED job: %v", err)
		}
		brokertest.Eventually(t, "job deleted", func() error {
			if _, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("old")}); err == nil {
				return errors.New("still there")
			}
			return nil
		})
		_, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("old")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
	})

	t.Run("unknown job", func(t *testing.T) {
		_, err := api.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("nope"), Force: true})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		cpExpectError(t, cpDo(t, b, "DELETE", "/jobs/nope", nil), http.StatusNotFound, "ResourceNotFoundException")
	})
}

func TestControlPlaneDescribeJobExecution(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("j"), Targets: cpARNs("dev"), Document: aws.String(`{"operation":"j"}`),
		TimeoutConfig: &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(60)}}); err != nil {
		t.Fatal(err)
	}
	d := cpDevice(t, b, "dev", 4)

	t.Run("queued", func(t *testing.T) {
		e := cpExecution(t, api, "dev", "j")
		if aws.ToString(e.JobId) != "j" || e.Status != types.JobExecutionStatusQueued || aws.ToString(e.ThingArn) != brokertest.ThingARN("dev") ||
			aws.ToInt64(e.ExecutionNumber) != 1 || e.VersionNumber != 1 || e.ForceCanceled == nil || *e.ForceCanceled ||
			e.StartedAt != nil || e.ApproximateSecondsBeforeTimedOut != nil {
			got, _ := json.Marshal(e)
			t.Fatalf("execution: %s", got)
		}
		cpWantTime(t, "queuedAt", e.QueuedAt, brokertest.Epoch)
		cpWantTime(t, "lastUpdatedAt", e.LastUpdatedAt, brokertest.Epoch)

		// The control-plane shape (PROTOCOL.md §11.5): no thingName, no
		// jobDocument, timestamps as numbers, details in detailsMap.
		r := cpDo(t, b, "GET", "/things/dev/jobs/j", nil)
		raw := cpObject(t, r.Body["execution"], "execution")
		for _, key := range []string{"jobId", "status", "forceCanceled", "statusDetails", "thingArn", "queuedAt", "lastUpdatedAt", "executionNumber", "versionNumber"} {
			if _, ok := raw[key]; !ok {
				t.Errorf("execution lacks %s: %s", key, r.Raw)
			}
		}
		for _, key := range []string{"thingName", "jobDocument", "startedAt", "approximateSecondsBeforeTimedOut"} {
			if _, ok := raw[key]; ok {
				t.Errorf("execution of a QUEUED job has %s: %s", key, r.Raw)
			}
		}
		cpNumber(t, raw, "queuedAt", float64(brokertest.Epoch.Unix()))
		cpObject(t, raw["statusDetails"], "statusDetails")
	})

	t.Run("in progress with a step timer", func(t *testing.T) {
		d.MustAccept(cpUpdateTopic("dev", "j"), map[string]any{"status": "IN_PROGRESS", "stepTimeoutInMinutes": 10, "statusDetails": map[string]string{"step": "download"}})
		e := cpExecution(t, api, "dev", "j")
		if e.Status != types.JobExecutionStatusInProgress || e.VersionNumber != 2 || e.StatusDetails == nil ||
			!reflect.DeepEqual(e.StatusDetails.DetailsMap, map[string]string{"step": "download"}) {
			got, _ := json.Marshal(e)
			t.Fatalf("execution: %s", got)
		}
		cpWantTime(t, "startedAt", e.StartedAt, brokertest.Epoch)
		if aws.ToInt64(e.ApproximateSecondsBeforeTimedOut) != 600 {
			t.Fatalf("approximateSecondsBeforeTimedOut = %v, want 600 (the step timer, before the 60-minute in-progress timer)", e.ApproximateSecondsBeforeTimedOut)
		}
		b.Clock.Advance(4 * time.Minute)
		if e := cpExecution(t, api, "dev", "j"); aws.ToInt64(e.ApproximateSecondsBeforeTimedOut) != 360 {
			t.Fatalf("approximateSecondsBeforeTimedOut 4 minutes later = %v, want 360", e.ApproximateSecondsBeforeTimedOut)
		}
		r := cpDo(t, b, "GET", "/things/dev/jobs/j", nil)
		raw := cpObject(t, r.Body["execution"], "execution")
		details := cpObject(t, raw["statusDetails"], "statusDetails")
		if cpObject(t, details["detailsMap"], "detailsMap")["step"] != "download" || raw["approximateSecondsBeforeTimedOut"] != float64(360) {
			t.Fatalf("raw execution: %s", r.Raw)
		}
		cpNumber(t, raw, "startedAt", float64(brokertest.Epoch.Unix()))
	})

	t.Run("executionNumber parameter", func(t *testing.T) {
		latest := cpExecution(t, api, "dev", "j")
		out, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String("dev"), JobId: aws.String("j"), ExecutionNumber: aws.Int64(1)})
		if err != nil || aws.ToInt64(out.Execution.ExecutionNumber) != 1 || out.Execution.Status != latest.Status || out.Execution.VersionNumber != latest.VersionNumber {
			t.Fatalf("executionNumber 1: %+v %v; the latest is %s v%d", out, err, latest.Status, latest.VersionNumber)
		}
		_, err = api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String("dev"), JobId: aws.String("j"), ExecutionNumber: aws.Int64(2)})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		cpExpectError(t, cpDo(t, b, "GET", "/things/dev/jobs/j?executionNumber=2", nil), http.StatusNotFound, "ResourceNotFoundException")
		cpExpectError(t, cpDo(t, b, "GET", "/things/dev/jobs/j?executionNumber=first", nil), http.StatusBadRequest, "InvalidRequestException")
	})

	t.Run("terminal", func(t *testing.T) {
		cpCreateJob(t, api, "fin", "dev")
		d.MustAccept(cpUpdateTopic("dev", "fin"), map[string]any{"status": "IN_PROGRESS", "stepTimeoutInMinutes": 10})
		b.Clock.Advance(time.Minute)
		cpUpdate(t, d, "fin", "SUCCEEDED")
		e := cpExecution(t, api, "dev", "fin")
		if e.Status != types.JobExecutionStatusSucceeded || e.ApproximateSecondsBeforeTimedOut != nil || e.VersionNumber != 3 {
			t.Fatalf("terminal execution: %s v%d approximateSecondsBeforeTimedOut %v", e.Status, e.VersionNumber, e.ApproximateSecondsBeforeTimedOut)
		}
		cpWantTime(t, "lastUpdatedAt", e.LastUpdatedAt, b.Clock.Now())
	})

	t.Run("unknown", func(t *testing.T) {
		for _, c := range [][2]string{{"dev", "nope"}, {"ghost", "j"}} {
			_, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String(c[0]), JobId: aws.String(c[1])})
			cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
			cpExpectError(t, cpDo(t, b, "GET", "/things/"+c[0]+"/jobs/"+c[1], nil), http.StatusNotFound, "ResourceNotFoundException")
		}
		// $next is a device-API alias, not a job id of the control plane.
		_, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String("dev"), JobId: aws.String("$next")})
		cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
	})
}

func TestControlPlaneListJobExecutions(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	cpCreateJob(t, api, "big", "t1", "t2", "t3", "t4", "t5")
	cpUpdate(t, cpDevice(t, b, "t1", 4), "big", "SUCCEEDED")
	cpUpdate(t, cpDevice(t, b, "t2", 5), "big", "SUCCEEDED")
	cpUpdate(t, cpDevice(t, b, "t3", 4), "big", "IN_PROGRESS")
	status := map[string]types.JobExecutionStatus{
		"t1": types.JobExecutionStatusSucceeded, "t2": types.JobExecutionStatusSucceeded, "t3": types.JobExecutionStatusInProgress,
		"t4": types.JobExecutionStatusQueued, "t5": types.JobExecutionStatusQueued,
	}
	thingOf := func(arn string) string { return strings.TrimPrefix(arn, cpAccountArn+"thing/") }

	t.Run("for a job", func(t *testing.T) {
		out, err := api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("big")})
		if err != nil {
			t.Fatalf("ListJobExecutionsForJob: %v", err)
		}
		var things []string
		for _, s := range out.ExecutionSummaries {
			th := thingOf(aws.ToString(s.ThingArn))
			things = append(things, th)
			e := s.JobExecutionSummary
			if e == nil || e.Status != status[th] || aws.ToInt64(e.ExecutionNumber) != 1 || e.RetryAttempt == nil || *e.RetryAttempt != 0 {
				got, _ := json.Marshal(s)
				t.Fatalf("summary of %s: %s", th, got)
			}
			cpWantTime(t, th+" queuedAt", e.QueuedAt, brokertest.Epoch)
			if (th == "t3") != (e.StartedAt != nil) {
				t.Fatalf("%s startedAt = %v", th, e.StartedAt)
			}
		}
		if !slices.Equal(cpSorted(things...), []string{"t1", "t2", "t3", "t4", "t5"}) || out.NextToken != nil {
			t.Fatalf("listed %q, nextToken %v", things, out.NextToken)
		}

		for st, want := range map[types.JobExecutionStatus][]string{
			types.JobExecutionStatusQueued:     {"t4", "t5"},
			types.JobExecutionStatusSucceeded:  {"t1", "t2"},
			types.JobExecutionStatusInProgress: {"t3"},
			types.JobExecutionStatusFailed:     nil,
		} {
			out, err := api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("big"), Status: st})
			if err != nil {
				t.Fatalf("status %s: %v", st, err)
			}
			var got []string
			for _, s := range out.ExecutionSummaries {
				got = append(got, thingOf(aws.ToString(s.ThingArn)))
			}
			if !slices.Equal(cpSorted(got...), want) {
				t.Errorf("status %s: %q, want %q", st, got, want)
			}
		}

		var got []string
		var sizes []int
		var token *string
		for page := 0; ; page++ {
			if page > 10 {
				t.Fatal("paging does not end")
			}
			out, err := api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("big"), MaxResults: aws.Int32(2), NextToken: token})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			sizes = append(sizes, len(out.ExecutionSummaries))
			for _, s := range out.ExecutionSummaries {
				got = append(got, thingOf(aws.ToString(s.ThingArn)))
			}
			if token = out.NextToken; token == nil {
				break
			}
		}
		if !slices.Equal(sizes, []int{2, 2, 1}) || !slices.Equal(cpSorted(got...), []string{"t1", "t2", "t3", "t4", "t5"}) {
			t.Fatalf("pages %v listing %q", sizes, got)
		}

		p := iot.NewListJobExecutionsForJobPaginator(api, &iot.ListJobExecutionsForJobInput{JobId: aws.String("big"), Status: types.JobExecutionStatusSucceeded},
			func(o *iot.ListJobExecutionsForJobPaginatorOptions) { o.Limit = 1 })
		got = nil
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range out.ExecutionSummaries {
				got = append(got, thingOf(aws.ToString(s.ThingArn)))
			}
		}
		if !slices.Equal(cpSorted(got...), []string{"t1", "t2"}) {
			t.Fatalf("paginator over SUCCEEDED: %q", got)
		}

		r := cpDo(t, b, "GET", "/jobs/big/things?status=IN_PROGRESS", nil)
		list, _ := r.Body["executionSummaries"].([]any)
		if r.Status != http.StatusOK || len(list) != 1 {
			t.Fatalf("raw list: %d %s", r.Status, r.Raw)
		}
		entry := cpObject(t, list[0], "summary")
		summary := cpObject(t, entry["jobExecutionSummary"], "jobExecutionSummary")
		if entry["thingArn"] != brokertest.ThingARN("t3") || summary["retryAttempt"] != float64(0) || summary["executionNumber"] != float64(1) {
			t.Fatalf("raw summary: %s", r.Raw)
		}
		cpNumber(t, summary, "queuedAt", float64(brokertest.Epoch.Unix()))

		_, err = api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("big"), MaxResults: aws.Int32(0)})
		cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		_, err = api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("big"), Status: types.JobExecutionStatus("DONE")})
		cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		_, err = api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("nope")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		cpExpectError(t, cpDo(t, b, "GET", "/jobs/big/things?maxResults=251", nil), http.StatusBadRequest, "InvalidRequestException")
	})

	t.Run("for a thing", func(t *testing.T) {
		for i := 1; i <= 4; i++ {
			cpCreateJob(t, api, fmt.Sprintf("a%d", i), "multi")
		}
		dm := cpDevice(t, b, "multi", 5)
		cpUpdate(t, dm, "a1", "SUCCEEDED")
		cpUpdate(t, dm, "a2", "IN_PROGRESS")
		list := func(in *iot.ListJobExecutionsForThingInput) ([]string, *iot.ListJobExecutionsForThingOutput) {
			t.Helper()
			in.ThingName = aws.String("multi")
			out, err := api.ListJobExecutionsForThing(ctx, in)
			if err != nil {
				t.Fatalf("ListJobExecutionsForThing: %v", err)
			}
			var ids []string
			for _, s := range out.ExecutionSummaries {
				ids = append(ids, aws.ToString(s.JobId))
				e := s.JobExecutionSummary
				if e == nil || e.RetryAttempt == nil || aws.ToInt64(e.ExecutionNumber) != 1 {
					got, _ := json.Marshal(s)
					t.Fatalf("summary: %s", got)
				}
			}
			return ids, out
		}
		if ids, out := list(&iot.ListJobExecutionsForThingInput{}); !slices.Equal(cpSorted(ids...), []string{"a1", "a2", "a3", "a4"}) || out.NextToken != nil {
			t.Fatalf("all: %q nextToken %v", ids, out.NextToken)
		}
		if ids, _ := list(&iot.ListJobExecutionsForThingInput{Status: types.JobExecutionStatusQueued}); !slices.Equal(cpSorted(ids...), []string{"a3", "a4"}) {
			t.Fatalf("QUEUED: %q", ids)
		}
		if ids, out := list(&iot.ListJobExecutionsForThingInput{Status: types.JobExecutionStatusInProgress}); !slices.Equal(ids, []string{"a2"}) ||
			out.ExecutionSummaries[0].JobExecutionSummary.StartedAt == nil {
			t.Fatalf("IN_PROGRESS: %q", ids)
		}
		if ids, _ := list(&iot.ListJobExecutionsForThingInput{JobId: aws.String("a3")}); !slices.Equal(ids, []string{"a3"}) {
			t.Fatalf("jobId a3: %q", ids)
		}
		first, out := list(&iot.ListJobExecutionsForThingInput{MaxResults: aws.Int32(3)})
		if len(first) != 3 || out.NextToken == nil {
			t.Fatalf("first page %q nextToken %v", first, out.NextToken)
		}
		rest, out := list(&iot.ListJobExecutionsForThingInput{MaxResults: aws.Int32(3), NextToken: out.NextToken})
		if all := cpSorted(append(first, rest...)...); len(rest) != 1 || out.NextToken != nil || !slices.Equal(all, []string{"a1", "a2", "a3", "a4"}) {
			t.Fatalf("second page %q nextToken %v", rest, out.NextToken)
		}

		p := iot.NewListJobExecutionsForThingPaginator(api, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("multi")},
			func(o *iot.ListJobExecutionsForThingPaginatorOptions) { o.Limit = 1 })
		var got []string
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range out.ExecutionSummaries {
				got = append(got, aws.ToString(s.JobId))
			}
		}
		if !slices.Equal(cpSorted(got...), []string{"a1", "a2", "a3", "a4"}) {
			t.Fatalf("paginator: %q", got)
		}

		r := cpDo(t, b, "GET", "/things/multi/jobs?jobId=a1", nil)
		entries, _ := r.Body["executionSummaries"].([]any)
		if len(entries) != 1 {
			t.Fatalf("raw list: %s", r.Raw)
		}
		entry := cpObject(t, entries[0], "summary")
		summary := cpObject(t, entry["jobExecutionSummary"], "jobExecutionSummary")
		if entry["jobId"] != "a1" || summary["status"] != "SUCCEEDED" || summary["retryAttempt"] != float64(0) {
			t.Fatalf("raw summary: %s", r.Raw)
		}
		_, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("multi"), MaxResults: aws.Int32(251)})
		cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		cpExpectError(t, cpDo(t, b, "GET", "/things/multi/jobs?maxResults=0", nil), http.StatusBadRequest, "InvalidRequestException")
		cpExpectError(t, cpDo(t, b, "GET", "/things/bad%20name/jobs", nil), http.StatusBadRequest, "InvalidRequestException")
	})

	t.Run("retries are listed with retryAttempt", func(t *testing.T) {
		if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("flaky"), Targets: cpARNs("r"), Document: aws.String(`{"operation":"flaky"}`),
			JobExecutionsRetryConfig: &types.JobExecutionsRetryConfig{CriteriaList: []types.RetryCriteria{
				{FailureType: types.RetryableFailureTypeFailed, NumberOfRetries: aws.Int32(1)},
			}}}); err != nil {
			t.Fatal(err)
		}
		cpUpdate(t, cpDevice(t, b, "r", 4), "flaky", "FAILED")
		brokertest.Eventually(t, "a retry is queued", func() error {
			out, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("r"), JobId: aws.String("flaky")})
			if err != nil {
				return err
			}
			var got []string
			for _, s := range out.ExecutionSummaries {
				e := s.JobExecutionSummary
				got = append(got, fmt.Sprintf("#%d %s retry %d", aws.ToInt64(e.ExecutionNumber), e.Status, aws.ToInt32(e.RetryAttempt)))
			}
			slices.Sort(got)
			if want := []string{"#1 FAILED retry 0", "#2 QUEUED retry 1"}; !slices.Equal(got, want) {
				return fmt.Errorf("executions %q, want %q", got, want)
			}
			return nil
		})
		if job := cpDescribeJob(t, api, "flaky"); job.Status != types.JobStatusInProgress {
			t.Fatalf("job with a queued retry: %s", job.Status)
		}
	})
}

func TestControlPlaneCancelJobExecution(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	cpCreateJob(t, api, "j", "q", "p", "s")
	dp := cpDevice(t, b, "p", 4)
	cpUpdate(t, dp, "j", "IN_PROGRESS")

	t.Run("expectedVersion mismatch", func(t *testing.T) {
		_, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String("q"), JobId: aws.String("j"), ExpectedVersion: aws.Int64(5)})
		cpSDKError[*types.VersionConflictException](t, err, http.StatusConflict)
		cpExpectError(t, cpDo(t, b, "PUT", "/things/q/jobs/j/cancel", map[string]any{"expectedVersion": 2}), http.StatusConflict, "VersionConflictException")
		if e := cpExecution(t, api, "q", "j"); e.Status != types.JobExecutionStatusQueued || e.VersionNumber != 1 {
			t.Fatalf("after version conflicts: %s v%d", e.Status, e.VersionNumber)
		}
	})

	t.Run("queued", func(t *testing.T) {
		_, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String("q"), JobId: aws.String("j"),
			ExpectedVersion: aws.Int64(1), StatusDetails: map[string]string{"reason": "operator"}})
		if err != nil {
			t.Fatalf("CancelJobExecution: %v", err)
		}
		e := cpExecution(t, api, "q", "j")
		if e.Status != types.JobExecutionStatusCanceled || e.VersionNumber != 2 || aws.ToBool(e.ForceCanceled) ||
			!reflect.DeepEqual(e.StatusDetails.DetailsMap, map[string]string{"reason": "operator"}) {
			got, _ := json.Marshal(e)
			t.Fatalf("canceled execution: %s", got)
		}
		// A terminal execution cannot be canceled again.
		_, err = api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String("q"), JobId: aws.String("j"), Force: true})
		cpSDKError[*types.InvalidStateTransitionException](t, err, http.StatusConflict)
	})

	t.Run("in progress needs force", func(t *testing.T) {
		_, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String("p"), JobId: aws.String("j")})
		cpSDKError[*types.InvalidStateTransitionException](t, err, http.StatusConflict)
		cpExpectError(t, cpDo(t, b, "PUT", "/things/p/jobs/j/cancel", `{}`), http.StatusConflict, "InvalidStateTransitionException")
		if e := cpExecution(t, api, "p", "j"); e.Status != types.JobExecutionStatusInProgress || e.VersionNumber != 2 {
			t.Fatalf("after a refused cancel: %s v%d", e.Status, e.VersionNumber)
		}
		if _, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String("p"), JobId: aws.String("j"), Force: true, ExpectedVersion: aws.Int64(2)}); err != nil {
			t.Fatalf("CancelJobExecution force: %v", err)
		}
		e := cpExecution(t, api, "p", "j")
		if e.Status != types.JobExecutionStatusCanceled || !aws.ToBool(e.ForceCanceled) || e.VersionNumber != 3 {
			t.Fatalf("force-canceled execution: %s forceCanceled %v v%d", e.Status, e.ForceCanceled, e.VersionNumber)
		}
		reply := dp.MustReject(cpUpdateTopic("p", "j"), map[string]any{"status": "SUCCEEDED"})
		state, _ := reply["executionState"].(map[string]any)
		if reply["code"] != "InvalidStateTransition" || state["status"] != "CANCELED" {
			t.Fatalf("device update after the forced cancel: %v", reply)
		}
	})

	t.Run("statusDetails limit", func(t *testing.T) {
		details := map[string]string{}
		for i := range 11 {
			details[fmt.Sprintf("k%d", i)] = "v"
		}
		_, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String("s"), JobId: aws.String("j"), StatusDetails: details})
		cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
		cpExpectError(t, cpDo(t, b, "PUT", "/things/s/jobs/j/cancel", map[string]any{"statusDetails": details}), http.StatusBadRequest, "InvalidRequestException")
		cpExpectError(t, cpDo(t, b, "PUT", "/things/s/jobs/j/cancel", map[string]any{"statusDetails": map[string]string{"bad key": "v"}}), http.StatusBadRequest, "InvalidRequestException")
		if e := cpExecution(t, api, "s", "j"); e.Status != types.JobExecutionStatusQueued || e.VersionNumber != 1 {
			t.Fatalf("after refused cancels: %s v%d", e.Status, e.VersionNumber)
		}
		delete(details, "k10")
		if _, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String("s"), JobId: aws.String("j"), StatusDetails: details}); err != nil {
			t.Fatalf("10 pairs: %v", err)
		}
		if e := cpExecution(t, api, "s", "j"); e.Status != types.JobExecutionStatusCanceled || len(e.StatusDetails.DetailsMap) != 10 {
			t.Fatalf("after the cancel: %s %v", e.Status, e.StatusDetails.DetailsMap)
		}
	})

	t.Run("job completes when its last execution is canceled", func(t *testing.T) {
		cpCreateJob(t, api, "last", "c1", "c2")
		for i, th := range []string{"c1", "c2"} {
			if job := cpDescribeJob(t, api, "last"); job.Status != types.JobStatusInProgress {
				t.Fatalf("job with %d executions canceled: %s", i, job.Status)
			}
			if _, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String(th), JobId: aws.String("last")}); err != nil {
				t.Fatalf("CancelJobExecution %s: %v", th, err)
			}
		}
		job := cpDescribeJob(t, api, "last")
		if job.Status != types.JobStatusCompleted || cpCounts(job.JobProcessDetails) != cpCounts(&types.JobProcessDetails{NumberOfCanceledThings: aws.Int32(2)}) {
			t.Fatalf("job: %s %s", job.Status, cpCounts(job.JobProcessDetails))
		}
	})

	t.Run("unknown", func(t *testing.T) {
		for _, c := range [][2]string{{"q", "nope"}, {"ghost", "j"}} {
			_, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String(c[0]), JobId: aws.String(c[1])})
			cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		}
	})
}

func TestControlPlaneDeleteJobExecution(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	cpCreateJob(t, api, "j", "done", "queued", "running")
	cpUpdate(t, cpDevice(t, b, "done", 4), "j", "SUCCEEDED")
	dr := cpDevice(t, b, "running", 5)
	cpUpdate(t, dr, "j", "IN_PROGRESS")
	del := func(thing string, n int64, force bool) error {
		_, err := api.DeleteJobExecution(ctx, &iot.DeleteJobExecutionInput{
			ThingName: aws.String(thing), JobId: aws.String("j"), ExecutionNumber: aws.Int64(n), Force: force,
		})
		return err
	}
	gone := func(t *testing.T, thing string) {
		t.Helper()
		_, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String(thing), JobId: aws.String("j")})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		cpExpectError(t, cpDo(t, b, "GET", "/things/"+thing+"/jobs/j", nil), http.StatusNotFound, "ResourceNotFoundException")
	}

	t.Run("pending without force", func(t *testing.T) {
		for _, c := range []struct {
			thing  string
			status types.JobExecutionStatus
		}{{"queued", types.JobExecutionStatusQueued}, {"running", types.JobExecutionStatusInProgress}} {
			cpSDKError[*types.InvalidStateTransitionException](t, del(c.thing, 1, false), http.StatusConflict)
			cpExpectError(t, cpDo(t, b, "DELETE", "/things/"+c.thing+"/jobs/j/executionNumber/1", nil), http.StatusConflict, "InvalidStateTransitionException")
			if e := cpExecution(t, api, c.thing, "j"); e.Status != c.status {
				t.Fatalf("%s after a refused delete: %s", c.thing, e.Status)
			}
		}
	})

	t.Run("terminal", func(t *testing.T) {
		if err := del("done", 1, false); err != nil {
			t.Fatalf("DeleteJobExecution of a SUCCEEDED execution: %v", err)
		}
		gone(t, "done")
		out, err := api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("j")})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.ExecutionSummaries {
			if aws.ToString(s.ThingArn) == brokertest.ThingARN("done") {
				t.Fatalf("ListJobExecutionsForJob still lists the deleted execution")
			}
		}
		cpSDKError[*types.ResourceNotFoundException](t, del("done", 1, false), http.StatusNotFound)
	})

	t.Run("pending with force", func(t *testing.T) {
		if err := del("queued", 1, true); err != nil {
			t.Fatalf("DeleteJobExecution force of a QUEUED execution: %v", err)
		}
		gone(t, "queued")
		if err := del("running", 1, true); err != nil {
			t.Fatalf("DeleteJobExecution force of an IN_PROGRESS execution: %v", err)
		}
		gone(t, "running")
		// The device that was running it learns that it is gone.
		if reply := dr.MustReject(cpUpdateTopic("running", "j"), map[string]any{"status": "SUCCEEDED"}); reply["code"] != "ResourceNotFound" {
			t.Fatalf("device update of a deleted execution: %v", reply)
		}
	})

	t.Run("invalid or unknown execution number", func(t *testing.T) {
		cpCreateJob(t, api, "k", "x")
		_, err := api.DeleteJobExecution(ctx, &iot.DeleteJobExecutionInput{ThingName: aws.String("x"), JobId: aws.String("k"), ExecutionNumber: aws.Int64(7), Force: true})
		cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
		cpExpectError(t, cpDo(t, b, "DELETE", "/things/x/jobs/k/executionNumber/first", nil), http.StatusBadRequest, "InvalidRequestException")
		cpExpectError(t, cpDo(t, b, "DELETE", "/things/x/jobs/k/executionNumber/1?force=perhaps", nil), http.StatusBadRequest, "InvalidRequestException")
		if e := cpExecution(t, api, "x", "k"); e.Status != types.JobExecutionStatusQueued {
			t.Fatalf("execution %s after refused deletes", e.Status)
		}
	})
}

func TestControlPlaneDescribeEndpoint(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	for _, typ := range []string{"iot:Jobs", "iot:Data-ATS"} {
		out, err := api.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{EndpointType: aws.String(typ)})
		if err != nil {
			t.Fatalf("DescribeEndpoint %s: %v", typ, err)
		}
		addr := aws.ToString(out.EndpointAddress)
		if addr == "" || strings.Contains(addr, "://") || strings.Contains(addr, "/") {
			t.Fatalf("DescribeEndpoint %s: endpointAddress %q, want a host name", typ, addr)
		}
	}
	// The data-plane endpoint names the iot-jobs-data listener's port.
	out, err := api.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{EndpointType: aws.String("iot:Jobs")})
	if err != nil {
		t.Fatal(err)
	}
	if _, port, _ := net.SplitHostPort(b.JobsAddr()); aws.ToString(out.EndpointAddress) != "localhost:"+port {
		t.Fatalf("iot:Jobs endpoint %q, want localhost:%s", aws.ToString(out.EndpointAddress), port)
	}
	r := cpDo(t, b, "GET", "/endpoint?endpointType=iot%3AJobs", nil)
	if addr, _ := r.Body["endpointAddress"].(string); r.Status != http.StatusOK || addr == "" {
		t.Fatalf("raw DescribeEndpoint: %d %s", r.Status, r.Raw)
	}
	_, err = api.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{EndpointType: aws.String("iot:Nothing")})
	cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)
}

func TestControlPlaneUnknownPath(t *testing.T) {
	b, api := cpStart(t)
	for _, c := range []struct{ method, path string }{
		{"GET", "/no/such/operation"},
		{"GET", "/jobs/j/things/extra/segments"},
		{"POST", "/jobs"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := cpDo(t, b, c.method, c.path, nil)
			typ := r.Header.Get("x-amzn-ErrorType")
			if typ == "" {
				t.Fatalf("no x-amzn-ErrorType: %d %s", r.Status, r.Raw)
			}
			cpExpectError(t, r, http.StatusNotFound, typ)
		})
	}
	// An operation the broker does not serve fails cleanly in the SDK too.
	_, err := api.CreateDynamicThingGroup(context.Background(), &iot.CreateDynamicThingGroupInput{
		ThingGroupName: aws.String("dyn"), QueryString: aws.String("attributes.a:1")})
	var ae interface{ ErrorCode() string }
	if !errors.As(err, &ae) || ae.ErrorCode() == "" {
		t.Fatalf("CreateDynamicThingGroup: %v", err)
	}
	cpSDKStatus(t, err, http.StatusNotFound)
}

// cpPathRecorder is an HTTP client for the SDK that records the escaped
// paths it sends.
type cpPathRecorder struct {
	paths []string
}

func (r *cpPathRecorder) Do(req *http.Request) (*http.Response, error) {
	r.paths = append(r.paths, req.URL.EscapedPath())
	return http.DefaultClient.Do(req)
}

func TestControlPlanePercentEncodedThingName(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	const thing = "a:b"
	cpCreateJob(t, api, "colon", thing)
	cpCreateJob(t, api, "colon2", thing)
	rec := &cpPathRecorder{}
	viaRecorder := func(o *iot.Options) { o.HTTPClient = rec }

	out, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String(thing), JobId: aws.String("colon")}, viaRecorder)
	if err != nil {
		t.Fatalf("DescribeJobExecution %s: %v", thing, err)
	}
	if aws.ToString(out.Execution.ThingArn) != cpAccountArn+"thing/a:b" || out.Execution.Status != types.JobExecutionStatusQueued {
		t.Fatalf("execution: thingArn %q status %s", aws.ToString(out.Execution.ThingArn), out.Execution.Status)
	}
	if len(rec.paths) != 1 || rec.paths[0] != "/things/a%3Ab/jobs/colon" {
		t.Fatalf("the SDK sent %q, want /things/a%%3Ab/jobs/colon", rec.paths)
	}
	if r := cpDo(t, b, "GET", "/things/a%3Ab/jobs/colon", nil); r.Status != http.StatusOK {
		t.Fatalf("raw %%3A path: %d %s", r.Status, r.Raw)
	}

	things, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String(thing)})
	if err != nil || len(things.ExecutionSummaries) != 2 {
		t.Fatalf("ListJobExecutionsForThing %s: %+v %v", thing, things, err)
	}
	jobs, err := api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("colon")})
	if err != nil || len(jobs.ExecutionSummaries) != 1 || aws.ToString(jobs.ExecutionSummaries[0].ThingArn) != cpAccountArn+"thing/a:b" {
		t.Fatalf("ListJobExecutionsForJob: %+v %v", jobs, err)
	}
	if _, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String(thing), JobId: aws.String("colon"),
		StatusDetails: map[string]string{"by": "operator"}}); err != nil {
		t.Fatalf("CancelJobExecution %s: %v", thing, err)
	}
	if e := cpExecution(t, api, thing, "colon"); e.Status != types.JobExecutionStatusCanceled || e.StatusDetails.DetailsMap["by"] != "operator" {
		t.Fatalf("after the cancel: %s %v", e.Status, e.StatusDetails)
	}
	if _, err := api.DeleteJobExecution(ctx, &iot.DeleteJobExecutionInput{ThingName: aws.String(thing), JobId: aws.String("colon"), ExecutionNumber: aws.Int64(1)}); err != nil {
		t.Fatalf("DeleteJobExecution %s: %v", thing, err)
	}
	_, err = api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String(thing), JobId: aws.String("colon")})
	cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
	// The device of that thing is served too.
	d := cpDevice(t, b, thing, 4)
	if reply := cpUpdate(t, d, "colon2", "SUCCEEDED"); reply["timestamp"] == nil {
		t.Fatalf("update reply: %v", reply)
	}
	if e := cpExecution(t, api, thing, "colon2"); e.Status != types.JobExecutionStatusSucceeded {
		t.Fatalf("colon2 on %s: %s", thing, e.Status)
	}
}

// cpListen connects a device subscribed to its notify and notify-next topics.
func cpListen(t *testing.T, b *brokertest.Instance, thing string, version int) *brokertest.Client {
	t.Helper()
	d := brokertest.Connect(t, b.MQTTAddr(), thing, version)
	d.Subscribe("$aws/things/"+thing+"/jobs/notify", 1)
	d.Subscribe("$aws/things/"+thing+"/jobs/notify-next", 1)
	return d
}

// cpExpectNotifications checks that the notify and notify-next messages
// the device received are exactly want (in the notation of notifications),
// and that nothing else was on its way: a barrier job created afterwards
// is what the device hears about next.
func cpExpectNotifications(t *testing.T, api *iot.Client, d *brokertest.Client, want []string) {
	t.Helper()
	cpCreateJob(t, api, "cp-barrier", d.ID)
	var got []string
	brokertest.Eventually(t, "the barrier notification", func() error {
		all := notifications(t, filter(d.Received(), "/notify", "/notify-next"))
		for i, s := range all {
			if strings.Contains(s, "cp-barrier") {
				got = all[:i]
				return nil
			}
		}
		return fmt.Errorf("%d notifications, none for the barrier: %q", len(all), all)
	})
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("notifications:\n got %q\nwant %q", got, want)
	}
}

// TestControlPlaneDeviceNotifications checks what devices see when an
// operator cancels or deletes (PROTOCOL.md §11.6).
func TestControlPlaneDeviceNotifications(t *testing.T) {
	ctx := context.Background()
	for _, version := range []int{4, 5} {
		t.Run(fmt.Sprintf("mqtt%d", version), func(t *testing.T) {
			t.Run("CancelJob", func(t *testing.T) {
				b, api := cpStart(t)
				d := cpListen(t, b, "dev", version)
				cpCreateJob(t, api, "j1", "dev")
				cpCreateJob(t, api, "j2", "dev")
				cpCreateJob(t, api, "j3", "dev")
				// j2 is not next: notify only.
				if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("j2")}); err != nil {
					t.Fatal(err)
				}
				// j1 is next: notify and notify-next.
				if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("j1"), ReasonCode: aws.String("STOP")}); err != nil {
					t.Fatal(err)
				}
				cpExpectNotifications(t, api, d, []string{
					"notify QUEUED:[j1]", "next j1 QUEUED v1",
					"notify QUEUED:[j1 j2]",
					"notify QUEUED:[j1 j2 j3]",
					"notify QUEUED:[j1 j3]",
					"notify QUEUED:[j3]", "next j3 QUEUED v1",
				})
			})

			t.Run("CancelJob without force leaves the device's execution alone", func(t *testing.T) {
				b, api := cpStart(t)
				d := cpListen(t, b, "dev", version)
				cpCreateJob(t, api, "j1", "dev")
				cpCreateJob(t, api, "j2", "dev")
				cpUpdate(t, d, "j1", "IN_PROGRESS")
				if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("j1")}); err != nil {
					t.Fatal(err)
				}
				cpExpectNotifications(t, api, d, []string{
					"notify QUEUED:[j1]", "next j1 QUEUED v1",
					"notify QUEUED:[j1 j2]",
				})
				cpUpdate(t, d, "j1", "SUCCEEDED")
			})

			t.Run("CancelJob with force", func(t *testing.T) {
				b, api := cpStart(t)
				d := cpListen(t, b, "dev", version)
				cpCreateJob(t, api, "j1", "dev")
				cpCreateJob(t, api, "j2", "dev")
				d.MustAccept("$aws/things/dev/jobs/start-next", map[string]any{})
				if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("j1"), Force: true}); err != nil {
					t.Fatal(err)
				}
				cpExpectNotifications(t, api, d, []string{
					"notify QUEUED:[j1]", "next j1 QUEUED v1",
					"notify QUEUED:[j1 j2]",
					"notify QUEUED:[j2]", "next j2 QUEUED v1",
				})
				reply := d.MustReject(cpUpdateTopic("dev", "j1"), map[string]any{"status": "SUCCEEDED", "clientToken": "late"})
				state, _ := reply["executionState"].(map[string]any)
				if reply["code"] != "InvalidStateTransition" || state["status"] != "CANCELED" || reply["clientToken"] != "late" {
					t.Fatalf("update after the forced cancel: %v", reply)
				}
			})

			t.Run("CancelJobExecution", func(t *testing.T) {
				b, api := cpStart(t)
				d := cpListen(t, b, "dev", version)
				cpCreateJob(t, api, "j1", "dev")
				cpCreateJob(t, api, "j2", "dev")
				for _, j := range []string{"j1", "j2"} {
					if _, err := api.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{ThingName: aws.String("dev"), JobId: aws.String(j)}); err != nil {
						t.Fatal(err)
					}
				}
				cpExpectNotifications(t, api, d, []string{
					"notify QUEUED:[j1]", "next j1 QUEUED v1",
					"notify QUEUED:[j1 j2]",
					"notify QUEUED:[j2]", "next j2 QUEUED v1",
					"notify {}", "next -",
				})
			})

			t.Run("DeleteJobExecution with force", func(t *testing.T) {
				b, api := cpStart(t)
				d := cpListen(t, b, "dev", version)
				cpCreateJob(t, api, "j1", "dev")
				cpCreateJob(t, api, "j2", "dev")
				cpUpdate(t, d, "j1", "IN_PROGRESS")
				if _, err := api.DeleteJobExecution(ctx, &iot.DeleteJobExecutionInput{ThingName: aws.String("dev"), JobId: aws.String("j1"),
					ExecutionNumber: aws.Int64(1), Force: true}); err != nil {
					t.Fatal(err)
				}
				cpExpectNotifications(t, api, d, []string{
					"notify QUEUED:[j1]", "next j1 QUEUED v1",
					"notify QUEUED:[j1 j2]",
					"notify QUEUED:[j2]", "next j2 QUEUED v1",
				})
				if reply := d.MustReject(cpUpdateTopic("dev", "j1"), map[string]any{"status": "SUCCEEDED"}); reply["code"] != "ResourceNotFound" {
					t.Fatalf("update of the deleted execution: %v", reply)
				}
			})

			t.Run("DeleteJob with force", func(t *testing.T) {
				b, api := cpStart(t)
				d := cpListen(t, b, "dev", version)
				cpCreateJob(t, api, "j1", "dev")
				cpCreateJob(t, api, "j2", "dev")
				cpUpdate(t, d, "j1", "IN_PROGRESS")
				for _, j := range []string{"j1", "j2"} {
					if _, err := api.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String(j), Force: true}); err != nil {
						t.Fatal(err)
					}
				}
				cpExpectNotifications(t, api, d, []string{
					"notify QUEUED:[j1]", "next j1 QUEUED v1",
					"notify QUEUED:[j1 j2]",
					"notify QUEUED:[j2]", "next j2 QUEUED v1",
					"notify {}", "next -",
				})
				for _, topic := range []string{cpUpdateTopic("dev", "j1"), "$aws/things/dev/jobs/j1/get"} {
					if reply := d.MustReject(topic, map[string]any{"status": "SUCCEEDED"}); reply["code"] != "ResourceNotFound" {
						t.Fatalf("%s after the job was deleted: %v", topic, reply)
					}
				}
			})
		})
	}
}

// TestControlPlaneLargeJob cancels and deletes a job with more things than
// one background step handles: reads are exact at once, the counts and
// isConcurrent settle soon after.
func TestControlPlaneLargeJob(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	const n = 600
	var things []string
	for i := range n {
		things = append(things, fmt.Sprintf("fleet-%03d", i))
	}
	last := things[n-1]
	d := cpListen(t, b, last, 4)
	cpCreateJob(t, api, "big", things...)
	settled := func(what string, want *types.JobProcessDetails) {
		t.Helper()
		brokertest.Eventually(t, what, func() error {
			job := cpDescribeJob(t, api, "big")
			if job.IsConcurrent == nil || *job.IsConcurrent || len(job.JobProcessDetails.ProcessingTargets) != 0 ||
				cpCounts(job.JobProcessDetails) != cpCounts(want) {
				return fmt.Errorf("isConcurrent %v processingTargets %d %s", job.IsConcurrent, len(job.JobProcessDetails.ProcessingTargets), cpCounts(job.JobProcessDetails))
			}
			return nil
		})
	}
	settled("rollout", &types.JobProcessDetails{NumberOfQueuedThings: aws.Int32(n)})

	if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("big")}); err != nil {
		t.Fatal(err)
	}
	// Exact at once, whether or not the cancellation has reached the thing.
	if e := cpExecution(t, api, last, "big"); e.Status != types.JobExecutionStatusCanceled {
		t.Fatalf("execution of %s right after CancelJob: %s", last, e.Status)
	}
	p := iot.NewListJobExecutionsForJobPaginator(api, &iot.ListJobExecutionsForJobInput{JobId: aws.String("big"), Status: types.JobExecutionStatusQueued})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.ExecutionSummaries) != 0 {
			t.Fatalf("QUEUED executions listed after CancelJob: %d", len(out.ExecutionSummaries))
		}
	}
	settled("cancellation", &types.JobProcessDetails{NumberOfCanceledThings: aws.Int32(n)})
	cpExpectNotifications(t, api, d, []string{"notify QUEUED:[big]", "next big QUEUED v1", "notify {}", "next -"})

	if _, err := api.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("big")}); err != nil {
		t.Fatalf("DeleteJob of a CANCELED job: %v", err)
	}
	_, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{ThingName: aws.String(last), JobId: aws.String("big")})
	cpSDKError[*types.ResourceNotFoundException](t, err, http.StatusNotFound)
	brokertest.Eventually(t, "deletion", func() error {
		_, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("big")})
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			return fmt.Errorf("DescribeJob: %v", err)
		}
		return nil
	})
	out, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String(things[0])})
	if err != nil || len(out.ExecutionSummaries) != 0 {
		t.Fatalf("executions of %s after the deletion: %+v %v", things[0], out, err)
	}
	cpCreateJob(t, api, "big", things[0])
}

// TestControlPlaneExecutionTimeout shows a timer firing through the
// control plane: approximateSecondsBeforeTimedOut counts down the job's
// in-progress timer, then the execution is TIMED_OUT and the job complete.
func TestControlPlaneExecutionTimeout(t *testing.T) {
	b, api := cpStart(t)
	ctx := context.Background()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("slow"), Targets: cpARNs("dev"), Document: aws.String(`{"operation":"slow"}`),
		TimeoutConfig: &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(5)}}); err != nil {
		t.Fatal(err)
	}
	d := cpDevice(t, b, "dev", 5)
	if e := cpExecution(t, api, "dev", "slow"); e.ApproximateSecondsBeforeTimedOut != nil {
		t.Fatalf("a QUEUED execution has approximateSecondsBeforeTimedOut %d", *e.ApproximateSecondsBeforeTimedOut)
	}
	cpUpdate(t, d, "slow", "IN_PROGRESS")
	if e := cpExecution(t, api, "dev", "slow"); aws.ToInt64(e.ApproximateSecondsBeforeTimedOut) != 300 {
		t.Fatalf("approximateSecondsBeforeTimedOut = %v, want 300", e.ApproximateSecondsBeforeTimedOut)
	}
	b.Clock.Advance(5*time.Minute + time.Second)
	brokertest.Eventually(t, "time-out", func() error {
		if e := cpExecution(t, api, "dev", "slow"); e.Status != types.JobExecutionStatusTimedOut {
			return fmt.Errorf("status %s", e.Status)
		}
		return nil
	})
	e := cpExecution(t, api, "dev", "slow")
	if e.ApproximateSecondsBeforeTimedOut != nil || e.VersionNumber != 3 {
		t.Fatalf("timed-out execution: v%d approximateSecondsBeforeTimedOut %v", e.VersionNumber, e.ApproximateSecondsBeforeTimedOut)
	}
	job := cpDescribeJob(t, api, "slow")
	if job.Status != types.JobStatusCompleted || cpCounts(job.JobProcessDetails) != cpCounts(&types.JobProcessDetails{NumberOfTimedOutThings: aws.Int32(1)}) {
		t.Fatalf("job: %s %s", job.Status, cpCounts(job.JobProcessDetails))
	}
	out, err := api.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("dev"), Status: types.JobExecutionStatusTimedOut})
	if err != nil || len(out.ExecutionSummaries) != 1 {
		t.Fatalf("TIMED_OUT executions: %+v %v", out, err)
	}
}
