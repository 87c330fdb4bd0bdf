// Command jobsbench measures jobsbroker with simulated devices over real
// MQTT connections on loopback.
//
// It runs thousands of devices in one process on a lean MQTT 3.1.1 client
// of its own (one reader goroutine per connection, TCP_NODELAY, QoS 1
// requests that each wait for their reply), shows its progress on stderr,
// and prints a table on stdout and, with -json, a JSON report.
//
// Usage:
//
//	jobsbench steady [flags]   devices loop start-next, update IN_PROGRESS, update SUCCEEDED;
//	                           then the echo baselines and the ratios (unless -no-echo)
//	jobsbench fanout [flags]   one job for -things things, -connected of them listening on notify-next
//	jobsbench storm [flags]    -connected devices connect at once and each sends start-next
//	jobsbench echo [flags]     the request/reply ceiling: jobsbroker's echo responder and Mosquitto's
//	jobsbench scale [flags]    steady over a broker holding 1,000 executions, then -stored, each restarted first
//	jobsbench depth [flags]    steady with each of -depths pending jobs per thing (3,300), and the ratio
//	jobsbench fsync [flags]    the disk's flush latency (4 KiB append + fdatasync) where brokers keep their data
//
// By default jobsbench builds cmd/jobsbroker (it must run inside the
// module for that, or be given -broker-bin) and starts it on loopback ports
// with a temporary data directory and -debug-echo-prefix bench/; -mqtt and
// -api point it at a running broker instead. The Mosquitto echo starts
// -mosquitto (default /usr/sbin/mosquitto) with a generated configuration
// and is skipped, with a note, when it is not installed.
//
// What is measured:
//
//   - steady: every job is created and rolled out before the devices
//     connect, so the measured window (after -warmup) holds device
//     operations only. A device works through its jobs as a series of
//     things with -jobs-per-thing pending jobs each: what a device
//     operation costs grows with the thing's pending set. Operations count
//     in the window when their answer arrives in it; latencies are exact
//     percentiles over every such answer.
//   - echo: the same closed loop (one ~100-byte QoS 1 request outstanding
//     per device) answered by jobsbroker's echo hook (no store), then by a
//     responder client through Mosquitto.
//   - fanout: the connected devices are spread evenly over the job's
//     targets; times run from just before CreateJob is sent.
//   - storm: -storm-concurrency connection attempts run at once; each
//     device sends start-next as soon as it has its CONNACK.
//   - scale: for 1,000 and then -stored executions (QUEUED, jobs for a
//     thing group of up to -things things), a fresh broker is filled,
//     restarted on its data directory (its start is timed) and measured
//     with steady (no echo); the ratio compares the two steady rates.
//   - depth: steady (no echo) on a fresh broker for each of -depths
//     pending jobs per thing; the ratio compares the deepest run's rate
//     with the shallowest's.
//   - -store-url and -nodes start several brokers on one PostgreSQL
//     database; the devices are spread over them round robin (and -mqtt
//     takes several addresses, separated by commas, likewise).
//   - -nats starts a NATS server in jobsbench's process and the nodes
//     with it as -cluster-nats-url (-cluster-nats-url names a running
//     one): the nodes are one broker. Echo then also measures a publish
//     routed through a responder client, with the responder on the
//     devices' node and on another node, and the ratio of the two.
//   - -spread-jobs gives steady's devices jobs of their own (each job
//     targets one thing), so that no two devices, on any nodes, update
//     the same job's counts.
//   - -rate paces steady and echo: each device sends on a fixed schedule
//     and latencies run from the scheduled time, not the send.
//   - -consoles holds live pages of the web console open on the first
//     node (steady: from before the devices connect to the end of the
//     window; fanout: from just after CreateJob is answered to the end of
//     the rollout) and reports the messages each page was sent.
//
// There are no timing targets: the numbers depend on the machine, and only
// figures from one invocation (such as the ratios steady prints) compare.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// config holds the settings of a run.
type config struct {
	Devices            int
	Things             int
	Connected          int
	Duration           time.Duration
	Warmup             time.Duration
	JobsPerDevice      int
	JobsPerThing       int
	NoSync             bool
	NoEcho             bool
	Mosquitto          string
	MQTTAddr           string
	APIURL             string
	BrokerPID          int
	BrokerBin          string
	ConnectConcurrency int
	ConnectRate        float64
	Rate               float64
	Stored             int
	StoreURL           string
	CPUProfile         string // where jobsbench writes its own CPU profile
	Nodes              int
	// ClusterNATSURL is given to the nodes jobsbench starts; NATS starts a
	// NATS server in jobsbench's process for them instead.
	ClusterNATSURL string
	NATS           bool
	// SpreadJobs makes steady give each device jobs of its own.
	SpreadJobs       bool
	StormConcurrency int
	APIConcurrency   int
	Timeout          time.Duration
	WaitTimeout      time.Duration
	KeepAlive        time.Duration
	JSONPath         string
	// Persistent connects the devices with a persistent session (clean
	// session off); CompareSessions runs steady and echo with clean
	// sessions, then again with persistent ones, in one invocation.
	Persistent      bool
	CompareSessions bool
	// NotifyNext makes steady's devices subscribe to notify-next of their
	// things, as AWS IoT Jobs devices do.
	NotifyNext bool
	Consoles   int
	Depths     string
	// Progress receives the progress lines; nil shows none.
	Progress io.Writer
}

