package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1) // 1..100
	}
	thousand := make([]int64, 1000)
	for i := range thousand {
		thousand[i] = int64(i + 1)
	}
	for _, c := range []struct {
		samples []int64
		q       float64
		want    int64
	}{
		{nil, 0.5, 0},
		{[]int64{7}, 0.5, 7},
		{[]int64{7}, 0.999, 7},
		{[]int64{1, 2}, 0.5, 1},
		{[]int64{1, 2}, 0.51, 2},
		{hundred, 0.5, 50},
		{hundred, 0.99, 99},
		{hundred, 0.999, 100},
		{hundred, 1, 100},
		{hundred, 0.001, 1},
		{thousand, 0.999, 999},
		{thousand, 0.99, 990},
	} {
		if got := percentile(c.samples, c.q); got != c.want {
			t.Errorf("percentile(%d samples, %v) = %d, want %d", len(c.samples), c.q, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	if got := summarize(nil); got != (Latency{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
	// 1..10000 µs, shuffled: summarize must sort.
	samples := make([]int64, 10_000)
	for i := range samples {
		samples[i] = int64(i+1) * int64(time.Microsecond)
	}
	rand.Shuffle(len(samples), func(i, j int) { samples[i], samples[j] = samples[j], samples[i] })
	l := summarize(samples)
	want := Latency{Count: 10_000, MeanMs: 5.001, P50Ms: 5, P99Ms: 9.9, P999Ms: 9.99, MaxMs: 10}
	if l != want {
		t.Errorf("summarize = %+v, want %+v", l, want)
	}
	if !slices.IsSorted(samples) {
		t.Error("samples not sorted in place")
	}
}
