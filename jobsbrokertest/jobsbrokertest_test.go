package jobsbrokertest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/broker/traffic"
	"github.com/jobsbroker/jobsbroker/jobsbrokertest"
)

// TestPreloadStates: every kind of item, and executions that start
// mid-story, reached with the version numbers a device would leave.
func TestPreloadStates(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Preload: `
things:
  - thingName: pump-1
    attributePayload: {attributes: {model: p100}}
  - thingName: pump-2
thingGroups:
  - thingGroupName: pumps
    things: [pump-1, pump-2]
jobTemplates:
  - jobTemplateId: fw
    description: firmware
    document: {operation: update}
jobs:
  - jobId: fw-2
    jobTemplateArn: arn:aws:iot:us-east-1:123456789012:jobtemplate/fw
    targets: [arn:aws:iot:us-east-1:123456789012:thinggroup/pumps]
    executions:
      - {thingName: pump-1, status: IN_PROGRESS, versionNumber: 3, statusDetails: {step: download}}
      - {thingName: pump-2, status: CANCELED}
  - jobId: fw-3
    targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1]
    document: '{"operation":"reboot"}'
`})
	e, err := b.Wait(context.Background(), "pump-1", "fw-2", "IN_PROGRESS", time.Second)
	if err != nil || e.VersionNumber != 3 || e.StatusDetails.DetailsMap["step"] != "download" {
		t.Errorf("pump-1's fw-2 = %+v, %v; want IN_PROGRESS at version 3 with step download", e, err)
	}
	if _, err := b.Wait(context.Background(), "pump-2", "fw-2", "CANCELED", time.Second); err != nil {
		t.Errorf("pump-2's fw-2: %v", err)
	}
	// The device picks up mid-story: its in-progress job comes first.
	dev := brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
	next := dev.MustAccept("$aws/things/pump-1/jobs/start-next", map[string]any{})
	if ex := next["execution"].(map[string]any); ex["jobId"] != "fw-2" || ex["versionNumber"] != float64(3) {
		t.Errorf("start-next = %v", next)
	}
	out, err := iot.NewFromConfig(b.AWSConfig()).DescribeThing(context.Background(), &iot.DescribeThingInput{ThingName: aws.String("pump-1")})
	if err != nil || out.Attributes["model"] != "p100" {
		t.Errorf("DescribeThing = %+v, %v", out, err)
	}
}

// TestPreloadAtRunTime: Preload loads into a running broker, and refuses a
// file with the line at fault.
func TestPreloadAtRunTime(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{})
	job := "jobs:\n  - jobId: late\n    targets: [arn:aws:iot:us-east-1:123456789012:thing/t]\n    document: {}\n"
	if err := b.Preload(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	err := b.Preload(context.Background(), job)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "ResourceAlreadyExistsException") {
		t.Errorf("loading a thing twice: %v", err)
	}
}

// TestWaitOutcomes: Wait tells reached, ended otherwise and timed out apart.
func TestWaitOutcomes(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Preload: onePumpJob})
	ctx := context.Background()
	if _, err := b.Wait(ctx, "pump-1", "j1", "SUCCEEDED", 100*time.Millisecond); !errors.Is(err, jobsbrokertest.ErrTimeout) {
		t.Errorf("queued: %v, want ErrTimeout", err)
	}
	if e, err := b.Wait(ctx, "pump-1", "nothing", "SUCCEEDED", 50*time.Millisecond); !errors.Is(err, jobsbrokertest.ErrTimeout) || e != nil {
		t.Errorf("no execution: %+v, %v; want nil, ErrTimeout", e, err)
	}
	dev := brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
	go func() {
		time.Sleep(50 * time.Millisecond)
		dev.Publish(updateJ1, `{"status":"REJECTED"}`, 1)
	}()
	if e, err := b.Wait(ctx, "pump-1", "j1", "SUCCEEDED", 5*time.Second); !errors.Is(err, jobsbrokertest.ErrOtherTerminal) || e.Status != "REJECTED" {
		t.Errorf("rejected: %+v, %v; want REJECTED, ErrOtherTerminal", e, err)
	}
}

