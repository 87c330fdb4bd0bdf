package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/broker/certs"
	"github.com/jobsbroker/jobsbroker/broker/cluster"
	"github.com/jobsbroker/jobsbroker/broker/console"
	"github.com/jobsbroker/jobsbroker/broker/controlplane"
	"github.com/jobsbroker/jobsbroker/broker/dataplane"
	"github.com/jobsbroker/jobsbroker/broker/logsample"
	"github.com/jobsbroker/jobsbroker/broker/metrics"
	"github.com/jobsbroker/jobsbroker/broker/sessions"
	"github.com/jobsbroker/jobsbroker/broker/sigv4"
	"github.com/jobsbroker/jobsbroker/broker/throttle"
	"github.com/jobsbroker/jobsbroker/broker/traffic"
	"github.com/jobsbroker/jobsbroker/jobshook"
	"github.com/jobsbroker/jobsbroker/jobshook/faults"
	"github.com/jobsbroker/jobsbroker/jobshook/presign"
	"github.com/jobsbroker/jobsbroker/store"
)

// Version is the build's version, set with -ldflags "-X github.com/jobsbroker/jobsbroker/broker.Version=...".
var Version = "dev"

// Broker is a running jobsbroker.
type Broker struct {
	refusedLog          *logsample.Sampler // refused HTTP requests, which a client causes at will
	cfg                 Config
	log                 *slog.Logger
	MQTT                *mqtt.Server
	Store               store.Store
	Jobs                *jobshook.Hook
	Sessions            *sessions.Hook
	sessionsUp          atomic.Pointer[sessions.Hook] // Sessions once initialized: what NATS callbacks may use
	flow                *flowHook                     // an MQTT 5 client's Receive Maximum (mqttflow.go)
	Auth                *auth.Hook
	Metrics             *metrics.Metrics
	security            *metrics.Security
	Traffic             *traffic.Recorder             // each thing's recent jobs messages
	Faults              *faults.Set                   // the faults in force
	Transcripts         *traffic.Transcripts          // nil unless Config.Transcripts
	mqttLns             map[string]listeners.Listener // by listener id, the ones configured
	certs               *certs.Store                  // nil without TLS
	passwords           *auth.Passwords               // nil unless identity password
	throttle            *throttle.Limiter             // nil without a request rate
	controlSig, dataSig *sigv4.Verifier               // nil without a credentials file
	api                 *httpServer
	jobs                *httpServer
	pprof               *httpServer // nil unless PprofAddr is set
	docs                *presign.Deliverer
	feed                *changeFeed   // the store's change handler, shared
	cluster             *cluster.Node // nil without ClusterNATSURL
	console             *console.Console
	serveErr            chan error
	started             atomic.Bool
	stopping            atomic.Bool
}

// New opens the store and binds every listener; Start begins serving.
func New(cfg Config) (*Broker, error) {
	cfg.applyDefaults()
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, serveErr: make(chan error, 4), refusedLog: logsample.New()}
	if err := b.loadSecrets(); err != nil {
		return nil, err
	}
	b.Metrics = metrics.New(cfg.Registry, Version)
	b.security = metrics.NewSecurity(cfg.Registry, cfg.mqttListeners())
	metrics.RegisterReady(cfg.Registry, func() bool { return b.Health().Ready })
	st, err := b.openStore()
	if err != nil {
		return nil, err
	}
	b.Store = st
	signer, err := cfg.artifactSigner()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("configuration: %w", err)
	}
	b.docs = presign.NewDeliverer(signer, st, b.log.With("component", "artifacts"))
	b.feed = newChangeFeed(st)
	if err := b.joinCluster(); err != nil {
		st.Close()
		return nil, err
	}
	if err := b.buildTesting(); err != nil {
		b.leaveCluster()
		st.Close()
		return nil, err
	}
	if err := b.buildMQTT(); err != nil {
		if b.MQTT != nil {
			b.MQTT.Close() // the listeners bound before the failure, and the hooks' loops
		}
		b.closeTesting()
		b.leaveCluster()
		st.Close()
		return nil, err
	}
	// Every hook is in place and the persistent sessions are loaded: the
	// store may hand over what it committed so far (preload's changes go
	// straight on from here).
	b.feed.open()
	if err := b.preload(); err != nil {
		b.MQTT.Close()
		b.closeTesting()
		b.leaveCluster()
		st.Close()
		return nil, err
	}
	if shared, ok := st.(store.Shared); ok {
		shared.SetInterest(b.Jobs)
	}
	if err := b.buildAPI(); err != nil {
		b.MQTT.Close()
		b.closeTesting()
		b.leaveCluster()
		st.Close()
		return nil, err
	}
	return b, nil
}

