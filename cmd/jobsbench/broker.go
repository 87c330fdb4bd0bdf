package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// echoPrefix is the topic prefix the echo baselines use: a device
// publishes on bench/{device} and is answered on bench/{device}/reply.
const echoPrefix = "bench/"

// target is the broker a scenario runs against.
type target struct {
	// MQTTAddr is host:port of the MQTT listener.
	MQTTAddr string
	// APIURL is the base URL of the control-plane API.
	APIURL string
	// PID is the broker's process id, for its RSS; 0 when unknown.
	PID int
	// PprofAddr is the broker's profiling listener (jobsbench starts its
	// brokers with one on loopback), for its live memory; "" when unknown.
	PprofAddr string
	// External is set when jobsbench did not start the broker.
	External bool
	proc     *brokerProcess
	// nodes are the cluster's further nodes (sharing one PostgreSQL
	// store); the target is the first. Devices are spread over all.
	nodes []*target
	// clustered is set when the nodes are one broker over NATS; stopNATS
	// stops the NATS server jobsbench started for them.
	clustered bool
	stopNATS  func()
}

// all returns the target's nodes, itself first.
func (t *target) all() []*target { return append([]*target{t}, t.nodes...) }

// mqttAddrs returns the MQTT addresses of every node.
func (t *target) mqttAddrs() []string {
	var out []string
	for _, n := range t.all() {
		out = append(out, n.MQTTAddr)
	}
	return out
}

// pids returns the process ids of every node (0 where unknown).
func (t *target) pids() []int {
	var out []int
	for _, n := range t.all() {
		out = append(out, n.PID)
	}
	return out
}

// prober samples the CPU time and store metrics of every node.
func (t *target) prober() *prober {
	var urls []string
	for _, n := range t.all() {
		urls = append(urls, n.APIURL)
	}
	return newProber(t.pids(), urls)
}

// RSS returns the resident set size of the broker's nodes in bytes,
// summed, or 0 if unknown.
func (t *target) RSS() int64 { return t.status("VmRSS:") }

// RSSFile returns the part of RSS that maps files (the store's data
// files, which Badger maps into memory; the kernel reclaims those pages
// when memory is short), summed, or 0 if unknown.
func (t *target) RSSFile() int64 { return t.status("RssFile:") }

// Live returns the bytes the nodes hold live, summed: heap in use plus
// goroutine stacks, read from each node's heap profile right after the
// collection the request asks for (so garbage is not counted, unlike in
// RSS). 0 when a node has no profiling listener or does not answer.
func (t *target) Live(ctx context.Context) int64 {
	var sum int64
	for _, n := range t.all() {
		if n.PprofAddr == "" {
			return 0
		}
		v, err := liveBytes(ctx, n.PprofAddr)
		if err != nil {
			slog.Debug("read broker live memory", "pprof", n.PprofAddr, "error", err)
			return 0
		}
		sum += v
	}
	return sum
}

// liveBytes reads HeapInuse and StackInuse from the runtime statistics at
// the end of a text heap profile taken after a forced collection.
func liveBytes(ctx context.Context, addr string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("heap profile: %s", resp.Status)
	}
	var heap, stack int64 = -1, -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		// "# HeapInuse = 123" and "# Stack = 456 / 789" (in use / from
		// the system).
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			heap, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		} else if v, ok := strings.CutPrefix(line, "# Stack = "); ok {
			v, _, _ = strings.Cut(v, " ")
			stack, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			return 0, fmt.Errorf("heap profile: %q: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	if heap < 0 || stack < 0 {
		return 0, errors.New("heap profile: no HeapInuse or Stack line")
	}
	return heap + stack, nil
}

// status sums a kB field of the nodes' /proc status.
func (t *target) status(field string) int64 {
	var sum int64
	for _, n := range t.all() {
		if n.PID == 0 {
			return 0
		}
		v, err := readStatus(n.PID, field)
		if err != nil {
			slog.Debug("read broker memory", "pid", n.PID, "field", field, "error", err)
			return 0
		}
		sum += v
	}
	return sum
}

// Close stops the nodes jobsbench started.
func (t *target) Close() error {
	var errs []error
	for _, n := range t.all() {
		if n.proc != nil {
			errs = append(errs, n.proc.Stop())
		}
	}
	if t.stopNATS != nil {
		t.stopNATS()
	}
	return errors.Join(errs...)
}

