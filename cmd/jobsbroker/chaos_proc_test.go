package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// diskBroker is the broker binary running as a child process, like
// brokertest.Process, with two differences the full-disk test needs: it
// can run the binary under a command prefix (nsenter, to enter the mount
// namespace that holds a small filesystem), and a broker that dies while
// starting is an error to report, not a t.Fatal. Its output is captured
// through a writer, so that the logs of a crash are complete once the
// process has exited.
type diskBroker struct {
	cmd      *exec.Cmd
	MQTTAddr string
	APIAddr  string
	JobsAddr string
	exited   chan struct{}
	out      *lineLog
}

// lineLog collects a process's output line by line and reports the
// broker's "jobsbroker started" line.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	started chan map[string]any
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.lines = append(l.lines, line)
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["msg"] == "jobsbroker started" {
			select {
			case l.started <- v:
			default:
			}
		}
	}
}

func (l *lineLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + string(l.partial)
}

// startDiskBroker starts the broker on dataDir (a path as the prefixed
// command sees it) and waits until it serves. It returns an error, with
// the process's output, when the broker exits or hangs while starting.
func startDiskBroker(t *testing.T, prefix []string, dataDir string, args ...string) (*diskBroker, error) {
	t.Helper()
	argv := append(append([]string{}, prefix...), brokertest.Binary(t), "-mqtt-addr", "127.0.0.1:0", "-api-addr", "127.0.0.1:0",
		"-jobs-addr", "127.0.0.1:0", "-data-dir", dataDir, "-log-format", "json")
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "JOBSBROKER_MQTT_ADDR=", "JOBSBROKER_API_ADDR=", "JOBSBROKER_JOBS_ADDR=", "JOBSBROKER_DATA_DIR=")
	b := &diskBroker{cmd: cmd, exited: make(chan struct{}), out: &lineLog{started: make(chan map[string]any, 1)}}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %v: %w", argv, err)
	}
	go func() {
		cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(b.kill)
	select {
	case v := <-b.out.started:
		b.MQTTAddr, _ = v["mqtt"].(string)
		b.APIAddr, _ = v["api"].(string)
		b.JobsAddr, _ = v["jobs_api"].(string)
		return b, nil
	case <-b.exited:
		return nil, fmt.Errorf("the broker exited while starting (%v):\n%s", cmd.ProcessState, b.out.text())
	case <-time.After(30 * time.Second):
		b.kill()
		return nil, fmt.Errorf("the broker did not start in 30s:\n%s", b.out.text())
	}
}

// kill sends SIGKILL and waits for the process to go.
func (b *diskBroker) kill() {
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
}

// dead reports whether the process has exited, waiting up to d for it.
func (b *diskBroker) dead(d time.Duration) bool {
	select {
	case <-b.exited:
		return true
	default:
	}
	select {
	case <-b.exited:
		return true
	case <-time.After(d):
		return false
	}
}

func (b *diskBroker) logs() string { return b.out.text() }

// evidence and evidenceOf pick from the broker's output the lines that explain a
// failure: the store's errors, and for a crash the runtime's message and
// the first frames of the goroutine that crashed.
func (b *diskBroker) evidence() string { return evidenceOf(b.logs()) }

func evidenceOf(logs string) string {
	var out []string
	lines := strings.Split(logs, "\n")
	for i := 0; i < len(lines) && len(out) < 12; i++ {
		l := lines[i]
		switch {
		case strings.Contains(l, `"level":"ERROR"`), strings.HasPrefix(l, "jobsbroker:"), strings.HasPrefix(l, "panic:"),
			strings.HasPrefix(l, "fatal error"), strings.HasPrefix(l, "unexpected fault address"), strings.HasPrefix(l, "[signal"):
			if len(l) > 400 {
				l = l[:400] + "..."
			}
			out = append(out, l)
		case strings.HasPrefix(l, "goroutine ") && strings.HasSuffix(l, "[running]:") && len(out) > 0:
			// The crashing goroutine: its function lines, not the file lines.
			for j, n := i+1, 0; j < len(lines) && n < 6 && lines[j] != ""; j++ {
				if !strings.HasPrefix(lines[j], "\t") && !strings.HasPrefix(lines[j], "runtime.") {
					out = append(out, "    "+lines[j])
					n++
				}
			}
			i = len(lines)
		}
	}
	return strings.Join(out, "\n")
}
