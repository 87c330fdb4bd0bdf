package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// The npm device SDK (aws-iot-device-sdk-v2, with its native aws-crt
// binding) lives in interop/node, installed by interop/node/install.sh from
// the committed package-lock.json. Each test plays one device with one of
// its two jobs clients; see the scripts' headers for the flow.

// TestNodeDeviceSDKv2MQTT5 runs interop/node/jobs-mqtt5.js: IotJobsClientv2,
// the request-response client that subscribes and unsubscribes around every
// request, over MQTT 5.
func TestNodeDeviceSDKv2MQTT5(t *testing.T) {
	runNodeDevice(t, "jobs-mqtt5.js", "node-mqtt5-pump", "IotJobsClientv2")
}

// TestNodeDeviceSDKv2MQTT311 runs interop/node/jobs-mqtt311.js: the older
// IotJobsClient, which subscribes once per topic and puts thingName and
// jobId into every request body, over MQTT 3.1.1.
func TestNodeDeviceSDKv2MQTT311(t *testing.T) {
	runNodeDevice(t, "jobs-mqtt311.js", "node-mqtt311-pump", "IotJobsClient")
}

const (
	nodeDir           = "node"
	nodeInstall       = "run interop/node/install.sh"
	nodeScriptTimeout = 30 * time.Second // the scripts' own deadline
)

// nodeSummary is the JSON line a device script prints on stdout.
type nodeSummary struct {
	Client             string            `json:"client"`
	OK                 bool              `json:"ok"`
	Error              string            `json:"error"`
	TimedOut           bool              `json:"timedOut"`
	SDK                string            `json:"sdk"`
	CRT                string            `json:"crt"`
	Protocol           string            `json:"protocol"`
	LearnedVia         string            `json:"learnedVia"`
	JobDocument        map[string]any    `json:"jobDocument"`
	FinalStatus        string            `json:"finalStatus"`
	FinalStatusDetails map[string]string `json:"finalStatusDetails"`
	FinalVersion       int64             `json:"finalVersion"`
	Updates            []struct {
		Status        string            `json:"status"`
		StatusDetails map[string]string `json:"statusDetails"`
		VersionNumber int64             `json:"versionNumber"`
	} `json:"updates"`
	Rejections struct {
		VersionMismatch  *nodeRejection `json:"versionMismatch"`
		ResourceNotFound *nodeRejection `json:"resourceNotFound"`
	} `json:"rejections"`
	NotifyNext []map[string]any `json:"notifyNext"`
}

// nodeRejection is a rejected request as the client surfaced it: for
// IotJobsClientv2 a ServiceError with modeledError, for IotJobsClient the
// RejectedErrorResponse handed to the .../rejected handler.
type nodeRejection struct {
	Error           string `json:"error"`
	ExpectedVersion int64  `json:"expectedVersion"`
	JobID           string `json:"jobId"`
	ModeledError    struct {
		Code           string `json:"code"`
		Message        string `json:"message"`
		ClientToken    string `json:"clientToken"`
		ExecutionState *struct {
			Status        string            `json:"status"`
			StatusDetails map[string]string `json:"statusDetails"`
			VersionNumber int64             `json:"versionNumber"`
		} `json:"executionState"`
	} `json:"modeledError"`
}

