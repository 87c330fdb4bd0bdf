package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeBuilds()
	os.Exit(code)
}

// smokeConfig is a run of a few seconds with a handful of devices.
func smokeConfig() config {
	cfg := defaultConfig()
	cfg.Devices = 20
	cfg.Things = 300
	cfg.Connected = 40
	cfg.Duration = 2 * time.Second
	cfg.Warmup = 500 * time.Millisecond
	cfg.Timeout = 10 * time.Second
	cfg.WaitTimeout = time.Minute
	cfg.NoSync = true
	return cfg
}

// runSmoke runs one scenario in process against a broker it starts, and
// returns the report; it fails the test on any error. There are no timing
// assertions: CI machines vary.
func runSmoke(t *testing.T, scenario string, mod func(*config)) *Report {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a broker and runs a scenario for a few seconds")
	}
	cfg := smokeConfig()
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := run(ctx, scenario, &cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Notes {
		t.Log("note:", n)
	}
	for _, w := range rep.BrokerWarnings {
		t.Log("broker:", w)
	}
	return rep
}

func checkLoop(t *testing.T, l *LoopResult) {
	t.Helper()
	if l.Ops == 0 || l.OpsPerSec <= 0 || l.Latency.Count == 0 {
		t.Errorf("%s: no throughput: %+v", l.Name, l)
	}
	if l.ErrorsTotal != 0 {
		t.Errorf("%s: %d errors: %+v", l.Name, l.ErrorsTotal, l.Errors)
	}
}

func TestSmokeSteady(t *testing.T) {
	rep := runSmoke(t, "steady", nil)
	if rep.Steady == nil {
		t.Fatal("no steady result")
	}
	checkLoop(t, rep.Steady)
	if rep.Steady.CyclesPerSec <= 0 {
		t.Errorf("no jobs completed: %+v", rep.Steady)
	}
	if len(rep.Echo) == 0 || rep.Ratios == nil || rep.Ratios.JobsOverEcho <= 0 {
		t.Errorf("steady ran no echo baseline: echo %v, ratios %+v", rep.Echo, rep.Ratios)
	}
	for _, e := range rep.Echo {
		checkLoop(t, e)
	}
}

// TestSmokeSteadySessions runs steady and echo with clean, then
// persistent sessions, the devices listening on notify-next.
func TestSmokeSteadySessions(t *testing.T) {
	rep := runSmoke(t, "steady", func(c *config) {
		c.CompareSessions, c.NotifyNext = true, true
		c.Mosquitto = ""
	})
	if rep.Steady == nil || rep.SteadyPersistent == nil || !rep.SteadyPersistent.Persistent {
		t.Fatalf("steady results: clean %v, persistent %v", rep.Steady, rep.SteadyPersistent)
	}
	checkLoop(t, rep.Steady)
	checkLoop(t, rep.SteadyPersistent)
	if len(rep.Echo) != 2 || !rep.Echo[1].Persistent {
		t.Fatalf("echo results: %v", rep.Echo)
	}
	for _, e := range rep.Echo {
		checkLoop(t, e)
	}
	if r := rep.Ratios; r == nil || r.SteadyPersistentOverClean <= 0 || r.EchoPersistentOverClean <= 0 {
		t.Errorf("ratios %+v", rep.Ratios)
	}
}

func TestSmokeEcho(t *testing.T) {
	rep := runSmoke(t, "echo", nil)
	if len(rep.Echo) == 0 {
		t.Fatal("no echo result")
	}
	for _, e := range rep.Echo {
		checkLoop(t, e)
	}
	// .ci/run installs Mosquitto, so under CI the peer baseline must run.
	if os.Getenv("CI") == "true" && len(rep.Echo) < 2 {
		t.Errorf("CI=true but the Mosquitto echo baseline did not run (notes %q)", rep.Notes)
	}
}