// readBufferBytes is the size of each MQTT connection's read buffer.
const readBufferBytes = 1 << 10

func (b *Broker) buildMQTT() error {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1 // AWS IoT has no QoS 2
	// mochi gives every client a channel of this many packet pointers for
	// ordinary publishes (8 bytes each, allocated at connect): 256 keeps a
	// burst of a few hundred messages per client and costs 2 KiB per
	// connection, where mochi's default of 8192 would cost 64 KiB. Jobs
	// notifications do not use it (jobshook keeps its own per-client queue).
	caps.MaximumClientWritesPending = 256
	caps.MaximumPacketSize = uint32(b.cfg.MaxPacketSize)
	b.sessionCapabilities(caps)
	b.MQTT = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		// Each connection keeps a read buffer for its whole life. Device
		// requests are a few hundred bytes; a larger packet is read into
		// its own buffer past this one, so 1 KiB instead of mochi's 2 KiB
		// costs no extra reads and saves 1 KiB per idle connection.
		ClientNetReadBufferSize: readBufferBytes,
		Logger:                  mochiLogger(b.log),
	})
	b.Auth = new(auth.Hook)
	if err := b.MQTT.AddHook(b.Auth, &auth.Options{
		Mode: b.cfg.Identity, Passwords: b.passwords, Operators: b.cfg.Operators, TopicRules: b.cfg.TopicRules,
		MaxTopicLength: b.cfg.MaxTopicLength, MaxConnections: b.cfg.MaxConnectionsPerIdentity,
		LoginBackoff: b.cfg.LoginBackoff, OnLoginFailure: b.security.LoginFailure,
		Logger: b.log.With("component", "auth"),
	}); err != nil {
		return fmt.Errorf("add auth hook: %w", err)
	}
	if err := b.MQTT.AddHook(faults.NewConnectHook(b.Faults), nil); err != nil {
		return fmt.Errorf("add faults hook: %w", err)
	}
	if err := b.MQTT.AddHook(&protocolHook{maxSubs: b.cfg.MaxSubscriptions, log: b.log.With("component", "mqtt"), refusedLog: logsample.New()}, nil); err != nil {
		return fmt.Errorf("add protocol hook: %w", err)
	}
	if err := b.addTrafficHook(); err != nil {
		return err
	}
	b.Jobs = new(jobshook.Hook)
	b.Sessions = new(sessions.Hook)
	b.flow = &flowHook{server: b.MQTT, maxMessageExpiry: caps.MaximumMessageExpiryInterval, acked: b.Sessions.OnQosComplete, dropped: b.Sessions.OnQosDropped}
	if err := b.MQTT.AddHook(b.Jobs, &jobshook.Options{Server: b.MQTT, Store: b.feed, Clock: b.cfg.Clock,
		Region: b.cfg.Region, Account: b.cfg.Account, Observer: b.Metrics, Logger: b.log.With("component", "jobs"),
		Identity: b.Auth.Identity, Throttle: b.throttle.Allow, Documents: b.docs, Sessions: b.Sessions,
		Faults: b.Faults, Commands: b.feed.commandStore(), Send: b.flow.Send}); err != nil {
		return fmt.Errorf("add jobs hook: %w", err)
	}
	if b.cfg.EchoPrefix != "" {
		if err := b.MQTT.AddHook(&echoHook{prefix: b.cfg.EchoPrefix, jobs: b.Jobs}, nil); err != nil {
			return fmt.Errorf("add echo hook: %w", err)
		}
	}
	if err := b.addSessionsHook(); err != nil {
		return err
	}
	if err := b.addClusterHook(); err != nil {
		return err
	}
	if err := b.MQTT.AddHook(b.flow, nil); err != nil {
		return fmt.Errorf("add flow hook: %w", err)
	}
	if err := b.addMQTTListeners(); err != nil {
		return err
	}
	metrics.RegisterBroker(b.cfg.Registry, b.MQTT)
	return nil
}

