package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"
	awsv1 "github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	credv1 "github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/iotjobsdataplane"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

const (
	opsKey    = "AKIAJOBSBROKEROPS001"
	opsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

func writeCredentials(t *testing.T, path, key, secret string) {
	t.Helper()
	text := "[ops]\naws_access_key_id = " + key + "\naws_secret_access_key = " + secret + "\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startSigned runs a broker whose HTTP APIs require SigV4 with opsKey.
func startSigned(t *testing.T, mod ...func(*broker.Config)) (*brokertest.Instance, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "credentials")
	writeCredentials(t, file, opsKey, opsSecret)
	b := brokertest.Start(t, append([]func(*broker.Config){func(c *broker.Config) { c.CredentialsFile = file }}, mod...)...)
	b.Credentials = aws.Credentials{AccessKeyID: opsKey, SecretAccessKey: opsSecret}
	return b, file
}

func iotWith(b *brokertest.Instance, creds aws.CredentialsProvider) *iot.Client {
	return iot.New(iot.Options{Region: "us-east-1", BaseEndpoint: aws.String(b.APIURL()), Credentials: creds,
		RetryMaxAttempts: 1, HTTPClient: b.HTTPClient(nil)})
}

func TestSignedControlPlane(t *testing.T) {
	b, file := startSigned(t)
	ctx := context.Background()
	if _, err := b.IoT().CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("signed"), Targets: []string{brokertest.ThingARN("t1")},
		Document: aws.String(`{"operation":"x"}`)}); err != nil {
		t.Fatalf("a signed CreateJob: %v", err)
	}
	// Refused as AWS's front door refuses them (TestSignatureFailures
	// has every cause).
	refused := []struct {
		name  string
		creds aws.CredentialsProvider
		typ   string
	}{
		{"wrong secret", aws.NewCredentialsCache(staticCreds(opsKey, "not-the-secret")), "InvalidSignatureException"},
		{"unknown key", aws.NewCredentialsCache(staticCreds("AKIAUNKNOWN000000000", opsSecret)), "UnrecognizedClientException"},
		{"unsigned", aws.AnonymousCredentials{}, "MissingAuthenticationTokenException"},
	}
	for _, tc := range refused {
		_, err := iotWith(b, tc.creds).DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("signed")})
		sdkV2Error(t, tc.name+" DescribeJob", err, tc.typ, "")
		_, err = iotWith(b, tc.creds).CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("signed")})
		sdkV2Error(t, tc.name+" CancelJob", err, tc.typ, "")
		_, err = iotWith(b, tc.creds).CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("t9")})
		sdkV2Error(t, tc.name+" CreateThing", err, tc.typ, "")
	}
	job, err := b.IoT().DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("signed")})
	if err != nil || job.Job.Status != iottypes.JobStatusInProgress {
		t.Fatalf("a refused CancelJob changed the job: %+v, %v", job, err)
	}
	// Probes and metrics stay open for orchestrators and Prometheus; a
	// backup does not.
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/admin/backup": 403} {
		resp, err := http.Get(b.APIURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("unsigned GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}

	// SIGHUP's reload swaps the keys: the old one is refused, the new one
	// works.
	writeCredentials(t, file, "AKIAJOBSBROKEROPS002", "another-secret")
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	_, err = b.IoT().DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("signed")})
	sdkV2Error(t, "the replaced key", err, "UnrecognizedClientException", "")
	fresh := iotWith(b, aws.NewCredentialsCache(staticCreds("AKIAJOBSBROKEROPS002", "another-secret")))
	if _, err := fresh.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("signed")}); err != nil {
		t.Errorf("the new key: %v", err)
	}
}

type staticCreds2 struct{ key, secret string }

func (s staticCreds2) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret, Source: "test"}, nil
}

func staticCreds(key, secret string) aws.CredentialsProvider { return staticCreds2{key, secret} }

