package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// load parses and checks the settings as serve does.
func load(t *testing.T, args []string, vars map[string]string) (*settings, error) {
	t.Helper()
	s := newSettings("serve")
	s.fs.SetOutput(io.Discard)
	if err := s.fs.Parse(args); err != nil {
		return s, err
	}
	return s, s.finish(s.fs, s.fs.Args(), env(vars))
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobsbroker.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	s, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Empty addresses are the broker's defaults (broker/security.go),
	// which depend on the identity settings.
	if s.MQTTAddr != "" || s.APIAddr != "" || s.JobsAddr != "" || s.DataDir != "./data" || s.NoSync || s.Events ||
		s.Identity != "none" || s.AllowAnonymous || s.RequestRate != 100 || s.MaxPacketSize != 128<<10 {
		t.Fatalf("defaults = %+v", s.Config)
	}
	if s.Clock != nil || s.logFormat != "text" || s.logLevel != "info" || s.shutdownTimeout != 15*time.Second || s.ShutdownDelay != 0 {
		t.Fatalf("defaults: log %s %s timeout %v delay %v clock %v", s.logFormat, s.logLevel, s.shutdownTimeout, s.ShutdownDelay, s.Clock)
	}
}

// TestPrecedence: default < file < flag < environment.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, "mqtt_addr: ':1111'\napi_addr: ':2222'\ndata_dir: /file\nlog_level: warn\nno_sync: true\nallow_anonymous: true\n")
	s, err := load(t, []string{"-config", file, "-api-addr", ":3333", "-data-dir", "/flag"},
		map[string]string{"JOBSBROKER_DATA_DIR": "/env", "JOBSBROKER_DEBUG_CLOCK_OFFSET": "2m"})
	if err != nil {
		t.Fatal(err)
	}
	if s.MQTTAddr != ":1111" || s.APIAddr != ":3333" || s.DataDir != "/env" || s.logLevel != "warn" || !s.NoSync || s.JobsAddr != "" {
		t.Fatalf("settings = %+v, log level %s", s.Config, s.logLevel)
	}
	if off, ok := s.Clock.(clock.Offset); !ok || off.By != 2*time.Minute {
		t.Fatalf("clock = %#v", s.Clock)
	}
	// JOBSBROKER_CONFIG names the file too.
	s, err = load(t, nil, map[string]string{"JOBSBROKER_CONFIG": file})
	if err != nil || s.MQTTAddr != ":1111" {
		t.Fatalf("JOBSBROKER_CONFIG: %+v, %v", s.Config, err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		file string
		want string
	}{
		{args: []string{"-no-such-flag"}, want: "not defined"},
		{args: []string{"stray"}, want: `unexpected argument "stray"`},
		{env: map[string]string{"JOBSBROKER_NO_SYNC": "perhaps"}, want: "JOBSBROKER_NO_SYNC"},
		{env: map[string]string{"JOBSBROKER_SHUTDOWN_TIMEOUT": "soon"}, want: "JOBSBROKER_SHUTDOWN_TIMEOUT"},
		{file: "mqtt_addr: ':1'\nmqtt_port: 1\n", want: `line 2: unknown setting "mqtt_port"`},
		{file: "shutdown_timeout: forever\n", want: "line 1: shutdown_timeout"},
		{file: "- a\n- b\n", want: "must be a mapping"},
		{file: "api_addr: {a: b}\n", want: "api_addr"},
		{args: []string{"-mqtt-addr", "1883"}, want: `-mqtt-addr: "1883" is not host:port`},
		{args: []string{"-api-addr", ":9000", "-jobs-addr", ":9000"}, want: `-jobs-addr: ":9000" is also -api-addr`},
		{args: []string{"-region", "mars"}, want: `-region: "mars"`},
		{args: []string{"-account", "12"}, want: "-account"},
		{args: []string{"-log-format", "xml"}, want: "-log-format"},
		{args: []string{"-log-level", "loud"}, want: "-log-level"},
		{args: []string{"-shutdown-delay", "20s"}, want: "-shutdown-delay: 20s must be at least 0 and less than -shutdown-timeout"},
		{args: []string{"-config", "/no/such/file"}, want: "read config file"},
		{args: []string{"-mqtt-addr", ":1883"}, want: `-mqtt-addr ":1883" would serve the network`},
		{args: []string{"-api-addr", "0.0.0.0:8080"}, want: "configure -credentials-file"},
		{args: []string{"-identity", "cert"}, want: `identity "cert"`},
		{args: []string{"-identity", "mtls"}, want: "-identity mtls needs -client-ca"},
		{args: []string{"-identity", "password"}, want: "-identity password needs -password-file"},
		{args: []string{"-mqtt-tls-addr", ":8883", "-allow-anonymous"}, want: "need -tls-cert and -tls-key"},
		{args: []string{"-tls-cert", "c.pem"}, want: "-tls-cert and -tls-key go together"},
		// A value from the environment or the file is named by its source too.
		{env: map[string]string{"JOBSBROKER_MQTT_ADDR": ":1883"}, want: `-mqtt-addr (JOBSBROKER_MQTT_ADDR) ":1883" would serve`},
		{file: "api_addr: ':8080'\n", want: `-api-addr (api_addr in `},
		{file: "log_level: loud\n", want: `-log-level (log_level in `},
		{args: []string{"-topic-rules", "things/x{thing}/#"}, want: "{thing} must be a whole level"},
		{args: []string{"-commit-delay", "1s"}, want: "-commit-delay 1s: at most 100ms"},
		{args: []string{"-store", "postgres", "-store-url", "postgres://db/jobs", "-commit-delay", "5ms"}, want: "-commit-delay 5ms applies to the embedded store only"},
		{args: []string{"-store", "postgres", "-store-url", "postgres://db/jobs", "-no-sync"}, want: "-no-sync applies to the embedded store only"},
	}
	for _, c := range cases {
		args := c.args
		if c.file != "" {
			args = append(args, "-config", writeFile(t, c.file))
		}
		_, err := load(t, args, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("args %v env %v file %q: error %v, want one mentioning %q", c.args, c.env, c.file, err, c.want)
		}
	}
}

