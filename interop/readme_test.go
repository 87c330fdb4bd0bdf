package interop

// The README test: TestREADME runs every shell block of README.md, in
// order, as a reader pasting them into a terminal would, against a broker
// built from the tree. An example that stops working fails the build.
//
// Fences. The info string of a shell block says how it runs:
//
//	```sh          runs in the reader's shell (one bash for the whole README, so variables,
//	               exports and cd carry over), under set -euo pipefail: every command must succeed
//	```sh server   a broker the reader starts in a terminal of its own and leaves running: started
//	               in the background, in the shell's directory with its exported environment; the
//	               test goes on once it logs "jobsbroker started", and at the end stops it with
//	               SIGINT (Ctrl-C), after which it must log "jobsbroker stopped"
//	```sh restart  as sh server, after stopping every server started before it (Ctrl-C in the
//	               broker's terminal, then this block)
//	```sh manual   never run: needs what CI does not have (Docker, Kubernetes, systemd, a database
//	               host, placeholders such as ...)
//
// Any other shell fence (bash, shell, console, sh with other words) fails
// the test, so that no shell block escapes it.
//
// Where. The blocks run in a copy of the tree in a temporary directory,
// so that `go run ./cmd/jobsbroker` and `go install ./cmd/jobsbroker` work
// as written and ./data is the copy's. HOME and GOPATH are temporary too
// (go install's bin directory with them), with the go command's caches
// kept, and npm's; Debian's AWS CLI comes first on PATH.
//
// Ports. The README uses the well-known ports: 1883, 8080 and 8081 for the
// walkthrough's broker, 8883, 8443 and 8444 for the Security section's,
// 9000 for the OTA example's artifact store (versitygw, which TestREADME
// needs besides the programs needReaderTools lists). The
// test gives each a free port: it rewrites ":PORT" and "-p PORT" in every
// block, makes the free MQTT port the Mosquitto clients' default (their
// configuration files in XDG_CONFIG_HOME), and gives a server block that
// names no listener address the free 1883, 8080 and 8081 through
// JOBSBROKER_MQTT_ADDR, JOBSBROKER_API_ADDR and JOBSBROKER_JOBS_ADDR. A
// reader copying the blocks gets the ports as written.
//
// Dates. A date written into a shell block (2026-12-01) passes one day and
// breaks the example, so the test refuses any: compute it, as in
// $(date -u -d '+1 hour' +%Y-%m-%dT%H:%M).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/jobshook/presign/s3test"
)

// The fences of README.md's shell blocks (see the top of this file).
const (
	fenceRun     = "sh"
	fenceServer  = "sh server"
	fenceRestart = "sh restart"
	fenceManual  = "sh manual"
)

// Deadlines: a block (the walkthrough waits up to 30 s for a message), a
// server's start (`go run` compiles the tree first) and its clean stop.
const (
	blockTimeout = 3 * time.Minute
	startTimeout = 5 * time.Minute
	stopTimeout  = 30 * time.Second
)

// readmePorts are the ports README.md's examples use.
var readmePorts = []string{"1883", "8080", "8081", "8883", "8443", "8444", "9000"}

// shellLangs are the fence languages of shell code.
var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true, "zsh": true, "shell-session": true}

// datePattern matches a date (2026-12-01), also as the start of a
// timestamp (2026-12-01T02:00).
var datePattern = regexp.MustCompile(`\b(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])`)

// listenerFlag matches a broker flag that names a listener address.
var listenerFlag = regexp.MustCompile(`-(?:mqtt-addr|mqtt-tls-addr|mqtt-alpn-addr|websocket-addr|api-addr|jobs-addr)\b`)

// A block is one fenced shell block of a Markdown file.
type block struct {
	file string
	line int // of the opening fence, 1-based
	info string
	text string
}

func (b block) String() string { return fmt.Sprintf("%s:%d (```%s)", b.file, b.line, b.info) }

