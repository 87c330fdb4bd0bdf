// Package metrics exposes jobsbroker's Prometheus metrics. Everything is
// registered on a registry the caller passes in (no globals), every name
// carries the jobsbroker_ prefix and base units, and no label holds a
// thing name or a job id, so cardinality stays fixed whatever the fleet.
//
// Request, rejection and latency metrics are fed as requests are served
// (the MQTT hook, the HTTP APIs, the store's commits); their known label
// values have series from the start. Figures the broker and the store
// already keep (mochi's counters, things by execution status, armed
// timers) are read at scrape time by collectors, never counted twice.
package metrics

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jobsbroker/jobsbroker/jobshook"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

const namespace = "jobsbroker"

// Metrics holds the metrics fed by the request paths.
type Metrics struct {
	requests       *prometheus.CounterVec
	rejections     *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	notifications  *prometheus.CounterVec
	apiRequests    *prometheus.CounterVec
	apiDuration    *prometheus.HistogramVec
	commitDuration prometheus.Histogram
	commitOps      prometheus.Histogram
	commitErrors   prometheus.Counter
	cmd            *commandMetrics
}

// New creates the metrics and registers them, with the Go and process
// collectors and jobsbroker_build_info, on reg.
func New(reg prometheus.Registerer, version string) *Metrics {
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Device requests answered, by transport (mqtt, http), operation and result (accepted, rejected).",
		}, []string{"transport", "operation", "result"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rejections_total",
			Help: "Device requests rejected, by transport and code (MQTT rejection code or HTTP exception).",
		}, []string{"transport", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Time to answer a device request, from receipt to reply, by transport and operation.",
			Buckets: latency,
		}, []string{"transport", "operation"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "notifications_total",
			Help: "Messages the broker published to subscribers: notify, notify-next and event.",
		}, []string{"kind"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_requests_total",
			Help: "HTTP API calls, by API (control, data), AWS operation and status code.",
		}, []string{"api", "operation", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "api_request_duration_seconds",
			Help:    "Time to answer an HTTP API call, by API.",
			Buckets: latency,
		}, []string{"api"}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_commit_duration_seconds",
			Help:    "Time one store commit (with its disk sync) takes.",
			Buckets: latency,
		}),
		commitOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_commit_operations",
			Help:    "Operations grouped into one store commit.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_commit_errors_total",
			Help: "Store commits that failed (PostgreSQL: operations the database failed, the connection included); their operations were answered InternalError / ServiceUnavailable.",
		}),
	}
	m.initialise()
	m.cmd = newCommandMetrics(reg)
	reg.MustRegister(m.requests, m.rejections, m.duration, m.notifications, m.apiRequests, m.apiDuration,
		m.commitDuration, m.commitOps, m.commitErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info", Help: "Always 1; its labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	info.Set(1)
	reg.MustRegister(info)
	return m
}

// Label values known in advance get their series at zero when the
// metrics are made, as Prometheus advises, so that a fresh broker's
// /metrics already has every series the shipped dashboard and alert rules
// query (a rate over a series that does not exist yet shows nothing).
var (
	// mqttOperations are the device operations over MQTT, and "none" for
	// a publish on a jobs topic that names none.
	mqttOperations = []string{topics.OpGetPending.String(), topics.OpStartNext.String(), topics.OpDescribe.String(),
		topics.OpUpdate.String(), "none"}
	results = []string{"accepted", "rejected"}
	// httpExceptions are the exceptions a device request over HTTP can
	// end with: those of the iot-jobs-data model and those of AWS's front
	// door for a failed signature.
	httpExceptions = []string{"InvalidRequestException", "ResourceNotFoundException", "InvalidStateTransitionException",
		"TerminalStateException", "ThrottlingException", "ServiceUnavailableException", "CertificateValidationException",
		"MissingAuthenticationTokenException", "IncompleteSignatureException", "UnrecognizedClientException",
		"InvalidSignatureException"}
)

func (m *Metrics) initialise() {
	for _, kind := range jobshook.NotificationKinds {
		m.notifications.WithLabelValues(kind)
	}
	for _, op := range mqttOperations {
		for _, r := range results {
			m.requests.WithLabelValues("mqtt", op, r)
		}
		m.duration.WithLabelValues("mqtt", op)
	}
	for _, code := range jobshook.RejectionCodes {
		m.rejections.WithLabelValues("mqtt", code)
	}
	for _, e := range httpExceptions {
		m.rejections.WithLabelValues("http", e)
	}
}

// Declare gives the operations of one HTTP API (control or data) their
// series at zero: calls answered 200, the API's latency and, for the data
// plane, its device requests by result.
func (m *Metrics) Declare(api string, operations []string) {
	m.apiDuration.WithLabelValues(api)
	for _, op := range operations {
		m.apiRequests.WithLabelValues(api, op, "200")
		if api == "data" {
			for _, r := range results {
				m.requests.WithLabelValues("http", op, r)
			}
			m.duration.WithLabelValues("http", op)
		}
	}
}

