package broker_test

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// An embedded broker (jobsbrokertest in a device developer's test process)
// leaves the process's garbage collector alone: a soft memory limit is the
// jobsbroker binary's to set, from the cgroup it runs in.
func TestEmbeddedBrokerLeavesMemoryLimitAlone(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	brokertest.Start(t)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("starting a broker set the process's memory limit to %d MiB", got>>20)
	}
}
