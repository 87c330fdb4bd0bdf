package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over WebSocket (subprotocol "mqtt", binary
// frames), optionally over TLS. mochi has a WebSocket listener of its own;
// this one binds its socket up front (so ":0" reports the port it got) and
// lets the auth hook see the TLS state of each connection.
type wsListener struct {
	id    string
	ln    net.Listener
	tls   *tls.Config
	srv   *http.Server
	log   *slog.Logger
	up    websocket.Upgrader
	mu    sync.Mutex // guards est
	est   listeners.EstablishFn
	mqtt  *mqtt.Server // whose clients Close disconnects
	conns connSet

	writeTimeout time.Duration
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(srv *mqtt.Server, id, addr string, tlsConf *tls.Config, writeTimeout time.Duration) (*wsListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &wsListener{id: id, ln: ln, tls: tlsConf, writeTimeout: writeTimeout, mqtt: srv}
	l.up = websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Devices are not browsers; an Origin header proves nothing either
		// way, and authentication happens in MQTT's CONNECT.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return l, nil
}

func (l *wsListener) ID() string      { return l.id }
func (l *wsListener) Address() string { return l.ln.Addr().String() }

func (l *wsListener) Protocol() string {
	if l.tls != nil {
		return "wss"
	}
	return "ws"
}

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.upgrade),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return nil
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.est = establish
	l.mu.Unlock()
	ln := l.ln
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener stopped", "listener", l.id, "error", err)
	}
}

func (l *wsListener) upgrade(w http.ResponseWriter, r *http.Request) {
	ws, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	c := &wsConn{Conn: ws.NetConn(), ws: ws, timeout: l.writeTimeout}
	if r.TLS != nil {
		state := *r.TLS
		c.state = &state
	}
	defer c.Close()
	if !l.conns.add(c) {
		return // the listener is closing
	}
	defer l.conns.done(c)
	l.mu.Lock()
	est := l.est
	l.mu.Unlock()
	if err := est(l.id, c); err != nil {
		l.log.Debug("websocket client ended", "listener", l.id, "error", err)
	}
}

// Close stops the HTTP server, ends the listener's connections and waits
// until mochi is done with them (see closeListener).
func (l *wsListener) Close(listeners.CloseFn) {
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
}

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
	return len(p), nil
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
