//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// openPTY opens a pseudo-terminal pair: what the test types goes into
// the controller, the command reads it from the terminal.
func openPTY(t *testing.T) (controller, terminal *os.File) {
	t.Helper()
	controller, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { controller.Close() })
	fd := int(controller.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	terminal, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { terminal.Close() })
	return controller, terminal
}

// TestPasswdTerminal: on a terminal, passwd prompts twice and the
// terminal does not echo what is typed.
func TestPasswdTerminal(t *testing.T) {
	controller, terminal := openPTY(t)
	file := filepath.Join(t.TempDir(), "passwords")
	var stdout, stderr bytes.Buffer
	c := &cli{getenv: env(nil), stdin: terminal, stdout: &stdout, stderr: &syncWriter{w: &stderr}}
	done := make(chan error, 1)
	go func() { done <- c.run(context.Background(), []string{"passwd", "-file", file, "pump-1"}) }()

	echoOff := func() error {
		tio, err := unix.IoctlGetTermios(int(terminal.Fd()), unix.TCGETS)
		if err != nil {
			return err
		}
		if tio.Lflag&unix.ECHO != 0 {
			return errors.New("the terminal still echoes")
		}
		return nil
	}
	// Type only once echo is off, as a person would after the prompt.
	brokertest.Eventually(t, "echo off for the password", echoOff)
	if _, err := controller.WriteString("s3cret-pw\ns3cret-pw\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("passwd did not finish")
	}
	prompts := syncRead(&stderr)
	if !strings.Contains(prompts, "Password for pump-1: ") || !strings.Contains(prompts, "Retype it: ") {
		t.Errorf("prompts %q", prompts)
	}
	// Whatever the terminal showed (echoed already, as the typing was
	// processed) must not hold the password.
	fd := int(controller.Fd()) // Fd makes the file blocking: call it once
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	shown := make([]byte, 4096)
	n, _ := unix.Read(fd, shown)
	if n > 0 && bytes.Contains(shown[:n], []byte("s3cret")) {
		t.Errorf("the terminal echoed the password: %q", shown[:n])
	}
	if err := echoOff(); err == nil {
		t.Error("passwd left the terminal without echo")
	}
	p, err := auth.LoadPasswords(file)
	if err != nil || p.Check("pump-1", []byte("s3cret-pw")) != nil {
		t.Fatalf("the password file does not hold the typed password: %v", err)
	}
}
