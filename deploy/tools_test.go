package deploy_test

import (
	"os"
	"os/exec"
	"testing"
)

// needTool returns the path of an installed tool. Without it the test is
// skipped, saying what was not checked, except under CI=true (where .ci/run
// installs every tool), where it fails.
func needTool(t *testing.T, name, unchecked string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " is not installed: " + unchecked
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