func TestSmokeFanout(t *testing.T) {
	rep := runSmoke(t, "fanout", nil)
	f := rep.Fanout
	if f == nil {
		t.Fatal("no fanout result")
	}
	if f.ErrorsTotal != 0 || f.Missing != 0 || f.Notified != f.Connected {
		t.Errorf("fanout: %d of %d notified, %d errors", f.Notified, f.Connected, f.ErrorsTotal)
	}
	if f.NotifiesPerSec <= 0 || f.RolloutS <= 0 {
		t.Errorf("fanout: no throughput: %+v", f)
	}
	// jobsbench started the broker, with a profiling listener: each
	// connected device holds at least its two goroutines' stacks.
	if f.LivePerDeviceKiB < 4 {
		t.Errorf("fanout: live memory per device %.1f KiB, want the broker's heap profile read", f.LivePerDeviceKiB)
	}
}

// TestSmokeFanoutGroup makes the fanout target a thing group: more things
// than one CreateJob can name.
func TestSmokeFanoutGroup(t *testing.T) {
	defer func(old int) { maxTargetBytes = old }(maxTargetBytes)
	maxTargetBytes = 4 << 10
	rep := runSmoke(t, "fanout", nil)
	f := rep.Fanout
	if f == nil {
		t.Fatal("no fanout result")
	}
	if f.ErrorsTotal != 0 || f.Notified != f.Connected {
		t.Errorf("fanout: %d of %d notified, %d errors", f.Notified, f.Connected, f.ErrorsTotal)
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "thing group") }) {
		t.Errorf("the job did not target a thing group: notes %q", rep.Notes)
	}
}

func TestSmokeStorm(t *testing.T) {
	rep := runSmoke(t, "storm", nil)
	s := rep.Storm
	if s == nil {
		t.Fatal("no storm result")
	}
	if s.ErrorsTotal != 0 || s.Answered != s.Devices {
		t.Errorf("storm: %d of %d answered, errors %+v", s.Answered, s.Devices, s.Errors)
	}
	if s.AnsweredS <= 0 || s.StartNext.Count != s.Devices {
		t.Errorf("storm: no throughput: %+v", s)
	}
}

// TestSmokeSteadyPaced runs steady and the echo baselines at a fixed pace.
// A paced loop can never send more than its schedule holds, whatever the
// machine: that bound is checked, not any speed.
func TestSmokeSteadyPaced(t *testing.T) {
	const rate = 200
	rep := runSmoke(t, "steady", func(c *config) { c.Rate = rate })
	if rep.Steady == nil {
		t.Fatal("no steady result")
	}
	loops := append([]*LoopResult{rep.Steady}, rep.Echo...)
	for _, l := range loops {
		checkLoop(t, l)
		if l.TargetOpsPerSec != rate {
			t.Errorf("%s: target rate %v, want %v", l.Name, l.TargetOpsPerSec, rate)
		}
		// Every slot up to the window's end, plus one late answer per
		// device from before the window.
		if limit := int64(rate*(l.WarmupS+l.WindowS)) + 2*int64(l.Devices); l.Ops > limit {
			t.Errorf("%s: %d operations in the window exceed the %d the pace allows", l.Name, l.Ops, limit)
		}
	}
	if rep.Ratios != nil {
		t.Errorf("a paced run reported ratios of its paces: %+v", rep.Ratios)
	}
}

// TestSmokeScale fills a broker, restarts it on its data and runs steady,
// twice.
func TestSmokeScale(t *testing.T) {
	rep := runSmoke(t, "scale", func(c *config) {
		c.Stored = 3000
		c.Things = 1000
	})
	sc := rep.Scale
	if sc == nil || sc.Baseline == nil || sc.Loaded == nil {
		t.Fatalf("no scale result: %+v", sc)
	}
	for _, run := range []*ScaleRun{sc.Baseline, sc.Loaded} {
		if run.Steady == nil {
			t.Fatalf("stored %d: no steady result", run.Stored)
		}
		checkLoop(t, run.Steady)
		if run.StartS <= 0 || run.DataMiB <= 0 {
			t.Errorf("stored %d: restart not measured: %+v", run.Stored, run)
		}
	}
	if sc.Baseline.Stored != scaleBaselineStored || sc.Loaded.Stored != 3000 {
		t.Errorf("stored %d and %d, want %d and 3000", sc.Baseline.Stored, sc.Loaded.Stored, scaleBaselineStored)
	}
	if sc.Ratio <= 0 {
		t.Errorf("no ratio: %+v", sc)
	}
}

