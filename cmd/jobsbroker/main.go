// Command jobsbroker runs an MQTT broker that speaks the AWS IoT Jobs
// protocol, with the AWS IoT job-management API over HTTP.
//
// With no configuration it serves MQTT on 127.0.0.1:1883, the
// job-management API on 127.0.0.1:8080 and the iot-jobs-data API on
// 127.0.0.1:8081, and keeps its data in ./data. Listeners bind to every
// interface once they can identify their clients (identity, credentials
// file) or with -allow-anonymous. SIGHUP reloads certificates and
// credentials.
//
// Usage:
//
//	jobsbroker [serve] [flags]      run the broker
//	jobsbroker config [flags]       print the effective configuration
//	jobsbroker backup -o FILE       back the store up (-from URL for a running broker)
//	jobsbroker restore -i FILE      restore a backup into an empty data directory
//	jobsbroker passwd -file F THING set a thing's password (identity password; read from stdin)
//	jobsbroker version              print the version
//
// Every setting is a flag (-mqtt-addr), a config-file key (mqtt_addr, in
// the YAML file given by -config) and an environment variable
// (JOBSBROKER_MQTT_ADDR); the environment wins over the flag, which wins
// over the file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jobsbroker/jobsbroker/broker"
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

// run dispatches to a subcommand; without one it serves.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "config":
		return printConfig(args, getenv, stdout, stderr)
	case "backup":
		return backup(ctx, args, getenv, stdout, stderr)
	case "restore":
		return restore(args, getenv, stdout, stderr)
	case "passwd":
		return passwd(args, os.Stdin, stdout, stderr)
	case "version":
		_, err := fmt.Fprintln(stdout, "jobsbroker", broker.Version)
		return err
	}
	return fmt.Errorf("unknown command %q (serve, config, backup, restore, passwd or version)", cmd)
}

// serve starts the broker and blocks until ctx ends, then shuts it down.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("jobsbroker", stderr)
	if err := s.load(args, getenv); err != nil {
		return err
	}
	log := s.logger(stdout)
	cfg := s.Config
	cfg.Logger = log
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		b.Shutdown(context.Background())
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var serveErr error
wait:
	for {
		select {
		case <-hup:
			// Certificates, passwords and access keys; a bad file keeps
			// the old material in use.
			if err := b.Reload(); err != nil {
				log.Error("reload failed; still using the previous certificates and credentials", "error", err)
			}
		case <-ctx.Done():
			log.Info("shutting down", "reason", context.Cause(ctx))
			break wait
		case serveErr = <-b.Err():
			log.Error("listener failed", "error", serveErr)
			break wait
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, b.Shutdown(shutdownCtx))
}

// printConfig prints the effective configuration as a config file.
func printConfig(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("jobsbroker config", stderr)
	if err := s.load(args, getenv); err != nil {
		return err
	}
	out, err := s.effective()
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