// defaultConfig is the configuration the flags start from.
func defaultConfig() config {
	return config{
		Devices:            1000,
		Things:             100_000,
		Stored:             1_000_000,
		Nodes:              1,
		Depths:             "3,300",
		Connected:          10_000,
		Duration:           20 * time.Second,
		Warmup:             5 * time.Second,
		JobsPerThing:       3,
		Mosquitto:          "/usr/sbin/mosquitto",
		ConnectConcurrency: 64,
		StormConcurrency:   1000,
		APIConcurrency:     32,
		Timeout:            30 * time.Second,
		WaitTimeout:        10 * time.Minute,
		KeepAlive:          60 * time.Second,
	}
}

const usage = `usage: jobsbench steady|fanout|storm|echo|scale|depth|fsync [flags]

  steady   -devices devices loop start-next, update IN_PROGRESS, update SUCCEEDED over
           pre-created jobs; then the echo baselines in the same run (unless -no-echo)
  fanout   one job for -things things; -connected of them listen on notify-next
  storm    -connected devices connect at once and each sends start-next
  echo     the same request/reply pattern with no store: jobsbroker's echo, and Mosquitto
  scale    steady over a restarted broker holding 1,000 stored executions, then -stored
  depth    steady with each of -depths pending jobs per thing, each on a fresh broker, and the ratio
  fsync    the disk's flush latency: 4 KiB appends, each followed by fdatasync, for -duration

flags:
`

// errShown is a command-line error that has already been printed.
var errShown = errors.New("invalid command line")

