package broker_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestConnectDeadline: a connection that does not finish its TLS handshake
// and send CONNECT within -connect-timeout is closed, and counted. Bare TCP
// connections and half-sent ClientHellos otherwise held a descriptor and
// memory each for as long as the client liked (100 for 130 s, 3,000 for
// 20 s in the attack that found it). A client that has connected keeps its
// connection, even with keepalive 0, past the deadline.
func TestConnectDeadline(t *testing.T) {
	pki := brokertest.NewPKI(t)
	server := pki.Server("server")
	const timeout = 300 * time.Millisecond
	b := brokertest.Start(t, func(c *broker.Config) {
		c.MQTTTLSAddr = "127.0.0.1:0"
		c.TLSCert, c.TLSKey, c.ClientCA = server.Cert, server.Key, pki.CAFile
		c.ConnectTimeout = timeout
	})
	bare := dialRaw(t, b.MQTTAddr(), nil)
	half := dialRaw(t, b.MQTTTLSAddr(), nil)
	// The first bytes of a TLS ClientHello record, and no more.
	if _, err := half.conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}); err != nil {
		t.Fatal(err)
	}
	// The TLS handshake done, CONNECT never sent.
	hs, err := tls.Dial("tcp", b.MQTTTLSAddr(), pki.ClientTLS(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	settled := dialRaw(t, b.MQTTAddr(), nil)
	if code, _ := settled.connect(rawConnect{id: "settled", noKeepalive: true}); code != 0 {
		t.Fatalf("connect: %#x", code)
	}
	for name, c := range map[string]net.Conn{"bare TCP": bare.conn, "half a ClientHello": half.conn, "TLS without CONNECT": hs} {
		if err := closedWithin(c, 10*time.Second); err != nil {
			t.Errorf("%s: %v (connect timeout %v)", name, err, timeout)
		}
	}
	if n := value(t, scrape(t, b), "jobsbroker_mqtt_connections_refused_total", "listener=mqtt", "reason=connect_timeout"); n != 1 {
		t.Errorf("connect timeouts counted on mqtt: %v, want 1", n)
	}
	if n := value(t, scrape(t, b), "jobsbroker_mqtt_connections_refused_total", "listener=mqtt-tls", "reason=connect_timeout"); n != 2 {
		t.Errorf("connect timeouts counted on mqtt-tls: %v, want 2", n)
	}
	// Well past the deadline, the client that connected (keepalive 0)
	// is still served.
	settled.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk, err := settled.read(5 * time.Second); err != nil || pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("a connected client after the connect deadline: %v (packet type %d)", err, pk.FixedHeader.Type)
	}
}

// TestListenerConnectionLimit: a listener serves at most -max-connections
// connections; another is answered CONNACK "server unavailable" (MQTT 5:
// "server busy") and closed, and counted. When one leaves, the next gets
// in.
func TestListenerConnectionLimit(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) { c.MaxConnections = 2 })
	first := dialRaw(t, b.MQTTAddr(), nil)
	if code, _ := first.connect(rawConnect{id: "limit-1"}); code != 0 {
		t.Fatalf("first: %#x", code)
	}
	second := dialRaw(t, b.MQTTAddr(), nil)
	if code, _ := second.connect(rawConnect{id: "limit-2"}); code != 0 {
		t.Fatalf("second: %#x", code)
	}
	for v, want := range map[byte]byte{4: 0x03, 5: 0x89} {
		c := dialRaw(t, b.MQTTAddr(), nil)
		if code, _ := c.connect(rawConnect{id: "limit-x", version: v}); code != want {
			t.Errorf("MQTT %d over the limit: CONNACK %#x, want %#x", v, code, want)
		}
		if err := c.closedWithin(5 * time.Second); err != nil {
			t.Errorf("MQTT %d over the limit: %v", v, err)
		}
	}
	if n := value(t, scrape(t, b), "jobsbroker_mqtt_connections_refused_total", "listener=mqtt", "reason=limit"); n != 2 {
		t.Errorf("refusals for the limit counted: %v, want 2", n)
	}
	first.conn.Close()
	brokertest.Eventually(t, "a connection gets in once one left", func() error {
		c := dialRaw(t, b.MQTTAddr(), nil)
		if code, _ := c.connect(rawConnect{id: "limit-3"}); code != 0 {
			return fmt.Errorf("CONNACK %#x", code)
		}
		return nil
	})
}

// closedWithin waits up to d for the peer to close c.
func closedWithin(c net.Conn, d time.Duration) error {
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("still open after %v", d)
	}
	return nil
}
