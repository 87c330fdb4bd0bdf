package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/mqttlisten"
	"github.com/jobsbroker/jobsbroker/broker/preload"
	"github.com/jobsbroker/jobsbroker/broker/sessions"
	"github.com/jobsbroker/jobsbroker/jobshook/faults"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

// settings holds every setting of the command. Each has one name in three
// spellings: the flag -mqtt-addr, the config-file key mqtt_addr and the
// environment variable JOBSBROKER_MQTT_ADDR. Precedence, lowest first:
// the default, the config file (-config), the flag, the environment.
type settings struct {
	broker.Config
	configFile      string
	logFormat       string
	logLevel        string
	shutdownTimeout time.Duration
	clockOffset     time.Duration
	preloadFile     string
	faultsFile      string

	fs     *flag.FlagSet
	secret map[string]bool   // settings printed as <redacted>
	source map[string]string // by flag name, where a value came from when not the command line
}

// newSettings defines every setting as a flag of a new flag set, named
// after the command that parses it.
func newSettings(cmd string) *settings {
	s := &settings{fs: flag.NewFlagSet(cmd, flag.ContinueOnError), secret: map[string]bool{}, source: map[string]string{}}
	s.SettingName = func(key string) string { return s.name(strings.ReplaceAll(key, "_", "-")) }
	fs := s.fs
	fs.StringVar(&s.configFile, "config", "", "YAML file of settings (keys are the flag names with _ for -)")
	fs.StringVar(&s.MQTTAddr, "mqtt-addr", "", "address of the plain MQTT listener (empty: :1883, off under identity mtls; 127.0.0.1 only while no identity is configured; off: none)")
	fs.StringVar(&s.MQTTTLSAddr, "mqtt-tls-addr", "", "address of the MQTT-over-TLS listener, which also takes ALPN x-amzn-mqtt-ca (empty: :8883 when tls_cert is set, else off)")
	fs.StringVar(&s.MQTTALPNAddr, "mqtt-alpn-addr", "", "address of a second MQTT-over-TLS listener for clients that insist on port 443 with ALPN x-amzn-mqtt-ca, such as the AWS IoT Device Client (empty: off)")
	fs.StringVar(&s.WebSocketAddr, "websocket-addr", "", "address of the MQTT-over-WebSocket listener, wss when tls_cert is set (empty: off)")
	fs.StringVar(&s.APIAddr, "api-addr", "", "address of the HTTP API: AWS IoT job management, /metrics, /healthz, /readyz (empty: :8080; 127.0.0.1 only while no credentials_file is configured)")
	fs.StringVar(&s.JobsAddr, "jobs-addr", "", "address of the HTTP iot-jobs-data API, the device operations (empty: :8081; 127.0.0.1 only while neither credentials_file nor client_ca is configured)")
	fs.StringVar(&s.TLSCert, "tls-cert", "", "PEM file of the server certificate chain: enables the MQTT TLS listener and HTTPS on both HTTP APIs (reloaded on SIGHUP)")
	fs.StringVar(&s.TLSKey, "tls-key", "", "PEM file of the server certificate's private key (reloaded on SIGHUP)")
	fs.StringVar(&s.ClientCA, "client-ca", "", "PEM bundle of the CAs that sign device certificates; the data plane then accepts a device certificate for its own thing (reloaded on SIGHUP)")
	fs.StringVar((*string)(&s.Identity), "identity", "none", "how MQTT clients are identified: none (client ID, unchecked; no access rules), mtls (certificate CN, which must equal the client ID) or password (username checked against password_file)")
	fs.StringVar(&s.PasswordFile, "password-file", "", "file of thing:bcrypt-hash lines for identity password (see jobsbroker passwd; reloaded on SIGHUP)")
	fs.StringVar(&s.CredentialsFile, "credentials-file", "", "AWS shared-credentials file of the access keys HTTP requests must be signed with (SigV4); empty: unsigned requests are served (reloaded on SIGHUP)")
	fs.StringVar(&s.ConsolePasswordFile, "console-password-file", "", "file of name:bcrypt-hash lines that may log in to the web console (/console/ on the API listener) beside the credentials_file's access keys; see jobsbroker passwd (reloaded on SIGHUP)")
	fs.Var(&listFlag{&s.Operators}, "operators", "comma-separated identities that may subscribe to $aws/events/#")
	fs.Var(&listFlag{&s.TopicRules}, "topic-rules", "comma-separated topic filters a thing may use beside its jobs topics; {thing} is its name (default things/{thing}/#; \"none\" for no others)")
	fs.IntVar(&s.MaxConnectionsPerIdentity, "max-connections-per-identity", 0, "connections one identity may hold at once (0: 10; negative: no limit)")
	fs.BoolVar(&s.AllowAnonymous, "allow-anonymous", false, "let listeners that cannot identify their clients bind to addresses other than loopback")
	fs.IntVar(&s.MaxPacketSize, "max-packet-size", broker.DefaultMaxPacketSize, "largest MQTT packet accepted, in bytes (AWS IoT: 128 KB)")
	fs.IntVar(&s.MaxTopicLength, "max-topic-length", 256, "longest MQTT topic name or filter accepted, in bytes (AWS IoT: 256)")
	fs.Float64Var(&s.RequestRate, "request-rate", 100, "device requests per second one thing may make over MQTT and HTTP together, answered RequestThrottled / ThrottlingException beyond it (negative: no limit)")
	fs.DurationVar(&s.WriteTimeout, "write-timeout", mqttlisten.DefaultWriteTimeout, "how long output to an MQTT client may wait unread, with no progress, before the client is disconnected (writes never wait for the client meanwhile)")
	fs.DurationVar(&s.ConnectTimeout, "connect-timeout", mqttlisten.DefaultConnectTimeout, "how long a new MQTT connection may take to finish its TLS handshake and send CONNECT before it is closed (negative: no limit)")
	fs.IntVar(&s.MaxConnections, "max-connections", 0, "connections each MQTT listener serves at once, more are answered CONNACK server unavailable (0: a share of the process's file-descriptor limit; negative: no limit)")
	fs.IntVar(&s.MaxSubscriptions, "max-subscriptions", broker.DefaultMaxSubscriptions, "subscriptions one MQTT client may hold (AWS IoT: 50; negative: no limit)")
	fs.DurationVar(&s.LoginBackoff, "login-backoff", auth.DefaultLoginBackoff, "longest wait imposed on an identity, or on a source address, after repeated failed password logins (negative: none)")
	fs.IntVar(&s.RequestBurst, "request-burst", 0, "device requests one thing may make at once before request_rate applies (0: request_rate)")
	fs.StringVar(&s.DataDir, "data-dir", broker.DefaultDataDir, "directory that holds the store (store badger); :memory: keeps it in memory, for tests: nothing is written, everything is gone at exit")
	fs.StringVar(&s.Store, "store", broker.StoreBadger, "where jobs live: badger (embedded in data_dir, one node) or postgres (store_url, shared by several nodes)")
	fs.StringVar(&s.StoreURL, "store-url", "", "PostgreSQL connection string for store postgres, e.g. postgres://user:password@db:5432/jobs (its password is redacted by jobsbroker config)")
	fs.StringVar(&s.NodeID, "node-id", "", "this node's name among the nodes of a shared store, unique among the running nodes (empty: hostname-pid)")
	fs.StringVar(&s.ClusterNATSURL, "cluster-nats-url", "", "NATS server (or comma-separated servers of a NATS cluster) through which the nodes of store postgres are one broker: publishes, retained messages, client-ID takeover and change hints travel on it (empty: none; its password is redacted by jobsbroker config and in logs)")
	fs.DurationVar(&s.StartTimeout, "start-timeout", broker.DefaultStartTimeout, "how long a node retries PostgreSQL and NATS at start, with backoff, before it gives up")
	fs.Int64Var(&s.MinFreeBytes, "min-free-bytes", badger.DefaultMinFreeBytes, "free space the data directory's filesystem must keep: below it writes are refused (ServiceUnavailable / InternalError) and reads go on; negative turns the check off")
	fs.BoolVar(&s.StrictRecovery, "strict-recovery", false, "refuse to start when the store's write-ahead log or value log is damaged, instead of dropping the damaged part and reporting it")
	fs.BoolVar(&s.NoSync, "no-sync", false, "acknowledge writes before they reach the disk (a power failure can lose the last acknowledged writes); embedded store only")
	fs.DurationVar(&s.CommitDelay, "commit-delay", 0, "longest the store waits for more operations to join a commit, only while they arrive fast enough that a few more would: fewer disk flushes for the same work (0: 1ms, none with -no-sync; negative: never wait; at most 100ms); embedded store only")
	fs.DurationVar(&s.SessionExpiry, "session-expiry", sessions.DefaultExpiry, "how long a persistent MQTT session (clean session off, or an MQTT 5 session expiry interval) outlives its connection, and the most an MQTT 5 client may ask for (AWS IoT: 1h, adjustable to 7 days)")
	fs.IntVar(&s.MaxQueuedMessages, "max-queued-messages", sessions.DefaultQueueLimit, "QoS 1 messages one persistent session may be owed; beyond it the oldest are dropped and counted (negative: no limit)")
	fs.IntVar(&s.MaxRetainedMessages, "max-retained-messages", sessions.DefaultRetainedLimit, "retained messages the broker keeps; a new one beyond it is refused (AWS IoT: 500,000; negative: no limit)")
	fs.IntVar(&s.MaxRetainedSize, "max-retained-size", sessions.DefaultRetainedMaxBytes, "largest payload of a retained message, in bytes; a larger one is refused (negative: no limit)")
	fs.BoolVar(&s.Events, "events", false, "publish job and job-execution events on $aws/events/... (until UpdateEventConfigurations changes it)")
	fs.StringVar(&s.Region, "region", broker.DefaultRegion, "AWS region used in the ARNs the API returns, and the one SigV4 signatures must be scoped to")
	fs.BoolVar(&s.AnySigningRegion, "any-signing-region", false, "accept SigV4 signatures scoped to any region, not only the region setting")
	fs.StringVar(&s.Account, "account", broker.DefaultAccount, "AWS account id used in the ARNs the API returns")
	fs.StringVar(&s.EndpointHost, "endpoint-host", "localhost", "host name DescribeEndpoint returns, with the listener's port unless it is the standard one (8883 or 443 for MQTT over TLS, 443 for HTTPS)")
	fs.StringVar(&s.Artifacts.Endpoint, "artifact-endpoint", "", "base URL of the S3-compatible store that presigned-URL placeholders in job documents are signed for; objects are addressed path-style, ENDPOINT/bucket/key (empty: such documents are refused)")
	fs.StringVar(&s.Artifacts.Region, "artifact-region", "", "region the artifact store checks signatures against (empty: the region setting)")
	fs.StringVar(&s.Artifacts.AccessKeyID, "artifact-access-key-id", "", "access key id that signs artifact URLs; give it read access to the artifacts only")
	fs.StringVar(&s.Artifacts.SecretAccessKey, "artifact-secret-access-key", "", "secret access key that signs artifact URLs (redacted by jobsbroker config; prefer the environment variable)")
	s.secret["artifact-secret-access-key"] = true
	fs.StringVar(&s.preloadFile, "preload", "", "YAML or JSON file of things, thing groups, job templates and jobs to create at start, through the API's own calls, into an empty store (see README: Testing device code)")
	fs.StringVar(&s.faultsFile, "faults", "", "YAML or JSON file of faults in force from the start: dropped, delayed or duplicated replies and notifications, rejections, disconnects, refused CONNECTs (changed at run time with /admin/faults)")
	fs.BoolVar(&s.Transcripts, "transcripts", false, "keep every thing's jobs requests, replies, notifications and faults, for GET /admin/transcript?thing=T (memory grows with the traffic: for test brokers)")
	fs.StringVar(&s.TranscriptDir, "transcript-dir", "", "also write each thing's transcript to DIR/THING.jsonl, a line at a time (turns transcripts on)")
	fs.IntVar(&s.TranscriptMaxPayload, "transcript-max-payload", 128<<10, "bytes of each payload a transcript keeps; longer ones are cut and marked truncated")
	fs.StringVar(&s.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&s.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long shutdown waits for requests in flight")
	fs.DurationVar(&s.ShutdownDelay, "shutdown-delay", 0, "how long shutdown reports unready (/readyz 503) before it stops serving, for load balancers to notice")
	fs.DurationVar(&s.clockOffset, "debug-clock-offset", 0, "run the broker's clock this far ahead of the wall clock (for testing timers)")
	fs.StringVar(&s.PprofAddr, "pprof-addr", "", "serve Go's profiling endpoints (/debug/pprof/) on this address; keep it on 127.0.0.1 (empty: off)")
	fs.StringVar(&s.EchoPrefix, "debug-echo-prefix", "", "answer every publish under this topic prefix with its payload on topic/reply (for jobsbench's echo baseline)")
	return s
}

// finish takes the settings parsed from fs, fills in the rest from the
// config file and the environment, and checks them: all of them when fs
// is s.fs, else only the data directory, the one setting the commands with
// a share of the settings (backup, restore) use.
func (s *settings) finish(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if len(args) > 0 {
		return &usageError{cmd: fs.Name(), err: fmt.Errorf("unexpected argument %q", args[0])}
	}
	if err := s.fill(fs, getenv); err != nil {
		return err
	}
	if fs != s.fs {
		switch s.DataDir {
		case "":
			return fmt.Errorf("%s must not be empty", s.name("data-dir"))
		case broker.InMemory:
			return fmt.Errorf("%s is %s: a broker in memory has no data directory; back it up over its API with -from", s.name("data-dir"), broker.InMemory)
		}
		return nil
	}
	return s.validate()
}

// share returns the flag set of a command that takes only some of the
// settings: the ones named, sharing their values with s.
func (s *settings) share(cmd string, names ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	for _, name := range names {
		f := s.fs.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
	return fs
}

// fill reads the config file for the settings the flags of fs left
// unset, then the environment, which wins over both.
func (s *settings) fill(fs *flag.FlagSet, getenv func(string) string) error {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if v := getenv(envName("config")); v != "" {
		s.configFile = v
	}
	if s.configFile != "" {
		if err := s.loadFile(s.configFile, explicit); err != nil {
			return err
		}
	}
	var err error
	s.fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && err == nil && f.Name != "config" {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
			s.source[f.Name] = name
		}
	})
	if err != nil {
		return err
	}
	if s.clockOffset != 0 {
		s.Clock = clock.Offset{By: s.clockOffset}
	}
	return nil
}