// Warnings lists the warning and error lines the nodes logged.
func (t *target) Warnings() []string {
	var out []string
	for _, n := range t.all() {
		if n.proc != nil {
			out = append(out, n.proc.Warnings()...)
		}
	}
	return out
}

var (
	buildMu    sync.Mutex
	builtPaths = map[string]string{} // cached builds, by package
)

// buildBroker compiles cmd/jobsbroker into a temporary directory once per
// process and returns the binary's path. It must run inside the module.
func buildBroker(ctx context.Context) (string, error) {
	const pkg = "github.com/jobsbroker/jobsbroker/cmd/jobsbroker"
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtPaths[pkg]; ok {
		return p, nil
	}
	dir, err := os.MkdirTemp("", "jobsbench-bin-")
	if err != nil {
		return "", fmt.Errorf("build jobsbroker: %w", err)
	}
	path := filepath.Join(dir, "jobsbroker")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", path, pkg).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build jobsbroker (run jobsbench inside the jobsbroker module, or pass -broker-bin): %w\n%s", err, out)
	}
	builtPaths[pkg] = path
	return path, nil
}

// removeBuilds deletes the binaries buildBroker made.
func removeBuilds() {
	buildMu.Lock()
	defer buildMu.Unlock()
	for pkg, path := range builtPaths {
		os.RemoveAll(filepath.Dir(path))
		delete(builtPaths, pkg)
	}
}

// brokerProcess is a jobsbroker child process.
type brokerProcess struct {
	cmd     *exec.Cmd
	dataDir string
	exited  chan struct{}
	// startedIn is how long the process took from its start to its
	// "jobsbroker started" line.
	startedIn time.Duration

	mu       sync.Mutex
	tail     []string // the last log lines
	warnings []string
}

// startBroker runs the jobsbroker binary at bin on loopback ports with a
// fresh data directory and waits for its "jobsbroker started" line.
func startBroker(ctx context.Context, bin string, noSync bool, extra ...string) (*target, error) {
	dataDir, err := os.MkdirTemp("", "jobsbench-data-")
	if err != nil {
		return nil, fmt.Errorf("start jobsbroker: %w", err)
	}
	// One jobsbench connection speaks for many things, so it holds more
	// subscriptions than the 50 a device may.
	args := []string{"-mqtt-addr", "127.0.0.1:0", "-api-addr", "127.0.0.1:0", "-jobs-addr", "127.0.0.1:0",
		"-data-dir", dataDir, "-log-format", "json", "-debug-echo-prefix", echoPrefix, "-max-subscriptions", "-1",
		"-pprof-addr", "127.0.0.1:0"}
	if noSync {
		args = append(args, "-no-sync")
	}
	args = append(args, extra...)
	t, err := execBroker(ctx, bin, args, dataDir)
	if err != nil {
		os.RemoveAll(dataDir)
	}
	return t, err
}

// restart stops the broker jobsbench started (SIGTERM, waiting for a clean
// shutdown), starts it again on the same data directory and returns the
// restarted broker. Afterwards only the returned target is used, except
// that on failure closing the old one removes the data directory.
func (t *target) restart(ctx context.Context) (*target, error) {
	p := t.proc
	if p == nil || len(t.nodes) > 0 {
		return nil, errors.New("restart: jobsbench did not start this broker, or it has several nodes")
	}
	if err := p.stopProcess(); err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	nt, err := execBroker(ctx, p.cmd.Path, p.cmd.Args[1:], p.dataDir)
	if err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	return nt, nil
}