func TestSmokeFsync(t *testing.T) {
	rep := runSmoke(t, "fsync", func(c *config) { c.Duration = 300 * time.Millisecond })
	f := rep.Fsync
	if f == nil {
		t.Fatal("no fsync result")
	}
	if f.Latency.Count == 0 || f.SyncsPerSec <= 0 || f.Latency.P50Ms <= 0 || f.Latency.MaxMs < f.Latency.P99Ms {
		t.Errorf("fsync: %+v", f)
	}
}

// TestSmokeSteadyCluster runs steady over two nodes sharing PostgreSQL,
// the devices spread over both.
func TestSmokeSteadyCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two brokers and runs a scenario for a few seconds")
	}
	pg := brokertest.PostgresURL(t)
	rep := runSmoke(t, "steady", func(c *config) {
		c.StoreURL, c.NoSync = pg, false
		c.Nodes = 2
		c.Mosquitto = ""
	})
	if rep.Steady == nil {
		t.Fatal("no steady result")
	}
	checkLoop(t, rep.Steady)
	if rep.Settings.Store != "postgres" || rep.Settings.Nodes != 2 {
		t.Errorf("settings %+v, want 2 nodes on postgres", rep.Settings)
	}
	for _, e := range rep.Echo {
		checkLoop(t, e)
	}
}

func TestSmokeDepth(t *testing.T) {
	rep := runSmoke(t, "depth", func(c *config) { c.Depths = "2,20" })
	d := rep.Depth
	if d == nil || len(d.Runs) != 2 {
		t.Fatalf("no depth result: %+v", d)
	}
	for i, want := range []int{2, 20} {
		run := d.Runs[i]
		if run.JobsPerThing != want || run.Steady == nil {
			t.Fatalf("run %d: %+v, want %d pending jobs per thing", i, run, want)
		}
		checkLoop(t, run.Steady)
	}
	if d.Ratio <= 0 {
		t.Errorf("no ratio: %+v", d)
	}
}

func TestParseDepths(t *testing.T) {
	if got, err := parseDepths("3, 300"); err != nil || len(got) != 2 || got[0] != 3 || got[1] != 300 {
		t.Errorf("parseDepths(3, 300) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "3", "3,x", "0,3"} {
		if _, err := parseDepths(bad); err == nil {
			t.Errorf("parseDepths(%q) accepted", bad)
		}
	}
}

// TestSmokeSteadyNATS runs steady over two nodes that are one broker over
// a NATS server jobsbench starts, with each device's jobs its own, and the
// routed echoes: one node, and across nodes.
func TestSmokeSteadyNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two brokers and runs a scenario for a few seconds")
	}
	pg := brokertest.PostgresURL(t)
	rep := runSmoke(t, "steady", func(c *config) {
		c.StoreURL, c.NoSync, c.Nodes, c.NATS, c.SpreadJobs = pg, false, 2, true, true
		c.Mosquitto = ""
	})
	if rep.Steady == nil {
		t.Fatal("no steady result")
	}
	checkLoop(t, rep.Steady)
	var routed []string
	for _, e := range rep.Echo {
		checkLoop(t, e)
		if e.Broker == "jobsbroker routed" {
			routed = append(routed, e.Name)
		}
	}
	if fmt.Sprint(routed) != "[echo routed, one node echo routed, across nodes]" {
		t.Errorf("routed echoes %v", routed)
	}
	if rep.Ratios == nil || rep.Ratios.EchoAcrossNodesOverOneNode <= 0 {
		t.Errorf("no across-nodes ratio: %+v", rep.Ratios)
	}
}
