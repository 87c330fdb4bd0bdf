package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestNodeDeviceSDKv2PersistentSession runs interop/node/jobs-persistent.js:
// the npm SDK's IotJobsClient over MQTT 3.1.1 with clean session off stays
// connected while the broker is stopped (SIGTERM, or SIGKILL) and started
// again on the same address, reconnects by itself without subscribing
// again, finds its session present, hears of a job created after the
// restart through its notify-next subscription, and runs the job to
// SUCCEEDED.
func TestNodeDeviceSDKv2PersistentSession(t *testing.T) {
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(how, func(t *testing.T) { runPersistentNodeDevice(t, how) })
	}
}

func runPersistentNodeDevice(t *testing.T, how string) {
	node := Need(t, "node", "install Node.js 18 or later (Debian: apt-get install nodejs npm)")
	Need(t, "npm", "install npm (Debian: apt-get install npm)")
	pinned := nodeModules(t)

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	p := brokertest.StartProcess(t, data)
	host, port, err := net.SplitHostPort(p.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	thing := "node-persistent-" + strings.ToLower(how)
	jobID := "fw-" + thing

	ctx, cancel := context.WithTimeout(context.Background(), 2*nodeScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "jobs-persistent.js", "--host", host, "--port", port, "--thing", thing,
		"--job", jobID, "--timeout", fmt.Sprint((2 * nodeScriptTimeout).Seconds()))
	cmd.Dir = nodeDir
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	failed := true
	var stdout []string
	defer func() {
		if failed {
			t.Logf("jobs-persistent.js stderr:\n%s", stderr.String())
			t.Logf("jobs-persistent.js stdout:\n%s", strings.Join(stdout, "\n"))
			t.Logf("broker log (store lines left out):\n%s", brokerLog(p))
		}
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	ready := false
	for !ready {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("jobs-persistent.js ended before it was subscribed")
			}
			stdout = append(stdout, l)
			ready = l == `{"ready":true}`
		case <-ctx.Done():
			t.Fatal("jobs-persistent.js did not get ready")
		}
	}

	// Stop the broker under the connected device and start it again on
	// the same address, then create the job.
	if how == "SIGKILL" {
		p.Kill()
	} else if code := p.Terminate(20 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	p = brokertest.StartProcess(t, data, "-mqtt-addr", p.MQTTAddr)
	api := brokertest.IoTClient(p.APIURL())
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String(jobID), Targets: []string{brokertest.ThingARN(thing)},
		Document: aws.String(`{"operation":"firmware"}`)}); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		stdout = append(stdout, l)
	}
	runErr := cmd.Wait()

	var sum struct {
		nodeSummary
		SessionPresentAtFirst      bool `json:"sessionPresentAtFirst"`
		SessionPresentAfterRestart bool `json:"sessionPresentAfterRestart"`
		NotifyNextForJob           int  `json:"notifyNextForJob"`
	}
	if len(stdout) == 0 || json.Unmarshal([]byte(stdout[len(stdout)-1]), &sum) != nil {
		t.Fatalf("jobs-persistent.js printed no JSON summary (exit: %v)", runErr)
	}
	if runErr != nil || !sum.OK {
		t.Fatalf("jobs-persistent.js failed (exit: %v, timed out: %v): %s", runErr, sum.TimedOut, sum.Error)
	}
	if sum.SDK != pinned["aws-iot-device-sdk-v2"] || sum.CRT != pinned["aws-crt"] {
		t.Errorf("the script ran aws-iot-device-sdk-v2 %s with aws-crt %s, package.json pins %v: %s", sum.SDK, sum.CRT, pinned, nodeInstall)
	}
	if !sum.SessionPresentAfterRestart || sum.LearnedVia != "notify-next" || sum.NotifyNextForJob != 1 {
		t.Errorf("session present after the restart %v, learned via %q, notify-next for the job %d times; want true, notify-next, once",
			sum.SessionPresentAfterRestart, sum.LearnedVia, sum.NotifyNextForJob)
	}
	ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String(jobID), ThingName: aws.String(thing)})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Execution.Status != iottypes.JobExecutionStatusSucceeded || ex.Execution.VersionNumber != sum.FinalVersion {
		t.Errorf("control plane: execution %s version %d, the device reported SUCCEEDED at %d",
			ex.Execution.Status, ex.Execution.VersionNumber, sum.FinalVersion)
	}
	if !t.Failed() {
		failed = false
	}
}
