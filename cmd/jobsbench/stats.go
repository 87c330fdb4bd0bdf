package main

import (
	"math"
	"slices"
	"time"
)

// Latency summarizes a set of latency samples. Percentiles are exact
// (nearest rank over every sample), in milliseconds.
type Latency struct {
	Count  int     `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// percentile returns the q-quantile (0 < q <= 1) of ascending samples by
// the nearest-rank method: the smallest sample that at least q of all
// samples are at or below. It returns 0 for no samples.
func percentile(sorted []int64, q float64) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

// summarize sorts samples (nanoseconds) in place and summarizes them.
func summarize(samples []int64) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum float64
	for _, s := range samples {
		sum += float64(s)
	}
	return Latency{
		Count:  len(samples),
		MeanMs: ms(int64(sum / float64(len(samples)))),
		P50Ms:  ms(percentile(samples, 0.50)),
		P99Ms:  ms(percentile(samples, 0.99)),
		P999Ms: ms(percentile(samples, 0.999)),
		MaxMs:  ms(samples[len(samples)-1]),
	}
}

// ms converts nanoseconds to milliseconds, rounded to microseconds.
func ms(ns int64) float64 {
	return math.Round(float64(ns)/float64(time.Microsecond)) / 1000
}

// seconds converts nanoseconds to seconds, rounded to milliseconds.
func seconds(ns int64) float64 {
	return math.Round(float64(ns)/float64(time.Millisecond)) / 1000
}
