package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/jobsbroker/jobsbroker/broker"
)

var versionCmd = &command{
	name:  "version",
	short: "print the version and build information",
	long: `
Version prints jobsbroker's version, then the module, the commit it was
built from and the Go toolchain that built it. jobsbroker -version does the
same.

The version is the one deploy/build.sh stamps in; a binary built with go
build or go install reports the version the go command recorded for the
module (a tag, or a pseudo-version naming the commit).`,
	flags: func(c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
		return flag.NewFlagSet("version", flag.ContinueOnError), func(_ context.Context, args []string) error {
			if len(args) > 0 {
				return &usageError{cmd: "version", err: errors.New("version takes no arguments")}
			}
			return printVersion(c.stdout)
		}
	},
}

// buildVersion is the version the binary reports (jobsbroker_build_info,
// version): the one deploy/build.sh stamps into broker.Version, else the
// main module's version recorded by the go command, else broker.Version's
// "dev".
func buildVersion() string {
	if broker.Version != "dev" {
		return broker.Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return broker.Version
}

func printVersion(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "jobsbroker %s\n", buildVersion())
	if info, ok := debug.ReadBuildInfo(); ok {
		set := map[string]string{}
		for _, s := range info.Settings {
			set[s.Key] = s.Value
		}
		if info.Main.Path != "" {
			fmt.Fprintf(&b, "  module  %s %s\n", info.Main.Path, info.Main.Version)
		}
		if rev := set["vcs.revision"]; rev != "" {
			if t := set["vcs.time"]; t != "" {
				rev += " " + t
			}
			if set["vcs.modified"] == "true" {
				rev += " (modified)"
			}
			fmt.Fprintf(&b, "  commit  %s\n", rev)
		}
		fmt.Fprintf(&b, "  go      %s %s/%s\n", info.GoVersion, set["GOOS"], set["GOARCH"])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
