package main

import (
	"io"
	"strings"
	"testing"
)

// TestParseArgsRefusesMismatchedSettings: settings that cannot go
// together are refused before anything starts, with a message naming them.
func TestParseArgsRefusesMismatchedSettings(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"steady", "-no-sync", "-store-url", "postgres://db/jobs"}, "-no-sync applies to the embedded store"},
		{[]string{"steady", "-nodes", "2"}, "-nodes above 1 needs -store-url"},
		{[]string{"steady", "-nats"}, "-nats and -cluster-nats-url need -store-url"},
		{[]string{"steady", "-mqtt", "127.0.0.1:1883", "-store-url", "postgres://db/jobs"}, "cannot go with -mqtt"},
	}
	for _, c := range cases {
		_, _, err := parseArgs(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
	if _, cfg, err := parseArgs([]string{"steady", "-no-sync"}, io.Discard); err != nil || !cfg.NoSync {
		t.Errorf("-no-sync alone: %v, NoSync %v", err, cfg.NoSync)
	}
}