// name is how messages name a setting: its flag, with the environment
// variable or config-file key its value came from, if one did.
func (s *settings) name(flagName string) string {
	if src := s.source[flagName]; src != "" {
		return "-" + flagName + " (" + src + ")"
	}
	return "-" + flagName
}

func envName(flagName string) string {
	return "JOBSBROKER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func fileKey(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

// loadFile applies a YAML config file: a mapping of setting names to
// scalars (or lists, given to the setting joined by commas).
func (s *settings) loadFile(path string, explicit map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: line %d: the file must be a mapping of settings", path, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := strings.ReplaceAll(k.Value, "_", "-")
		f := s.fs.Lookup(name)
		if f == nil || name == "config" {
			return fmt.Errorf("config file %s: line %d: unknown setting %q", path, k.Line, k.Value)
		}
		if explicit[name] {
			continue // the flag wins
		}
		value, err := scalarText(v)
		if err != nil {
			return fmt.Errorf("config file %s: line %d: %s: %w", path, v.Line, k.Value, err)
		}
		if err := f.Value.Set(value); err != nil {
			return fmt.Errorf("config file %s: line %d: %s: %w", path, v.Line, k.Value, err)
		}
		s.source[name] = k.Value + " in " + path
	}
	return nil
}

func scalarText(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("a list may only hold plain values")
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("the value must be a plain value or a list")
}

