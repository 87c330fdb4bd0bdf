package broker_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// wsStream is an MQTT byte stream over a WebSocket client connection
// (binary messages, subprotocol "mqtt"), so that rawClient can speak
// MQTT over it. Deadlines and addresses are the WebSocket's.
type wsStream struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			_, r, err := s.ws.NextReader()
			if err != nil {
				return 0, err
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if errors.Is(err, io.EOF) {
			s.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (s *wsStream) Write(p []byte) (int, error) {
	if err := s.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *wsStream) SetReadDeadline(t time.Time) error { return s.ws.SetReadDeadline(t) }
func (s *wsStream) Close() error                      { return s.ws.Close() }

// lockedBuffer collects a broker's logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// upgradeWS opens a WebSocket to the broker's MQTT-over-WebSocket listener
// and returns a rawClient over it, or the HTTP response that refused the
// upgrade.
func upgradeWS(t *testing.T, b *brokertest.Instance) (*rawClient, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws://"+b.WebSocketAddr()+"/mqtt", nil)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	s := &wsStream{Conn: ws.NetConn(), ws: ws}
	return &rawClient{t: t, conn: s, r: bufio.NewReader(s), version: 4}, resp, nil
}

// requestWS sends the WebSocket listener a GET /mqtt, an upgrade request
// or not, and returns the answer's status and whether the broker then
// closed the connection (nil) or not.
func requestWS(t *testing.T, b *brokertest.Instance, upgrade bool) (int, error) {
	t.Helper()
	c := dialRaw(t, b.WebSocketAddr(), nil)
	req := "GET /mqtt HTTP/1.1\r\nHost: broker\r\n"
	if upgrade {
		req += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n"
	}
	if _, err := io.WriteString(c.conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("no answer to the request: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, c.closedWithin(10 * time.Second)
}

// TestWebSocketRefusedRequestIsClosed: a request to the WebSocket listener
// that is no upgrade is answered 400 and its connection closed, not kept
// alive with no deadline.
func TestWebSocketRefusedRequestIsClosed(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) {
		c.WebSocketAddr = "127.0.0.1:0"
	})
	if status, err := requestWS(t, b, false); status != http.StatusBadRequest || err != nil {
		t.Errorf("a request that is no upgrade: %d, connection %v; want 400, then closed", status, err)
	}
	// The request came in time: no connect timeout.
	if n := value(t, scrape(t, b), "jobsbroker_mqtt_connections_refused_total", "listener=websocket", "reason=connect_timeout"); n != 0 {
		t.Errorf("a refused request counted as a connect timeout (%v)", n)
	}
}

// TestWebSocketConnectionLimit: the WebSocket listener serves at most
// -max-connections connections, as the TCP ones do; an upgrade beyond them
// is answered 503 with Retry-After before any WebSocket exists, counted,
// logged, and its connection closed. The limit is the listener's own: the
// TCP listener still serves. When a WebSocket client leaves, the next one
// gets in.
func TestWebSocketConnectionLimit(t *testing.T) {
	var logs lockedBuffer
	b := brokertest.Start(t, func(c *broker.Config) {
		c.WebSocketAddr = "127.0.0.1:0"
		c.MaxConnections = 2
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	var clients []*rawClient
	for i := range 2 {
		c, _, err := upgradeWS(t, b)
		if err != nil {
			t.Fatalf("upgrade %d of 2: %v", i+1, err)
		}
		if code, _ := c.connect(rawConnect{id: fmt.Sprintf("ws-limit-%d", i)}); code != 0 {
			t.Fatalf("connect %d of 2: CONNACK %#x", i+1, code)
		}
		clients = append(clients, c)
	}
	for i := range 2 {
		_, resp, err := upgradeWS(t, b)
		if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
			t.Fatalf("upgrade over the limit: %v, want a refused handshake", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("upgrade %d over the limit: %s, Retry-After %q; want 503 with Retry-After", i+1, resp.Status, resp.Header.Get("Retry-After"))
		}
	}
	// The refusal ends the connection: kept alive, it would hold a
	// descriptor outside the limit.
	if status, err := requestWS(t, b, true); status != http.StatusServiceUnavailable || err != nil {
		t.Errorf("upgrade request over the limit: %d, connection %v; want 503, then closed", status, err)
	}
	if n := value(t, scrape(t, b), "jobsbroker_mqtt_connections_refused_total", "listener=websocket", "reason=limit"); n != 3 {
		t.Errorf("refusals for the limit counted on websocket: %v, want 3", n)
	}
	if l := logs.String(); strings.Count(l, "at its connection limit") != 1 || !strings.Contains(l, "listener=websocket") {
		t.Errorf("want one warning (they are logged once a minute) naming the WebSocket listener at its limit:\n%s", l)
	}
	tcp := dialRaw(t, b.MQTTAddr(), nil)
	if code, _ := tcp.connect(rawConnect{id: "tcp-beside-ws"}); code != 0 {
		t.Errorf("the TCP listener, under its own limit, refused a client: CONNACK %#x", code)
	}

	clients[0].conn.Close()
	brokertest.Eventually(t, "a WebSocket client gets in once one left", func() error {
		c, resp, err := upgradeWS(t, b)
		if err != nil {
			if resp != nil {
				resp.Body.Close()
				return fmt.Errorf("upgrade: %v (%s)", err, resp.Status)
			}
			return err
		}
		if code, _ := c.connect(rawConnect{id: "ws-limit-next"}); code != 0 {
			return fmt.Errorf("CONNACK %#x", code)
		}
		return nil
	})
}

// TestWebSocketConnectDeadline: on the WebSocket listener, a client that
// upgrades and never sends CONNECT, and one that never finishes its HTTP
// upgrade request, are closed after -connect-timeout, and counted as
// connect timeouts. A WebSocket client that connected
// (keepalive 0) is still served past the deadline.
func TestWebSocketConnectDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := brokertest.Start(t, func(c *broker.Config) {
		c.WebSocketAddr = "127.0.0.1:0"
		c.ConnectTimeout = timeout
	})
	silent, _, err := upgradeWS(t, b)
	if err != nil {
		t.Fatal(err)
	}
	// The upgrade request begun, its headers never finished.
	half := dialRaw(t, b.WebSocketAddr(), nil)
	if _, err := io.WriteString(half.conn, "GET /mqtt HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\n"); err != nil {
		t.Fatal(err)
	}
	settled, _, err := upgradeWS(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := settled.connect(rawConnect{id: "ws-settled", noKeepalive: true}); code != 0 {
		t.Fatalf("connect: CONNACK %#x", code)
	}
	if err := silent.closedWithin(10 * time.Second); err != nil {
		t.Errorf("upgraded without CONNECT: %v (connect timeout %v)", err, timeout)
	}
	if err := half.closedWithin(10 * time.Second); err != nil {
		t.Errorf("half an upgrade request: %v (connect timeout %v)", err, timeout)
	}
	brokertest.Eventually(t, "the connect timeout counted", func() error {
		if n := value(t, scrape(t, b), "jobsbroker_mqtt_connections_refused_total", "listener=websocket", "reason=connect_timeout"); n != 2 {
			return fmt.Errorf("connect timeouts counted on websocket: %v, want 2", n)
		}
		return nil
	})
	// Well past the deadline, the client that connected is still served.
	settled.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk, err := settled.read(5 * time.Second); err != nil || pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("a connected WebSocket client after the connect deadline: %v (packet type %d)", err, pk.FixedHeader.Type)
	}
}

// TestWebSocketTLSHandshakeDeadline: on a wss listener, a connection that
// sends half a ClientHello, and one that finishes the TLS handshake but
// never sends its upgrade request, are closed after -connect-timeout and
// counted as connect timeouts, as the TLS listener counts them.
func TestWebSocketTLSHandshakeDeadline(t *testing.T) {
	pki := brokertest.NewPKI(t)
	server := pki.Server("server")
	const timeout = 300 * time.Millisecond
	b := brokertest.Start(t, func(c *broker.Config) {
		c.WebSocketAddr = "127.0.0.1:0"
		c.TLSCert, c.TLSKey, c.ClientCA = server.Cert, server.Key, pki.CAFile
		c.ConnectTimeout = timeout
	})
	half := dialRaw(t, b.WebSocketAddr(), nil)
	// The first bytes of a TLS ClientHello record, and no more.
	if _, err := half.conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}); err != nil {
		t.Fatal(err)
	}
	hs := dialRaw(t, b.WebSocketAddr(), pki.ClientTLS(nil))
	if err := hs.conn.(*tls.Conn).Handshake(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*rawClient{"half a ClientHello": half, "TLS without an upgrade request": hs} {
		if err := c.closedWithin(10 * time.Second); err != nil {
			t.Errorf("%s: %v (connect timeout %v)", name, err, timeout)
		}
	}
	brokertest.Eventually(t, "the connect timeouts counted", func() error {
		if n := value(t, scrape(t, b), "jobsbroker_mqtt_connections_refused_total", "listener=websocket", "reason=connect_timeout"); n != 2 {
			return fmt.Errorf("connect timeouts counted on websocket: %v, want 2", n)
		}
		return nil
	})
}