// parseArgs reads the scenario and the flags.
func parseArgs(args []string, stderr io.Writer) (string, config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("jobsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "steady and echo: concurrent devices, one request outstanding each")
	fs.IntVar(&cfg.Things, "things", cfg.Things, "fanout: things the job targets; scale: things each filling job targets")
	fs.IntVar(&cfg.Stored, "stored", cfg.Stored, "scale: executions stored before the second steady run")
	fs.IntVar(&cfg.Connected, "connected", cfg.Connected, "fanout: connected devices listening on notify-next; storm: devices")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "steady and echo: measured window")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "steady and echo: warm-up before the window")
	fs.IntVar(&cfg.JobsPerDevice, "jobs-per-device", 0, "steady: jobs each device works through (0: enough for the run at about 20k ops/s)")
	fs.IntVar(&cfg.JobsPerThing, "jobs-per-thing", cfg.JobsPerThing, "steady: pending jobs of each thing; a device works through several things")
	fs.StringVar(&cfg.Depths, "depths", cfg.Depths, "depth: pending jobs per thing of each steady run, comma-separated, shallowest first")
	fs.Float64Var(&cfg.Rate, "rate", 0, "steady and echo: pace all devices together to this many requests/s (0: closed loop, as fast as answered)")
	fs.BoolVar(&cfg.NoSync, "no-sync", false, "start the broker with -no-sync (acknowledge before the disk flush)")
	fs.BoolVar(&cfg.NoEcho, "no-echo", false, "steady: skip the echo baselines")
	fs.StringVar(&cfg.Mosquitto, "mosquitto", cfg.Mosquitto, "Mosquitto binary for the echo baseline (empty: skip it)")
	fs.StringVar(&cfg.MQTTAddr, "mqtt", "", "host:port of a running broker's MQTT listener, or several separated by commas (default: start one)")
	fs.StringVar(&cfg.StoreURL, "store-url", "", "start the brokers with -store postgres on this PostgreSQL URL (use an empty database)")
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "broker nodes to start, sharing -store-url; devices are spread over them")
	fs.StringVar(&cfg.ClusterNATSURL, "cluster-nats-url", "", "start the nodes with this -cluster-nats-url: one broker over NATS")
	fs.BoolVar(&cfg.NATS, "nats", false, "start a NATS server in jobsbench's process and the nodes with it as -cluster-nats-url; echo then also measures a publish crossing nodes")
	fs.BoolVar(&cfg.SpreadJobs, "spread-jobs", false, "steady: each job targets one device's thing, so that no two devices update the same job (default: each job targets every device's)")
	fs.StringVar(&cfg.APIURL, "api", "", "base URL of the running broker's control-plane API (with -mqtt)")
	fs.IntVar(&cfg.BrokerPID, "broker-pid", 0, "process id of the running broker, for its RSS (with -mqtt)")
	fs.StringVar(&cfg.BrokerBin, "broker-bin", "", "jobsbroker binary to start (default: go build ./cmd/jobsbroker)")
	fs.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", cfg.ConnectConcurrency, "connection attempts in flight while connecting devices before a run")
	fs.Float64Var(&cfg.ConnectRate, "connect-rate", 0, "new connections per second while connecting devices before a run (0: no limit)")
	fs.IntVar(&cfg.StormConcurrency, "storm-concurrency", cfg.StormConcurrency, "storm: connection attempts in flight at once")
	fs.IntVar(&cfg.APIConcurrency, "api-concurrency", cfg.APIConcurrency, "control-plane requests in flight during setup")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "steady and echo: a request unanswered this long is an error")
	fs.DurationVar(&cfg.WaitTimeout, "wait", cfg.WaitTimeout, "fanout and storm: how long to wait for every device")
	fs.DurationVar(&cfg.KeepAlive, "keepalive", cfg.KeepAlive, "MQTT keep-alive of the devices (idle ones ping)")
	fs.StringVar(&cfg.JSONPath, "json", "", "write the JSON report to this file (- for stdout)")
	sessions := fs.String("sessions", "clean", "the devices' MQTT sessions: clean, persistent (clean session off), or both (steady and echo run with each, in one invocation)")
	fs.BoolVar(&cfg.NotifyNext, "notify-next", false, "steady: the devices subscribe to notify-next of their things, as AWS IoT Jobs devices do")
	fs.IntVar(&cfg.Consoles, "consoles", 0, "steady and fanout: hold this many live pages of the web console open (their Server-Sent Events streams) and count what they are sent")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write jobsbench's own CPU profile of the whole invocation to this file (the broker has -pprof-addr)")
	quiet := fs.Bool("quiet", false, "no progress display")
	if len(args) == 0 || len(args[0]) == 0 || args[0][0] == '-' {
		fs.Usage()
		return "", cfg, errors.New("name a scenario: steady, fanout, storm, echo, scale, depth or fsync")
	}
	scenario := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", cfg, err
		}
		return "", cfg, errShown // the flag package has printed it
	}
	if fs.NArg() > 0 {
		return "", cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	switch *sessions {
	case "clean":
	case "persistent":
		cfg.Persistent = true
	case "both":
		cfg.CompareSessions = true
	default:
		return "", cfg, fmt.Errorf("-sessions %q: must be clean, persistent or both", *sessions)
	}
	if cfg.MQTTAddr == "" && cfg.APIURL != "" {
		return "", cfg, errors.New("-api needs -mqtt")
	}
	if cfg.Nodes < 1 || (cfg.Nodes > 1 && cfg.StoreURL == "") {
		return "", cfg, errors.New("-nodes above 1 needs -store-url: the nodes share a PostgreSQL store")
	}
	if (cfg.NATS || cfg.ClusterNATSURL != "") && cfg.StoreURL == "" {
		return "", cfg, errors.New("-nats and -cluster-nats-url need -store-url: a cluster's nodes share a PostgreSQL store")
	}
	if cfg.NATS && cfg.ClusterNATSURL != "" {
		return "", cfg, errors.New("-nats starts a NATS server: it cannot go with -cluster-nats-url")
	}
	if cfg.NoSync && cfg.StoreURL != "" {
		return "", cfg, errors.New("-no-sync applies to the embedded store: it cannot go with -store-url")
	}
	if cfg.MQTTAddr != "" && cfg.StoreURL != "" {
		return "", cfg, errors.New("-store-url configures brokers jobsbench starts: it cannot go with -mqtt")
	}
	return scenario, cfg, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	scenario, cfg, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		if !errors.Is(err, errShown) {
			fmt.Fprintln(os.Stderr, "jobsbench:", err)
		}
		os.Exit(2)
	}
	stopProfile, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jobsbench:", err)
		os.Exit(2)
	}
	_, err = run(ctx, scenario, &cfg, os.Stdout)
	stopProfile()
	removeBuilds()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jobsbench:", err)
		os.Exit(1)
	}
}