var (
	regionPattern  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
)

// validate checks the settings together; an error names the setting and
// says what is wrong.
func (s *settings) validate() error {
	var problems []string
	bad := func(name, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s", s.name(name), fmt.Sprintf(format, args...)))
	}
	addrs := map[string]string{"mqtt-addr": s.MQTTAddr, "mqtt-tls-addr": s.MQTTTLSAddr, "mqtt-alpn-addr": s.MQTTALPNAddr,
		"websocket-addr": s.WebSocketAddr, "api-addr": s.APIAddr, "jobs-addr": s.JobsAddr}
	seen := map[string]string{}
	for _, name := range []string{"mqtt-addr", "mqtt-tls-addr", "mqtt-alpn-addr", "websocket-addr", "api-addr", "jobs-addr"} {
		addr := addrs[name]
		if addr == "" || addr == broker.Off {
			continue
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			bad(name, "%q is not host:port (%v)", addr, err)
			continue
		}
		if other, dup := seen[addr]; dup && port != "0" {
			bad(name, "%q is also %s", addr, s.name(other))
		}
		seen[addr] = name
	}
	if s.DataDir == "" {
		bad("data-dir", "must not be empty")
	}
	if !regionPattern.MatchString(s.Region) {
		bad("region", "%q is not an AWS region name such as us-east-1", s.Region)
	}
	if !accountPattern.MatchString(s.Account) {
		bad("account", "%q is not a 12-digit AWS account id", s.Account)
	}
	if s.EndpointHost == "" {
		bad("endpoint-host", "must not be empty")
	}
	if s.logFormat != "text" && s.logFormat != "json" {
		bad("log-format", "%q must be text or json", s.logFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
		bad("log-level", "%q must be debug, info, warn or error", s.logLevel)
	}
	if s.shutdownTimeout <= 0 {
		bad("shutdown-timeout", "must be positive, got %v", s.shutdownTimeout)
	}
	if s.ShutdownDelay < 0 || s.ShutdownDelay >= s.shutdownTimeout {
		bad("shutdown-delay", "%v must be at least 0 and less than %s (%v)", s.ShutdownDelay, s.name("shutdown-timeout"), s.shutdownTimeout)
	}
	if s.TranscriptMaxPayload <= 0 {
		bad("transcript-max-payload", "must be positive, got %d", s.TranscriptMaxPayload)
	}
	if err := s.readTestFiles(); err != nil {
		problems = append(problems, err.Error())
	}
	if len(s.TopicRules) == 1 && s.TopicRules[0] == "none" {
		s.TopicRules = []string{}
	}
	if err := broker.CheckConfig(s.Config); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			problems = append(problems, line)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// readTestFiles reads the preload and fault files; an error names the
// file, the line and the field at fault.
func (s *settings) readTestFiles() error {
	var errs []error
	if s.preloadFile != "" {
		p, err := preload.ReadFile(s.preloadFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name("preload"), err))
		}
		s.Preload = p
	}
	if s.faultsFile != "" {
		p, err := faults.ReadFile(s.faultsFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name("faults"), err))
		}
		s.Faults = p
	}
	return errors.Join(errs...)
}

