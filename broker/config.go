package broker

// The broker's configuration: Config, its defaults and its checks. A new
// setting is a field of Config (with its default in applyDefaults or the
// code that reads it), a flag in cmd/jobsbroker/config.go (whose table
// the README lists), and, when it can be wrong, a check here that names it
// through name.

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/mqttlisten"
	"github.com/jobsbroker/jobsbroker/broker/preload"
	"github.com/jobsbroker/jobsbroker/broker/sessions"
	"github.com/jobsbroker/jobsbroker/jobshook/faults"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

// Config is everything a broker needs; zero values mean the defaults.
type Config struct {
	// MQTTAddr is the plain MQTT listener (default ":1883", Off under
	// identity mtls).
	MQTTAddr string
	// APIAddr is the HTTP listener of the control-plane API (default ":8080").
	APIAddr string
	// JobsAddr is the HTTP listener of the iot-jobs-data API (default
	// ":8081"); its paths collide with the control plane's.
	JobsAddr string
	// DataDir holds the Badger store (default "./data"); InMemory
	// (":memory:") keeps it in memory.
	DataDir string
	// Store is the backend: StoreBadger (default), embedded in DataDir, or
	// StorePostgres, shared by every node that names the same StoreURL.
	Store string
	// StoreURL is the PostgreSQL connection string of StorePostgres.
	StoreURL string
	// NodeID names this node to the others on a shared store (default
	// hostname-pid).
	NodeID string
	// ClusterNATSURL is the NATS server (or a comma-separated list of a
	// NATS cluster's servers) through which the nodes of a shared store
	// are one broker: client publishes, retained messages, client-ID
	// takeover and the store's change hints travel on it (see
	// broker/cluster). Empty: the node routes nothing to others.
	ClusterNATSURL string
	// StartTimeout is how long a node retries its store (PostgreSQL) and
	// NATS at start before it gives up (default DefaultStartTimeout).
	StartTimeout time.Duration
	// NoSync acknowledges writes before they reach the disk (embedded
	// store; see badger.Options.NoSync). Refused with StorePostgres.
	NoSync bool
	// MinFreeBytes is the free disk space below which the embedded store
	// refuses writes and keeps serving reads (see
	// badger.Options.MinFreeBytes).
	MinFreeBytes int64
	// CommitDelay is the longest the embedded store's committer waits for
	// more operations to join a commit while they arrive fast (see
	// badger.Options.CommitDelay; zero: its default). A non-zero value is
	// refused with StorePostgres.
	CommitDelay time.Duration
	// Events switches $aws/events messages on until
	// UpdateEventConfigurations says otherwise.
	Events bool
	// Region and Account appear in the ARNs the API returns.
	Region  string
	Account string
	// EndpointHost is the host name DescribeEndpoint returns (default
	// "localhost").
	EndpointHost string
	// Logger receives all logs; nil discards them.
	Logger *slog.Logger
	// Clock drives timers; nil means the wall clock.
	Clock clock.Clock
	// Registry receives the metrics served at /metrics; nil makes one.
	Registry *prometheus.Registry
	// ShutdownDelay is how long Shutdown reports unready before it stops
	// serving, for load balancers to notice (default 0).
	ShutdownDelay time.Duration
	// Security. See security.go for how these combine; every listener
	// that cannot tell who its clients are binds to loopback unless
	// AllowAnonymous is set.

	// MQTTTLSAddr is the MQTT-over-TLS listener (default ":8883" when
	// TLSCert is set, otherwise Off). It offers the ALPN protocols
	// x-amzn-mqtt-ca and mqtt.
	MQTTTLSAddr string
	// MQTTALPNAddr is a second MQTT-over-TLS listener, for clients that
	// insist on port 443 with ALPN x-amzn-mqtt-ca as on AWS IoT (default
	// Off; binding 443 needs CAP_NET_BIND_SERVICE).
	MQTTALPNAddr string
	// WebSocketAddr serves MQTT over WebSocket, over TLS when TLSCert is
	// set (default Off).
	WebSocketAddr string
	// TLSCert and TLSKey are PEM files of the server certificate chain and
	// key. With them the TLS listeners start and both HTTP APIs serve
	// HTTPS.
	TLSCert, TLSKey string
	// ClientCA is a PEM bundle of the CAs that sign device certificates.
	// MQTT TLS listeners require a certificate from it under identity
	// mtls; the data plane accepts one in place of a signature.
	ClientCA string
	// Identity is how MQTT clients are identified (default auth.ModeNone).
	Identity auth.Mode
	// PasswordFile lists thing:bcrypt-hash logins for auth.ModePassword.
	PasswordFile string
	// Operators may subscribe to $aws/events/#.
	Operators []string
	// TopicRules are the topics a thing may use beside its jobs topics
	// (nil: auth.DefaultTopicRules).
	TopicRules []string
	// MaxConnectionsPerIdentity limits connections per identity (default
	// auth.DefaultMaxConnections; negative: no limit).
	MaxConnectionsPerIdentity int
	// CredentialsFile holds the access keys (AWS shared-credentials
	// format) that HTTP requests must be signed with (SigV4). Without it
	// the HTTP APIs take unsigned requests.
	CredentialsFile string
	// AnySigningRegion accepts SigV4 signatures scoped to any region; by
	// default only Region is, as on AWS.
	AnySigningRegion bool
	// AllowAnonymous lets listeners that cannot identify their clients
	// bind to addresses other than loopback.
	AllowAnonymous bool
	// MaxPacketSize is the largest MQTT packet accepted, in bytes (default
	// 131072, AWS IoT's 128 KB).
	MaxPacketSize int
	// MaxTopicLength is the longest topic name or filter accepted, in bytes
	// (default 256, as AWS IoT).
	MaxTopicLength int
	// WriteTimeout is how long output to an MQTT client may wait unread,
	// with no progress, before the client is disconnected (default 10 s;
	// negative: never). Writes never wait for the client meanwhile.
	WriteTimeout time.Duration
	// ConnectTimeout is how long a new MQTT connection may take to finish
	// its TLS handshake and send CONNECT before it is closed (default
	// 10 s; negative: no limit).
	ConnectTimeout time.Duration
	// MaxConnections is how many connections each MQTT listener serves at
	// once; more are refused with CONNACK "server unavailable" (default:
	// a share of the process's file-descriptor limit, see
	// defaultMaxConnections; negative: no limit).
	MaxConnections int
	// MaxSubscriptions is how many subscriptions one MQTT client may hold
	// (default DefaultMaxSubscriptions, AWS IoT's 50; negative: no limit).
	MaxSubscriptions int
	// LoginBackoff is the longest an identity, or a source address, waits
	// after repeated failed password logins (default
	// auth.DefaultLoginBackoff; negative: no waits).
	LoginBackoff time.Duration
	// StrictRecovery refuses to open a Badger store whose write-ahead log
	// or value log is damaged, instead of dropping the damaged part and
	// reporting it (see badger.Options.StrictRecovery).
	StrictRecovery bool
	// RequestRate is how many device requests per second one thing may
	// make over MQTT and HTTP together (default 100, AWS IoT's publish
	// rate per connection; negative: no limit). RequestBurst is how many
	// it may make at once (default: RequestRate).
	RequestRate  float64
	RequestBurst int

	// Persistent sessions and retained messages (see sessions.go).

	// SessionExpiry is how long a persistent session outlives its
	// client's connection: an MQTT 3.1.1 session's lifetime and the most
	// an MQTT 5 client may ask for (default one hour, as AWS IoT).
	SessionExpiry time.Duration
	// MaxQueuedMessages is how many messages one persistent session is
	// owed at most; beyond it the oldest are dropped (default 1000;
	// negative: no limit).
	MaxQueuedMessages int
	// MaxRetainedMessages is how many retained messages the broker keeps
	// (default 500,000, AWS IoT's quota; negative: no limit).
	MaxRetainedMessages int
	// MaxRetainedSize is the largest payload of a retained message, in
	// bytes (default 128 KB; negative: no limit).
	MaxRetainedSize int
	// ConsolePasswordFile lists name:bcrypt-hash logins of the web
	// console (the format of jobsbroker passwd), beside the access keys
	// of CredentialsFile.
	ConsolePasswordFile string

	// PprofAddr, when set, serves Go's profiling endpoints
	// (/debug/pprof/) on a listener of their own. Keep it on loopback: the
	// endpoints expose the process's internals and cost CPU when used.
	PprofAddr string

	// Artifacts is the object store presigned-URL placeholders are signed
	// for (see ArtifactStore).
	Artifacts ArtifactStore

	// SettingName names a setting in errors and warnings, given its
	// config-file key (mqtt_addr); nil leaves the key as it is.
	// cmd/jobsbroker names the flag, and the environment variable or file
	// the value came from.
	SettingName func(key string) string

	// EchoPrefix, when set, makes the broker answer every publish under
	// that topic prefix with the same payload on topic/reply, to the
	// publisher alone: jobsbench's measure of the broker's own
	// request/reply ceiling. Leave it empty in production.
	EchoPrefix string

	// For tests of device code (see testing.go and admin.go).

	// Preload is created at start, before any listener serves.
	Preload *preload.Plan
	// Faults are in force from the start; /admin/faults changes them.
	Faults *faults.Plan
	// Transcripts keeps every thing's jobs messages, and the faults that
	// acted on them, for GET /admin/transcript.
	Transcripts bool
	// TranscriptDir, when set, also writes them to one file per thing
	// (and turns Transcripts on).
	TranscriptDir string
	// TranscriptMaxPayload is how many bytes of a payload a transcript
	// keeps (default traffic.DefaultTranscriptPayload: whole).
	TranscriptMaxPayload int
}

