package brokertest

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildLog  []byte
)

// Binary builds cmd/jobsbroker once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jobsbroker-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "jobsbroker")
		cmd := exec.Command("go", "build", "-o", buildPath, "github.com/jobsbroker/jobsbroker/cmd/jobsbroker")
		buildLog, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build jobsbroker: %v\n%s", buildErr, buildLog)
	}
	return buildPath
}

// Process is a jobsbroker running as a child process.
type Process struct {
	t        testing.TB
	cmd      *exec.Cmd
	MQTTAddr string
	APIAddr  string
	JobsAddr string
	exited   chan struct{}
	mu       sync.Mutex
	logs     []string
}

// command is the broker binary on loopback ports with dataDir and extra
// flags.
func command(t testing.TB, dataDir string, args ...string) *exec.Cmd {
	all := append([]string{"-mqtt-addr", "127.0.0.1:0", "-api-addr", "127.0.0.1:0", "-jobs-addr", "127.0.0.1:0",
		"-data-dir", dataDir, "-log-format", "json"}, args...)
	cmd := exec.Command(Binary(t), all...)
	cmd.Env = append(os.Environ(), "JOBSBROKER_MQTT_ADDR=", "JOBSBROKER_API_ADDR=", "JOBSBROKER_JOBS_ADDR=")
	return cmd
}

// RunProcess runs the broker binary as StartProcess would, for a run
// expected to end by itself (a start that must fail), and returns its
// output and exit code; -1 when it was still running after d and was
// killed.
func RunProcess(t testing.TB, d time.Duration, dataDir string, args ...string) (string, int) {
	t.Helper()
	cmd := command(t, dataDir, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jobsbroker: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		return out.String(), cmd.ProcessState.ExitCode()
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return out.String(), -1
	}
}

// StartProcess runs the broker binary on loopback ports with dataDir and
// extra flags, and waits until it says it has started.
func StartProcess(t testing.TB, dataDir string, args ...string) *Process {
	t.Helper()
	cmd := command(t, dataDir, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jobsbroker: %v", err)
	}
	p := &Process{t: t, cmd: cmd, exited: make(chan struct{})}
	started := make(chan map[string]any, 1)
	go p.readLogs(stdout, started)
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.Kill)
	select {
	case line := <-started:
		p.MQTTAddr, _ = line["mqtt"].(string)
		p.APIAddr, _ = line["api"].(string)
		p.JobsAddr, _ = line["jobs_api"].(string)
	case <-p.exited:
		t.Fatalf("jobsbroker exited during start:\n%s", p.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("jobsbroker did not start in 30s:\n%s", p.Logs())
	}
	return p
}

func (p *Process) readLogs(r io.Reader, started chan<- map[string]any) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.logs = append(p.logs, line)
		p.mu.Unlock()
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["msg"] == "jobsbroker started" {
			select {
			case started <- v:
			default:
			}
		}
	}
}

// Logs returns what the process has logged.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// APIURL is the base URL of its API.
func (p *Process) APIURL() string { return "http://" + p.APIAddr }

// Kill sends SIGKILL and waits for the process to go.
func (p *Process) Kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.exited
}

// Terminate sends SIGTERM and waits up to d for a clean exit; it reports
// the exit code (-1 when it had to be killed).
func (p *Process) Terminate(d time.Duration) int {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		p.Kill()
		return -1
	}
}

// Signal sends sig to the broker process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Pid returns the broker's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }
