package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobsbroker/jobsbroker/store"
)

// SessionCounts are the persistent-session figures of the sessions hook.
type SessionCounts struct {
	Sessions, Connected, Queued                  int64 // gauges
	Dropped, ExpiredMessages, Expired, Delivered int64 // counters
	WriteErrors, Refused                         int64 // counters
}

// RegisterSessions exposes the persistent-session figures, read at scrape
// time, and what the store holds for sessions, computed at scrape time and
// cached for maxAge (it walks the session records).
func RegisterSessions(reg prometheus.Registerer, counts func() SessionCounts,
	usage func(context.Context) (*store.SessionUsage, error), maxAge time.Duration) {
	reg.MustRegister(&sessionCollector{counts: counts, usage: scrapeCache[*store.SessionUsage]{compute: usage, maxAge: maxAge}})
}

var (
	sessionsDesc = prometheus.NewDesc(namespace+"_sessions",
		"Persistent MQTT sessions held, by state (connected, offline).", []string{"state"}, nil)
	queuedDesc = desc("session_queued_messages",
		"QoS 1 messages persistent sessions are owed: in flight, or queued for clients that are away.")
	sessionDroppedDesc = prometheus.NewDesc(namespace+"_session_dropped_messages_total",
		"Messages persistent sessions were owed and will never get, by reason: queue_full (the oldest, beyond max_queued_messages) or expired (their MQTT 5 expiry passed).",
		[]string{"reason"}, nil)
	sessionsExpiredDesc = desc("sessions_expired_total", "Persistent sessions ended because their client stayed away past their expiry.")
	deliveredDesc       = desc("session_delivered_messages_total", "Queued messages delivered to clients that came back.")
	sessionWriteErrDesc = desc("session_write_errors_total", "Writes of session state or retained messages to the store that failed.")
	refusedDesc         = desc("mqtt_publishes_refused_total",
		"Publishes refused: a retained message beyond max_retained_messages or max_retained_size, or one that could not be stored.")
	sessionStoreDesc = prometheus.NewDesc(namespace+"_session_store_records",
		"Records the store holds for MQTT state, by kind (session, subscription, message, retained).", []string{"kind"}, nil)
	sessionBytesDesc = desc("session_store_bytes", "Bytes of the records the store holds for MQTT state (keys and values).")
)

type sessionCollector struct {
	counts func() SessionCounts
	usage  scrapeCache[*store.SessionUsage]
}

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sessionsDesc, queuedDesc, sessionDroppedDesc, sessionsExpiredDesc, deliveredDesc,
		sessionWriteErrDesc, refusedDesc, sessionStoreDesc, sessionBytesDesc} {
		ch <- d
	}
}

func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.counts()
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(sessionsDesc, gauge, float64(n.Connected), "connected")
	ch <- prometheus.MustNewConstMetric(sessionsDesc, gauge, float64(n.Sessions-n.Connected), "offline")
	ch <- prometheus.MustNewConstMetric(queuedDesc, gauge, float64(n.Queued))
	ch <- prometheus.MustNewConstMetric(sessionDroppedDesc, counter, float64(n.Dropped), "queue_full")
	ch <- prometheus.MustNewConstMetric(sessionDroppedDesc, counter, float64(n.ExpiredMessages), "expired")
	ch <- prometheus.MustNewConstMetric(sessionsExpiredDesc, counter, float64(n.Expired))
	ch <- prometheus.MustNewConstMetric(deliveredDesc, counter, float64(n.Delivered))
	ch <- prometheus.MustNewConstMetric(sessionWriteErrDesc, counter, float64(n.WriteErrors))
	ch <- prometheus.MustNewConstMetric(refusedDesc, counter, float64(n.Refused))
	if u := c.usage.get(); u != nil {
		for _, k := range []struct {
			kind string
			n    int64
		}{{"session", u.Sessions}, {"subscription", u.Subscriptions}, {"message", u.Messages}, {"retained", u.Retained}} {
			ch <- prometheus.MustNewConstMetric(sessionStoreDesc, gauge, float64(k.n), k.kind)
		}
		ch <- prometheus.MustNewConstMetric(sessionBytesDesc, gauge, float64(u.Bytes))
	}
}
