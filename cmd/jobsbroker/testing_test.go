package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/jobsbrokertest"
)

// TestWait: jobsbroker wait exits 0 when the execution reaches the status,
// 1 when it ends in another terminal status and 2 when the timeout passes,
// printing the execution.
func TestWait(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Preload: `
jobs:
  - jobId: done
    targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1]
    document: {}
    executions: [{thingName: pump-1, status: SUCCEEDED}]
  - jobId: failed
    targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1]
    document: {}
    executions: [{thingName: pump-1, status: FAILED, versionNumber: 4}]
  - jobId: waiting
    targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1]
    document: {}
`})
	for _, c := range []struct {
		job, timeout string
		code         int
		out, errOut  string
	}{
		{"done", "5s", 0, `"status":"SUCCEEDED"`, ""},
		{"failed", "5s", 1, `"status":"FAILED"`, "ended FAILED, not SUCCEEDED"},
		{"waiting", "300ms", 2, "", "timed out after 300ms"},
	} {
		t.Run(c.job, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "wait", "--api", b.APIURL(), "--thing", "pump-1", "--job", c.job,
				"--status", "SUCCEEDED", "--timeout", c.timeout)
			if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errOut, c.errOut) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, out, errOut, c.code, c.out, c.errOut)
			}
		})
	}
}

// TestWaitBeforeTheBroker: wait keeps asking while nothing listens, and
// times out with the reason.
func TestWaitBeforeTheBroker(t *testing.T) {
	addr := freeAddr(t)
	code, _, errOut := runCLI(t, nil, "wait", "-api", "http://"+addr, "-thing", "t", "-job", "j", "-timeout", "300ms")
	if code != 2 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("exit %d, stderr %q; want 2 and the last error", code, errOut)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestInvalidTestFiles: a preload or fault file that is not valid stops
// the broker before it serves, with the file, line and field at fault; a
// data directory the start would have created is not left behind.
func TestInvalidTestFiles(t *testing.T) {
	for _, c := range []struct {
		name, flag, text string
		want             []string
	}{
		{"preload unknown key", "-preload", "jobs:\n  - jobId: fw-2\n    targets: [arn:aws:iot:us-east-1:123456789012:thing/p]\n    documnt: {}\n",
			[]string{"line 4", "jobs[0] (fw-2).documnt", "unknown key"}},
		{"preload refused by the API", "-preload", "jobs:\n  - jobId: fw-2\n    targets: [arn:aws:iot:us-east-1:123456789012:thing/p]\n    document: {}\n    jobExecutionsRolloutConfig: {maximumPerMinute: 0}\n",
			[]string{"line 5", "jobExecutionsRolloutConfig", "InvalidRequestException"}},
		{"preload state", "-preload", "jobs:\n  - jobId: fw-2\n    targets: [arn:aws:iot:us-east-1:123456789012:thing/p]\n    document: {}\n    executions:\n      - {thingName: p, status: QUEUED, versionNumber: 3}\n",
			[]string{"line 6", "executions[0]", "QUEUED execution is at version 1"}},
		{"fault code", "-faults", "faults:\n  - kind: reject\n    code: VersionMissmatch\n",
			[]string{"line 3", "faults[0]", "VersionMissmatch"}},
		{"fault kind", "-faults", "seed: 1\nfaults:\n  - {kind: explode}\n",
			[]string{"line 3", "faults[0]", `"explode"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writeFile(t, c.text)
			dataDir := filepath.Join(t.TempDir(), "data")
			mqtt := freeAddr(t)
			code, _, errOut := runCLI(t, nil, c.flag, file, "-data-dir", dataDir, "-mqtt-addr", mqtt,
				"-api-addr", "127.0.0.1:0", "-jobs-addr", "127.0.0.1:0")
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, want := range append(c.want, file) {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr %q does not say %q", errOut, want)
				}
			}
			if conn, err := net.DialTimeout("tcp", mqtt, time.Second); err == nil {
				conn.Close()
				t.Error("something listens on the MQTT address")
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("the data directory was left behind: %v", err)
			}
		})
	}
}

// TestPreloadOnDisk: a preload goes into an empty data directory, and a
// second start on the same directory refuses it rather than half-loading.
func TestPreloadOnDisk(t *testing.T) {
	file := writeFile(t, "things:\n  - thingName: pump-1\njobs:\n  - jobId: fw\n    targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1]\n    document: {}\n")
	dataDir := t.TempDir()
	args := []string{"-preload", file, "-data-dir", dataDir, "-mqtt-addr", "127.0.0.1:0", "-api-addr", "127.0.0.1:0", "-jobs-addr", "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- run(ctx, args, env(nil), &syncWriter{w: &out}, io.Discard) }()
	brokertest.Eventually(t, "started", func() error {
		if !strings.Contains(syncRead(&out), "jobsbroker started") {
			return errors.New("not yet")
		}
		return nil
	})
	if !strings.Contains(syncRead(&out), "msg=preloaded things=1") {
		t.Errorf("the log does not report the preload: %s", syncRead(&out))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, nil, args...)
	if code != 1 || !strings.Contains(errOut, "empty store only") {
		t.Errorf("second start: exit %d, stderr %q; want refused", code, errOut)
	}
}