func jobsV1(t *testing.T, b *brokertest.Instance, key, secret string) *iotjobsdataplane.IoTJobsDataPlane {
	t.Helper()
	sess, err := session.NewSession(&awsv1.Config{
		Region: awsv1.String("us-east-1"), Endpoint: awsv1.String(b.JobsURL()),
		Credentials: credv1.NewStaticCredentials(key, secret, ""), MaxRetries: awsv1.Int(0),
		HTTPClient: b.HTTPClient(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	return iotjobsdataplane.New(sess)
}

func TestSignedDataPlane(t *testing.T) {
	b, _ := startSigned(t)
	createJob(t, b, "dp", "thing:1")
	in := &iotjobsdataplane.DescribeJobExecutionInput{ThingName: awsv1.String("thing:1"), JobId: awsv1.String("$next")}
	out, err := jobsV1(t, b, opsKey, opsSecret).DescribeJobExecution(in)
	if err != nil || awsv1.StringValue(out.Execution.JobId) != "dp" {
		t.Fatalf("a signed DescribeJobExecution: %v, %v", out, err)
	}
	_, err = jobsV1(t, b, opsKey, "wrong").UpdateJobExecution(&iotjobsdataplane.UpdateJobExecutionInput{
		ThingName: awsv1.String("thing:1"), JobId: awsv1.String("dp"), Status: awsv1.String("FAILED")})
	sdkV1Error(t, "a wrongly signed update", err, "InvalidSignatureException", "does not match")
	out, err = jobsV1(t, b, opsKey, opsSecret).DescribeJobExecution(in)
	if err != nil || awsv1.StringValue(out.Execution.Status) != "QUEUED" {
		t.Fatalf("the refused update changed the execution: %v, %v", out, err)
	}
}

// TestDataPlaneDeviceCertificate: over mutual TLS a device certificate is
// enough, and only for its own thing.
func TestDataPlaneDeviceCertificate(t *testing.T) {
	pki := brokertest.NewPKI(t)
	server := pki.Server("server")
	b := brokertest.Start(t, func(c *broker.Config) {
		c.TLSCert, c.TLSKey, c.ClientCA = server.Cert, server.Key, pki.CAFile
		c.Identity = auth.ModeMTLS
	})
	createJob(t, b, "dp", "thing-1", "thing-2")
	cert := pki.Device("thing-1")
	get := func(client *http.Client, thing string) (int, map[string]any) {
		t.Helper()
		resp, err := client.Get(b.JobsURL() + "/things/" + thing + "/jobs")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		raw, _ := io.ReadAll(resp.Body)
		json.Unmarshal(raw, &body)
		if resp.StatusCode != 200 && resp.Header.Get("x-amzn-ErrorType") != body["__type"] {
			t.Errorf("error type header %q, body %v", resp.Header.Get("x-amzn-ErrorType"), body)
		}
		return resp.StatusCode, body
	}
	device := b.HTTPClient(&cert.Pair)
	if status, body := get(device, "thing-1"); status != 200 || len(body["queuedJobs"].([]any)) != 1 {
		t.Fatalf("own thing: %d %v", status, body)
	}
	if status, body := get(device, "thing-2"); status != 400 || body["__type"] != "CertificateValidationException" {
		t.Fatalf("another thing: %d %v", status, body)
	}
	if status, body := get(b.HTTPClient(nil), "thing-1"); status != 400 || body["__type"] != "CertificateValidationException" {
		t.Fatalf("no certificate: %d %v", status, body)
	}
	// Escaped labels name the same thing for the gate as for the API,
	// each label decoded on its own.
	for _, c := range []struct{ path, typ, in string }{
		{"/%74hings/thing-2/jobs", "CertificateValidationException", "thing thing-2"},
		{"/things/thing%2D2/jobs", "CertificateValidationException", "thing thing-2"},
		{"/th%69ngs/thing%2d2/jobs/dp", "CertificateValidationException", "thing thing-2"},
		// Not thing-1's jobs: the invalid name "thing-1/x", which no
		// certificate is for.
		{"/things/thing-1%2Fx/jobs", "CertificateValidationException", "thing thing-1/x"},
		// Not thing-2's jobs: no operation has a first label "things/thing-2".
		{"/things%2Fthing-2/jobs", "UnknownOperationException", ""},
	} {
		resp, err := device.Get(b.JobsURL() + c.path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("x-amzn-ErrorType") != c.typ || !strings.Contains(string(raw), c.in) {
			t.Errorf("%s with thing-1's certificate: %d %s, want %s naming %q", c.path, resp.StatusCode, raw, c.typ, c.in)
		}
	}
}

func TestDataPlaneThrottle(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) { c.RequestRate, c.RequestBurst = 0.01, 2 })
	createJob(t, b, "th", "thing-1")
	dev := jobsV1(t, b, "AKIDEXAMPLE", "secret")
	in := &iotjobsdataplane.GetPendingJobExecutionsInput{ThingName: awsv1.String("thing-1")}
	for i := range 2 {
		if _, err := dev.GetPendingJobExecutions(in); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	_, err := dev.GetPendingJobExecutions(in)
	var ae awserr.RequestFailure
	if !errors.As(err, &ae) || ae.Code() != iotjobsdataplane.ErrCodeThrottlingException || ae.StatusCode() != 429 {
		t.Fatalf("over the rate: %v, want ThrottlingException 429", err)
	}
	// The rate is per thing, and MQTT shares it.
	if _, err := dev.GetPendingJobExecutions(&iotjobsdataplane.GetPendingJobExecutionsInput{ThingName: awsv1.String("thing-2")}); err != nil {
		t.Fatalf("another thing: %v", err)
	}
	d := brokertest.Connect3(t, b.MQTTAddr(), "thing-1")
	if rej := d.MustReject("$aws/things/thing-1/jobs/get", map[string]any{}); rej["code"] != "RequestThrottled" {
		t.Fatalf("MQTT over the shared rate: %v", rej)
	}
}
