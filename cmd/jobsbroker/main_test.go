package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, lc, err := parseConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTTAddr != ":1883" || cfg.APIAddr != ":8080" || cfg.JobsAddr != ":8081" || cfg.DataDir != "./data" || cfg.NoSync {
		t.Fatalf("defaults = %+v", cfg)
	}
	if cfg.Clock != nil || lc.format != "text" || lc.level != "info" || lc.shutdownTimeout != 15*time.Second {
		t.Fatalf("log defaults = %+v, clock %v", lc, cfg.Clock)
	}
}

func TestEnvironmentOverridesFlags(t *testing.T) {
	cfg, lc, err := parseConfig(
		[]string{"-mqtt-addr", ":1", "-data-dir", "/flag", "-log-level", "debug"},
		env(map[string]string{"JOBSBROKER_MQTT_ADDR": ":2", "JOBSBROKER_NO_SYNC": "true", "JOBSBROKER_DEBUG_CLOCK_OFFSET": "2m"}),
		io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTTAddr != ":2" || cfg.DataDir != "/flag" || !cfg.NoSync || lc.level != "debug" {
		t.Fatalf("cfg = %+v, log %+v", cfg, lc)
	}
	if off, ok := cfg.Clock.(clock.Offset); !ok || off.By != 2*time.Minute {
		t.Fatalf("clock = %#v", cfg.Clock)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-no-such-flag"}, nil, "not defined"},
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
		{nil, map[string]string{"JOBSBROKER_NO_SYNC": "perhaps"}, "JOBSBROKER_NO_SYNC"},
		{nil, map[string]string{"JOBSBROKER_SHUTDOWN_TIMEOUT": "soon"}, "JOBSBROKER_SHUTDOWN_TIMEOUT"},
	}
	for _, c := range cases {
		_, _, err := parseConfig(c.args, env(c.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%v, %v) = %v, want an error mentioning %q", c.args, c.env, err, c.want)
		}
	}
	if _, _, err := parseConfig([]string{"-h"}, env(nil), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h = %v, want flag.ErrHelp", err)
	}
	if _, err := newLogger(logConfig{format: "xml", level: "info"}, io.Discard); err == nil {
		t.Error("log format xml accepted")
	}
	if _, err := newLogger(logConfig{format: "text", level: "loud"}, io.Discard); err == nil {
		t.Error("log level loud accepted")
	}
}

// TestRunStopsOnContext runs the whole main path in process: run serves
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
