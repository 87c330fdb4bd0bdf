// Package interop is the standing interoperability suite: independently
// written clients (the AWS CLI, the AWS SDKs, the npm device SDKs, the
// Mosquitto clients) run whole job flows against the real broker binary.
//
// The clients are installed by .ci/run. A test whose client is missing
// skips with a message saying what to install, except under CI=true,
// where a missing client fails the run.
package interop

import (
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of an installed program, or skips the test (fails
// under CI=true) with the way to install it.
func Need(t testing.TB, path, install string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true): %s", path, install)
	}
	t.Skipf("%s is not installed; %s", path, install)
	return ""
}