func runNodeDevice(t *testing.T, script, thing, wantClass string) {
	node := Need(t, "node", "install Node.js 18 or later (Debian: apt-get install nodejs npm)")
	Need(t, "npm", "install npm (Debian: apt-get install npm)")
	pinned := nodeModules(t)

	dir := t.TempDir()
	p := brokertest.StartProcess(t, filepath.Join(dir, "data"), "-log-level", "debug")
	api := brokertest.IoTClient(p.APIURL())
	ctx := context.Background()

	jobID := "fw-" + thing
	doc := map[string]any{"operation": "firmware", "version": "2.1.0", "args": []any{"--reboot"}}
	docJSON, _ := json.Marshal(doc)
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{
		JobId:    aws.String(jobID),
		Targets:  []string{brokertest.ThingARN(thing)},
		Document: aws.String(string(docJSON)),
	}); err != nil {
		t.Fatal(err)
	}

	host, port, err := net.SplitHostPort(p.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, nodeScriptTimeout+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, script, "--host", host, "--port", port, "--thing", thing,
		"--job", jobID, "--timeout", fmt.Sprint(nodeScriptTimeout.Seconds()))
	cmd.Dir = nodeDir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("%s ran in %v", script, time.Since(start).Round(time.Millisecond))

	// On any failure, show what the script and the broker said.
	failed := true
	defer func() {
		if failed {
			t.Logf("%s stderr:\n%s", script, stderr.String())
			t.Logf("%s stdout:\n%s", script, stdout.String())
			t.Logf("broker log (store lines left out):\n%s", brokerLog(p))
		}
	}()

	var sum nodeSummary
	line := lastLine(stdout.String())
	if jerr := json.Unmarshal([]byte(line), &sum); jerr != nil {
		t.Fatalf("%s printed no JSON summary (exit: %v, context: %v): %v", script, runErr, runCtx.Err(), jerr)
	}
	if runErr != nil || !sum.OK {
		t.Fatalf("%s failed (exit: %v, timed out: %v): %s", script, runErr, sum.TimedOut, sum.Error)
	}

	// What the device saw.
	if !strings.Contains(sum.Client, wantClass+" ") {
		t.Errorf("client = %q, want %s", sum.Client, wantClass)
	}
	if sum.SDK != pinned["aws-iot-device-sdk-v2"] || sum.CRT != pinned["aws-crt"] {
		t.Errorf("the script ran aws-iot-device-sdk-v2 %s with aws-crt %s, package.json pins %v: %s",
			sum.SDK, sum.CRT, pinned, nodeInstall)
	}
	if !reflect.DeepEqual(sum.JobDocument, doc) {
		t.Errorf("the device got job document %v, want %v", sum.JobDocument, doc)
	}
	// The final report carries a handler's output with its line breaks,
	// as the AWS IoT Device Client sends it.
	wantDetails := map[string]string{"progress": "100", "result": "ok", "stdout": "line one\nline two\n"}
	if sum.FinalStatus != "SUCCEEDED" || !maps.Equal(sum.FinalStatusDetails, wantDetails) {
		t.Errorf("the device ended with %s %v, want SUCCEEDED %v", sum.FinalStatus, sum.FinalStatusDetails, wantDetails)
	}
	var inProgress int
	for _, u := range sum.Updates {
		if u.Status == "IN_PROGRESS" && u.StatusDetails["progress"] != "" {
			inProgress++
		}
	}
	if inProgress < 1 || len(sum.Updates) == 0 || sum.Updates[len(sum.Updates)-1].Status != "SUCCEEDED" {
		t.Errorf("updates = %+v, want IN_PROGRESS with progress, then SUCCEEDED", sum.Updates)
	}
	if len(sum.NotifyNext) == 0 {
		t.Errorf("the device saw no notify-next after its job finished")
	}

	// The rejections, as the client's own error shape carries them.
	vm := sum.Rejections.VersionMismatch
	switch {
	case vm == nil:
		t.Errorf("no VersionMismatch case in the summary")
	case vm.ModeledError.Code != "VersionMismatch":
		t.Errorf("stale expectedVersion %d: code %q, want VersionMismatch", vm.ExpectedVersion, vm.ModeledError.Code)
	case vm.ModeledError.ExecutionState == nil || vm.ModeledError.ExecutionState.VersionNumber != vm.ExpectedVersion+1:
		t.Errorf("VersionMismatch executionState = %+v, want versionNumber %d", vm.ModeledError.ExecutionState, vm.ExpectedVersion+1)
	}
	nf := sum.Rejections.ResourceNotFound
	switch {
	case nf == nil:
		t.Errorf("no ResourceNotFound case in the summary")
	case nf.ModeledError.Code != "ResourceNotFound":
		t.Errorf("update of unknown job %s: code %q, want ResourceNotFound", nf.JobID, nf.ModeledError.Code)
	case nf.ModeledError.ExecutionState != nil:
		t.Errorf("ResourceNotFound carries executionState %+v; AWS sends it only with VersionMismatch and InvalidStateTransition", nf.ModeledError.ExecutionState)
	}
	wantError := map[string]string{"IotJobsClientv2": "ServiceError", "IotJobsClient": "RejectedErrorResponse"}[wantClass]
	for _, r := range []*nodeRejection{vm, nf} {
		if r != nil && (r.Error != wantError || r.ModeledError.ClientToken == "" || r.ModeledError.Message == "") {
			t.Errorf("rejection %+v: want a %s with code, message and the echoed clientToken", r, wantError)
		}
	}

	// What the operator sees through the control plane.
	brokertest.Eventually(t, "the job completes", func() error {
		out, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String(jobID)})
		if err != nil {
			return err
		}
		pd := out.Job.JobProcessDetails
		if out.Job.Status != iottypes.JobStatusCompleted || pd == nil || aws.ToInt32(pd.NumberOfSucceededThings) != 1 {
			return fmt.Errorf("job %s, process details %+v", out.Job.Status, pd)
		}
		return nil
	})
	ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String(jobID), ThingName: aws.String(thing)})
	if err != nil {
		t.Fatal(err)
	}
	e := ex.Execution
	if e.Status != iottypes.JobExecutionStatusSucceeded {
		t.Errorf("control plane: execution is %s, want SUCCEEDED", e.Status)
	}
	if e.StatusDetails == nil || !maps.Equal(e.StatusDetails.DetailsMap, sum.FinalStatusDetails) {
		t.Errorf("control plane: statusDetails %+v, the device reported %v", e.StatusDetails, sum.FinalStatusDetails)
	}
	if e.VersionNumber != sum.FinalVersion {
		t.Errorf("control plane: versionNumber %d, the device reported %d", e.VersionNumber, sum.FinalVersion)
	}
	if t.Failed() {
		return
	}
	failed = false
	t.Logf("%s (%s %s, aws-crt %s) learned of the job via %s; rejections: %s, %s",
		sum.Client, sum.Protocol, sum.SDK, sum.CRT, sum.LearnedVia, vm.ModeledError.Code, nf.ModeledError.Code)
}

// nodeModules skips (fails under CI=true) unless interop/node/node_modules
// holds every package package.json pins, and returns the pinned versions.
func nodeModules(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(nodeDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct{ Dependencies map[string]string }
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatal(err)
	}
	for name := range pkg.Dependencies {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", name, "package.json")); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if os.Getenv("CI") == "true" {
				t.Fatalf("interop/node/node_modules has no %s (CI=true): %s", name, nodeInstall)
			}
			t.Skipf("interop/node/node_modules has no %s: %s", name, nodeInstall)
		}
	}
	return pkg.Dependencies
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// brokerLog is the broker's log without the store's debug chatter.
func brokerLog(p *brokertest.Process) string {
	var keep []string
	for _, l := range strings.Split(p.Logs(), "\n") {
		if !strings.Contains(l, `"msg":"badger"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
