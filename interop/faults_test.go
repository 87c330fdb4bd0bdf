package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// nodeFaultSummary is what interop/node/faults-mqtt5.js prints.
type nodeFaultSummary struct {
	OK                 bool   `json:"ok"`
	Error              string `json:"error"`
	ConnectionFailures int    `json:"connectionFailures"`
	Disconnections     int    `json:"disconnections"`
	StartNext          struct {
		OK    bool   `json:"ok"`
		MS    int64  `json:"ms"`
		Error string `json:"error"`
	} `json:"startNext"`
	StartNextAgain *struct {
		OK bool `json:"ok"`
	} `json:"startNextAgain"`
	Update struct {
		OK    bool   `json:"ok"`
		Code  string `json:"code"`
		Error string `json:"error"`
	} `json:"update"`
	StatusAfterFailure string  `json:"statusAfterFailure"`
	NotifyEvents       []int64 `json:"notifyEvents"`
	NotifyNextEvents   []struct {
		MS    int64  `json:"ms"`
		JobID string `json:"jobId"`
	} `json:"notifyNextEvents"`
	QueuedAfter []string `json:"queuedAfter"`
}

// TestNodeFaults runs the npm v2 jobs client against each kind of fault:
// the client sees exactly that fault, the transcript records it, and the
// metric counts it.
func TestNodeFaults(t *testing.T) {
	node := Need(t, "node", "install Node.js 18 or later (Debian: apt-get install nodejs npm)")
	nodeModules(t)
	cases := []struct {
		name, kind, fault string
		check             func(t *testing.T, s nodeFaultSummary)
	}{
		{"reject", "reject", "{kind: reject, operation: update, code: VersionMismatch, count: 1}", func(t *testing.T, s nodeFaultSummary) {
			if s.Update.OK || s.Update.Code != "VersionMismatch" || s.StatusAfterFailure != "IN_PROGRESS" {
				t.Errorf("update = %+v then %s; want a VersionMismatch ServiceError and the update not run", s.Update, s.StatusAfterFailure)
			}
		}},
		{"drop", "drop", "{kind: drop, operation: start-next, count: 1}", func(t *testing.T, s nodeFaultSummary) {
			if s.StartNext.OK || s.StartNextAgain == nil || !s.StartNextAgain.OK {
				t.Errorf("start-next = %+v, again %+v; want a timeout, then the started execution", s.StartNext, s.StartNextAgain)
			}
		}},
		{"duplicate", "duplicate", "{kind: duplicate, operation: start-next}", func(t *testing.T, s nodeFaultSummary) {
			if !s.StartNext.OK || s.StartNextAgain != nil || !s.Update.OK {
				t.Errorf("start-next = %+v, update %+v; want both answered once", s.StartNext, s.Update)
			}
		}},
		{"delay", "delay", "{kind: delay, operation: start-next, delay: 1s}", func(t *testing.T, s nodeFaultSummary) {
			if !s.StartNext.OK || s.StartNext.MS < 1000 {
				t.Errorf("start-next = %+v; want answered after at least 1 s", s.StartNext)
			}
		}},
		{"disconnect", "disconnect", "{kind: disconnect, operation: update, count: 1}", func(t *testing.T, s nodeFaultSummary) {
			if s.Update.OK || s.Disconnections != 1 || s.StatusAfterFailure != "SUCCEEDED" {
				t.Errorf("update = %+v, %d disconnections, then %s; want no reply, one disconnection, the update committed",
					s.Update, s.Disconnections, s.StatusAfterFailure)
			}
		}},
		{"refuse-connect", "refuse-connect", "{kind: refuse-connect, count: 1}", func(t *testing.T, s nodeFaultSummary) {
			if s.ConnectionFailures != 1 {
				t.Errorf("%d connection failures, want 1 before the client got in", s.ConnectionFailures)
			}
		}},
		{"drop-notify-next", "drop", "{kind: drop, topic: notify-next, count: 1}", func(t *testing.T, s nodeFaultSummary) {
			if len(s.NotifyNextEvents) != 0 || len(s.NotifyEvents) != 1 {
				t.Errorf("notify-next %+v, notify %v; want no notify-next and one notify", s.NotifyNextEvents, s.NotifyEvents)
			}
		}},
		{"duplicate-notify", "duplicate", "{kind: duplicate, topic: notify}", func(t *testing.T, s nodeFaultSummary) {
			if len(s.NotifyEvents) != 2 || len(s.NotifyNextEvents) != 1 {
				t.Errorf("notify %v, notify-next %+v; want two notify and one notify-next", s.NotifyEvents, s.NotifyNextEvents)
			}
		}},
		{"delay-notify-next", "delay", "{kind: delay, topic: notify-next, delay: 800ms}", func(t *testing.T, s nodeFaultSummary) {
			if len(s.NotifyNextEvents) != 1 || s.NotifyNextEvents[0].MS < 800 || s.NotifyNextEvents[0].JobID != "j1-next" {
				t.Errorf("notify-next %+v; want j1-next at least 800 ms after the update", s.NotifyNextEvents)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, p := runNodeFault(t, node, c.name, "faults:\n  - "+c.fault+"\n")
			c.check(t, s)
			lines := transcriptFaults(t, p, "node-pump")
			if len(lines) != 1 || !strings.Contains(lines[0], `"kind":"`+c.kind+`"`) {
				t.Errorf("transcript fault lines = %q, want one %s", lines, c.kind)
			}
			if n := firedMetric(t, p, c.kind); n != 1 {
				t.Errorf("jobsbroker_faults_fired_total{kind=%q} = %d, want 1", c.kind, n)
			}
			if t.Failed() {
				t.Logf("broker log:\n%s", brokerLog(p))
			}
		})
	}
}

// runNodeFault starts a broker in memory with two jobs queued for
// node-pump and the fault file, and runs the device script against it.
func runNodeFault(t *testing.T, node, name, faultFile string) (nodeFaultSummary, *brokertest.Process) {
	t.Helper()
	dir := t.TempDir()
	preload := filepath.Join(dir, "preload.yaml")
	faults := filepath.Join(dir, "faults.yaml")
	target := "arn:aws:iot:us-east-1:123456789012:thing/node-pump"
	writeTestFile(t, preload, fmt.Sprintf("jobs:\n  - {jobId: j1, targets: [%s], document: {op: a}}\n  - {jobId: j1-next, targets: [%s], document: {op: b}}\n", target, target))
	writeTestFile(t, faults, faultFile)
	p := brokertest.StartProcess(t, ":memory:", "-preload", preload, "-faults", faults, "-transcripts", "-log-level", "debug")
	host, port, err := net.SplitHostPort(p.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeScriptTimeout+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "faults-mqtt5.js", "--host", host, "--port", port, "--thing", "node-pump",
		"--job", "j1", "--timeout", fmt.Sprint(nodeScriptTimeout.Seconds()))
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "FAULT="+name)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var s nodeFaultSummary
	if err := json.Unmarshal([]byte(lastLine(stdout.String())), &s); err != nil || runErr != nil || !s.OK {
		t.Logf("faults-mqtt5.js stderr:\n%s", stderr.String())
		t.Logf("broker log:\n%s", brokerLog(p))
		t.Fatalf("faults-mqtt5.js failed (exit %v, summary error: %v): %s", runErr, err, s.Error)
	}
	return s, p
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// transcriptFaults returns the fault lines of thing's transcript.
func transcriptFaults(t *testing.T, p *brokertest.Process, thing string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(get(t, p.APIURL()+"/admin/transcript?thing="+thing), "\n") {
		if strings.Contains(l, `"direction":"fault"`) {
			out = append(out, l)
		}
	}
	return out
}

// firedMetric reads jobsbroker_faults_fired_total{kind}.
func firedMetric(t *testing.T, p *brokertest.Process, kind string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^jobsbroker_faults_fired_total\{kind="` + regexp.QuoteMeta(kind) + `"\} (\d+)$`).
		FindStringSubmatch(get(t, p.APIURL()+"/metrics"))
	if m == nil {
		t.Fatalf("no jobsbroker_faults_fired_total{kind=%q}", kind)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}
