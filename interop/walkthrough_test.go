package interop

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestREADMEWalkthrough runs the README's walkthrough block, as written,
// against the broker started the README's way (default ports), with
// Debian's AWS CLI and Mosquitto clients.
func TestREADMEWalkthrough(t *testing.T) {
	aws := Need(t, "/usr/bin/aws", "apt-get install awscli (Debian's AWS CLI 2.9)")
	Need(t, "mosquitto_rr", "apt-get install mosquitto-clients")
	for _, addr := range []string{"127.0.0.1:1883", "127.0.0.1:8080", "127.0.0.1:8081"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the walkthrough needs port %s free: %v", addr, err)
			}
			t.Skipf("the walkthrough needs port %s free: %v", addr, err)
		}
		ln.Close()
	}
	block := walkthroughBlock(t)
	dir := t.TempDir()
	// As the README runs it: the defaults, on loopback.
	brokertest.StartProcess(t, filepath.Join(dir, "data"), "-mqtt-addr", "", "-api-addr", "", "-jobs-addr", "")

	// Put Debian's aws first on PATH, ahead of any other AWS CLI.
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	if err := os.Symlink(aws, filepath.Join(bin, "aws")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "AWS_PAGER=", "HOME="+dir)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the walkthrough hung:\n%s", out)
	}
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		`"jobId":"reboot-1","status":"QUEUED"`, // notify-next printed by mosquitto_sub
		`"jobArn": "arn:aws:iot:us-east-1:123456789012:job/reboot-1"`,
		`"status":"IN_PROGRESS"`,
		`"executionState":{"status":"SUCCEEDED"`,
		`"status": "COMPLETED"`,
		`"succeeded": 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the walkthrough output lacks %s:\n%s", want, text)
		}
	}
}

// walkthroughBlock returns the first sh block under "## Walkthrough".
func walkthroughBlock(t *testing.T) string {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "\n## Walkthrough\n")
	if !ok {
		t.Fatal("README has no Walkthrough section")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("the Walkthrough section has no sh block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated sh block")
	}
	return block
}
