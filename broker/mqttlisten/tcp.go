package mqttlisten

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// DefaultWriteTimeout is how long output to an MQTT client may wait
// unread, with no progress, before the client is disconnected.
const DefaultWriteTimeout = 10 * time.Second

// DefaultConnectTimeout is how long a new MQTT connection may take to
// finish its TLS handshake and send CONNECT.
const DefaultConnectTimeout = 10 * time.Second

// Options are the limits every MQTT listener applies.
type Options struct {
	// WriteTimeout is how long output to a client may wait with no
	// progress (see outConn).
	WriteTimeout time.Duration
	// ConnectTimeout bounds the TLS handshake and the CONNECT of a new
	// connection together; mochi sets the keepalive deadline once CONNECT
	// is read (0: none).
	ConnectTimeout time.Duration
	// MaxConns is how many connections the listener serves at once; more
	// are answered CONNACK "server unavailable" (MQTT 5: "server busy")
	// and closed (0: no limit).
	MaxConns int
	// Stats counts what the listener refuses; nil counts nothing.
	Stats Stats
	// Log receives the listener's own logs (mochi's logger keeps errors
	// only).
	Log *slog.Logger
}

// Stats counts a listener's troubles (metrics.Security does).
type Stats interface {
	AcceptError(listener string)
	ConnectionRefused(listener, reason string)
}

// Reasons a listener gives up on a connection, for Stats.
const (
	refusedLimit          = "limit"           // over the listener's connection limit
	refusedConnectTimeout = "connect_timeout" // no TLS handshake and CONNECT in time
)

// TCP serves MQTT over TCP, optionally TLS. Unlike mochi's own TCP
// listener:
//
//   - its writes never wait for the client (outconn.go): mochi holds a
//     client's lock while it writes to the connection, so a client that
//     stops reading would otherwise hold up everything that needs that
//     lock (publishing a QoS 1 message to it, among others). What the
//     socket does not take at once waits in memory, and a client that
//     takes none of it for the write timeout is disconnected;
//   - a new connection must finish its TLS handshake and send CONNECT
//     within connectTimeout, or it is closed: a bare TCP connection or a
//     half-sent ClientHello holds a descriptor and memory for nothing;
//   - it serves at most maxConns connections, answering more with a
//     CONNACK refusal, so that clients cannot take every descriptor;
//   - it survives accept errors (see retryListener).
type TCP struct {
	id     string
	accept *retryListener
	ln     net.Listener // accept, or TLS over it
	tls    *tls.Config
	opts   Options
	srv    *mqtt.Server // whose clients Close disconnects
	conns  connSet
	refuse refuser
}

var _ listeners.Listener = (*TCP)(nil)

func NewTCP(srv *mqtt.Server, id, addr string, tlsConf *tls.Config, opts Options) (*TCP, error) {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &TCP{id: id, tls: tlsConf, opts: opts, srv: srv}
	l.accept = newRetryListener(raw, id, opts.Log, l.countAcceptError)
	l.ln = outListener{l.accept, opts.WriteTimeout}
	if tlsConf != nil {
		l.ln = tls.NewListener(l.ln, tlsConf)
	}
	l.refuse.init(id, opts)
	return l, nil
}

func (l *TCP) countAcceptError() {
	if l.opts.Stats != nil {
		l.opts.Stats.AcceptError(l.id)
	}
}

func (l *TCP) ID() string      { return l.id }
func (l *TCP) Address() string { return l.ln.Addr().String() }

func (l *TCP) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

// Init is called by mochi; the listener logs through opts.Log.
func (l *TCP) Init(*slog.Logger) error { return nil }

// Failing reports why the listener is not accepting connections, nil
// while it is.
func (l *TCP) Failing() error { return l.accept.Failing() }

