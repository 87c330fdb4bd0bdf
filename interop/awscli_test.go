package interop

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// cli runs Debian's AWS CLI and returns its exit code, stdout and stderr.
type cli struct {
	t    *testing.T
	path string
	env  []string
}

func (c cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	cmd := exec.Command(c.path, append(args, "--output", "json")...)
	cmd.Env = c.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("aws %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

func (c cli) json(args ...string) map[string]any {
	c.t.Helper()
	code, out, errOut := c.run(args...)
	if code != 0 {
		c.t.Fatalf("aws %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	var v map[string]any
	if strings.TrimSpace(out) == "" {
		return v
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// fails runs a command that must fail with the given AWS error code.
func (c cli) fails(code string, args ...string) {
	c.t.Helper()
	exit, _, errOut := c.run(args...)
	if exit == 0 || !strings.Contains(errOut, "("+code+")") {
		c.t.Fatalf("aws %s: exit %d, stderr %q; want %s", strings.Join(args, " "), exit, errOut, code)
	}
}

// TestAWSCLI runs a whole job flow with Debian's AWS CLI (2.9.x): the
// operator with `aws iot`, the device with `aws iot-jobs-data`.
func TestAWSCLI(t *testing.T) {
	path := Need(t, "/usr/bin/aws", "apt-get install awscli (Debian's AWS CLI 2.9)")
	p := brokertest.StartProcess(t, t.TempDir())
	home := t.TempDir()
	c := cli{t: t, path: path, env: append(os.Environ(),
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_PAGER=", "HOME="+home, "AWS_CONFIG_FILE="+home+"/config", "AWS_SHARED_CREDENTIALS_FILE="+home+"/credentials",
		"AWS_MAX_ATTEMPTS=1")}
	iot := []string{"--endpoint-url", "http://" + p.APIAddr}
	jobs := []string{"--endpoint-url", "http://" + p.JobsAddr}
	op := func(args ...string) []string { return append(append([]string{"iot"}, args...), iot...) }
	dev := func(args ...string) []string { return append(append([]string{"iot-jobs-data"}, args...), jobs...) }

	created := c.json(op("create-job", "--job-id", "cli-1", "--targets", brokertest.ThingARN("cli-dev"),
		"--document", `{"operation":"reboot"}`, "--description", "from the CLI",
		"--timeout-config", "inProgressTimeoutInMinutes=60")...)
	if created["jobArn"] != "arn:aws:iot:us-east-1:123456789012:job/cli-1" {
		t.Fatalf("create-job = %v", created)
	}
	pending := c.json(dev("get-pending-job-executions", "--thing-name", "cli-dev")...)
	if q := pending["queuedJobs"].([]any); len(q) != 1 || q[0].(map[string]any)["jobId"] != "cli-1" {
		t.Fatalf("pending = %v", pending)
	}
	started := c.json(dev("start-next-pending-job-execution", "--thing-name", "cli-dev", "--status-details", "step=download",
		"--step-timeout-in-minutes", "10")...)
	e := started["execution"].(map[string]any)
	if e["status"] != "IN_PROGRESS" || e["jobDocument"] != `{"operation":"reboot"}` || e["versionNumber"] != float64(2) {
		t.Fatalf("start-next = %v", started)
	}
	c.json(dev("update-job-execution", "--thing-name", "cli-dev", "--job-id", "cli-1", "--status", "IN_PROGRESS",
		"--status-details", "progress=50", "--expected-version", "2")...)
	described := c.json(dev("describe-job-execution", "--thing-name", "cli-dev", "--job-id", "$next", "--no-include-job-document")...)
	if e := described["execution"].(map[string]any); e["versionNumber"] != float64(3) || e["jobDocument"] != nil {
		t.Fatalf("describe $next = %v", described)
	}
	c.fails("InvalidStateTransitionException", dev("update-job-execution", "--thing-name", "cli-dev", "--job-id", "cli-1",
		"--status", "SUCCEEDED", "--expected-version", "1")...)
	c.fails("ResourceNotFoundException", dev("describe-job-execution", "--thing-name", "cli-dev", "--job-id", "nope")...)
	state := c.json(dev("update-job-execution", "--thing-name", "cli-dev", "--job-id", "cli-1", "--status", "SUCCEEDED",
		"--status-details", "progress=100", "--include-job-execution-state")...)
	if state["executionState"].(map[string]any)["status"] != "SUCCEEDED" {
		t.Fatalf("final update = %v", state)
	}

	job := c.json(op("describe-job", "--job-id", "cli-1")...)["job"].(map[string]any)
	pd := job["jobProcessDetails"].(map[string]any)
	if job["status"] != "COMPLETED" || pd["numberOfSucceededThings"] != float64(1) || job["description"] != "from the CLI" {
		t.Fatalf("describe-job = %v", job)
	}
	ex := c.json(op("describe-job-execution", "--job-id", "cli-1", "--thing-name", "cli-dev")...)["execution"].(map[string]any)
	if ex["status"] != "SUCCEEDED" || ex["statusDetails"].(map[string]any)["detailsMap"].(map[string]any)["progress"] != "100" {
		t.Fatalf("describe-job-execution = %v", ex)
	}
	list := c.json(op("list-job-executions-for-job", "--job-id", "cli-1")...)
	if s := list["executionSummaries"].([]any); len(s) != 1 {
		t.Fatalf("list-job-executions-for-job = %v", list)
	}
	if doc := c.json(op("get-job-document", "--job-id", "cli-1")...); doc["document"] != `{"operation":"reboot"}` {
		t.Fatalf("get-job-document = %v", doc)
	}

	// Cancel and delete a second job.
	c.json(op("create-job", "--job-id", "cli-2", "--targets", brokertest.ThingARN("cli-dev"), "--document", `{"operation":"x"}`)...)
	c.json(op("cancel-job", "--job-id", "cli-2", "--reason-code", "OPERATOR", "--comment", "not needed")...)
	job = c.json(op("describe-job", "--job-id", "cli-2")...)["job"].(map[string]any)
	if job["status"] != "CANCELED" || job["reasonCode"] != "OPERATOR" || job["jobProcessDetails"].(map[string]any)["numberOfCanceledThings"] != float64(1) {
		t.Fatalf("canceled job = %v", job)
	}
	c.fails("ResourceAlreadyExistsException", op("create-job", "--job-id", "cli-2", "--targets", brokertest.ThingARN("x"), "--document", `{}`)...)
	c.json(op("delete-job", "--job-id", "cli-2")...)
	jobsList := c.json(op("list-jobs")...)
	for _, j := range jobsList["jobs"].([]any) {
		if j.(map[string]any)["jobId"] == "cli-2" {
			t.Fatalf("deleted job still listed: %v", jobsList)
		}
	}
	c.fails("ResourceNotFoundException", op("describe-job", "--job-id", "nope")...)
	c.fails("InvalidRequestException", op("create-job", "--job-id", "bad", "--targets", "not-an-arn", "--document", `{}`)...)
}
