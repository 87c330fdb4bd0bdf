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
//	jobsbroker [serve] [flags]            run the broker (the default command)
//	jobsbroker config [flags]             print the effective configuration
//	jobsbroker wait -api URL -thing T -job J -status S   wait for an execution's status
//	jobsbroker backup -o FILE             back the store up (-from URL for a running broker)
//	jobsbroker restore -i FILE            restore a backup into an empty data directory
//	jobsbroker passwd -file FILE THING    set a thing's password (identity password)
//	jobsbroker version                    print the version and build information
//	jobsbroker help [command]             print help for a command
//
// Every setting is a flag (-mqtt-addr), a config-file key (mqtt_addr, in
// the YAML file given by -config) and an environment variable
// (JOBSBROKER_MQTT_ADDR); the environment wins over the flag, which wins
// over the file. `jobsbroker help serve` lists them all.
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
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jobsbroker/jobsbroker/broker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	broker.Version = buildVersion()
	setMemoryLimit(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	code := exitCode(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode prints err once, with a hint when it was a usage mistake, and
// returns the exit status: 0, 1 for a failure, 2 for a usage mistake (as
// the go command does).
func exitCode(err error, stderr io.Writer) int {
	var usage *usageError
	var exit *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &exit):
		fmt.Fprintln(stderr, "jobsbroker:", err)
		return exit.code
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "jobsbroker: %v\n%s\n", usage.err, usage.hint())
		return 2
	}
	fmt.Fprintln(stderr, "jobsbroker:", err)
	return 1
}

// usageError is a mistake on the command line: main prints it with a
// pointer to the command's help.
type usageError struct {
	cmd string // "" for the command name itself
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func (e *usageError) hint() string {
	if e.cmd == "" {
		return "Run 'jobsbroker help' for the commands."
	}
	return fmt.Sprintf("Run 'jobsbroker help %s' for usage.", e.cmd)
}

// cli is what a command reads and writes.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// A command is one of jobsbroker's subcommands.
type command struct {
	name     string
	synopsis string // the arguments, for the usage line
	short    string // one line, for the list of commands
	long     string // what help prints above the flags
	// flags defines the command's flags and returns the function that
	// runs the command once they are parsed, with the arguments left.
	flags func(c *cli) (*flag.FlagSet, func(ctx context.Context, args []string) error)
}

// commands lists the subcommands in the order help shows them.
var commands []*command

func init() {
	commands = []*command{serveCmd, configCmd, waitCmd, backupCmd, restoreCmd, passwdCmd, versionCmd, helpCmd}
}

// run dispatches to a subcommand; without one it serves.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cli{getenv: getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr}
	return c.run(ctx, args)
}

func (c *cli) run(ctx context.Context, args []string) error {
	name := serveCmd.name
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "-help" || a == "--help":
			return c.overview()
		case a == "-version" || a == "--version":
			name, args = versionCmd.name, args[1:]
		case !strings.HasPrefix(a, "-"):
			name, args = a, args[1:]
		}
	}
	cmd := lookup(name)
	if cmd == nil {
		return &usageError{err: fmt.Errorf("unknown command %q", name)}
	}
	fs, exec := cmd.flags(c)
	fs.SetOutput(io.Discard) // errors are returned, and printed once by main
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.help(cmd, fs)
			return flag.ErrHelp
		}
		return &usageError{cmd: cmd.name, err: err}
	}
	return exec(ctx, fs.Args())
}

