package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DepthResult is the outcome of the depth scenario: steady with few and
// with many pending jobs on each thing, in one invocation.
type DepthResult struct {
	// Runs are the steady runs, shallowest first.
	Runs []*DepthRun `json:"runs"`
	// Ratio is the deepest run's ops/s ÷ the shallowest run's.
	Ratio float64 `json:"ratio"`
}

// DepthRun is steady with one number of pending jobs per thing.
type DepthRun struct {
	JobsPerThing int         `json:"jobs_per_thing"`
	Steady       *LoopResult `json:"steady"`
}

// parseDepths reads -depths: pending jobs per thing, comma-separated.
func parseDepths(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-depths %q: want positive numbers of pending jobs per thing, comma-separated", s)
		}
		out = append(out, n)
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("-depths %q: name at least two depths to compare", s)
	}
	return out, nil
}

// runDepth measures what a thing's pending jobs cost its device
// operations: steady (no echo) once for each of -depths pending jobs per
// thing, each on a fresh broker (on -store-url, fresh brokers on the same
// database, which keeps the earlier runs' executions), and the ratio of
// the deepest run's rate to the shallowest's. The broker's RSS at the end
// of each run is in the table.
func runDepth(ctx context.Context, cfg *config, rep *Report) error {
	if cfg.MQTTAddr != "" {
		return errors.New("depth starts its own brokers: it cannot use -mqtt")
	}
	depths, err := parseDepths(cfg.Depths)
	if err != nil {
		return err
	}
	if cfg.BrokerBin == "" {
		if cfg.BrokerBin, err = buildBroker(ctx); err != nil {
			return err
		}
	}
	res := &DepthResult{}
	rep.Depth = res
	for _, d := range depths {
		run := *cfg
		run.JobsPerThing = d
		t, err := openTarget(ctx, &run)
		if err != nil {
			return err
		}
		l, err := steadyJobs(ctx, &run, t, rep)
		closeTarget(t, rep)
		if err != nil {
			return fmt.Errorf("depth %d: %w", d, err)
		}
		l.Name = fmt.Sprintf("depth %d", d)
		res.Runs = append(res.Runs, &DepthRun{JobsPerThing: d, Steady: l})
	}
	first, last := res.Runs[0].Steady, res.Runs[len(res.Runs)-1].Steady
	if first.OpsPerSec > 0 {
		res.Ratio = round3(last.OpsPerSec / first.OpsPerSec)
	}
	return nil
}
