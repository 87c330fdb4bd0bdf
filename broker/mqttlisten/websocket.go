package mqttlisten

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// WebSocket serves MQTT over WebSocket (subprotocol "mqtt", binary
// frames), optionally over TLS. mochi has a WebSocket listener of its own;
// this one binds its socket up front (so ":0" reports the port it got),
// lets the auth hook see the TLS state of each connection, and applies the
// limits of the TCP listener: the TLS handshake and the HTTP upgrade
// request within connectTimeout, and CONNECT within connectTimeout after
// the upgrade; at most maxConns connections (an upgrade beyond them is
// answered 503, and any refused request closes its connection); accept
// errors retried (see retryListener).
type WebSocket struct {
	id     string
	ln     *retryListener
	tls    *tls.Config
	srv    *http.Server
	up     websocket.Upgrader
	mu     sync.Mutex // guards est
	est    listeners.EstablishFn
	mqtt   *mqtt.Server // whose clients Close disconnects
	conns  connSet
	opts   Options
	refuse refuser // counts and logs refusals for the limit
}

var _ listeners.Listener = (*WebSocket)(nil)

func NewWebSocket(srv *mqtt.Server, id, addr string, tlsConf *tls.Config, opts Options) (*WebSocket, error) {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &WebSocket{id: id, tls: tlsConf, opts: opts, mqtt: srv}
	l.refuse.init(id, opts)
	l.ln = newRetryListener(raw, id, opts.Log, func() {
		if opts.Stats != nil {
			opts.Stats.AcceptError(id)
		}
	})
	l.up = websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Devices are not browsers; an Origin header proves nothing either
		// way, and authentication happens in MQTT's CONNECT.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return l, nil
}

func (l *WebSocket) ID() string      { return l.id }
func (l *WebSocket) Address() string { return l.ln.Addr().String() }

func (l *WebSocket) Protocol() string {
	if l.tls != nil {
		return "wss"
	}
	return "ws"
}

// Init is called by mochi; the listener logs through opts.Log.
func (l *WebSocket) Init(*slog.Logger) error {
	headerTimeout := l.opts.ConnectTimeout
	if headerTimeout <= 0 {
		headerTimeout = DefaultConnectTimeout
	}
	l.srv = &http.Server{
		Handler: http.HandlerFunc(l.upgrade),
		// Also the deadline of the TLS handshake.
		ReadHeaderTimeout: headerTimeout,
		ErrorLog:          slog.NewLogLogger(l.opts.Log.Handler(), slog.LevelDebug),
		ConnState:         l.connState,
	}
	// The listener serves WebSocket upgrades and nothing else: a request
	// it refuses (503 at the limit, 400 for no upgrade) ends the
	// connection. Kept alive, such a connection waited for a next request
	// with no deadline, holding a descriptor outside the limit.
	l.srv.SetKeepAlivesEnabled(false)
	return nil
}

// Failing reports why the listener is not accepting connections, nil
// while it is.
func (l *WebSocket) Failing() error { return l.ln.Failing() }

func (l *WebSocket) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.est = establish
	l.mu.Unlock()
	var ln net.Listener = watchListener{outListener{l.ln, l.opts.WriteTimeout}}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.opts.Log.Error("websocket listener stopped", "listener", l.id, "error", err)
	}
}

// connState counts, as connect timeouts, the connections the HTTP server
// closed because their TLS handshake or upgrade request did not arrive in
// time (an upgraded connection is the upgrade handler's to count).
func (l *WebSocket) connState(c net.Conn, state http.ConnState) {
	if state != http.StateClosed || l.opts.Stats == nil {
		return
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if w, ok := c.(*watchedConn); ok && w.timedOut.Load() {
		l.opts.Stats.ConnectionRefused(l.id, refusedConnectTimeout)
	}
}

// watchListener hands out watchedConns.
type watchListener struct{ net.Listener }

func (l watchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c}, nil
}