// execBroker runs the jobsbroker binary at bin with args (which name
// dataDir) and waits for its "jobsbroker started" line.
func execBroker(ctx context.Context, bin string, args []string, dataDir string) (*target, error) {
	cmd := exec.Command(bin, args...)
	// The environment wins over flags in jobsbroker: clear what would
	// redirect it.
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JOBSBROKER_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start jobsbroker: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start jobsbroker %s: %w", bin, err)
	}
	p := &brokerProcess{cmd: cmd, dataDir: dataDir, exited: make(chan struct{})}
	started := make(chan map[string]any, 1)
	go p.readLogs(stdout, started)
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	select {
	case line := <-started:
		p.startedIn = time.Since(begin)
		mqttAddr, _ := line["mqtt"].(string)
		api, _ := line["api"].(string)
		if mqttAddr == "" || api == "" {
			p.stopProcess()
			return nil, fmt.Errorf("start jobsbroker: no addresses in its start line %v", line)
		}
		pprof, _ := line["pprof"].(string)
		return &target{MQTTAddr: mqttAddr, APIURL: "http://" + api, PID: cmd.Process.Pid, PprofAddr: pprof, proc: p}, nil
	case <-p.exited:
		return nil, fmt.Errorf("jobsbroker exited during start:\n%s", p.Tail())
	case <-time.After(5 * time.Minute):
		p.stopProcess()
		return nil, fmt.Errorf("jobsbroker did not start in 5 minutes:\n%s", p.Tail())
	case <-ctx.Done():
		p.stopProcess()
		return nil, fmt.Errorf("start jobsbroker: %w", ctx.Err())
	}
}

func (p *brokerProcess) readLogs(r io.Reader, started chan<- map[string]any) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var v map[string]any
		_ = json.Unmarshal([]byte(line), &v)
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > 200 {
			p.tail = p.tail[len(p.tail)-100:]
		}
		if lvl, _ := v["level"].(string); lvl == "WARN" || lvl == "ERROR" {
			if len(p.warnings) < 100 {
				p.warnings = append(p.warnings, line)
			}
		}
		p.mu.Unlock()
		if v["msg"] == "jobsbroker started" {
			select {
			case started <- v:
			default:
			}
		}
	}
}

// Tail returns the last lines the broker logged.
func (p *brokerProcess) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Warnings returns the warning and error lines the broker logged.
func (p *brokerProcess) Warnings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.warnings...)
}

// Stop shuts the broker down with SIGTERM (SIGKILL after 30 s) and removes
// its data directory.
func (p *brokerProcess) Stop() error {
	defer os.RemoveAll(p.dataDir)
	return p.stopProcess()
}

// stopProcess shuts the broker down with SIGTERM (SIGKILL after 30 s).
func (p *brokerProcess) stopProcess() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return errors.New("jobsbroker did not stop within 30s of SIGTERM; killed it")
	}
}

// startMosquitto runs Mosquitto at path on a free loopback port with a
// generated configuration (anonymous access, TCP_NODELAY, no persistence,
// no limits on queued or in-flight messages).
func startMosquitto(ctx context.Context, path string) (*target, func() error, error) {
	dir, err := os.MkdirTemp("", "jobsbench-mosquitto-")
	if err != nil {
		return nil, nil, fmt.Errorf("start mosquitto: %w", err)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("start mosquitto: %w", err)
	}
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence false
max_connections -1
max_inflight_messages 0
max_queued_messages 0
log_dest stderr
log_type error
log_type warning
`, port)
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("start mosquitto: %w", err)
	}
	cmd := exec.Command(path, "-c", confPath)
	var logs bytes.Buffer
	var logMu sync.Mutex
	cmd.Stdout = lockedWriter{&logMu, &logs}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("start mosquitto %s: %w", path, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() error {
		defer os.RemoveAll(dir)
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		return nil
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			logMu.Lock()
			defer logMu.Unlock()
			os.RemoveAll(dir)
			return nil, nil, fmt.Errorf("mosquitto exited during start:\n%s", logs.String())
		case <-ctx.Done():
			stop()
			return nil, nil, fmt.Errorf("start mosquitto: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("mosquitto did not listen on %s within 10s: %w", addr, err)
		}
	}
	return &target{MQTTAddr: addr, PID: cmd.Process.Pid}, stop, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// readRSS returns VmRSS of a process, in bytes.
func readRSS(pid int) (int64, error) { return readStatus(pid, "VmRSS:") }

// readStatus returns a kB field of a process's /proc status, in bytes.
func readStatus(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", field, err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("read %s: unexpected line %q", field, line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read %s: %w", field, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("read %s: not in /proc/%d/status", field, pid)
}

// startNATS runs a NATS server in this process on a free loopback port,
// for the nodes of -nats, and returns its URL and how to stop it.
func startNATS() (string, func(), error) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return "", nil, fmt.Errorf("start NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return "", nil, errors.New("start NATS: not ready after 10 s")
	}
	return ns.ClientURL(), ns.Shutdown, nil
}
