package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// The AWS SDK for JavaScript v3 (interop/node/signatures.js) and boto3
// (interop/python/signatures.py) are driven by a plan: the broker's
// endpoints, the right credentials, a job queued for a thing and the
// failures of signatures_test.go. The scripts report what their SDK raised;
// the tests below hold it to what the SDK raises against AWS, where the
// error type is the x-amzn-ErrorType of the front door's 403, which
// neither API's model declares, so both SDKs raise their generic service
// error carrying that name.

// signaturePlan is the JSON the scripts read on stdin.
type signaturePlan struct {
	API    string        `json:"api"`
	Data   string        `json:"data"`
	Key    string        `json:"key"`
	Secret string        `json:"secret"`
	Thing  string        `json:"thing"`
	Job    string        `json:"job"`
	Cases  []planFailure `json:"cases"`
}

type planFailure struct {
	Name        string `json:"name"`
	Key         string `json:"key,omitempty"`
	Secret      string `json:"secret,omitempty"`
	Region      string `json:"region,omitempty"`
	SkewSeconds int    `json:"skewSeconds,omitempty"`
}

// signedBroker starts the broker binary with a credentials file and queues
// one job for a thing, and returns the plan for the scripts.
func signedBroker(t *testing.T) signaturePlan {
	t.Helper()
	p := startSignedProcess(t)
	plan := signaturePlan{API: p.APIURL(), Data: "http://" + p.JobsAddr, Key: signedKey, Secret: signedSecret,
		Thing: "dev-sig-1", Job: "sig-job-1"}
	api := iot.New(iot.Options{Region: "us-east-1", BaseEndpoint: aws.String(plan.API), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(signedKey, signedSecret, "")})
	if _, err := api.CreateJob(context.Background(), &iot.CreateJobInput{JobId: aws.String(plan.Job),
		Targets: []string{brokertest.ThingARN(plan.Thing)}, Document: aws.String(`{"operation":"reboot"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, f := range failures {
		plan.Cases = append(plan.Cases, planFailure{Name: f.name, Key: f.key, Secret: f.secret, Region: f.region,
			SkewSeconds: int(f.skew / time.Second)})
	}
	return plan
}

// runPlan runs a script with the plan on stdin, in an environment without
// the caller's AWS settings, and decodes the JSON line it prints.
func runPlan(t *testing.T, plan signaturePlan, out any, dir string, name string, args ...string) {
	t.Helper()
	in, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = cleanAWSEnv(t.TempDir())
	cmd.Stdin = bytes.NewReader(in)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v (context: %v)\nstderr:\n%s\nstdout:\n%s", name, args, err, ctx.Err(), stderr.String(), stdout.String())
	}
	if err := json.Unmarshal([]byte(lastLine(stdout.String())), out); err != nil {
		t.Fatalf("%s %v printed no JSON summary: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.String(), stderr.String())
	}
	t.Logf("%s %v: %s", name, args, lastLine(stdout.String()))
}

// cleanAWSEnv is the environment without AWS_* settings (a profile, a
// region, retry settings), with home as HOME and no shared config files,
// so the scripts use only what the plan says.
func cleanAWSEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"), "AWS_EC2_METADATA_DISABLED=true")
}

// jsRaised is an error as the JavaScript SDK v3 raised it.
type jsRaised struct {
	Name             string `json:"name"`
	Fault            string `json:"fault"`
	Status           int    `json:"status"`
	Attempts         int    `json:"attempts"`
	Message          string `json:"message"`
	ServiceException bool   `json:"serviceException"`
	Constructor      string `json:"constructor"`
}

type jsCall struct {
	OK       bool      `json:"ok"`
	Attempts int       `json:"attempts"`
	Error    *jsRaised `json:"error"`
}

type jsSummary struct {
	Node  string            `json:"node"`
	SDK   map[string]string `json:"sdk"`
	Cases []struct {
		Name    string `json:"name"`
		Control jsCall `json:"control"`
		Data    jsCall `json:"data"`
	} `json:"cases"`
	Signed        signedCalls `json:"signed"`
	SkewCorrected struct {
		Control skewCorrection `json:"control"`
		Data    skewCorrection `json:"data"`
	} `json:"skewCorrected"`
}

// signedCalls are the correctly signed calls a script made, each with
// what it returned or the error its SDK raised.
type signedCalls struct {
	ListJobs                signedCall `json:"listJobs"`
	DescribeJob             signedCall `json:"describeJob"`
	GetPendingJobExecutions signedCall `json:"getPendingJobExecutions"`
}

type signedCall struct {
	OK     bool     `json:"ok"`
	Error  any      `json:"error"`
	JobIDs []string `json:"jobIds"` // ListJobs
	JobID  string   `json:"jobId"`  // DescribeJob
	Status string   `json:"status"` // DescribeJob
	Queued []string `json:"queued"` // GetPendingJobExecutions
}

// checkSigned checks the correctly signed calls: the job is listed,
// described IN_PROGRESS and the only one queued for the thing.
func checkSigned(t *testing.T, s signedCalls, job string) {
	t.Helper()
	if !s.ListJobs.OK || !slices.Contains(s.ListJobs.JobIDs, job) {
		t.Errorf("signed ListJobs: %+v, want %s listed", s.ListJobs, job)
	}
	if !s.DescribeJob.OK || s.DescribeJob.JobID != job || s.DescribeJob.Status != "IN_PROGRESS" {
		t.Errorf("signed DescribeJob: %+v, want %s IN_PROGRESS", s.DescribeJob, job)
	}
	if !s.GetPendingJobExecutions.OK || !slices.Equal(s.GetPendingJobExecutions.Queued, []string{job}) {
		t.Errorf("signed GetPendingJobExecutions: %+v, want only %s queued", s.GetPendingJobExecutions, job)
	}
}

type skewCorrection struct {
	jsCall
	OffsetBeforeSeconds float64 `json:"offsetBeforeSeconds"`
	OffsetAfterSeconds  float64 `json:"offsetAfterSeconds"`
}

// TestSignatureFailuresJSv3: the AWS SDK for JavaScript v3 raises, for each
// signature failure, what it raises against AWS: its client's
// ServiceException (IoTServiceException, IoTJobsDataPlaneServiceException)
// named after AWS's x-amzn-ErrorType, $fault "client",
// $metadata.httpStatusCode 403 and AWS's message. A correctly signed call
// succeeds, and a client whose clock is 10 minutes slow corrects it from
// the refusal's Date header and succeeds on its retry, as against AWS.
func TestSignatureFailuresJSv3(t *testing.T) {
	node := Need(t, "node", "install Node.js 18 or later (Debian: apt-get install nodejs npm)")
	Need(t, "npm", "install npm (Debian: apt-get install npm)")
	pinned := nodeModules(t)
	plan := signedBroker(t)
	var sum jsSummary
	runPlan(t, plan, &sum, nodeDir, node, "signatures.js")

	for _, pkg := range []string{"@aws-sdk/client-iot", "@aws-sdk/client-iot-jobs-data-plane"} {
		if sum.SDK[pkg] != pinned[pkg] {
			t.Errorf("the script ran %s %s, package.json pins %s: %s", pkg, sum.SDK[pkg], pinned[pkg], nodeInstall)
		}
	}
	if len(sum.Cases) != len(failures) {
		t.Fatalf("the script reported %d cases, the plan has %d", len(sum.Cases), len(failures))
	}
	check := func(f failure, plane, base string, c jsCall) {
		t.Helper()
		e := c.Error
		if c.OK || e == nil {
			t.Errorf("%s, %s: the call succeeded, want %s", f.name, plane, f.code)
			return
		}
		if e.Name != f.code || e.Fault != "client" || e.Status != http.StatusForbidden || !strings.Contains(e.Message, f.msg) ||
			!e.ServiceException || e.Constructor != base || e.Attempts != 1 {
			t.Errorf("%s, %s: raised %+v, want a %s named %s, $fault client, status 403, one attempt, message %q",
				f.name, plane, *e, base, f.code, f.msg)
		}
	}
	for i, f := range failures {
		c := sum.Cases[i]
		check(f, "control plane (ListJobs)", "IoTServiceException", c.Control)
		check(f, "data plane (GetPendingJobExecutions)", "IoTJobsDataPlaneServiceException", c.Data)
	}

	checkSigned(t, sum.Signed, plan.Job)

	for plane, sc := range map[string]skewCorrection{"control plane": sum.SkewCorrected.Control, "data plane": sum.SkewCorrected.Data} {
		// The broker runs on this machine's clock: corrected, the offset is
		// the Date header's rounding, under a few seconds.
		if !sc.OK || sc.Attempts != 2 || sc.OffsetAfterSeconds < -5 || sc.OffsetAfterSeconds > 5 {
			t.Errorf("%s, clock %v s off with retries: %+v, want success on the second attempt with the offset corrected to about 0",
				plane, sc.OffsetBeforeSeconds, sc)
		}
	}
}

// pyRaised is a botocore ClientError: its class, e.response['Error'] and
// the HTTP status.
type pyRaised struct {
	Class   string `json:"class"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
	Str     string `json:"str"`
}

type pyCall struct {
	OK    bool      `json:"ok"`
	Error *pyRaised `json:"error"`
}

type pySummary struct {
	Python   string `json:"python"`
	Boto3    string `json:"boto3"`
	Botocore string `json:"botocore"`
	Signer   string `json:"signer"` // botocore's SigV4 signer: SigV4Auth, or CrtSigV4Auth with awscrt
	Cases    []struct {
		Name    string `json:"name"`
		Control pyCall `json:"control"`
		Data    pyCall `json:"data"`
	} `json:"cases"`
	Signed signedCalls `json:"signed"`
}

// boto3Pythons returns the Python interpreters that import boto3: Debian's
// /usr/bin/python3 (python3-boto3, installed by .ci/run) and the python3
// on PATH when it is another one. It skips (fails under CI=true) when none
// does.
func boto3Pythons(t *testing.T) []string {
	t.Helper()
	var found []string
	var why []string
	for _, name := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(name)
		if err != nil {
			why = append(why, name+": "+err.Error())
			continue
		}
		// The interpreter itself (not a pyenv shim), and whether it has boto3.
		out, err := exec.Command(path, "-c", "import sys, boto3; print(sys.executable)").Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = errors.New(strings.TrimSpace(lastLine(string(ee.Stderr))))
			}
			why = append(why, name+": "+err.Error())
			continue
		}
		exe := strings.TrimSpace(string(out))
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		if !slices.Contains(found, exe) {
			found = append(found, exe)
		}
	}
	if len(found) == 0 {
		msg := "no python3 with boto3 (" + strings.Join(why, "; ") + "): apt-get install python3-boto3"
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true)", msg)
		}
		t.Skip(msg)
	}
	return found
}