// watchedConn notes whether a read ran into its deadline. The HTTP
// server also ends a read of its own by setting a deadline in the past,
// once it has answered a request; that is no timeout.
type watchedConn struct {
	net.Conn
	timedOut atomic.Bool
	aborting atomic.Bool // the read deadline was set in the past
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && isTimeout(err) && !c.aborting.Load() {
		c.timedOut.Store(true)
	}
	return n, err
}

func (c *watchedConn) SetReadDeadline(t time.Time) error {
	c.aborting.Store(!t.IsZero() && t.Before(time.Now()))
	return c.Conn.SetReadDeadline(t)
}

func (c *watchedConn) SetDeadline(t time.Time) error {
	c.aborting.Store(!t.IsZero() && t.Before(time.Now()))
	return c.Conn.SetDeadline(t)
}

func (l *WebSocket) upgrade(w http.ResponseWriter, r *http.Request) {
	if l.opts.MaxConns > 0 && l.conns.len() >= l.opts.MaxConns {
		l.refuse.refused()
		w.Header().Set("Retry-After", "10")
		http.Error(w, "the MQTT listener is at its connection limit", http.StatusServiceUnavailable)
		return
	}
	ws, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	if l.opts.ConnectTimeout > 0 {
		// CONNECT within the deadline; mochi sets the keepalive one then.
		_ = ws.NetConn().SetDeadline(time.Now().Add(l.opts.ConnectTimeout))
	}
	c := &wsConn{Conn: ws.NetConn(), ws: ws, timeout: l.opts.WriteTimeout, done: make(chan struct{})}
	if r.TLS != nil {
		state := *r.TLS
		c.state = &state
	}
	defer c.Close()
	if !l.conns.add(c) {
		return // the listener is closing
	}
	defer l.conns.done(c)
	defer close(c.done)
	l.mu.Lock()
	est := l.est
	l.mu.Unlock()
	err = est(l.id, c)
	if err != nil {
		l.opts.Log.Debug("websocket client ended", "listener", l.id, "error", err)
	}
	if isTimeout(err) && !c.wrote.Load() && l.opts.Stats != nil {
		l.opts.Stats.ConnectionRefused(l.id, refusedConnectTimeout) // no CONNECT after the upgrade
	}
}

// Close stops the HTTP server, ends the listener's connections and waits
// until mochi is done with them (see closeListener).
func (l *WebSocket) Close(listeners.CloseFn) {
	if !l.conns.stop() {
		return // closed already
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if l.srv != nil {
		_ = l.srv.Shutdown(ctx) // upgraded connections are hijacked: closeListener ends them
	} else {
		l.ln.Close()
	}
	closeListener(l.mqtt, l.id, &l.conns)
}

// wsConn carries an MQTT byte stream in binary WebSocket messages. The
// embedded connection supplies addresses and deadlines.
type wsConn struct {
	net.Conn
	ws    *websocket.Conn
	r     io.Reader
	state *tls.ConnectionState
	wmu   sync.Mutex

	timeout time.Duration // per write, as deadlineConn
	wrote   atomic.Bool   // something was written (a CONNACK, at least)
	first   connackFirst
	done    chan struct{} // closed once mochi has finished with the connection
}

// Done returns a channel that is closed once mochi has finished with the
// connection, for the auth hook (see auth.Hook.OnDisconnect).
func (c *wsConn) Done() <-chan struct{} { return c.done }

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := len(p)
	if p = c.first.order(p); p == nil {
		return written, nil // kept until the CONNACK
	}
	c.wrote.Store(true)
	if c.timeout > 0 {
		if err := c.ws.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return 0, err
		}
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		if isTimeout(err) {
			c.Conn.Close()
		}
		return 0, err
	}
	return written, nil
}

func (c *wsConn) Close() error { return c.ws.Close() }

// ConnectionState returns the TLS state of a wss connection (zero for ws),
// for the auth hook.
func (c *wsConn) ConnectionState() tls.ConnectionState {
	if c.state == nil {
		return tls.ConnectionState{}
	}
	return *c.state
}