// call sends an HTTP request to the broker's API and returns the status
// and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminFaults: PUT replaces, POST adds, GET lists with counts, DELETE
// removes one or all; a bad file is refused with its line and changes
// nothing.
func TestAdminFaults(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Preload: onePumpJob})
	url := b.APIURL() + "/admin/faults"
	if code, body := call(t, "PUT", url, "seed: 9\nfaults:\n  - {kind: drop, topic: notify}\n"); code != 200 || !strings.Contains(body, `"seed":9`) {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := call(t, "POST", url, `{"faults":[{"id":"twice","kind":"duplicate","operation":"start-next","count":1}]}`); code != 200 {
		t.Fatalf("POST: %d %s", code, body)
	}
	code, body := call(t, "PUT", url, "faults:\n  - kind: drop\n    topic: notify-nxt\n")
	if code != 400 || !strings.Contains(body, "line 3") || !strings.Contains(body, "notify-nxt") {
		t.Errorf("bad PUT: %d %s", code, body)
	}
	if code, body := call(t, "POST", url, "seed: 3\nfaults: []\n"); code != 400 {
		t.Errorf("POST with a seed: %d %s", code, body)
	}
	dev := brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
	dev.MustAccept(startNext, map[string]any{})
	var listing broker.FaultsListing
	_, body = call(t, "GET", url, "")
	if err := json.Unmarshal([]byte(body), &listing); err != nil || len(listing.Faults) != 2 || listing.Faults[1].ID != "twice" ||
		listing.Faults[1].Fired != 1 || !listing.Faults[1].Spent {
		t.Fatalf("GET: %s (%v)", body, err)
	}
	if code, _ := call(t, "DELETE", url+"?id=twice", ""); code != 200 {
		t.Errorf("DELETE one: %d", code)
	}
	if code, _ := call(t, "DELETE", url+"?id=twice", ""); code != 404 {
		t.Errorf("DELETE a removed one: %d", code)
	}
	if code, body := call(t, "DELETE", url, ""); code != 200 || strings.Contains(body, `"kind"`) {
		t.Errorf("DELETE all: %d %s", code, body)
	}
}

// TestAdminNeedsCredentials: with a credentials file the admin endpoints
// refuse unsigned requests as the control plane does.
func TestAdminNeedsCredentials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(file, []byte("[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Config: func(c *broker.Config) { c.CredentialsFile = file }})
	for _, path := range []string{"/admin/faults", "/admin/transcript?thing=t", "/admin/wait?thing=t&job=j&status=QUEUED"} {
		if code, body := call(t, "GET", b.APIURL()+path, ""); code != http.StatusForbidden || !strings.Contains(body, "MissingAuthenticationToken") {
			t.Errorf("unsigned GET %s: %d %s", path, code, body)
		}
	}
	if code, _ := call(t, "PUT", b.APIURL()+"/admin/faults", "faults: []"); code != http.StatusForbidden {
		t.Errorf("unsigned PUT: %d", code)
	}
}

// TestTranscriptFilesAndEndpoint: with a transcript directory each thing's
// file holds every line as it is recorded, the same lines the endpoint
// serves, and a payload past the limit is cut and marked.
func TestTranscriptFilesAndEndpoint(t *testing.T) {
	dir := t.TempDir()
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Preload: onePumpJob, Config: func(c *broker.Config) {
		c.TranscriptDir, c.TranscriptMaxPayload = dir, 64
	}})
	dev := brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
	dev.MustAccept(startNext, map[string]any{})
	// Read while the broker runs: each line is in the file already.
	f, err := os.Open(filepath.Join(dir, "pump-1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []traffic.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l traffic.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 || lines[0].Direction != traffic.In || lines[1].Topic != startNext+"/accepted" || lines[1].ClientID != "pump-1" {
		t.Fatalf("file lines = %+v", lines)
	}
	if !lines[1].Truncated || len(lines[1].Payload) != 64 || lines[1].Size <= 64 {
		t.Errorf("the reply was not cut at 64 bytes: %+v", lines[1])
	}
	code, body := call(t, "GET", b.APIURL()+"/admin/transcript?thing=pump-1&after=1", "")
	if code != 200 || strings.Count(body, "\n") != 1 || !strings.Contains(body, `"seq":2`) {
		t.Errorf("GET /admin/transcript after 1: %d %s", code, body)
	}
}