// mochiLogger gives mochi a logger that keeps only its errors: mochi logs
// every connection at info and every client that drops at warn, which
// under load is noise.
func mochiLogger(l *slog.Logger) *slog.Logger {
	return slog.New(levelFloor{l.Handler(), slog.LevelError}).With("component", "mqtt")
}

type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(a), h.min}
}

func (h levelFloor) WithGroup(n string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(n), h.min}
}

func (b *Broker) buildAPI() error {
	mux := http.NewServeMux()
	var err error
	if b.api, err = b.listenHTTP("control", b.cfg.APIAddr, mux, b.httpTLS(certs.NoClientCert)); err != nil {
		return err
	}
	dp := dataplane.New(dataplane.Options{Store: b.Store, Clock: b.cfg.Clock, Logger: b.log.With("component", "jobs-api"),
		Observe: b.Metrics.API("data"), Documents: b.docs})
	if b.jobs, err = b.listenHTTP("data", b.cfg.JobsAddr, b.deviceGate(dp), b.httpTLS(certs.OptionalClientCert)); err != nil {
		b.api.ln.Close()
		return err
	}
	cp := controlplane.New(controlplane.Options{
		Store: b.Store, Region: b.cfg.Region, Account: b.cfg.Account, Clock: b.cfg.Clock,
		Logger: b.log.With("component", "api"), Endpoints: b.endpoints(), Observe: b.Metrics.API("control"),
		Artifacts: b.docs.Signer(),
	})
	b.Metrics.Declare("control", cp.Operations())
	b.Metrics.Declare("data", dp.Operations())
	mux.HandleFunc("GET /healthz", b.healthz)
	mux.HandleFunc("GET /readyz", b.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.cfg.Registry, promhttp.HandlerOpts{Registry: b.cfg.Registry}))
	mux.Handle("GET /admin/backup", b.signedOnly(http.HandlerFunc(b.backup)))
	b.mountAdminTesting(mux)
	mux.Handle("/", b.signedOnly(cp))
	if err := b.mountConsole(mux, cp); err != nil {
		b.api.ln.Close()
		b.jobs.ln.Close()
		return err
	}
	if err := b.listenPprof(); err != nil {
		b.api.ln.Close()
		b.jobs.ln.Close()
		return err
	}
	return nil
}

// endpoints is what DescribeEndpoint answers: the public host, with the
// listener's port unless it is the one clients assume (see
// controlplane.EndpointAddress).
func (b *Broker) endpoints() map[string]string {
	// Devices are told the TLS listener when there is one, as AWS tells
	// them its port 8883.
	mqttAddr, mqttPorts := b.listenerAddr(listenerMQTTTLS), controlplane.MQTTPorts
	if mqttAddr == "" {
		mqttAddr, mqttPorts = b.listenerAddr(listenerMQTT), nil
	}
	if mqttAddr == "" {
		mqttAddr, mqttPorts = b.listenerAddr(listenerMQTTALPN), controlplane.MQTTPorts
	}
	var jobsPorts []string
	if b.certs != nil {
		jobsPorts = controlplane.HTTPSPorts
	}
	data := controlplane.EndpointAddress(b.cfg.EndpointHost, mqttAddr, mqttPorts...)
	return map[string]string{
		"iot:Data":     data,
		"iot:Data-ATS": data,
		"iot:Jobs":     controlplane.EndpointAddress(b.cfg.EndpointHost, b.jobs.ln.Addr().String(), jobsPorts...),
	}
}

// httpSettings are the settings of the HTTP listeners, by API.
var httpSettings = map[string]string{"control": "api_addr", "data": "jobs_addr", "pprof": "pprof_addr"}

// httpServer is an HTTP API with its bound listener.
type httpServer struct {
	*http.Server
	ln net.Listener
}

func (b *Broker) listenHTTP(api, addr string, h http.Handler, tlsConf *tls.Config) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the %s API on %s (%s): %w", api, addr, b.cfg.name(httpSettings[api]), err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	return &httpServer{ln: ln, Server: &http.Server{
		Handler:           awsapi.WithRequestID(b.log, api, h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}}, nil
}