func (l *TCP) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return // closed: retryListener retries every other error
		}
		if l.opts.ConnectTimeout > 0 {
			// mochi replaces it with the keepalive deadline once it has
			// read CONNECT; a TLS connection's handshake runs under it too.
			_ = conn.SetDeadline(time.Now().Add(l.opts.ConnectTimeout))
		}
		c := &deadlineConn{Conn: conn, timeout: l.opts.WriteTimeout, done: make(chan struct{})}
		if l.opts.MaxConns > 0 && l.conns.len() >= l.opts.MaxConns {
			l.refuse.busy(c)
			continue
		}
		if !l.conns.add(c) {
			conn.Close() // the listener is closing
			continue
		}
		go func() {
			defer l.conns.done(c)
			defer close(c.done)
			err := establish(l.id, c)
			if err != nil {
				l.opts.Log.Debug("MQTT client ended", "listener", l.id, "remote", conn.RemoteAddr(), "error", err)
			}
			if isTimeout(err) && !c.wrote.Load() && l.opts.Stats != nil {
				// Nothing was ever written: not even a CONNACK. The client
				// did not finish its handshake and CONNECT in time.
				l.opts.Stats.ConnectionRefused(l.id, refusedConnectTimeout)
			}
		}()
	}
}

// Close stops accepting connections, ends the listener's connections and
// waits until mochi is done with them (see closeListener). mochi's CloseFn
// is not used.
func (l *TCP) Close(listeners.CloseFn) {
	if !l.conns.stop() {
		return // closed already
	}
	l.ln.Close()
	closeListener(l.srv, l.id, &l.conns)
	l.refuse.wait()
}

// deadlineConn bounds each write by a timeout where the connection below
// can block (on unix its TCP connection is an outConn, whose writes never
// wait and which keeps the timeout itself), and can hold a write back to
// send it with the next one (see HoldNextWrite).
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	wrote   atomic.Bool // something was written (a CONNACK, at least)
	done    chan struct{}

	mu    sync.Mutex
	hold  bool   // the next write waits for the one after it
	held  []byte // a write waiting for the next one
	first connackFirst
}

// HoldNextWrite makes the connection keep the next write and send it
// together with the one after it, in one system call. jobshook calls it
// before it writes the reply to a QoS 1 or 2 request: mochi writes the
// request's PUBACK (or PUBREC) right after, on the same goroutine, so the
// reply waits for microseconds and the pair costs one write instead of
// two. The order of the bytes is kept: any write flushes what is held
// ahead of itself.
func (c *deadlineConn) HoldNextWrite() {
	c.mu.Lock()
	c.hold = true
	c.mu.Unlock()
}

// ReleaseHold cancels a HoldNextWrite that no write has used yet (the
// reply went to mochi's own buffer, or was not written at all), so that
// it cannot hold back some later, unrelated write.
func (c *deadlineConn) ReleaseHold() {
	c.mu.Lock()
	c.hold = false
	c.mu.Unlock()
}

// Write writes with a deadline and closes the connection when the
// deadline passes: mochi ignores write errors on its own write loop, and a
// closed connection makes its read loop end the client.
func (c *deadlineConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	written := len(p)
	if p = c.first.order(p); p == nil {
		return written, nil // kept until the CONNACK
	}
	if c.hold {
		c.hold = false
		c.held = append(c.held[:0], p...)
		return written, nil
	}
	out := p
	if len(c.held) > 0 {
		out = append(c.held, p...)
		c.held = c.held[:0]
		if cap(c.held) > 4096 {
			c.held = nil // do not keep a large reply's buffer
		}
	}
	c.wrote.Store(true)
	n, err := c.write(out)
	// The held and kept bytes were reported written when they were held:
	// count only this write's.
	if err != nil {
		return max(0, n-(len(out)-written)), err
	}
	return written, nil
}

func (c *deadlineConn) write(p []byte) (int, error) {
	if c.timeout <= 0 {
		return c.Conn.Write(p)
	}
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if isTimeout(err) {
		c.Conn.Close()
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Done returns a channel that is closed once mochi has finished with the
// connection, for the auth hook (see auth.Hook.OnDisconnect).
func (c *deadlineConn) Done() <-chan struct{} { return c.done }

// ConnectionState reports the TLS state of a TLS connection, for the auth
// hook.
func (c *deadlineConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