// run runs one scenario, prints its table on stdout and writes the JSON
// report if asked; it returns the report.
func run(ctx context.Context, scenario string, cfg *config, stdout io.Writer) (*Report, error) {
	if limit, err := raiseFileLimit(); err != nil {
		slog.Warn("could not raise the open-file limit", "error", err)
	} else if need := uint64(max(cfg.Devices, cfg.Connected)) + 256; limit < need {
		slog.Warn("the open-file limit may be too low for this many connections", "limit", limit, "need", need)
	}
	rep := newReport(scenario, cfg)
	var err error
	switch scenario {
	case "steady":
		err = runSteady(ctx, cfg, rep)
	case "fanout":
		err = runFanout(ctx, cfg, rep)
	case "storm":
		err = runStorm(ctx, cfg, rep)
	case "echo":
		err = runEcho(ctx, cfg, rep)
	case "scale":
		err = runScale(ctx, cfg, rep)
	case "depth":
		err = runDepth(ctx, cfg, rep)
	case "fsync":
		err = runFsync(ctx, cfg, rep)
	default:
		return nil, fmt.Errorf("unknown scenario %q (steady, fanout, storm, echo, scale, depth or fsync)", scenario)
	}
	if err != nil {
		return rep, err
	}
	rep.Finished = time.Now().UTC()
	if err := rep.WriteTable(stdout); err != nil {
		return rep, fmt.Errorf("print the table: %w", err)
	}
	if cfg.JSONPath != "" {
		if err := rep.WriteJSONFile(cfg.JSONPath, stdout); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// loopOptions are the runLoop settings of the configuration.
func (c *config) loopOptions(probe *prober) loopOptions {
	return loopOptions{Warmup: c.Warmup, Duration: c.Duration, Timeout: c.Timeout, Rate: c.Rate, Probe: probe, Progress: c.Progress}
}

// openTarget starts a jobsbroker, or describes the running one of -mqtt.
func openTarget(ctx context.Context, cfg *config) (*target, error) {
	if cfg.MQTTAddr != "" {
		if cfg.APIURL == "" {
			return nil, errors.New("the scenarios need the control-plane API: give -api with -mqtt")
		}
		addrs := strings.Split(cfg.MQTTAddr, ",")
		t := &target{MQTTAddr: addrs[0], APIURL: cfg.APIURL, PID: cfg.BrokerPID, External: true}
		for _, a := range addrs[1:] {
			t.nodes = append(t.nodes, &target{MQTTAddr: a, External: true})
		}
		return t, nil
	}
	bin := cfg.BrokerBin
	if bin == "" {
		var err error
		if bin, err = buildBroker(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.StoreURL == "" {
		return startBroker(ctx, bin, cfg.NoSync)
	}
	var first *target
	natsURL, stopNATS := cfg.ClusterNATSURL, func() {}
	if cfg.NATS {
		var err error
		if natsURL, stopNATS, err = startNATS(); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Nodes {
		args := []string{"-store", "postgres", "-store-url", cfg.StoreURL, "-node-id", fmt.Sprintf("jobsbench-%d", i+1)}
		if natsURL != "" {
			args = append(args, "-cluster-nats-url", natsURL)
		}
		n, err := startBroker(ctx, bin, cfg.NoSync, args...)
		if err != nil {
			if first != nil {
				first.Close()
			}
			stopNATS()
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		if i == 0 {
			n.stopNATS, n.clustered = stopNATS, natsURL != ""
		}
		if first == nil {
			first = n
		} else {
			first.nodes = append(first.nodes, n)
		}
	}
	return first, nil
}

// closeTarget stops a broker jobsbench started and keeps what it warned
// about in the report.
func closeTarget(t *target, rep *Report) {
	rep.BrokerWarnings = append(rep.BrokerWarnings, t.Warnings()...)
	if err := t.Close(); err != nil {
		rep.note("stopping the broker: %v", err)
	}
}

// connectDevices connects one client per id with the configured limits,
// showing progress; setup, if not nil, runs on each (a subscription).
func connectDevices(ctx context.Context, cfg *config, addrs []string, label string, ids []string, setup func(i int, c *Client) error) ([]*Client, error) {
	d := &dialer{addrs: addrs, concurrency: cfg.ConnectConcurrency, rate: cfg.ConnectRate, attempts: 3}
	prog := startProgress(cfg.Progress, label, func(time.Duration) string {
		return fmt.Sprintf("connected %d/%d", d.connected.Load(), len(ids))
	})
	defer prog.Stop()
	return d.dialAll(ctx, len(ids), func(i int) ClientOptions {
		return ClientOptions{ClientID: ids[i], KeepAlive: cfg.KeepAlive, Persistent: cfg.Persistent}
	}, setup)
}

// names returns n thing names prefix-000000, prefix-000001, ...
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%06d", prefix, i)
	}
	return out
}

// runID is a short random id that keeps the names of one run apart from
// those of earlier runs on the same broker.
func runID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func mib(bytes int64) float64 { return round3(float64(bytes) / (1 << 20)) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// hostInfo describes the machine of a run.
type hostInfo struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

func currentHost() hostInfo {
	return hostInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
}

// startCPUProfile starts profiling jobsbench's own CPU into path (nothing
// when path is empty) and returns what stops it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			slog.Warn("could not write the CPU profile", "path", path, "error", err)
		}
	}, nil
}
