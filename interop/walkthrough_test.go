package interop

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestREADMEWalkthrough runs the README's walkthrough block, as written,
// against the broker binary on free ports (the test points the README's
// ports at them, see readme_test.go), with Debian's AWS CLI and Mosquitto
// clients, and checks that it prints what the README says it prints.
func TestREADMEWalkthrough(t *testing.T) {
	needReaderTools(t)
	block := walkthroughBlock(t)
	dir := t.TempDir()
	p := brokertest.StartProcess(t, filepath.Join(dir, "data"))
	ports := map[string]string{}
	for readme, addr := range map[string]string{"1883": p.MQTTAddr, "8080": p.APIAddr, "8081": p.JobsAddr} {
		_, ports[readme], _ = net.SplitHostPort(addr)
	}
	r := newReadmeShell(t, dir, readerEnv(t, filepath.Join(dir, "home"), ports["1883"]), ports)
	mark := r.shell.out.mark()
	if err := r.run(block); err != nil {
		t.Fatal(err)
	}
	text := r.shell.out.since(mark)
	if err := r.finish(); err != nil {
		t.Fatal(err)
	}
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
func walkthroughBlock(t *testing.T) block {
	t.Helper()
	readme, blocks := readmeBlocks(t)
	head, _, ok := strings.Cut(readme, "\n## Walkthrough\n")
	if !ok {
		t.Fatal("README has no Walkthrough section")
	}
	section := strings.Count(head, "\n") + 2
	for _, b := range blocks {
		if b.line > section && b.info == fenceRun {
			return b
		}
	}
	t.Fatal("the Walkthrough section has no sh block")
	return block{}
}