// Start serves MQTT and the API in the background.
func (b *Broker) Start() error {
	if err := b.MQTT.Serve(); err != nil {
		return fmt.Errorf("serve MQTT: %w", err)
	}
	for _, s := range b.httpServers() {
		go func() {
			if err := s.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.serveErr <- fmt.Errorf("serve HTTP on %s: %w", s.ln.Addr(), err)
			}
		}()
	}
	b.started.Store(true)
	attrs := []any{"mqtt", b.MQTTAddr()}
	for _, id := range []string{listenerMQTTTLS, listenerMQTTALPN, listenerWS} {
		if addr := b.listenerAddr(id); addr != "" {
			attrs = append(attrs, strings.ReplaceAll(id, "-", "_"), addr)
		}
	}
	if b.pprof != nil {
		attrs = append(attrs, "pprof", b.PprofAddr())
	}
	attrs = append(attrs, b.clusterAttrs()...)
	attrs = append(attrs, "api", b.APIAddr(), "jobs_api", b.JobsAddr(), "https", b.certs != nil,
		"identity", string(b.cfg.Identity), "data", b.cfg.DataDir, "sync_writes", !b.cfg.NoSync && !b.cfg.inMemory(),
		"max_connections", b.cfg.maxConnections(), "memory_limit", memoryLimit())
	b.log.Info("jobsbroker started", attrs...)
	b.securityNotice()
	return nil
}

// httpServers returns the HTTP listeners that are on.
func (b *Broker) httpServers() []*httpServer {
	servers := []*httpServer{b.api, b.jobs}
	if b.pprof != nil {
		servers = append(servers, b.pprof)
	}
	return servers
}

// Err reports a listener that stopped serving on its own.
func (b *Broker) Err() <-chan error { return b.serveErr }

// MQTTAddr returns the bound address of the plain MQTT listener, "" when
// it is off.
func (b *Broker) MQTTAddr() string { return b.listenerAddr(listenerMQTT) }

// MQTTTLSAddr returns the bound address of the MQTT-over-TLS listener, ""
// when it is off.
func (b *Broker) MQTTTLSAddr() string { return b.listenerAddr(listenerMQTTTLS) }

// MQTTALPNAddr returns the bound address of the second MQTT-over-TLS
// listener (the port-443 stand-in), "" when it is off.
func (b *Broker) MQTTALPNAddr() string { return b.listenerAddr(listenerMQTTALPN) }

// WebSocketAddr returns the bound address of the MQTT-over-WebSocket
// listener, "" when it is off.
func (b *Broker) WebSocketAddr() string { return b.listenerAddr(listenerWS) }

// APIAddr returns the bound control-plane API address.
func (b *Broker) APIAddr() string { return b.api.ln.Addr().String() }

// JobsAddr returns the bound data-plane (iot-jobs-data) API address.
func (b *Broker) JobsAddr() string { return b.jobs.ln.Addr().String() }

// Shutdown stops the broker in order: it turns unready (/readyz answers
// 503), waits Config.ShutdownDelay so that load balancers stop sending
// work, stops the HTTP APIs (letting calls in flight finish), lets the MQTT
// requests in flight finish while refusing new ones, closes MQTT, and
// closes the store. Every request is either answered after its change was
// committed or never acknowledged. ctx bounds the waiting.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.stopping.Store(true)
	if b.cfg.ShutdownDelay > 0 && b.started.Load() {
		select {
		case <-time.After(b.cfg.ShutdownDelay):
		case <-ctx.Done():
		}
	}
	servers := b.httpServers()
	httpErrs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				httpErrs[i] = fmt.Errorf("stop HTTP on %s: %w", s.ln.Addr(), err)
			}
		}()
	}
	if err := b.Jobs.Drain(ctx); err != nil {
		b.log.Warn("shutdown did not wait for every MQTT request", "error", err)
	}
	wg.Wait()
	errs := httpErrs
	if err := b.closeMQTT(ctx); err != nil {
		errs = append(errs, err)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			// Hooks may still be running against the store: leave it
			// open. What was acknowledged is committed already (to
			// Badger's synced log, or to PostgreSQL).
			b.log.Error("MQTT did not stop in time; the store is left for the next start to recover", "error", err)
			return errors.Join(errs...)
		}
	}
	if err := b.closeTesting(); err != nil {
		errs = append(errs, err)
	}
	if err := b.leaveCluster(); err != nil {
		errs = append(errs, err)
	}
	if err := b.Store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	b.log.Info("jobsbroker stopped")
	return errors.Join(errs...)
}

