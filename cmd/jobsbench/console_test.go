package main

import (
	"testing"
	"time"
)

func TestMaxInWindow(t *testing.T) {
	at := func(ms ...int) []time.Time {
		base := time.Unix(0, 0)
		var out []time.Time
		for _, m := range ms {
			out = append(out, base.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	for _, tc := range []struct {
		times []time.Time
		want  int
	}{
		{nil, 0},
		{at(0), 1},
		{at(0, 250, 500, 750, 1000, 1250), 4},
		{at(0, 999, 1000, 1001, 1002), 4},
		{at(0, 2000, 4000), 1},
	} {
		if got := maxInWindow(tc.times, time.Second); got != tc.want {
			t.Errorf("maxInWindow(%v) = %d, want %d", tc.times, got, tc.want)
		}
	}
}

func TestConsolePagesTakeTurns(t *testing.T) {
	got := consolePages(5, "a", "b")
	if want := []string{"a", "b", "a", "b", "a"}; len(got) != 5 || got[0] != want[0] || got[1] != want[1] || got[4] != want[4] {
		t.Errorf("consolePages = %v, want %v", got, want)
	}
}
