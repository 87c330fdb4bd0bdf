package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobsbroker/jobsbroker/jobshook/faults"
)

// RegisterFaults exposes jobsbroker_faults_fired_total{kind}: the faults
// that acted on a message or a CONNECT, read from set at scrape time, with
// a series for every kind from the start.
func RegisterFaults(reg prometheus.Registerer, set *faults.Set) {
	for _, kind := range faults.Kinds {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "faults_fired_total",
			Help:        "Faults that acted on a message or a CONNECT (see /admin/faults), by kind.",
			ConstLabels: prometheus.Labels{"kind": string(kind)},
		}, func() float64 { return float64(set.FiredCount(kind)) }))
	}
}