// shellBlocks returns the shell blocks of a Markdown text, or what is wrong
// with them: a fence the test does not know, a date written out.
func shellBlocks(name, markdown string, now time.Time) ([]block, error) {
	var blocks []block
	var problems []string
	lines := strings.Split(markdown, "\n")
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			continue
		}
		start := i
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			problems = append(problems, fmt.Sprintf("%s:%d: the code block is not closed", name, start+1))
			break
		}
		info = strings.Join(strings.Fields(info), " ")
		lang, _, _ := strings.Cut(info, " ")
		if !shellLangs[lang] {
			continue
		}
		b := block{file: name, line: start + 1, info: info, text: strings.Join(body, "\n") + "\n"}
		switch info {
		case fenceRun, fenceServer, fenceRestart, fenceManual:
		default:
			problems = append(problems, fmt.Sprintf("%s:%d: a shell block fenced ```%s: fence it ```sh (run by TestREADME), "+
				"```sh server, ```sh restart or ```sh manual (see interop/readme_test.go)", name, b.line, info))
		}
		for j, l := range body {
			for _, d := range datePattern.FindAllString(l, -1) {
				when := "it passes on that day"
				if t, err := time.Parse(time.DateOnly, d); err == nil && t.Before(now) {
					when = "it has passed"
				}
				problems = append(problems, fmt.Sprintf("%s:%d: the date %s is written out (%s): compute it, "+
					"as in $(date -u -d '+1 hour' +%%Y-%%m-%%dT%%H:%%M)", name, b.line+1+j, d, when))
			}
		}
		blocks = append(blocks, b)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return blocks, nil
}

// output collects what a process writes; a mark is an offset in it.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// mark is where the output is now.
func (o *output) mark() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Len()
}

// since returns the output from a mark on.
func (o *output) since(mark int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf.Bytes()[mark:])
}

// has reports whether the output from mark on contains s.
func (o *output) has(mark int, s string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Contains(o.buf.Bytes()[mark:], []byte(s))
}

// A proc is a process the test started in a process group of its own.
type proc struct {
	cmd    *exec.Cmd
	out    output
	exited chan struct{}
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) signal(sig syscall.Signal) { syscall.Kill(-p.cmd.Process.Pid, sig) }

// kill ends the process and whatever it left running in its group.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// waitFor polls until cond holds or the process exits, up to d.
func (p *proc) waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case <-p.exited:
			if cond() {
				return nil
			}
			return fmt.Errorf("it exited (%v)", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// readmeShell is the reader's shell, and the servers started from it.
type readmeShell struct {
	t       testing.TB
	work    string            // the test's own files: blocks, shell state
	ports   map[string]string // README port: free port
	portsRE *regexp.Regexp
	shell   *proc
	stdin   io.WriteCloser
	servers []*proc
}

// newReadmeShell starts the shell in dir with env. ports maps the README's
// ports to the ones the test uses; a port the README uses that is not in
// it is used as written.
func newReadmeShell(t testing.TB, dir string, env []string, ports map[string]string) *readmeShell {
	t.Helper()
	r := &readmeShell{t: t, work: t.TempDir(), ports: ports}
	if len(ports) > 0 {
		r.portsRE = regexp.MustCompile(`(:|-p )(` + strings.Join(slices.Sorted(mapKeys(ports)), "|") + `)\b`)
	}
	cmd := exec.Command("bash", "--noprofile", "--norc")
	cmd.Dir, cmd.Env = dir, env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if r.shell, err = startProc(cmd); err != nil {
		t.Fatalf("start bash: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		r.shell.kill()
		for _, s := range r.servers {
			s.kill()
		}
	})
	r.stdin = stdin
	// Report the failing line; a block's file is named after its README line.
	if err := r.send(`set -euo pipefail; trap 'echo "@@readme-error exit $? at ${BASH_SOURCE[0]:-}:${LINENO}"' ERR`); err != nil {
		t.Fatal(err)
	}
	return r
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// rewrite points the README's ports at the test's.
func (r *readmeShell) rewrite(text string) string {
	if r.portsRE == nil {
		return text
	}
	return r.portsRE.ReplaceAllStringFunc(text, func(m string) string {
		sub := r.portsRE.FindStringSubmatch(m)
		return sub[1] + r.ports[sub[2]]
	})
}

func (r *readmeShell) send(line string) error {
	if _, err := io.WriteString(r.stdin, line+"\n"); err != nil {
		return fmt.Errorf("the shell has ended (%v): %w", r.shell.cmd.ProcessState, err)
	}
	return nil
}

// run runs one block as its fence says.
func (r *readmeShell) run(b block) error {
	if b.info == fenceManual {
		return nil
	}
	file := filepath.Join(r.work, fmt.Sprintf("README-line-%d.sh", b.line))
	text := r.rewrite(b.text)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return err
	}
	switch b.info {
	case fenceRun:
		mark := r.shell.out.mark()
		done := fmt.Sprintf("@@readme-done %d", b.line)
		if err := r.send(fmt.Sprintf("source %q </dev/null; echo %q", file, done)); err != nil {
			return fmt.Errorf("%v: %w", b, err)
		}
		if err := r.shell.waitFor(blockTimeout, func() bool { return r.shell.out.has(mark, done+"\n") }); err != nil {
			return fmt.Errorf("%v failed: %v\n%s\n--- output ---\n%s", b, err, numbered(b, text), r.shell.out.since(mark))
		}
		return nil
	case fenceRestart:
		if err := r.stopServers(); err != nil {
			return fmt.Errorf("%v: %w", b, err)
		}
		fallthrough
	case fenceServer:
		return r.startServer(b, file, text)
	}
	return fmt.Errorf("%v: unknown fence", b)
}

// numbered is a block's text with README line numbers, for failures.
func numbered(b block, text string) string {
	var out strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fmt.Fprintf(&out, "%5d  %s\n", b.line+1+i, l)
	}
	return out.String()
}

