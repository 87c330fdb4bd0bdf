package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one jobsbench invocation measured; it is printed as
// a table and written as JSON.
type Report struct {
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Host     hostInfo  `json:"host"`
	Settings settings  `json:"settings"`
	// SetupS is how long unmeasured preparation took, by step.
	SetupS map[string]float64 `json:"setup_s,omitempty"`
	Steady *LoopResult        `json:"steady,omitempty"`
	// SteadyPersistent is steady again with persistent sessions
	// (-sessions both).
	SteadyPersistent *LoopResult   `json:"steady_persistent,omitempty"`
	Echo             []*LoopResult `json:"echo,omitempty"`
	Ratios           *Ratios       `json:"ratios,omitempty"`
	Fanout           *FanoutResult `json:"fanout,omitempty"`
	Storm            *StormResult  `json:"storm,omitempty"`
	Scale            *ScaleResult  `json:"scale,omitempty"`
	Depth            *DepthResult  `json:"depth,omitempty"`
	Fsync            *FsyncResult  `json:"fsync,omitempty"`
	// Console is what the -consoles pages received.
	Console *ConsoleResult `json:"console,omitempty"`
	Notes   []string       `json:"notes,omitempty"`
	// BrokerWarnings are the WARN and ERROR lines the broker logged.
	BrokerWarnings []string `json:"broker_warnings,omitempty"`
}

// Ratios compare steady's jobs throughput with the echo baselines of the
// same run.
type Ratios struct {
	// JobsOverEcho is jobs ops/s ÷ jobsbroker echo ops/s.
	JobsOverEcho float64 `json:"jobs_over_echo"`
	// JobsOverMosquittoEcho is jobs ops/s ÷ Mosquitto echo ops/s.
	JobsOverMosquittoEcho float64 `json:"jobs_over_mosquitto_echo,omitempty"`
	// SteadyPersistentOverClean and EchoPersistentOverClean compare the
	// same loop with persistent and with clean sessions (-sessions both).
	SteadyPersistentOverClean float64 `json:"steady_persistent_over_clean,omitempty"`
	EchoPersistentOverClean   float64 `json:"echo_persistent_over_clean,omitempty"`
	// EchoAcrossNodesOverOneNode compares the routed echo with the
	// responder on another node than the devices with the one with both
	// on one node (-nats).
	EchoAcrossNodesOverOneNode float64 `json:"echo_across_nodes_over_one_node,omitempty"`
}

// ratios returns the report's ratios, creating them.
func (r *Report) ratios() *Ratios {
	if r.Ratios == nil {
		r.Ratios = &Ratios{}
	}
	return r.Ratios
}

// settings is the part of the configuration the report records.
type settings struct {
	Devices          int     `json:"devices"`
	Things           int     `json:"things"`
	Connected        int     `json:"connected"`
	DurationS        float64 `json:"duration_s"`
	WarmupS          float64 `json:"warmup_s"`
	JobsPerDevice    int     `json:"jobs_per_device"`
	JobsPerThing     int     `json:"jobs_per_thing"`
	SyncWrites       bool    `json:"sync_writes"`
	ExternalBroker   bool    `json:"external_broker"`
	StormConcurrency int     `json:"storm_concurrency"`
	RateOpsPerSec    float64 `json:"rate_ops_per_s,omitempty"`
	Stored           int     `json:"stored,omitempty"`
	Store            string  `json:"store"`
	Nodes            int     `json:"nodes"`
}

func newReport(scenario string, cfg *config) *Report {
	return &Report{
		Scenario: scenario,
		Started:  time.Now().UTC(),
		Host:     currentHost(),
		SetupS:   map[string]float64{},
		Settings: settings{
			Devices: cfg.Devices, Things: cfg.Things, Connected: cfg.Connected,
			DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(), JobsPerDevice: cfg.JobsPerDevice,
			SyncWrites: !cfg.NoSync, ExternalBroker: cfg.MQTTAddr != "", StormConcurrency: cfg.StormConcurrency,
			RateOpsPerSec: cfg.Rate, Stored: cfg.Stored, Store: storeName(cfg), Nodes: max(cfg.Nodes, strings.Count(cfg.MQTTAddr, ",")+1),
		},
	}
}

// storeName names the store of the brokers jobsbench starts.
func storeName(cfg *config) string {
	switch {
	case cfg.MQTTAddr != "":
		return "external"
	case cfg.StoreURL != "":
		return "postgres"
	}
	return "badger"
}

// note adds a line to the report's notes.
func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// WriteJSONFile writes the report as indented JSON to path ("-" is
// stdout).
func (r *Report) WriteJSONFile(path string, stdout io.Writer) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the JSON report: %w", err)
	}
	data = append(data, '\n')
	if path == "-" {
		_, err = stdout.Write(data)
	} else {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		return fmt.Errorf("write the JSON report: %w", err)
	}
	return nil
}

