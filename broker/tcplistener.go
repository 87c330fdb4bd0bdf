package broker

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

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

	mu     sync.Mutex
	closed bool
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id, addr string, tlsConf *tls.Config, writeTimeout time.Duration) (*tcpListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	return &tcpListener{id: id, ln: ln, tls: tlsConf, writeTimeout: writeTimeout}, nil
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
		go func() {
			if err := establish(l.id, &deadlineConn{Conn: conn, timeout: l.writeTimeout}); err != nil {
				l.log.Debug("MQTT client ended", "listener", l.id, "error", err)
			}
		}()
	}
}

func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.ln.Close()
	closeClients(l.id)
}

// deadlineConn bounds each write by a timeout.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

// Write writes with a deadline and closes the connection when the
// deadline passes: mochi ignores write errors on its own write loop, and a
// closed connection makes its read loop end the client.
func (c *deadlineConn) Write(p []byte) (int, error) {
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