// startServer starts a server block as a reader's second terminal would
// (the shell's directory and exported environment) and waits until the
// broker says it has started.
func (r *readmeShell) startServer(b block, file, text string) error {
	envFile, dirFile := filepath.Join(r.work, "env"), filepath.Join(r.work, "pwd")
	mark := r.shell.out.mark()
	done := fmt.Sprintf("@@readme-state %d", b.line)
	if err := r.send(fmt.Sprintf("env -0 > %q; pwd > %q; echo %q", envFile, dirFile, done)); err != nil {
		return fmt.Errorf("%v: %w", b, err)
	}
	if err := r.shell.waitFor(blockTimeout, func() bool { return r.shell.out.has(mark, done+"\n") }); err != nil {
		return fmt.Errorf("%v: read the shell's environment: %v\n%s", b, err, r.shell.out.since(mark))
	}
	rawEnv, err := os.ReadFile(envFile)
	if err != nil {
		return err
	}
	dir, err := os.ReadFile(dirFile)
	if err != nil {
		return err
	}
	env := strings.Split(strings.TrimSuffix(string(rawEnv), "\x00"), "\x00")
	if !listenerFlag.MatchString(text) {
		for _, l := range []struct{ name, port string }{
			{"JOBSBROKER_MQTT_ADDR", "1883"}, {"JOBSBROKER_API_ADDR", "8080"}, {"JOBSBROKER_JOBS_ADDR", "8081"},
		} {
			if p, ok := r.ports[l.port]; ok {
				env = append(env, l.name+"=127.0.0.1:"+p)
			}
		}
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-euo", "pipefail", file)
	cmd.Dir, cmd.Env = strings.TrimSpace(string(dir)), env
	s, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("%v: %w", b, err)
	}
	r.servers = append(r.servers, s)
	if err := s.waitFor(startTimeout, func() bool { return s.out.has(0, "jobsbroker started") }); err != nil {
		return fmt.Errorf("%v: the broker did not start: %v\n%s\n--- its output ---\n%s", b, err, numbered(b, text), s.out.since(0))
	}
	return nil
}

// stopServers stops the servers as Ctrl-C would; each must stop cleanly.
func (r *readmeShell) stopServers() error {
	var errs []error
	for _, s := range r.servers {
		s.signal(syscall.SIGINT)
		err := s.waitFor(stopTimeout, func() bool {
			select {
			case <-s.exited:
				return true
			default:
				return false
			}
		})
		if err == nil && !s.out.has(0, "jobsbroker stopped") {
			err = errors.New("it did not log that it stopped")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("the server %q did not stop cleanly on SIGINT: %v\n%s", s.cmd.Args[len(s.cmd.Args)-1], err, s.out.since(0)))
		}
		s.kill()
	}
	r.servers = nil
	return errors.Join(errs...)
}

// finish ends the shell (what a block left running in it is killed) and
// stops the servers.
func (r *readmeShell) finish() error {
	mark := r.shell.out.mark()
	err := r.send(`echo @@readme-end`)
	if err == nil {
		err = r.shell.waitFor(blockTimeout, func() bool { return r.shell.out.has(mark, "@@readme-end\n") })
	}
	r.shell.kill()
	return errors.Join(err, r.stopServers())
}

