package broker_test

import (
	"encoding/json"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker"
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

// The start log names the soft memory limit the broker runs under.
func TestStartLogNamesMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, c := range []struct {
		name  string
		limit int64
		want  string
	}{{"limit", 512 << 20, "512 MiB"}, {"none", math.MaxInt64, "none"}} {
		t.Run(c.name, func(t *testing.T) {
			debug.SetMemoryLimit(c.limit)
			var out syncBuffer
			brokertest.Start(t, func(cfg *broker.Config) {
				cfg.Logger = slog.New(slog.NewJSONHandler(&out, nil))
			})
			var started map[string]any
			for line := range strings.Lines(out.String()) {
				var rec map[string]any
				if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "jobsbroker started" {
					started = rec
				}
			}
			if started == nil {
				t.Fatalf("no start log in:\n%s", out.String())
			}
			if got := started["memory_limit"]; got != c.want {
				t.Errorf("memory_limit %v, want %q", got, c.want)
			}
		})
	}
}
