package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/jobshook/presign/s3test"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

// otaBroker starts a broker that signs artifact URLs for srv with a clock
// offset by skew.
func otaBroker(t *testing.T, srv *s3test.Server, skew time.Duration) *brokertest.Instance {
	return brokertest.Start(t, func(c *broker.Config) {
		c.Clock = clock.Offset{By: skew}
		c.Artifacts = broker.ArtifactStore{Endpoint: srv.Endpoint, Region: s3test.Region,
			AccessKeyID: s3test.AccessKeyID, SecretAccessKey: s3test.SecretAccessKey}
	})
}

const otaDocument = `{"operation":"install","files":[{"url":"${aws:iot:s3-presigned-url:https://s3.us-east-1.amazonaws.com/firmware/pump/fw-2.1.bin}"}]}`

func fileURL(t *testing.T, doc any) string {
	t.Helper()
	files, _ := doc.(map[string]any)["files"].([]any)
	if len(files) != 1 {
		t.Fatalf("document without its file: %v", doc)
	}
	u, _ := files[0].(map[string]any)["url"].(string)
	if !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.Contains(u, "/firmware/pump/fw-2.1.bin?") || !strings.Contains(u, "X-Amz-Expires=60&") {
		t.Fatalf("the document's URL is not a presigned URL of the artifact store valid for 60 s: %q", u)
	}
	return u
}

// TestOTAPresignedURL is an OTA job end to end against a real S3 server
// that verifies signatures: the device hears notify-next, starts the job
// over MQTT and describes it over HTTP, downloads the firmware with each
// URL it was handed, and succeeds; the control plane still returns the
// placeholder; the URL stops working once expiresInSec has passed. The
// broker's clock runs 55 s behind, so URLs signed with the shortest
// lifetime AWS allows (60 s) expire 5 s after they are handed out instead
// of a minute later; the S3 server judges them by its own clock.
func TestOTAPresignedURL(t *testing.T) {
	srv := s3test.Start(t)
	firmware := "pump firmware 2.1\n"
	srv.Put("firmware", "pump/fw-2.1.bin", []byte(firmware))
	b := otaBroker(t, srv, -55*time.Second)
	ctx := context.Background()
	api := b.IoT()

	dev := brokertest.Connect5(t, b.MQTTAddr(), "pump-42")
	base := "$aws/things/pump-42/jobs/"
	dev.Subscribe(base+"notify-next", 1)
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{
		JobId: aws.String("ota-1"), Targets: []string{brokertest.ThingARN("pump-42")}, Document: aws.String(otaDocument),
		PresignedUrlConfig: &iottypes.PresignedUrlConfig{RoleArn: aws.String("arn:aws:iam::123456789012:role/JobsS3"), ExpiresInSec: aws.Int64(60)},
	}); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}

	download := func(what, u string) {
		t.Helper()
		if code, body := s3test.Get(t, u); code != http.StatusOK || body != firmware {
			t.Fatalf("download with the URL of %s = %d %q", what, code, body)
		}
	}
	next := dev.Expect(base + "notify-next").JSON(t)
	download("notify-next", fileURL(t, next["execution"].(map[string]any)["jobDocument"]))

	started := dev.MustAccept(base+"start-next", map[string]any{"clientToken": "s1"})
	startURL := fileURL(t, started["execution"].(map[string]any)["jobDocument"])
	download("start-next", startURL)

	described := dev.MustAccept(base+"ota-1/get", map[string]any{})
	download("describe", fileURL(t, described["execution"].(map[string]any)["jobDocument"]))

	resp, err := b.HTTPClient(nil).Get(b.JobsURL() + "/things/pump-42/jobs/ota-1")
	if err != nil {
		t.Fatal(err)
	}
	var overHTTP struct {
		Execution struct {
			JobDocument string `json:"jobDocument"`
		} `json:"execution"`
	}
	err = json.NewDecoder(resp.Body).Decode(&overHTTP)
	resp.Body.Close()
	var httpDoc any
	if err == nil {
		err = json.Unmarshal([]byte(overHTTP.Execution.JobDocument), &httpDoc)
	}
	if err != nil {
		t.Fatalf("data-plane DescribeJobExecution: %v", err)
	}
	download("the data plane", fileURL(t, httpDoc))

	dev.MustAccept(base+"ota-1/update", map[string]any{"status": "SUCCEEDED", "statusDetails": map[string]string{"firmware": "2.1"}})
	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("ota-1")})
	if err != nil || job.Job.Status != iottypes.JobStatusCompleted {
		t.Fatalf("DescribeJob = %v, %v; want COMPLETED", job, err)
	}
	doc, err := api.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("ota-1")})
	if err != nil || aws.ToString(doc.Document) != otaDocument {
		t.Fatalf("GetJobDocument = %v, %v; want the placeholder unreplaced", aws.ToString(doc.Document), err)
	}

	brokertest.Eventually(t, "the start-next URL to expire", func() error {
		code, _ := s3test.Get(t, startURL)
		if code != http.StatusForbidden {
			return errors.New("the S3 server still serves it: " + http.StatusText(code))
		}
		return nil
	})
}