// freePorts returns a free loopback port for each of the README's.
func freePorts(t testing.TB) map[string]string {
	t.Helper()
	ports := map[string]string{}
	for _, p := range readmePorts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close() // held until all are chosen, so that they differ
		_, ports[p], _ = net.SplitHostPort(ln.Addr().String())
	}
	return ports
}

// readerEnv is the environment of the reader's shell: this process's,
// without AWS or jobsbroker settings, with HOME and GOPATH in home (the go
// command's caches kept), Debian's AWS CLI first on PATH, and the Mosquitto
// clients' default port set to mqttPort.
func readerEnv(t testing.TB, home, mqttPort string) []string {
	t.Helper()
	goEnv := map[string]string{}
	out, err := exec.Command("go", "env", "-json", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOPROXY", "GOSUMDB",
		"GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOTOOLCHAIN").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	if err := json.Unmarshal(out, &goEnv); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AWS_"), strings.HasPrefix(k, "JOBSBROKER_"), strings.HasPrefix(k, "GO") && k != "GOROOT",
			k == "HOME", k == "XDG_CONFIG_HOME", k == "PATH", k == "CDPATH", k == "BASH_ENV", k == "ENV":
			continue
		}
		env = append(env, kv)
	}
	for k, v := range goEnv {
		env = append(env, k+"="+v)
	}
	// npm's cache is kept too, as the go command's are, unless the
	// environment names one already.
	if h, err := os.UserHomeDir(); err == nil && os.Getenv("npm_config_cache") == "" {
		env = append(env, "npm_config_cache="+filepath.Join(h, ".npm"))
	}
	bin := filepath.Join(home, "bin")
	config := filepath.Join(home, ".config")
	for _, d := range []string{bin, config} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/usr/bin/aws", filepath.Join(bin, "aws")); err != nil {
		t.Fatal(err)
	}
	for _, client := range []string{"mosquitto_pub", "mosquitto_sub", "mosquitto_rr"} {
		if err := os.WriteFile(filepath.Join(config, client), []byte("-p "+mqttPort+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return append(env, "HOME="+home, "XDG_CONFIG_HOME="+config, "GOPATH="+filepath.Join(home, "go"), "GOENV=off",
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true")
}

// needReaderTools returns when the programs the README uses are installed,
// and skips the test (fails it under CI=true) otherwise.
func needReaderTools(t testing.TB) {
	t.Helper()
	Need(t, "bash", "apt-get install bash")
	Need(t, "go", "install Go")
	Need(t, "/usr/bin/aws", "apt-get install awscli (Debian's AWS CLI 2.9)")
	Need(t, "mosquitto_rr", "apt-get install mosquitto-clients")
	Need(t, "openssl", "apt-get install openssl")
	Need(t, "curl", "apt-get install curl")
	// Testing device code: the C device and the Node device.
	Need(t, "cc", "apt-get install gcc")
	if _, err := os.Stat("/usr/include/mosquitto.h"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("libmosquitto's header is not installed (CI=true): apt-get install libmosquitto-dev")
		}
		t.Skip("libmosquitto's header is not installed; apt-get install libmosquitto-dev")
	}
	Need(t, "node", "apt-get install nodejs")
	Need(t, "npm", "apt-get install npm")
}

// copyTree copies the module's source tree to dst, without its history,
// its data directory, build outputs or installed npm packages.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || rel == "data" || rel == "bin"):
			return filepath.SkipDir
		case d.Name() == ".git", strings.HasSuffix(d.Name(), ".test"), rel == "jobsbroker", rel == "jobsbench":
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil
	})
}

// readmeBlocks returns README.md and its shell blocks.
func readmeBlocks(t *testing.T) (string, []block) {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := shellBlocks("README.md", string(readme), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return string(readme), blocks
}

// TestREADME runs README.md's shell blocks (see the top of this file).
func TestREADME(t *testing.T) {
	needReaderTools(t)
	versitygw := s3test.Binary(t) // the OTA example's artifact store
	_, blocks := readmeBlocks(t)
	tmp := t.TempDir()
	clone := filepath.Join(tmp, "jobsbroker")
	if err := copyTree("..", clone); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t)
	home := filepath.Join(tmp, "home")
	r := newReadmeShell(t, clone, readerEnv(t, home, ports["1883"]), ports)
	if err := os.Symlink(versitygw, filepath.Join(home, "bin", "versitygw")); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, b := range blocks {
		if err := r.run(b); err != nil {
			t.Fatal(err)
		}
		if b.info != fenceManual {
			ran++
		}
	}
	output := r.shell.out.since(0)
	if err := r.finish(); err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		t.Logf("the shell's output:\n%s", output)
	}
	t.Logf("ran %d of README.md's %d shell blocks", ran, len(blocks))
}

