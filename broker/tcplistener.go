package broker

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// DefaultWriteTimeout is how long a write to an MQTT client may block
// before the client is disconnected.
const DefaultWriteTimeout = 10 * time.Second

// tcpListener serves MQTT over TCP, optionally TLS. Unlike mochi's own TCP
// listener it puts a deadline on every write: mochi holds a client's lock
// while it writes to the connection, so a client that stops reading would
// otherwise hold up, for as long as it stays connected, everything that
// needs that lock (publishing to it, among others). With the deadline the
// write fails and mochi drops the client.
type tcpListener struct {
	id           string
	ln           net.Listener
	tls          *tls.Config
	writeTimeout time.Duration
	log          *slog.Logger
	srv          *mqtt.Server // whose clients Close disconnects
	conns        connSet
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(srv *mqtt.Server, id, addr string, tlsConf *tls.Config, writeTimeout time.Duration) (*tcpListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	return &tcpListener{id: id, ln: ln, tls: tlsConf, writeTimeout: writeTimeout, srv: srv}, nil
}

func (l *tcpListener) ID() string      { return l.id }
func (l *tcpListener) Address() string { return l.ln.Addr().String() }

func (l *tcpListener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Error("MQTT listener stopped", "listener", l.id, "error", err)
			}
			return
		}
		c := &deadlineConn{Conn: conn, timeout: l.writeTimeout}
		if !l.conns.add(c) {
			conn.Close() // the listener is closing
			continue
		}
		go func() {
			defer l.conns.done(c)
			if err := establish(l.id, c); err != nil {
				l.log.Debug("MQTT client ended", "listener", l.id, "error", err)
			}
		}()
	}
}

// Close stops accepting connections, ends the listener's connections and
// waits until mochi is done with them (see closeListener). mochi's CloseFn
// is not used.
func (l *tcpListener) Close(listeners.CloseFn) {
	if !l.conns.stop() {
		return // closed already
	}
	l.ln.Close()
	closeListener(l.srv, l.id, &l.conns)
}

// deadlineConn bounds each write by a timeout, and can hold a write back
// to send it with the next one (see HoldNextWrite).
type deadlineConn struct {
	net.Conn
	timeout time.Duration

	mu   sync.Mutex
	hold bool   // the next write waits for the one after it
	held []byte // a write waiting for the next one
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
	if c.hold {
		c.hold = false
		c.held = append(c.held[:0], p...)
		return len(p), nil
	}
	out := p
	if len(c.held) > 0 {
		out = append(c.held, p...)
		c.held = c.held[:0]
		if cap(c.held) > 4096 {
			c.held = nil // do not keep a large reply's buffer
		}
	}
	n, err := c.write(out)
	// The held bytes were reported written when they were held: count
	// only p's.
	n = max(0, n-(len(out)-len(p)))
	return n, err
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

// ConnectionState reports the TLS state of a TLS connection, for the auth
// hook.
func (c *deadlineConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
