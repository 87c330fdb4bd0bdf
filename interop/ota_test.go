package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/jobshook/presign/s3test"
)

// TestNodeDeviceSDKv2OTA runs interop/node/ota-mqtt5.js: the npm
// IotJobsClientv2 starts an OTA job whose document names its firmware with
// a presigned-URL placeholder, downloads the firmware from a real S3
// server (versitygw, which verifies the signature) with the URL it was
// handed, and succeeds. The control plane still returns the placeholder,
// and the same URL is refused once expiresInSec has passed: the broker
// binary runs with -debug-clock-offset -55s, so the 60 s URL (AWS's
// shortest) expires 5 s after it was signed, by the S3 server's clock.
func TestNodeDeviceSDKv2OTA(t *testing.T) {
	node := Need(t, "node", "install Node.js 18 or later (Debian: apt-get install nodejs npm)")
	nodeModules(t)
	srv := s3test.Start(t)
	firmware := bytes.Repeat([]byte("pump firmware 2.1 "), 4096)
	srv.Put("firmware", "pump/fw-2.1.bin", firmware)
	sum := sha256.Sum256(firmware)

	// The secret comes from the environment, as the README advises.
	t.Setenv("JOBSBROKER_ARTIFACT_SECRET_ACCESS_KEY", s3test.SecretAccessKey)
	p := brokertest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "-debug-clock-offset", "-55s",
		"-artifact-endpoint", srv.Endpoint, "-artifact-access-key-id", s3test.AccessKeyID)
	thing := "node-ota-pump"
	api := brokertest.IoTClient(p.APIURL())
	ctx := context.Background()
	const doc = `{"operation":"install","files":[{"url":"${aws:iot:s3-presigned-url:https://s3.us-east-1.amazonaws.com/firmware/pump/fw-2.1.bin}"}]}`
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{
		JobId: aws.String("ota-" + thing), Targets: []string{brokertest.ThingARN(thing)}, Document: aws.String(doc),
		PresignedUrlConfig: &iottypes.PresignedUrlConfig{ExpiresInSec: aws.Int64(60)},
	}); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(p.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, nodeScriptTimeout+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, "ota-mqtt5.js", "--host", host, "--port", port, "--thing", thing,
		"--job", "ota-"+thing, "--timeout", fmt.Sprint(nodeScriptTimeout.Seconds()))
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "ARTIFACT_SHA256="+hex.EncodeToString(sum[:]))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out struct {
		OK          bool     `json:"ok"`
		Error       string   `json:"error"`
		URLs        []string `json:"urls"`
		FinalStatus string   `json:"finalStatus"`
	}
	if err := json.Unmarshal([]byte(lastLine(stdout.String())), &out); err != nil || runErr != nil || !out.OK {
		t.Fatalf("ota-mqtt5.js failed (exit %v, summary error %v): %s\nstderr:\n%s\nbroker log:\n%s", runErr, err, out.Error, stderr.String(), brokerLog(p))
	}
	if len(out.URLs) != 1 || !strings.Contains(out.URLs[0], "X-Amz-Expires=60&") || out.FinalStatus != "SUCCEEDED" {
		t.Fatalf("the device used %v and ended %s", out.URLs, out.FinalStatus)
	}

	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("ota-" + thing)})
	if err != nil || job.Job.Status != iottypes.JobStatusCompleted {
		t.Fatalf("DescribeJob = %+v, %v; want COMPLETED", job, err)
	}
	got, err := api.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("ota-" + thing)})
	if err != nil || aws.ToString(got.Document) != doc {
		t.Fatalf("GetJobDocument = %v, %v; want the placeholder unreplaced", got, err)
	}
	brokertest.Eventually(t, "the device's URL to expire", func() error {
		resp, err := http.Get(out.URLs[0])
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			return fmt.Errorf("the S3 server still answers %d", resp.StatusCode)
		}
		return nil
	})
}