// TestSignatureFailuresBoto3: boto3's iot and iot-jobs-data clients raise,
// for each signature failure, what they raise against AWS: a ClientError
// (neither model declares these codes) whose e.response['Error']['Code'] is
// AWS's x-amzn-ErrorType, with status 403 and AWS's message. A correctly
// signed call succeeds. It runs every boto3 it finds: Debian's, and the
// one of the python3 on PATH when that is another.
func TestSignatureFailuresBoto3(t *testing.T) {
	pythons := boto3Pythons(t)
	plan := signedBroker(t)
	for _, python := range pythons {
		t.Run(strings.TrimPrefix(python, "/"), func(t *testing.T) {
			var sum pySummary
			runPlan(t, plan, &sum, "python", python, "signatures.py")
			t.Logf("boto3 %s (botocore %s, signer %s) on Python %s", sum.Boto3, sum.Botocore, sum.Signer, sum.Python)
			if len(sum.Cases) != len(failures) {
				t.Fatalf("the script reported %d cases, the plan has %d", len(sum.Cases), len(failures))
			}
			check := func(f failure, plane string, c pyCall) {
				t.Helper()
				e := c.Error
				if c.OK || e == nil {
					t.Errorf("%s, %s: the call succeeded, want %s", f.name, plane, f.code)
					return
				}
				if e.Class != "ClientError" || e.Code != f.code || e.Status != http.StatusForbidden || !strings.Contains(e.Message, f.msg) {
					t.Errorf("%s, %s: raised %+v, want ClientError with Error.Code %s, status 403, message %q", f.name, plane, *e, f.code, f.msg)
				}
			}
			for i, f := range failures {
				c := sum.Cases[i]
				check(f, "iot list_jobs", c.Control)
				check(f, "iot-jobs-data get_pending_job_executions", c.Data)
			}
			checkSigned(t, sum.Signed, plan.Job)
		})
	}
}