// TestPresignedURLRefused checks the documents CreateJob and
// CreateJobTemplate refuse: placeholders without an artifact store, ones
// that name no object, code-signing placeholders, and a presignedUrlConfig
// out of AWS's ranges.
func TestPresignedURLRefused(t *testing.T) {
	ctx := context.Background()
	plain := brokertest.Start(t).IoT()
	target := []string{brokertest.ThingARN("pump-1")}
	refuse := func(api *iot.Client, name, doc string, cfg *iottypes.PresignedUrlConfig, want string) {
		t.Helper()
		_, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String(name), Targets: target, Document: aws.String(doc), PresignedUrlConfig: cfg})
		var ire *iottypes.InvalidRequestException
		if !errors.As(err, &ire) || !strings.Contains(aws.ToString(ire.Message), want) {
			t.Errorf("CreateJob %s = %v; want InvalidRequestException about %q", name, err, want)
		}
		if _, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String(name)}); err == nil {
			t.Errorf("CreateJob %s was refused but the job exists", name)
		}
	}
	refuse(plain, "no-store", otaDocument, nil, "artifact-endpoint")
	_, err := plain.CreateJobTemplate(ctx, &iot.CreateJobTemplateInput{JobTemplateId: aws.String("ota"), Description: aws.String("ota"), Document: aws.String(otaDocument)})
	var ire *iottypes.InvalidRequestException
	if !errors.As(err, &ire) {
		t.Errorf("CreateJobTemplate with a placeholder and no artifact store = %v, want InvalidRequestException", err)
	}

	signing := otaBroker(t, &s3test.Server{Endpoint: "http://127.0.0.1:9"}, 0).IoT()
	refuse(signing, "no-key", `{"u":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware}"}`, nil, "names no object key")
	refuse(signing, "code-sign", `{"sig":"${aws:iot:code-sign-signature:s3://us-east-1.firmware/fw.bin@1}"}`, nil, "code-signing placeholder")
	refuse(signing, "short", otaDocument, &iottypes.PresignedUrlConfig{ExpiresInSec: aws.Int64(59)}, "expiresInSec")
	refuse(signing, "long", otaDocument, &iottypes.PresignedUrlConfig{ExpiresInSec: aws.Int64(3601)}, "expiresInSec")
	refuse(signing, "role", otaDocument, &iottypes.PresignedUrlConfig{RoleArn: aws.String("arn:aws:iam::1:r")}, "roleArn")
	huge := `{"files":[` + strings.Repeat(`"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/fw.bin}",`, 300) + `""]}`
	refuse(signing, "huge", huge, nil, "64 KiB")
	if _, err := signing.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("ok"), Targets: target, Document: aws.String(otaDocument)}); err != nil {
		t.Errorf("CreateJob with a placeholder and an artifact store: %v", err)
	}
}

// TestPresignedURLDefaultExpiry checks that a job without
// presignedUrlConfig gets URLs valid for 3600 s, as on AWS, and that
// UpdateJob's new expiresInSec applies to the next delivery.
func TestPresignedURLDefaultExpiry(t *testing.T) {
	b := otaBroker(t, &s3test.Server{Endpoint: "http://127.0.0.1:9"}, 0)
	ctx := context.Background()
	api := b.IoT()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("ota"), Targets: []string{brokertest.ThingARN("pump-7")},
		Document: aws.String(otaDocument)}); err != nil {
		t.Fatal(err)
	}
	dev := brokertest.Connect3(t, b.MQTTAddr(), "pump-7")
	expires := func() string {
		t.Helper()
		reply := dev.MustAccept("$aws/things/pump-7/jobs/$next/get", map[string]any{})
		raw, _ := json.Marshal(reply)
		s := string(raw)
		i := strings.Index(s, "X-Amz-Expires=")
		if i < 0 {
			t.Fatalf("no presigned URL in %s", s)
		}
		v, _, _ := strings.Cut(s[i+len("X-Amz-Expires="):], `\u0026`)
		v, _, _ = strings.Cut(v, "&")
		return v
	}
	if got := expires(); got != "3600" {
		t.Errorf("X-Amz-Expires without presignedUrlConfig = %s, want 3600", got)
	}
	if _, err := api.UpdateJob(ctx, &iot.UpdateJobInput{JobId: aws.String("ota"),
		PresignedUrlConfig: &iottypes.PresignedUrlConfig{ExpiresInSec: aws.Int64(300)}}); err != nil {
		t.Fatal(err)
	}
	if got := expires(); got != "300" {
		t.Errorf("X-Amz-Expires after UpdateJob = %s, want 300", got)
	}
	// UpdateJobExecution with includeJobDocument hands out URLs too.
	reply := dev.MustAccept("$aws/things/pump-7/jobs/ota/update", map[string]any{"status": "IN_PROGRESS", "includeJobDocument": true})
	if raw, _ := json.Marshal(reply["jobDocument"]); !strings.Contains(string(raw), "X-Amz-Expires=300") || strings.Contains(string(raw), "${") {
		t.Errorf("update reply jobDocument = %s, want presigned URLs", raw)
	}
}