// logger builds the logger the settings describe, writing to w.
func (s *settings) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(s.logLevel)) // validated
	opts := &slog.HandlerOptions{Level: level}
	if s.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// effective renders the settings as a YAML config file, each setting
// commented with its help, secrets redacted. Fed back through -config it
// gives the same settings.
func (s *settings) effective() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	var err error
	s.fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || err != nil {
			return
		}
		value := f.Value.String()
		switch {
		case s.secret[f.Name] && value != "":
			value = "<redacted>"
		case f.Name == "store-url", f.Name == "cluster-nats-url":
			value = redactURL(value)
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: fileKey(f.Name), HeadComment: f.Usage}
		val := &yaml.Node{Kind: yaml.ScalarNode, Value: value}
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool {
			val.Style = yaml.DoubleQuotedStyle
		}
		root.Content = append(root.Content, key, val)
	})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString("# jobsbroker configuration. Keys are the flag names with _ for -; every setting\n" +
		"# may also come from a flag (-mqtt-addr) or the environment (JOBSBROKER_MQTT_ADDR).\n" +
		"# Precedence, lowest first: default, this file, flag, environment.\n\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// listFlag is a comma-separated list setting.
type listFlag struct{ list *[]string }

func (f *listFlag) String() string {
	if f.list == nil {
		return ""
	}
	return strings.Join(*f.list, ",")
}

func (f *listFlag) Set(v string) error {
	*f.list = nil
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*f.list = append(*f.list, item)
		}
	}
	return nil
}

var keywordPassword = regexp.MustCompile(`(password\s*=\s*)('[^']*'|\S+)`)

// redactURL hides the password of a PostgreSQL connection string, in URL
// or keyword=value form.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "redacted")
			s = u.String()
		}
	}
	return keywordPassword.ReplaceAllString(s, "${1}redacted")
}