// TestConfigCommand: `jobsbroker config` prints a file that, read back,
// gives the same settings; and the example in deploy/ is that output.
func TestConfigCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config", "-mqtt-addr", "127.0.0.1:1999", "-events", "-operators", "ops-1, ops-2"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	s, err := load(t, []string{"-config", writeFile(t, out.String())}, nil)
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, out.String())
	}
	if s.MQTTAddr != "127.0.0.1:1999" || !s.Events || s.APIAddr != "" || strings.Join(s.Operators, " ") != "ops-1 ops-2" {
		t.Fatalf("round trip gave %+v", s.Config)
	}
	s.secret["region"] = true
	printed, err := s.effective()
	if err != nil || !strings.Contains(string(printed), `region: "<redacted>"`) || strings.Contains(string(printed), "us-east-1") {
		t.Fatalf("a secret setting is printed:\n%s", printed)
	}
	var defaults bytes.Buffer
	if err := run(context.Background(), []string{"config"}, env(nil), &defaults, io.Discard); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../deploy/jobsbroker.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(example) != defaults.String() {
		t.Fatalf("deploy/jobsbroker.example.yaml is out of date; regenerate it with `go run ./cmd/jobsbroker config > deploy/jobsbroker.example.yaml`")
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, env(nil), &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.HasPrefix(out.String(), "jobsbroker "+buildVersion()+"\n") || !strings.Contains(out.String(), "  go      go1.") {
			t.Errorf("%v printed %q", args, out.String())
		}
	}
}

