package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// runCLI runs the command line as main does and returns its exit status,
// standard output and standard error.
func runCLI(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, env(vars), &stdout, &stderr)
	code := exitCode(err, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestHelp: help and -h list the commands; each command's help shows its
// own flags and no others.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, out, errOut := runCLI(t, nil, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		for _, cmd := range commands {
			if !strings.Contains(out, "\t"+cmd.name+" ") {
				t.Errorf("%v does not list %s:\n%s", args, cmd.name, out)
			}
		}
	}
	cases := []struct {
		cmd        string
		has, hasnt []string
	}{
		{"serve", []string{"usage: jobsbroker serve", "-mqtt-addr", "-data-dir", "JOBSBROKER_MQTT_ADDR"}, []string{"-from"}},
		{"config", []string{"usage: jobsbroker config", "-mqtt-addr"}, []string{"-from"}},
		{"backup", []string{"usage: jobsbroker backup", "-o string", "-from", "-ca", "-data-dir", "-config"}, []string{"-mqtt-addr", "-identity"}},
		{"restore", []string{"usage: jobsbroker restore", "-i string", "-data-dir"}, []string{"-mqtt-addr", "-from"}},
		{"passwd", []string{"usage: jobsbroker passwd -file FILE THING", "-file", "without echoing"}, []string{"-mqtt-addr", "-data-dir"}},
		{"version", []string{"usage: jobsbroker version"}, []string{"Flags:"}},
		{"wait", []string{"usage: jobsbroker wait", "-thing", "-status", "exits 0"}, []string{"-mqtt-addr", "-data-dir"}},
	}
	for _, c := range cases {
		for _, args := range [][]string{{"help", c.cmd}, {c.cmd, "-h"}} {
			code, out, errOut := runCLI(t, nil, args...)
			if code != 0 || errOut != "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
			}
			for _, want := range c.has {
				if !strings.Contains(out, want) {
					t.Errorf("%v lacks %q:\n%s", args, want, out)
				}
			}
			for _, not := range c.hasnt {
				if strings.Contains(out, not) {
					t.Errorf("%v shows %q, which is not its flag:\n%s", args, not, out)
				}
			}
		}
	}
	if err := run(context.Background(), []string{"backup", "-h"}, env(nil), io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("backup -h = %v, want flag.ErrHelp", err)
	}
}

// TestUsageErrors: a mistake on the command line is printed once, with a
// one-line pointer to the help, and exits 2.
func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-no-such-flag"}, "jobsbroker: flag provided but not defined: -no-such-flag\nRun 'jobsbroker help serve' for usage.\n"},
		{[]string{"serve", "stray"}, "jobsbroker: unexpected argument \"stray\"\nRun 'jobsbroker help serve' for usage.\n"},
		{[]string{"frobnicate"}, "jobsbroker: unknown command \"frobnicate\"\nRun 'jobsbroker help' for the commands.\n"},
		{[]string{"help", "frobnicate"}, "jobsbroker: unknown command \"frobnicate\"\nRun 'jobsbroker help' for the commands.\n"},
		{[]string{"backup", "-data-dir", "x"}, "jobsbroker: backup needs -o FILE\nRun 'jobsbroker help backup' for usage.\n"},
		{[]string{"backup", "-mqtt-addr", ":1"}, "jobsbroker: flag provided but not defined: -mqtt-addr\nRun 'jobsbroker help backup' for usage.\n"},
		{[]string{"restore", "-x"}, "jobsbroker: flag provided but not defined: -x\nRun 'jobsbroker help restore' for usage.\n"},
		{[]string{"version", "now"}, "jobsbroker: version takes no arguments\nRun 'jobsbroker help version' for usage.\n"},
	} {
		code, out, errOut := runCLI(t, nil, c.args...)
		if code != 2 || out != "" || errOut != c.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and stderr %q", c.args, code, out, errOut, c.want)
		}
	}
	// Anything else is a failure (1), printed once.
	code, _, errOut := runCLI(t, nil, "-region", "mars")
	if code != 1 || strings.Count(errOut, "mars") != 1 || !strings.HasPrefix(errOut, "jobsbroker: invalid configuration:\n  -region: ") {
		t.Errorf("an invalid setting: exit %d, stderr %q", code, errOut)
	}
}

// TestLockedDataDir: a second broker on a data directory in use is told so
// in words, naming the flag.
func TestLockedDataDir(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.New(broker.Config{MQTTAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", JobsAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	code, _, errOut := runCLI(t, map[string]string{"JOBSBROKER_DATA_DIR": dir},
		"-mqtt-addr", "127.0.0.1:0", "-api-addr", "127.0.0.1:0", "-jobs-addr", "127.0.0.1:0")
	want := "jobsbroker: the data directory " + dir + " is in use by another jobsbroker (or a backup or restore of it): " +
		"stop that one, or give this one a directory of its own with -data-dir (JOBSBROKER_DATA_DIR)\n"
	if code != 1 || errOut != want {
		t.Fatalf("exit %d, stderr %q; want %q", code, errOut, want)
	}
}

// TestFailedStartLeavesNoDataDir: a start that fails on a busy port says
// which flag to change and leaves no data directory behind.
func TestFailedStartLeavesNoDataDir(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	parent := filepath.Join(t.TempDir(), "new")
	code, _, errOut := runCLI(t, nil, "-mqtt-addr", "127.0.0.1:0", "-api-addr", busy.Addr().String(),
		"-jobs-addr", "127.0.0.1:0", "-data-dir", filepath.Join(parent, "data"))
	if code != 1 || !strings.Contains(errOut, busy.Addr().String()+" (-api-addr)") || !strings.Contains(errOut, "address already in use") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(parent); !os.IsNotExist(err) {
		t.Fatalf("the failed start left %s behind (%v)", parent, err)
	}
	// A directory that was there before stays.
	existing := t.TempDir()
	if code, _, _ := runCLI(t, nil, "-api-addr", busy.Addr().String(), "-mqtt-addr", "127.0.0.1:0",
		"-jobs-addr", "127.0.0.1:0", "-data-dir", existing); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(existing); err != nil {
		t.Fatalf("the failed start removed a directory it did not create: %v", err)
	}
}

// TestLoopbackWarningNamesFlags: the warning at start names the flags.
func TestLoopbackWarningNamesFlags(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	w := &syncWriter{w: &out}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-mqtt-addr", "127.0.0.1:0", "-api-addr", "127.0.0.1:0", "-jobs-addr", "127.0.0.1:0",
			"-data-dir", t.TempDir()}, env(nil), w, io.Discard)
	}()
	want := "configure -identity, -credentials-file or -client-ca to serve the network, or set -allow-anonymous"
	brokertest.Eventually(t, "the loopback warning", func() error {
		if !strings.Contains(syncRead(&out), want) {
			return errors.New("not logged yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