func lookup(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

// overview is what `jobsbroker help` and `jobsbroker -h` print.
func (c *cli) overview() error {
	var b strings.Builder
	b.WriteString("jobsbroker is an MQTT broker that speaks the AWS IoT Jobs protocol, with the\n" +
		"AWS IoT job-management API over HTTP.\n\nUsage:\n\n" +
		"\tjobsbroker [serve] [flags]\n\tjobsbroker <command> [arguments]\n\nThe commands are:\n\n")
	for _, cmd := range commands {
		fmt.Fprintf(&b, "\t%-8s %s\n", cmd.name, cmd.short)
	}
	b.WriteString("\nUse \"jobsbroker help <command>\" for more about a command, and\n" +
		"\"jobsbroker help serve\" for every setting.\n")
	_, err := io.WriteString(c.stdout, b.String())
	return err
}

// help prints a command's usage, description and flags.
func (c *cli) help(cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(c.stdout, "usage: jobsbroker %s %s\n\n%s\n", cmd.name, cmd.synopsis, strings.TrimSpace(cmd.long))
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(c.stdout, "\nFlags:")
		fs.SetOutput(c.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

var helpCmd = &command{
	name:     "help",
	synopsis: "[command]",
	short:    "print help for a command",
	long:     "Help prints the commands, or a command's usage and flags.",
	flags: func(c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
		return flag.NewFlagSet("help", flag.ContinueOnError), func(ctx context.Context, args []string) error {
			switch len(args) {
			case 0:
				return c.overview()
			case 1:
				cmd := lookup(args[0])
				if cmd == nil {
					return &usageError{err: fmt.Errorf("unknown command %q", args[0])}
				}
				fs, _ := cmd.flags(c)
				c.help(cmd, fs)
				return nil
			}
			return &usageError{cmd: "help", err: errors.New("help takes at most one command")}
		}
	},
}

var serveCmd = &command{
	name:     "serve",
	synopsis: "[flags]",
	short:    "run the broker (the default command)",
	long: `
Serve runs the broker until SIGINT or SIGTERM, then shuts down cleanly;
SIGHUP reloads certificates and credentials. With no flags it serves MQTT
on 127.0.0.1:1883, the AWS IoT job-management API on 127.0.0.1:8080 and the
iot-jobs-data API on 127.0.0.1:8081, and keeps its data in ./data.

Every flag is also a key of the -config file (-mqtt-addr is mqtt_addr) and
an environment variable (JOBSBROKER_MQTT_ADDR). The environment wins over
the flag, which wins over the file.`,
	flags: func(c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
		s := newSettings("serve")
		return s.fs, func(ctx context.Context, args []string) error {
			if err := s.finish(s.fs, args, c.getenv); err != nil {
				return err
			}
			return serve(ctx, s, c.stdout)
		}
	},
}

// serve starts the broker and blocks until ctx ends, then shuts it down.
func serve(ctx context.Context, s *settings, stdout io.Writer) error {
	log := s.logger(stdout)
	cfg := s.Config
	cfg.Logger = log
	// A start that fails leaves no data directory behind.
	created := ""
	if cfg.Store == broker.StoreBadger && cfg.DataDir != broker.InMemory {
		created = firstMissing(cfg.DataDir)
	}
	b, err := broker.New(cfg)
	if err == nil {
		if err = b.Start(); err != nil {
			b.Shutdown(context.Background())
		}
	}
	if err != nil {
		if created != "" {
			os.RemoveAll(created)
		}
		return s.explain(err)
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

var configCmd = &command{
	name:     "config",
	synopsis: "[flags]",
	short:    "print the effective configuration as a YAML file",
	long: `
Config prints the configuration that serve would run with, given the same
flags, -config file and environment, as a YAML file for -config: every
setting with its help, secrets redacted. It fails as serve would on a
configuration that is not valid.

Its flags are serve's.`,
	flags: func(c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
		s := newSettings("config")
		return s.fs, func(ctx context.Context, args []string) error {
			if err := s.finish(s.fs, args, c.getenv); err != nil {
				return err
			}
			out, err := s.effective()
			if err != nil {
				return err
			}
			_, err = c.stdout.Write(out)
			return err
		}
	},
}

// firstMissing returns the outermost directory on the way to dir that does
// not exist yet ("" when dir exists): what creating dir would create.
func firstMissing(dir string) string {
	missing := ""
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, os.ErrNotExist) {
			return missing
		}
		missing = d
		if parent := filepath.Dir(d); parent == d {
			return missing
		}
	}
}

// explain adds to an error the broker gave at start what the person
// starting it can do about it.
func (s *settings) explain(err error) error {
	switch {
	case lockedByAnother(err):
		return fmt.Errorf("the data directory %s is in use by another jobsbroker (or a backup or restore of it): "+
			"stop that one, or give this one a directory of its own with %s", s.DataDir, s.name("data-dir"))
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w\n(another program, perhaps another jobsbroker, uses that address: stop it, or choose another with the flag named above)", err)
	}
	return err
}

// lockedByAnother reports whether err is Badger refusing a directory that
// another process holds. Badger does not wrap the flock error, so its
// message is all there is to go on; TestLockedDataDir pins it.
func lockedByAnother(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Cannot acquire directory lock")
}