// TestRunStopsOnContext runs the whole serve path in process: it serves
// until its context ends, then shuts down cleanly.
func TestRunStopsOnContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	args := []string{"-mqtt-addr", "127.0.0.1:0", "-api-addr", "127.0.0.1:0", "-jobs-addr", "127.0.0.1:0",
		"-data-dir", t.TempDir(), "-log-format", "json"}
	go func() { done <- run(ctx, args, env(nil), &syncWriter{w: &out}, io.Discard) }()
	brokertest.Eventually(t, "started", func() error {
		if !strings.Contains(syncRead(&out), "jobsbroker started") {
			return errors.New("not yet")
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if !strings.Contains(syncRead(&out), "jobsbroker stopped") {
		t.Fatalf("no clean stop in the log:\n%s", syncRead(&out))
	}
}

// TestSIGTERM stops the real binary with SIGTERM: it exits 0 and its data
// directory opens again (the store was closed, its lock released).
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	p := brokertest.StartProcess(t, dir)
	if code := p.Terminate(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, p.Logs())
	}
	if !strings.Contains(p.Logs(), `"msg":"jobsbroker stopped"`) {
		t.Fatalf("no clean stop logged:\n%s", p.Logs())
	}
	b, err := broker.New(broker.Config{MQTTAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", JobsAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatalf("the data directory does not open after SIGTERM: %v", err)
	}
	b.Shutdown(context.Background())
}

func TestPasswdCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwords")
	passwd := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		c := &cli{getenv: env(nil), stdin: strings.NewReader(stdin), stdout: &out, stderr: io.Discard}
		err := c.run(context.Background(), append([]string{"passwd"}, args...))
		return out.String(), err
	}
	for _, step := range []struct{ thing, pw, want string }{
		{"thing-1", "one\n", "added"},
		{"thing-2", "two\n", "added"},
		{"thing-1", "uno\n", "replaced"},
	} {
		out, err := passwd(step.pw, "-file", file, step.thing)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, step.want) {
			t.Errorf("%s: %q", step.thing, out)
		}
	}
	p, err := auth.LoadPasswords(file)
	if err != nil || p.Len() != 2 {
		t.Fatalf("%v (%d entries)", err, p.Len())
	}
	if p.Check("thing-1", []byte("uno")) != nil || p.Check("thing-1", []byte("one")) == nil || p.Check("thing-2", []byte("two")) != nil {
		t.Error("the file does not hold the latest passwords")
	}
	if _, err := passwd("x\n", "-file", file, "bad thing"); err == nil {
		t.Error("a bad thing name was accepted")
	}
	if _, err := passwd("", "-file", file, "thing-3"); err == nil {
		t.Error("an empty password was accepted")
	}
	var usage *usageError
	if _, err := passwd("x\n", "thing-3"); !errors.As(err, &usage) {
		t.Errorf("passwd without -file: %v, want a usage error", err)
	}
}

// TestREADMEListsEverySetting keeps the README's configuration table in
// step with the flags.
func TestREADMEListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := newSettings("serve")
	s.fs.VisitAll(func(f *flag.Flag) {
		if !bytes.Contains(readme, []byte("`-"+f.Name+"`")) && !bytes.Contains(readme, []byte("`-"+f.Name+"`,")) &&
			!bytes.Contains(readme, []byte(", `-"+f.Name+"`")) {
			t.Errorf("README.md does not document -%s", f.Name)
		}
	})
}

// TestSIGHUPReloads: SIGHUP makes the running binary read its password
// file again, without dropping connected clients.
func TestSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwords")
	write := func(pw string) {
		line, err := auth.PasswordLine("thing-1", []byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first")
	p := brokertest.StartProcess(t, filepath.Join(dir, "data"), "-identity", "password", "-password-file", file)
	login := func(id, pw string) (*brokertest.Client, error) {
		return brokertest.TryConnect(t, brokertest.Dial{URL: "tcp://" + p.MQTTAddr, ID: id, Username: "thing-1", Password: pw})
	}
	c, err := login("thing-1", "first")
	if err != nil {
		t.Fatal(err)
	}
	write("second")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, "the reload is logged", func() error {
		if !strings.Contains(p.Logs(), "reloaded certificates and credentials") {
			return errors.New("not yet")
		}
		return nil
	})
	if _, err := login("thing-1-b", "first"); err == nil {
		t.Error("the old password works after SIGHUP")
	}
	if _, err := login("thing-1-c", "second"); err != nil {
		t.Errorf("the new password after SIGHUP: %v", err)
	}
	if !c.Connected() {
		t.Error("SIGHUP dropped a connected client")
	}
	// A broken file is refused and logged; the broker keeps running.
	if err := os.WriteFile(file, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, "the failed reload is logged", func() error {
		if !strings.Contains(p.Logs(), "reload failed") {
			return errors.New("not yet")
		}
		return nil
	})
	if _, err := login("thing-1-d", "second"); err != nil {
		t.Errorf("after a failed reload the previous passwords must stay: %v", err)
	}
}

func TestRedactStoreURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://jb:s3cret@db:5432/jobs?sslmode=require": "postgres://jb:redacted@db:5432/jobs?sslmode=require",
		"host=db user=jb password=s3cret dbname=jobs":       "host=db user=jb password=redacted dbname=jobs",
		"postgres://jb@db/jobs":                             "postgres://jb@db/jobs",
		"":                                                  "",
	} {
		if got := redactURL(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"config", "-store", "postgres", "-store-url", "postgres://jb:s3cret@db/jobs"}, env(nil), &out, io.Discard)
	if err != nil || strings.Contains(out.String(), "s3cret") || !strings.Contains(out.String(), "postgres://jb:redacted@db/jobs") {
		t.Fatalf("config printed:\n%s\n%v", out.String(), err)
	}
}