// closeMQTT closes the MQTT server, giving up when ctx ends, so that a
// connection that will not let go cannot hang shutdown for ever.
func (b *Broker) closeMQTT(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- b.MQTT.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("stop MQTT: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop MQTT: %w", ctx.Err())
	}
}

// BackupCompleteTrailer is the HTTP trailer GET /admin/backup sets to
// "true" once the whole backup has been written, so that a client can tell
// a complete backup from a cut one.
const BackupCompleteTrailer = "X-Jobsbroker-Backup-Complete"

// backup streams a consistent backup of the store (Badger's backup format)
// while the broker keeps serving; `jobsbroker restore` loads it.
func (b *Broker) backup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", BackupCompleteTrailer)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="jobsbroker.backup"`)
	// A large store takes longer than the server's write timeout.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Time{}); err != nil {
		b.log.Warn("backup: cannot lift the write deadline", "error", err)
	}
	bs, ok := b.Store.(store.Backuper)
	if !ok {
		w.Header().Del("Trailer")
		awsapi.WriteError(w, awsapi.Errorf(http.StatusNotImplemented, "InvalidRequestException",
			"this broker's store does not stream backups: a store shared in a database (-store postgres) is backed up with the database's own tools (pg_dump)"))
		return
	}
	if _, err := bs.Backup(r.Context(), w); err != nil {
		b.log.Error("backup failed", "error", err)
		return
	}
	w.Header().Set(BackupCompleteTrailer, "true")
}

// Health is the broker's health as /readyz reports it.
type Health struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"` // check -> "ok" or the problem
}

// Health checks that the store answers reads and takes writes, that every
// listener was started and accepts connections, and that the broker is
// not shutting down.
func (b *Broker) Health() Health {
	h := Health{Ready: true, Checks: map[string]string{}}
	fail := func(check, problem string) {
		h.Ready = false
		h.Checks[check] = problem
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.Store.Ping(ctx); err != nil {
		fail("store", err.Error())
	} else if w, ok := b.Store.(interface{ WritesRefused() error }); ok && w.WritesRefused() != nil {
		fail("store", w.WritesRefused().Error())
	} else {
		h.Checks["store"] = "ok"
	}
	if b.started.Load() {
		h.Checks["listeners"] = "ok"
	} else {
		fail("listeners", "not serving yet")
	}
	for id, l := range b.mqttLns {
		if f, ok := l.(interface{ Failing() error }); ok {
			if err := f.Failing(); err != nil {
				fail("listener "+id, err.Error())
			}
		}
	}
	if b.cluster != nil {
		if b.cluster.Connected() {
			h.Checks["cluster"] = "ok"
		} else {
			// Reported, not failed: jobs and local clients are served,
			// and every node would be taken out at once.
			h.Checks["cluster"] = "not connected to NATS: publishes between nodes are refused until it is back"
		}
	}
	if b.stopping.Load() {
		fail("lifecycle", "shutting down")
	} else {
		h.Checks["lifecycle"] = "ok"
	}
	return h
}

func (b *Broker) healthz(w http.ResponseWriter, _ *http.Request) {
	awsapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

func (b *Broker) readyz(w http.ResponseWriter, _ *http.Request) {
	h := b.Health()
	status := http.StatusOK
	if !h.Ready {
		status = http.StatusServiceUnavailable
	}
	awsapi.WriteJSON(w, status, h)
}

// memoryLimit describes the Go runtime's soft memory limit for the start
// log: "none", or its size in MiB.
func memoryLimit() string {
	l := debug.SetMemoryLimit(-1)
	if l == math.MaxInt64 {
		return "none"
	}
	return strconv.FormatInt(l>>20, 10) + " MiB"
}