// TestREADMERunner: the runner fails on a failing block, naming it and
// its line, and stops there; state carries from block to block; a server
// that does not start, or does not stop cleanly, fails too.
func TestREADMERunner(t *testing.T) {
	Need(t, "bash", "apt-get install bash")
	markdown := "# Test\n\n```sh\nexport GREETING=hello\nx=1\n```\n\n```sh\ntest \"$x\" = 1\necho \"$GREETING\" before\nfalse\necho after\n```\n\n```sh\necho never\n```\n"
	blocks, err := shellBlocks("test.md", markdown, time.Now())
	if err != nil || len(blocks) != 3 {
		t.Fatalf("%d blocks, %v", len(blocks), err)
	}
	r := newReadmeShell(t, t.TempDir(), os.Environ(), nil)
	if err := r.run(blocks[0]); err != nil {
		t.Fatal(err)
	}
	err = r.run(blocks[1])
	if err == nil {
		t.Fatal("a failing block passed")
	}
	for _, want := range []string{"test.md:8", "hello before", "@@readme-error exit 1 at", "README-line-8.sh:3", "   11  false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the failure does not say %q:\n%v", want, err)
		}
	}
	if _, output, _ := strings.Cut(err.Error(), "--- output ---"); strings.Contains(output, "after") {
		t.Errorf("the block went on after its failing command:\n%v", err)
	}
	if err := r.run(blocks[2]); err == nil {
		t.Error("a block ran after the shell stopped")
	}

	// A server block that exits instead of serving fails, and so does one
	// that does not log a clean stop.
	servers := "```sh server\necho starting; exit 3\n```\n\n```sh server\necho jobsbroker started; sleep 60\n```\n"
	blocks, err = shellBlocks("servers.md", servers, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r = newReadmeShell(t, t.TempDir(), os.Environ(), nil)
	if err := r.run(blocks[0]); err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "starting") {
		t.Errorf("a server that exits: %v", err)
	}
	r.servers = nil
	if err := r.run(blocks[1]); err != nil {
		t.Fatal(err)
	}
	if err := r.finish(); err == nil || !strings.Contains(err.Error(), "did not log that it stopped") {
		t.Errorf("a server that does not stop cleanly: %v", err)
	}
}

// TestREADMEBlocks: a date written out, or a shell block with a fence the
// test does not know, is refused; ports are rewritten where they are
// ports.
func TestREADMEBlocks(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	markdown := "```sh\naws iot create-job --scheduling-config '{\"startTime\":\"2026-12-01T02:00\"}'\n```\n\n" +
		"```sh manual\necho 2027-01-10\n```\n\n```bash\necho hi\n```\n\n```sh skip\necho hi\n```\n\n```yaml\nwhen: 2020-01-01\n```\n\n```\nplain 2020-01-01\n```\n"
	_, err := shellBlocks("dates.md", markdown, now)
	if err == nil {
		t.Fatal("refused nothing")
	}
	for _, want := range []string{
		"dates.md:2: the date 2026-12-01 is written out (it has passed)",
		"dates.md:6: the date 2027-01-10 is written out (it passes on that day)",
		"dates.md:9: a shell block fenced ```bash",
		"dates.md:13: a shell block fenced ```sh skip",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v", want, err)
		}
	}
	if strings.Count(err.Error(), "\n") != 3 {
		t.Errorf("want four problems (blocks that are not shell are not checked):\n%v", err)
	}

	r := &readmeShell{ports: map[string]string{"1883": "41883", "8080": "48080"}}
	r.portsRE = regexp.MustCompile(`(:|-p )(1883|8080)\b`)
	in := "API=http://localhost:8080 mosquitto_rr -p 1883 -addr :1883 x18080 8080 -W 1883 :80801"
	want := "API=http://localhost:48080 mosquitto_rr -p 41883 -addr :41883 x18080 8080 -W 1883 :80801"
	if got := r.rewrite(in); got != want {
		t.Errorf("rewrite:\n got %s\nwant %s", got, want)
	}
}
