package main

import (
	"context"
	"fmt"
)

// loopSetup is a group of connected devices ready for runLoop.
type loopSetup struct {
	name       string
	persistent bool
	clients    []*Client
	protos     []deviceProto
	close      func() // disconnects the devices
}

// newLoopSetup keeps clients alive (pinging idle ones) until close.
func newLoopSetup(ctx context.Context, cfg *config, name string, clients []*Client, protos []deviceProto) *loopSetup {
	kctx, stop := context.WithCancel(ctx)
	go keepAlive(kctx, func() []*Client { return clients }, cfg.KeepAlive)
	return &loopSetup{name: name, persistent: cfg.Persistent, clients: clients, protos: protos, close: func() {
		stop()
		closeAll(clients)
	}}
}

// sessionRounds is how many turns each group takes in compareSessions.
const sessionRounds = 4

// compareSessions measures one loop with clean sessions and with
// persistent ones. Both groups of devices are set up first; then they take
// turns, sessionRounds windows each (clean, persistent, persistent, clean,
// ...), the warm-up and the measured time split between the turns, so that
// a machine whose load changes during the run weighs on both alike. setup
// builds a group for the configuration it is given.
func compareSessions(ctx context.Context, cfg *config, probe *prober, setup func(*config) (*loopSetup, error)) (clean, persistent *LoopResult, err error) {
	var groups [2]*loopSetup
	for i, p := range []bool{false, true} {
		c := *cfg
		c.Persistent = p
		if groups[i], err = setup(&c); err != nil {
			for _, g := range groups[:i] {
				g.close()
			}
			return nil, nil, err
		}
	}
	defer func() {
		for _, g := range groups {
			g.close()
		}
	}()
	o := cfg.loopOptions(probe)
	o.Warmup /= sessionRounds
	o.Duration /= sessionRounds
	var parts [2][]*LoopResult
	for round := range sessionRounds {
		// ABBA: each group goes first in half the rounds, so that what
		// comes first (the setup's compactions, a load that rises or falls)
		// weighs on both alike.
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			g := groups[i]
			res, err := runLoop(ctx, fmt.Sprintf("%s %d/%d", g.name, round+1, sessionRounds), g.clients, g.protos, o)
			if err != nil {
				return nil, nil, err
			}
			res.Name = g.name
			parts[i] = append(parts[i], res)
		}
	}
	clean, persistent = mergeResults(parts[0]), mergeResults(parts[1])
	persistent.Persistent = true
	return clean, persistent, nil
}

// mergeResults sums the windows of one loop's turns into one result.
func mergeResults(parts []*LoopResult) *LoopResult {
	out := &LoopResult{Name: parts[0].Name, Broker: parts[0].Broker, Devices: parts[0].Devices, TargetOpsPerSec: parts[0].TargetOpsPerSec}
	var samples []int64
	var cycles, window, commits float64
	usage := &WindowUsage{}
	for _, p := range parts {
		out.WarmupS += p.WarmupS
		out.WindowS += p.WindowS
		out.Ops += p.Ops
		out.Errors.add(p.Errors)
		out.TurnsOpsPerSec = append(out.TurnsOpsPerSec, p.OpsPerSec)
		samples = append(samples, p.samples...)
		cycles += p.CyclesPerSec * p.WindowS
		if out.CutShort == "" {
			out.CutShort = p.CutShort
		}
		if u := p.Usage; u != nil {
			window += p.WindowS
			usage.BrokerCores += u.BrokerCores * p.WindowS
			usage.BenchCores += u.BenchCores * p.WindowS
			n := u.CommitsPerSec * p.WindowS
			commits += n
			usage.OpsPerCommit += u.OpsPerCommit * n
			usage.CommitMs += u.CommitMs * n
		}
	}
	if out.WindowS > 0 {
		out.OpsPerSec = round1(float64(out.Ops) / out.WindowS)
		out.CyclesPerSec = round1(cycles / out.WindowS)
	}
	if window > 0 {
		usage.BrokerCores, usage.BenchCores = round3(usage.BrokerCores/window), round3(usage.BenchCores/window)
		usage.CommitsPerSec = round3(commits / window)
		if commits > 0 {
			usage.OpsPerCommit, usage.CommitMs = round3(usage.OpsPerCommit/commits), round3(usage.CommitMs/commits)
		}
		out.Usage = usage
	}
	out.Latency = summarize(samples)
	out.ErrorsTotal = out.Errors.Total()
	out.WindowS = round3(out.WindowS)
	return out
}
