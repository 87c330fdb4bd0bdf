package metrics

import "github.com/prometheus/client_golang/prometheus"

// Security holds the metrics of what the broker refuses or survives at
// its edges: failed accepts, connections it gives up on, failed logins,
// and damage found in the store's logs at start.
type Security struct {
	acceptErrors *prometheus.CounterVec
	refused      *prometheus.CounterVec
	logins       *prometheus.CounterVec
	damaged      prometheus.Gauge
}

// Label values known in advance, exported at zero from the start.
var (
	refusalReasons = []string{"limit", "connect_timeout"}
	loginReasons   = []string{"bad_login", "backoff"}
)

// NewSecurity creates the metrics and registers them on reg, with a
// series at zero for each of listeners.
func NewSecurity(reg prometheus.Registerer, listeners []string) *Security {
	s := &Security{
		acceptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "mqtt_accept_errors_total",
			Help: "Failed accepts on an MQTT listener (out of file descriptors, for one); the listener retries.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "mqtt_connections_refused_total",
			Help: "MQTT connections the broker gave up on before CONNACK, by listener and reason: " +
				"limit (the listener's connection limit) or connect_timeout (no TLS handshake and CONNECT in time).",
		}, []string{"listener", "reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "mqtt_login_failures_total",
			Help: "Refused password logins, by reason: bad_login (unknown thing or wrong password) or " +
				"backoff (refused unchecked after repeated failures of the identity or from the address).",
		}, []string{"reason"}),
		damaged: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "store_damaged_log_files",
			Help: "Write-ahead or value-log files found damaged when the store was opened (their damaged part was dropped).",
		}),
	}
	for _, l := range listeners {
		s.acceptErrors.WithLabelValues(l)
		for _, r := range refusalReasons {
			s.refused.WithLabelValues(l, r)
		}
	}
	for _, r := range loginReasons {
		s.logins.WithLabelValues(r)
	}
	reg.MustRegister(s.acceptErrors, s.refused, s.logins, s.damaged)
	return s
}

// AcceptError counts a failed accept on listener.
func (s *Security) AcceptError(listener string) { s.acceptErrors.WithLabelValues(listener).Inc() }

// ConnectionRefused counts a connection listener gave up on.
func (s *Security) ConnectionRefused(listener, reason string) {
	s.refused.WithLabelValues(listener, reason).Inc()
}

// LoginFailure counts a refused password login.
func (s *Security) LoginFailure(reason string) { s.logins.WithLabelValues(reason).Inc() }

// DamagedLogFiles sets how many damaged log files the store found at start.
func (s *Security) DamagedLogFiles(n int) { s.damaged.Set(float64(n)) }
