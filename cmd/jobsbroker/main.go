// Command jobsbroker runs an MQTT broker that speaks the AWS IoT Jobs
// protocol, with the AWS IoT job-management API over HTTP.
//
// With no configuration it serves MQTT on :1883 and the API on :8080 and
// keeps its data in ./data. Every flag has a JOBSBROKER_* environment
// equivalent (-mqtt-addr is JOBSBROKER_MQTT_ADDR), which wins over the flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "jobsbroker:", err)
		os.Exit(1)
	}
}

// run starts the broker and blocks until ctx ends, then shuts it down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, logCfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(logCfg, stdout)
	if err != nil {
		return err
	}
	cfg.Logger = log
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		b.Shutdown(context.Background())
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case serveErr = <-b.Err():
		log.Error("listener failed", "error", serveErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), logCfg.shutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, b.Shutdown(shutdownCtx))
}

type logConfig struct {
	format          string
	level           string
	shutdownTimeout time.Duration
}

// parseConfig reads flags, then lets JOBSBROKER_* variables override them.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (broker.Config, logConfig, error) {
	var cfg broker.Config
	lc := logConfig{}
	fs := flag.NewFlagSet("jobsbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.MQTTAddr, "mqtt-addr", broker.DefaultMQTTAddr, "address of the plain MQTT listener")
	fs.StringVar(&cfg.APIAddr, "api-addr", broker.DefaultAPIAddr, "address of the HTTP API (AWS IoT job management)")
	fs.StringVar(&cfg.JobsAddr, "jobs-addr", broker.DefaultJobsAddr, "address of the HTTP iot-jobs-data API (the device operations)")
	fs.StringVar(&cfg.DataDir, "data-dir", broker.DefaultDataDir, "directory that holds the store")
	fs.BoolVar(&cfg.NoSync, "no-sync", false, "acknowledge writes before they reach the disk (a power failure can lose the last acknowledged writes)")
	fs.BoolVar(&cfg.Events, "events", false, "publish job and job-execution events on $aws/events/... (until UpdateEventConfigurations changes it)")
	fs.StringVar(&cfg.Region, "region", broker.DefaultRegion, "AWS region used in the ARNs the API returns")
	fs.StringVar(&cfg.Account, "account", broker.DefaultAccount, "AWS account id used in the ARNs the API returns")
	fs.StringVar(&cfg.EndpointHost, "endpoint-host", "localhost", "host name DescribeEndpoint returns (with each listener's port)")
	fs.StringVar(&lc.format, "log-format", "text", "log format: text or json")
	fs.StringVar(&lc.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&lc.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long shutdown waits for requests in flight")
	var offset time.Duration
	fs.DurationVar(&offset, "debug-clock-offset", 0, "run the broker's clock this far ahead of the wall clock (for testing timers)")
	if err := fs.Parse(args); err != nil {
		return cfg, lc, err
	}
	if fs.NArg() > 0 {
		return cfg, lc, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "JOBSBROKER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && err == nil {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	if err != nil {
		return cfg, lc, err
	}
	if offset != 0 {
		cfg.Clock = clock.Offset{By: offset}
	}
	return cfg, lc, nil
}

func newLogger(c logConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", c.level, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q must be text or json", c.format)
}