// Request records an MQTT device request (jobshook.Observer).
func (m *Metrics) Request(op topics.Operation, code string, took time.Duration) {
	m.device("mqtt", op.String(), code, took)
}

// Notification records a published notification (jobshook.Observer).
func (m *Metrics) Notification(kind string) { m.notifications.WithLabelValues(kind).Inc() }

func (m *Metrics) device(transport, op, code string, took time.Duration) {
	if op == topics.OpNone.String() || op == "" {
		op = "none" // a publish on an invalid jobs topic
	}
	result := "accepted"
	if code != "" {
		result = "rejected"
		m.rejections.WithLabelValues(transport, code).Inc()
	}
	m.requests.WithLabelValues(transport, op, result).Inc()
	m.duration.WithLabelValues(transport, op).Observe(took.Seconds())
}

// API returns the observer for one HTTP API (awsapi.Router.Observe). The
// data plane's calls also count as device requests.
func (m *Metrics) API(api string) func(operation string, status int, exception string, took time.Duration) {
	return func(operation string, status int, exception string, took time.Duration) {
		m.apiRequests.WithLabelValues(api, operation, strconv.Itoa(status)).Inc()
		m.apiDuration.WithLabelValues(api).Observe(took.Seconds())
		if api == "data" {
			m.device("http", operation, exception, took)
		}
	}
}

// Commit records a store commit (backends.Config.OnCommit).
func (m *Metrics) Commit(took time.Duration, ops int, err error) {
	if err != nil {
		// Counted, not timed: a store reports some failures (PostgreSQL's
		// connection refused, say) with no commit to time.
		m.commitErrors.Inc()
		return
	}
	m.commitDuration.Observe(took.Seconds())
	m.commitOps.Observe(float64(ops))
}

// RegisterBroker mirrors mochi's own counters at scrape time.
func RegisterBroker(reg prometheus.Registerer, server *mqtt.Server) {
	reg.MustRegister(&brokerCollector{server: server})
}

type brokerCollector struct{ server *mqtt.Server }

var brokerDescs = []struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(i *infoSnapshot) int64
}{
	{desc("mqtt_clients_connected", "MQTT clients connected now."), prometheus.GaugeValue, func(i *infoSnapshot) int64 { return i.ClientsConnected }},
	{desc("mqtt_messages_received_total", "PUBLISH packets received from clients."), prometheus.CounterValue, func(i *infoSnapshot) int64 { return i.MessagesReceived }},
	{desc("mqtt_messages_sent_total", "PUBLISH packets sent to clients."), prometheus.CounterValue, func(i *infoSnapshot) int64 { return i.MessagesSent }},
	{desc("mqtt_messages_dropped_total", "Messages dropped because a client could not keep up."), prometheus.CounterValue, func(i *infoSnapshot) int64 { return i.MessagesDropped }},
	{desc("mqtt_packets_received_total", "MQTT packets of any type received."), prometheus.CounterValue, func(i *infoSnapshot) int64 { return i.PacketsReceived }},
	{desc("mqtt_packets_sent_total", "MQTT packets of any type sent."), prometheus.CounterValue, func(i *infoSnapshot) int64 { return i.PacketsSent }},
	{desc("mqtt_received_bytes_total", "Bytes received from MQTT clients."), prometheus.CounterValue, func(i *infoSnapshot) int64 { return i.BytesReceived }},
	{desc("mqtt_sent_bytes_total", "Bytes sent to MQTT clients."), prometheus.CounterValue, func(i *infoSnapshot) int64 { return i.BytesSent }},
	{desc("mqtt_inflight_messages", "QoS 1 messages sent and not yet acknowledged."), prometheus.GaugeValue, func(i *infoSnapshot) int64 { return i.Inflight }},
	{desc("mqtt_inflight_dropped_total", "In-flight messages dropped (quota or expiry)."), prometheus.CounterValue, func(i *infoSnapshot) int64 { return i.InflightDropped }},
	{desc("mqtt_subscriptions", "Active subscriptions."), prometheus.GaugeValue, func(i *infoSnapshot) int64 { return i.Subscriptions }},
	{desc("mqtt_retained_messages", "Retained messages held."), prometheus.GaugeValue, func(i *infoSnapshot) int64 { return i.Retained }},
}

type infoSnapshot struct {
	ClientsConnected, MessagesReceived, MessagesSent, MessagesDropped                 int64
	PacketsReceived, PacketsSent, BytesReceived, BytesSent, Inflight, InflightDropped int64
	Subscriptions, Retained                                                           int64
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range brokerDescs {
		ch <- d.desc
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	i := c.server.Info.Clone()
	snap := &infoSnapshot{
		ClientsConnected: i.ClientsConnected,
		MessagesReceived: i.MessagesReceived, MessagesSent: i.MessagesSent, MessagesDropped: i.MessagesDropped,
		PacketsReceived: i.PacketsReceived, PacketsSent: i.PacketsSent, BytesReceived: i.BytesReceived, BytesSent: i.BytesSent,
		Inflight: i.Inflight, InflightDropped: i.InflightDropped, Subscriptions: i.Subscriptions, Retained: i.Retained,
	}
	for _, d := range brokerDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, float64(d.value(snap)))
	}
}

