package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	awsv1 "github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	credv1 "github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/iotjobsdataplane"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// signatureFailure is one way a signature can fail, and what AWS's front
// door answers: always 403, with this type and a message containing msg.
type signatureFailure struct {
	name        string
	key, secret string // "" key: unsigned
	region      string
	skew        time.Duration
	typ, msg    string
}

var signatureFailures = []signatureFailure{
	{name: "unsigned", typ: "MissingAuthenticationTokenException", msg: "Missing Authentication Token"},
	{name: "wrong secret", key: opsKey, secret: "not-the-secret", typ: "InvalidSignatureException",
		msg: "The request signature we calculated does not match the signature you provided."},
	{name: "unknown access key", key: "AKIAUNKNOWN000000000", secret: opsSecret, typ: "UnrecognizedClientException",
		msg: "The security token included in the request is invalid."},
	{name: "signed 6 minutes ago", key: opsKey, secret: opsSecret, skew: -6 * time.Minute, typ: "InvalidSignatureException",
		msg: "Signature expired: "},
	{name: "signed 6 minutes ahead", key: opsKey, secret: opsSecret, skew: 6 * time.Minute, typ: "InvalidSignatureException",
		msg: "Signature not yet current: "},
	{name: "another region", key: opsKey, secret: opsSecret, region: "eu-west-1", typ: "InvalidSignatureException",
		msg: "Credential should be scoped to a valid region, not 'eu-west-1'."},
}

// sdkV2Error checks an error of the AWS SDK for Go v2: its API error code,
// its message and the HTTP status.
func sdkV2Error(t *testing.T, what string, err error, typ, msg string) {
	t.Helper()
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != typ || !strings.Contains(ae.ErrorMessage(), msg) ||
		!errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		t.Errorf("%s: error %v, want %s 403 saying %q", what, err, typ, msg)
	}
}

// sdkV1Error checks an error of the AWS SDK for Go v1 the same way.
func sdkV1Error(t *testing.T, what string, err error, typ, msg string) {
	t.Helper()
	var rf awserr.RequestFailure
	if !errors.As(err, &rf) || rf.Code() != typ || !strings.Contains(rf.Message(), msg) || rf.StatusCode() != http.StatusForbidden {
		t.Errorf("%s: error %v, want %s 403 saying %q", what, err, typ, msg)
	}
}

// TestSignatureFailures: each way a signature fails is answered as AWS's
// front door answers it, on the control plane (AWS SDK for Go v2) and on
// the data plane (v1), and changes nothing.
func TestSignatureFailures(t *testing.T) {
	b, _ := startSigned(t)
	createJob(t, b, "guarded", "thing-1")
	ctx := context.Background()
	for _, f := range signatureFailures {
		t.Run(f.name, func(t *testing.T) {
			region := f.region
			if region == "" {
				region = "us-east-1"
			}
			var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
			if f.key != "" {
				creds = aws.NewCredentialsCache(staticCreds(f.key, f.secret))
			}
			api := iot.New(iot.Options{Region: region, BaseEndpoint: aws.String(b.APIURL()), Credentials: creds,
				RetryMaxAttempts: 1, HTTPClient: b.HTTPClient(nil), HTTPSignerV4: brokertest.SkewedSigner{Skew: f.skew}})
			_, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("guarded")})
			sdkV2Error(t, "CancelJob", err, f.typ, f.msg)

			cfg := &awsv1.Config{Region: awsv1.String(region), Endpoint: awsv1.String(b.JobsURL()), MaxRetries: awsv1.Int(0),
				HTTPClient: b.HTTPClient(nil), Credentials: credv1.AnonymousCredentials}
			if f.key != "" {
				cfg.Credentials = credv1.NewStaticCredentials(f.key, f.secret, "")
			}
			sess, err := session.NewSession(cfg)
			if err != nil {
				t.Fatal(err)
			}
			dev := iotjobsdataplane.New(sess)
			brokertest.SkewV1(&dev.Handlers, f.skew)
			_, err = dev.StartNextPendingJobExecution(&iotjobsdataplane.StartNextPendingJobExecutionInput{
				ThingName: awsv1.String("thing-1")})
			sdkV1Error(t, "StartNextPendingJobExecution", err, f.typ, f.msg)
		})
	}
	e := cpExecution(t, b.IoT(), "thing-1", "guarded")
	if e.Status != "QUEUED" {
		t.Fatalf("refused requests changed the execution: %s", e.Status)
	}
	job, err := b.IoT().DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("guarded")})
	if err != nil || job.Job.Status != "IN_PROGRESS" {
		t.Fatalf("refused requests changed the job: %+v, %v", job, err)
	}
}

// TestSignatureFailureWire checks the raw answer: 403, the type in
// x-amzn-ErrorType and in __type, a message; a malformed Authorization
// header is IncompleteSignatureException.
func TestSignatureFailureWire(t *testing.T) {
	b, _ := startSigned(t)
	for _, tc := range []struct{ url, authorization, typ string }{
		{b.APIURL() + "/jobs", "", "MissingAuthenticationTokenException"},
		{b.JobsURL() + "/things/t/jobs", "", "MissingAuthenticationTokenException"},
		{b.APIURL() + "/jobs", "AWS4-HMAC-SHA256 SignedHeaders=host", "IncompleteSignatureException"},
		{b.JobsURL() + "/things/t/jobs", "AWS4-HMAC-SHA256 SignedHeaders=host", "IncompleteSignatureException"},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		if tc.authorization != "" {
			req.Header.Set("Authorization", tc.authorization)
		}
		resp, err := b.HTTPClient(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct{ Type, Message string }
		body.Type = "?"
		var m map[string]string
		if json.Unmarshal(raw, &m) == nil {
			body.Type, body.Message = m["__type"], m["message"]
		}
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-amzn-ErrorType") != tc.typ || body.Type != tc.typ || body.Message == "" {
			t.Errorf("GET %s (Authorization %q): %d %q %s, want 403 %s", tc.url, tc.authorization, resp.StatusCode,
				resp.Header.Get("x-amzn-ErrorType"), raw, tc.typ)
		}
	}
}

// TestAnySigningRegion: with AnySigningRegion a signature scoped to another
// region than -region is accepted.
func TestAnySigningRegion(t *testing.T) {
	b, _ := startSigned(t, func(c *broker.Config) { c.Region, c.AnySigningRegion = "eu-central-1", true })
	api := iot.New(iot.Options{Region: "ap-southeast-2", BaseEndpoint: aws.String(b.APIURL()),
		Credentials: aws.NewCredentialsCache(staticCreds(opsKey, opsSecret)), RetryMaxAttempts: 1, HTTPClient: b.HTTPClient(nil)})
	if _, err := api.ListJobs(context.Background(), &iot.ListJobsInput{}); err != nil {
		t.Fatalf("a signature scoped to ap-southeast-2: %v", err)
	}
}