// Defaults for Config.
const (
	DefaultMQTTAddr = ":1883"
	DefaultAPIAddr  = ":8080"
	DefaultJobsAddr = ":8081"
	DefaultDataDir  = "./data"
	DefaultRegion   = "us-east-1"
	DefaultAccount  = "123456789012"
	// DefaultStartTimeout is how long a node retries its store and NATS at
	// start.
	DefaultStartTimeout = time.Minute
)

// Off, given as a listener's address, turns the listener off.
const Off = "off"

// Default limits.
const (
	DefaultMaxPacketSize = 128 << 10
	DefaultMQTTTLSAddr   = ":8883"
)

func (c *Config) applyDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Store == "" {
		c.Store = StoreBadger
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.EndpointHost == "" {
		c.EndpointHost = "localhost"
	}
	if c.Account == "" {
		c.Account = DefaultAccount
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
}

// name is how errors and warnings name the setting whose config-file key
// is key.
func (c *Config) name(key string) string {
	if c.SettingName == nil {
		return key
	}
	return c.SettingName(key)
}

// CheckConfig reports what is wrong with cfg, as New would, without
// opening anything.
func CheckConfig(cfg Config) error {
	cfg.applyDefaults()
	return cfg.check()
}

// check runs every check of the settings; each names the settings at
// fault (see name).
func (c *Config) check() error {
	_, artifacts := c.artifactSigner()
	return errors.Join(c.resolveSecurity(), c.checkStore(), c.checkLimits(), c.checkSessions(), artifacts)
}

// checkStore checks the choice of store and its settings.
func (c *Config) checkStore() error {
	var problems []error
	switch {
	case c.Store != StoreBadger && c.Store != StorePostgres:
		problems = append(problems, fmt.Errorf("%s %q: must be %s or %s", c.name("store"), c.Store, StoreBadger, StorePostgres))
	case c.Store == StorePostgres && c.StoreURL == "":
		problems = append(problems, fmt.Errorf("%s postgres needs %s (postgres://user:password@host:5432/db)", c.name("store"), c.name("store_url")))
	}
	if c.ClusterNATSURL != "" && c.Store != StorePostgres {
		problems = append(problems, fmt.Errorf("%s needs %s postgres: the nodes of a cluster share jobs, sessions and retained messages in its database",
			c.name("cluster_nats_url"), c.name("store")))
	}
	if c.StartTimeout < 0 {
		problems = append(problems, fmt.Errorf("%s %v must not be negative", c.name("start_timeout"), c.StartTimeout))
	}
	// The embedded store's write settings mean nothing to PostgreSQL, whose
	// commits are as durable as its server makes them: refused rather than
	// ignored, so that nobody believes they are in effect.
	if c.Store == StorePostgres && c.NoSync {
		problems = append(problems, fmt.Errorf("%s applies to the embedded store only: with %s postgres a write is acknowledged after PostgreSQL's commit, as durable as the server's synchronous_commit makes it",
			c.name("no_sync"), c.name("store")))
	}
	if c.Store == StorePostgres && c.CommitDelay != 0 {
		problems = append(problems, fmt.Errorf("%s %v applies to the embedded store only: with %s postgres each operation is its own transaction",
			c.name("commit_delay"), c.CommitDelay, c.name("store")))
	}
	if c.CommitDelay > badger.MaxCommitDelay {
		problems = append(problems, fmt.Errorf("%s %v: at most %v (a commit waits this long for company only while operations arrive fast)",
			c.name("commit_delay"), c.CommitDelay, badger.MaxCommitDelay))
	}
	return errors.Join(problems...)
}

// checkLimits checks the MQTT limits.
func (c *Config) checkLimits() error {
	var problems []error
	if c.MaxPacketSize < 0 || c.MaxTopicLength < 0 {
		problems = append(problems, fmt.Errorf("%s and %s must be positive", c.name("max_packet_size"), c.name("max_topic_length")))
	}
	return errors.Join(problems...)
}

// checkSessions checks the session and retained-message settings.
func (c *Config) checkSessions() error {
	var problems []error
	if c.SessionExpiry < 0 {
		problems = append(problems, fmt.Errorf("%s %v must not be negative", c.name("session_expiry"), c.SessionExpiry))
	}
	if c.SessionExpiry > math.MaxUint32*time.Second {
		problems = append(problems, fmt.Errorf("%s %v is over MQTT's limit of %d seconds", c.name("session_expiry"), c.SessionExpiry, uint32(math.MaxUint32)))
	}
	if c.SessionExpiry%time.Second != 0 {
		problems = append(problems, fmt.Errorf("%s %v must be whole seconds", c.name("session_expiry"), c.SessionExpiry))
	}
	return errors.Join(problems...)
}

// sessionExpiry is the configured expiry with its default.
func (c *Config) sessionExpiry() time.Duration {
	if c.SessionExpiry == 0 {
		return sessions.DefaultExpiry
	}
	return c.SessionExpiry
}

// Descriptors kept aside from the MQTT listeners' share of the process's
// limit: the store's files, the HTTP listeners and their clients, and the
// runtime's own.
const reservedDescriptors = 1024

// mqttListeners returns the ids of the MQTT listeners that are on.
func (c *Config) mqttListeners() []string {
	var ids []string
	for _, l := range []struct{ id, addr string }{
		{listenerMQTT, c.MQTTAddr}, {listenerMQTTTLS, c.MQTTTLSAddr},
		{listenerMQTTALPN, c.MQTTALPNAddr}, {listenerWS, c.WebSocketAddr},
	} {
		if l.addr != Off && l.addr != "" {
			ids = append(ids, l.id)
		}
	}
	return ids
}

// maxConnections is the connection limit of each MQTT listener: the
// setting, or else an equal share of the file descriptors the process
// may open, less reservedDescriptors, so that clients cannot take the
// descriptors the store and the HTTP APIs need (0: no limit).
func (c *Config) maxConnections() int {
	switch {
	case c.MaxConnections > 0:
		return c.MaxConnections
	case c.MaxConnections < 0:
		return 0
	}
	return defaultMaxConnections(mqttlisten.DescriptorLimit(), len(c.mqttListeners()))
}

// defaultMaxConnections shares limit descriptors among n listeners
// (limit 0: unknown, no limit).
func defaultMaxConnections(limit uint64, n int) int {
	if limit == 0 || n == 0 {
		return 0
	}
	avail := int64(limit) - reservedDescriptors
	if avail < int64(64*n) {
		return 64 // a tiny limit: still serve someone
	}
	return int(min(avail/int64(n), 1<<30))
}