// RegisterStore exposes what the store reports of itself: its gauges
// (store.GaugeReader), computed at scrape time and cached for maxAge (a
// scrape walks every job's records), and its counters
// (store.CounterReader). A store that reports neither registers nothing.
func RegisterStore(reg prometheus.Registerer, st any, maxAge time.Duration) {
	g, _ := st.(store.GaugeReader)
	c, _ := st.(store.CounterReader)
	if g == nil && c == nil {
		return
	}
	col := &storeCollector{counters: c}
	if g != nil {
		col.cache = &scrapeCache[*store.Gauges]{compute: g.Gauges, maxAge: maxAge}
	}
	reg.MustRegister(col)
}

type storeCollector struct {
	cache    *scrapeCache[*store.Gauges] // nil: no gauges
	counters store.CounterReader         // nil: no counters
}

var (
	thingsDesc  = prometheus.NewDesc(namespace+"_job_things", "Things given a job, by the status of their latest execution of it, summed over jobs: DescribeJob's jobProcessDetails.", []string{"status"}, nil)
	jobsDesc    = prometheus.NewDesc(namespace+"_jobs", "Jobs by status.", []string{"status"}, nil)
	timersDesc  = desc("timers_armed", "Executions with a step or in-progress timer running.")
	backlogDesc = desc("rollout_backlog_things", "Things that rollouts in progress have yet to give an execution.")
	firedDesc   = desc("timers_fired_total", "Executions timed out by a timer.")
	gcRunsDesc  = desc("store_gc_runs_total", "Value-log garbage collections attempted.")
	gcRewrDesc  = desc("store_gc_rewrites_total", "Value-log files rewritten by garbage collection.")
	waitsDesc   = desc("store_commit_waits_total", "Commits that waited for more operations to join them (-commit-delay), while operations arrived fast.")
	sizeDesc    = prometheus.NewDesc(namespace+"_store_size_bytes", "On-disk size of the store, by the backend's part: lsm and vlog (Badger), database (PostgreSQL).", []string{"part"}, nil)
	jobStatuses = []store.JobStatus{store.JobInProgress, store.JobScheduled, store.JobCompleted, store.JobCanceled, store.JobDeletionInProgress}
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{thingsDesc, jobsDesc, timersDesc, backlogDesc, firedDesc, gcRunsDesc, gcRewrDesc, waitsDesc, sizeDesc} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.cache != nil {
		c.collectGauges(ch, c.cache.get())
	}
	if c.counters == nil {
		return
	}
	n := c.counters.Counters()
	ch <- prometheus.MustNewConstMetric(firedDesc, prometheus.CounterValue, float64(n.TimersFired))
	if n.HasGC {
		ch <- prometheus.MustNewConstMetric(gcRunsDesc, prometheus.CounterValue, float64(n.GCRuns))
		ch <- prometheus.MustNewConstMetric(gcRewrDesc, prometheus.CounterValue, float64(n.GCRewrites))
	}
	if n.HasCommitDelay {
		ch <- prometheus.MustNewConstMetric(waitsDesc, prometheus.CounterValue, float64(n.CommitWaits))
	}
}

func (c *storeCollector) collectGauges(ch chan<- prometheus.Metric, g *store.Gauges) {
	if g == nil {
		return
	}
	for _, s := range store.Statuses {
		ch <- prometheus.MustNewConstMetric(thingsDesc, prometheus.GaugeValue, float64(g.ExecutionsByStatus[s]), string(s))
	}
	for _, s := range jobStatuses {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(g.JobsByStatus[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(timersDesc, prometheus.GaugeValue, float64(g.TimersArmed))
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(g.RolloutBacklog))
	for part, n := range g.SizeBytes {
		ch <- prometheus.MustNewConstMetric(sizeDesc, prometheus.GaugeValue, float64(n), part)
	}
}

// scrapeCache keeps what an expensive computation (a walk of the store)
// last returned, for maxAge: scrapes in between get the same figures.
type scrapeCache[T comparable] struct {
	compute func(context.Context) (T, error)
	maxAge  time.Duration

	mu      sync.Mutex
	cached  T
	cachedT time.Time
}

// get returns the cached figures, computing them again when they are
// older than maxAge; after a failure, the last good ones (or zero).
func (c *scrapeCache[T]) get() T {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	if c.cached != zero && time.Since(c.cachedT) < c.maxAge {
		return c.cached
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.compute(ctx)
	if err != nil {
		return c.cached
	}
	c.cached, c.cachedT = v, time.Now()
	return v
}

// RegisterReady exposes jobsbroker_ready: 1 while the broker is ready to
// serve (what /readyz reports), 0 otherwise.
func RegisterReady(reg prometheus.Registerer, ready func() bool) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "ready", Help: "1 while the broker is ready to serve (GET /readyz), 0 otherwise.",
	}, func() float64 {
		if ready() {
			return 1
		}
		return 0
	}))
}