// WriteTable prints the report as aligned tables.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	broker := "jobsbroker with synced writes"
	switch {
	case r.Settings.ExternalBroker:
		broker = "a running broker"
	case !r.Settings.SyncWrites:
		broker = "jobsbroker -no-sync"
	}
	if r.Settings.Store == "postgres" {
		broker = fmt.Sprintf("%d jobsbroker nodes on PostgreSQL", r.Settings.Nodes)
	}
	if r.Scenario == "fsync" {
		broker = "no broker"
	}
	fmt.Fprintf(w, "jobsbench %s  (%d CPUs, %s; %s)\n\n", r.Scenario, r.Host.CPUs, r.Host.GoVersion, broker)

	var loops []*LoopResult
	for _, l := range []*LoopResult{r.Steady, r.SteadyPersistent} {
		if l != nil {
			loops = append(loops, l)
		}
	}
	if sc := r.Scale; sc != nil {
		for _, run := range []*ScaleRun{sc.Baseline, sc.Loaded} {
			if run != nil && run.Steady != nil {
				loops = append(loops, run.Steady)
			}
		}
	}
	if d := r.Depth; d != nil {
		for _, run := range d.Runs {
			loops = append(loops, run.Steady)
		}
	}
	loops = append(loops, r.Echo...)
	if len(loops) > 0 {
		p("run\tbroker\tdevices\twindow s\tops\tops/s\tjobs/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\tbroker RSS MiB\tbroker cores\tbench cores\tops/commit\t\n")
		for _, l := range loops {
			jobs, perCommit, brokerCores, benchCores := "-", "-", "-", "-"
			if l.CyclesPerSec > 0 {
				jobs = fmt.Sprintf("%.0f", l.CyclesPerSec)
			}
			if u := l.Usage; u != nil {
				benchCores = fmt.Sprintf("%.2f", u.BenchCores)
				if u.BrokerCores > 0 {
					brokerCores = fmt.Sprintf("%.2f", u.BrokerCores)
				}
				if u.OpsPerCommit > 0 {
					perCommit = fmt.Sprintf("%.1f", u.OpsPerCommit)
				}
			}
			p("%s\t%s\t%d\t%.1f\t%d\t%.0f\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.1f\t%s\t%s\t%s\t\n", l.Name, l.Broker, l.Devices, l.WindowS,
				l.Ops, l.OpsPerSec, jobs, l.Latency.P50Ms, l.Latency.P99Ms, l.Latency.P999Ms, l.Latency.MaxMs, l.ErrorsTotal, l.RSSMiB,
				brokerCores, benchCores, perCommit)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, l := range loops {
			if l.TargetOpsPerSec > 0 {
				fmt.Fprintf(w, "  %s (%s) paced at %.0f ops/s; latencies run from each request's slot in the schedule\n", l.Name, l.Broker, l.TargetOpsPerSec)
			}
			if len(l.TurnsOpsPerSec) > 0 {
				fmt.Fprintf(w, "  %s: ops/s of its %d turns %v", l.Name, len(l.TurnsOpsPerSec), l.TurnsOpsPerSec)
				if u := l.Usage; u != nil && u.BrokerCores > 0 && l.OpsPerSec > 0 {
					fmt.Fprintf(w, "; broker CPU per op %.1f µs", u.BrokerCores/l.OpsPerSec*1e6)
				}
				fmt.Fprintln(w)
			}
			if l.RSSFileMiB > 0 {
				fmt.Fprintf(w, "  %s (%s): broker RSS %.1f MiB, of which %.1f MiB map the store's files\n", l.Name, l.Broker, l.RSSMiB, l.RSSFileMiB)
			}
			if l.ErrorsTotal > 0 {
				fmt.Fprintf(w, "  %s errors: %d rejected, %d timeouts, %d disconnects, %d invalid\n", l.Name,
					l.Errors.Rejected, l.Errors.Timeouts, l.Errors.Disconnects, l.Errors.Invalid)
			}
		}
	}
	if r.Ratios != nil {
		fmt.Fprintln(w)
		for _, q := range []struct {
			what string
			v    float64
		}{
			{"jobs ops/s ÷ jobsbroker echo ops/s", r.Ratios.JobsOverEcho},
			{"jobs ops/s ÷ mosquitto echo ops/s", r.Ratios.JobsOverMosquittoEcho},
			{"steady ops/s, persistent ÷ clean sessions", r.Ratios.SteadyPersistentOverClean},
			{"echo ops/s, persistent ÷ clean sessions", r.Ratios.EchoPersistentOverClean},
		} {
			if q.v > 0 {
				fmt.Fprintf(w, "%s: %.3f\n", q.what, q.v)
			}
		}
	}
	if sc := r.Scale; sc != nil {
		fmt.Fprintln(w)
		p("scale\tstored executions\tfill s\tdata MiB\tstart s\tRSS after start MiB\tsteady ops/s\tp99 ms\t\n")
		for _, run := range []*ScaleRun{sc.Baseline, sc.Loaded} {
			if run == nil || run.Steady == nil {
				continue
			}
			p("\t%d\t%.1f\t%.1f\t%.2f\t%.1f\t%.0f\t%.2f\t\n", run.Stored, run.FillS, run.DataMiB, run.StartS,
				run.RSSAfterStartMiB, run.Steady.OpsPerSec, run.Steady.Latency.P99Ms)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if sc.Ratio > 0 {
			fmt.Fprintf(w, "steady ops/s with %d stored ÷ with %d stored: %.3f\n", sc.Loaded.Stored, sc.Baseline.Stored, sc.Ratio)
		}
	}
	if d := r.Depth; d != nil && d.Ratio > 0 {
		first, last := d.Runs[0], d.Runs[len(d.Runs)-1]
		fmt.Fprintf(w, "\nsteady ops/s with %d pending jobs per thing ÷ with %d: %.3f (broker RSS at the end %.1f and %.1f MiB)\n",
			last.JobsPerThing, first.JobsPerThing, d.Ratio, last.Steady.RSSMiB, first.Steady.RSSMiB)
	}
	if f := r.Fsync; f != nil {
		p("fsync\tdir\tblock bytes\tflushes/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\t\n")
		p("\t%s\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", f.Dir, f.BlockBytes, f.SyncsPerSec, f.Latency.P50Ms, f.Latency.P99Ms,
			f.Latency.P999Ms, f.Latency.MaxMs)
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if f := r.Fanout; f != nil {
		p("fanout\tthings\tconnected\tcreate ms\trollout s\texecutions/s\tfirst notify ms\tp50 s\tp99 s\tall notified s\tnotified/s\tmissing\terrors\tRSS KiB/device\tbroker RSS MiB\t\n")
		p("\t%d\t%d\t%.1f\t%.2f\t%.0f\t%.1f\t%.2f\t%.2f\t%.2f\t%.0f\t%d\t%d\t%.1f\t%.1f\t\n", f.Things, f.Connected, f.CreateMs, f.RolloutS,
			f.ExecutionsPerSec, f.FirstNotifyMs, f.NotifyP50S, f.NotifyP99S, f.AllNotifiedS, f.NotifiesPerSec, f.Missing, f.ErrorsTotal,
			f.RSSPerDeviceKiB, f.RSSEndMiB)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "  setup %.1fs (registering things), connect+subscribe %.1fs; broker RSS %.1f MiB before, %.1f MiB connected\n",
			f.SetupS, f.ConnectS, f.RSSBeforeMiB, f.RSSConnectedMiB)
		if f.LivePerDeviceKiB > 0 {
			fmt.Fprintf(w, "  live per connected device (heap in use and stacks, after a collection): %.1f KiB\n", f.LivePerDeviceKiB)
		}
	}
	if s := r.Storm; s != nil {
		p("storm\tdevices\tin flight\tconnected s\tanswered s\tconnect p50 ms\tp99 ms\tstart-next p50 ms\tp99 ms\tp99.9 ms\terrors\tRSS KiB/device\tbroker RSS MiB\t\n")
		p("\t%d\t%d\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t%.1f\t\n", s.Devices, s.Concurrency, s.ConnectedS, s.AnsweredS,
			s.Connect.P50Ms, s.Connect.P99Ms, s.StartNext.P50Ms, s.StartNext.P99Ms, s.StartNext.P999Ms, s.ErrorsTotal,
			s.RSSPerDeviceKiB, s.RSSEndMiB)
		if err := tw.Flush(); err != nil {
			return err
		}
		if s.ErrorsTotal > 0 {
			fmt.Fprintf(w, "  errors: %d rejected, %d timeouts, %d connection failures, %d invalid\n",
				s.Errors.Rejected, s.Errors.Timeouts, s.Errors.Disconnects, s.Errors.Invalid)
		}
	}
	if r.Console != nil {
		writeConsoles(w, r.Console)
	}
	if len(r.SetupS) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.SetupS)) {
			parts = append(parts, fmt.Sprintf("%s %.1fs", k, r.SetupS[k]))
		}
		fmt.Fprintf(w, "\nsetup (not measured): %s\n", strings.Join(parts, ", "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.BrokerWarnings) > 0 {
		fmt.Fprintf(w, "the broker logged %d warnings or errors; the first: %s\n", len(r.BrokerWarnings), r.BrokerWarnings[0])
	}
	return nil
}
