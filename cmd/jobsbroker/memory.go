package main

import (
	"errors"
	"log/slog"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// setMemoryLimit gives the Go runtime a soft memory limit of 90% of the
// cgroup memory limit the broker runs under (a container's limit, a
// systemd unit's MemoryMax), unless GOMEMLIMIT is set or AUTOMEMLIMIT is
// "off" or another fraction. Without a cgroup limit it sets none, and the
// garbage collector paces the heap by GOGC alone.
//
// The limit follows what the machine grants, not a fixed figure: a soft
// limit below the broker's working set (10,000 connected devices and a
// 100,000-thing rollout need more than 384 MiB) makes the collector run
// back to back, and a rollout then took five times as long (BENCHMARKS.md,
// "fanout").
//
// main calls it, for the process: tests that run a command in their own
// process leave its garbage collector alone.
func setMemoryLimit(log *slog.Logger) {
	_, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup))
	if err != nil && !errors.Is(err, memlimit.ErrNoCgroup) && !errors.Is(err, memlimit.ErrCgroupsNotSupported) {
		log.Warn("could not set the Go runtime's soft memory limit from the cgroup's; it has none", "error", err)
	}
}
