package broker_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient speaks MQTT byte by byte, with mochi's packet codec, for
// tests that need what a library client hides: a will on any topic, a
// packet id of its choosing, the exact bytes (or none) the broker sends
// before it closes.
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

// rawConnect is a CONNECT for rawClient.connect.
type rawConnect struct {
	id, user, pass string
	version        byte   // 4 (MQTT 3.1.1, the default) or 5
	persistent     bool   // clean session (clean start) off
	noKeepalive    bool   // keepalive 0 (else 30 s)
	receiveMaximum uint16 // MQTT 5 Receive Maximum; 0: not sent
	will           *rawWill
}

type rawWill struct {
	topic, payload string
	qos            byte
	retain         bool
}

// dialRaw connects to addr, over TLS when conf is set.
func dialRaw(t *testing.T, addr string, conf *tls.Config) *rawClient {
	t.Helper()
	var c net.Conn
	var err error
	if conf != nil {
		c, err = tls.Dial("tcp", addr, conf)
	} else {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c), version: 4}
}

// connect sends the CONNECT and returns the CONNACK's reason code and
// session-present flag.
func (c *rawClient) connect(p rawConnect) (code byte, present bool) {
	c.t.Helper()
	if p.version == 0 {
		p.version = 4
	}
	c.version = p.version
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: p.version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: !p.persistent, Keepalive: 30,
			ClientIdentifier: p.id},
	}
	if p.noKeepalive {
		pk.Connect.Keepalive = 0
	}
	if p.version == 5 && p.persistent {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	}
	if p.version == 5 && p.receiveMaximum > 0 {
		pk.Properties.ReceiveMaximum = p.receiveMaximum
	}
	if p.user != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(p.user)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(p.pass)
	}
	if w := p.will; w != nil {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, w.topic, []byte(w.payload)
		pk.Connect.WillQos, pk.Connect.WillRetain = w.qos, w.retain
	}
	c.send(pk)
	ack, err := c.read(10 * time.Second)
	if err != nil {
		c.t.Fatalf("no CONNACK for %s: %v", p.id, err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		c.t.Fatalf("%s: got packet type %d, want a CONNACK", p.id, ack.FixedHeader.Type)
	}
	return ack.ReasonCode, ack.SessionPresent
}

// send encodes and writes pk.
func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	default:
		err = fmt.Errorf("rawClient cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// subscribe sends a SUBSCRIBE with packet id id and returns the SUBACK's
// packet id and reason codes.
func (c *rawClient) subscribe(id uint16, qos byte, filters ...string) (uint16, []byte) {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	c.send(pk)
	ack := c.expect(packets.Suback)
	return ack.PacketID, ack.ReasonCodes
}

// expect reads packets until one of type typ, which it returns; a PUBLISH
// on the way is skipped.
func (c *rawClient) expect(typ byte) packets.Packet {
	c.t.Helper()
	for {
		pk, err := c.read(10 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for packet type %d: %v", typ, err)
		}
		if pk.FixedHeader.Type == typ {
			return pk
		}
		if pk.FixedHeader.Type != packets.Publish {
			c.t.Fatalf("got packet type %d, want %d", pk.FixedHeader.Type, typ)
		}
	}
}

// read reads the next packet, waiting at most d.
func (c *rawClient) read(d time.Duration) (packets.Packet, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return packets.Packet{}, err
	}
	b, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: c.version}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
		err = pk.PingrespDecode(body)
	}
	return pk, err
}

// closedSilently waits up to d for the broker to close the connection and
// fails the test if it sends anything first (or keeps it open).
func (c *rawClient) closedSilently(d time.Duration, what string) {
	c.t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		c.t.Fatal(err)
	}
	got, err := io.ReadAll(c.r)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		c.t.Fatalf("%s: the connection is still open after %v (received % x)", what, d, got)
	case len(got) > 0:
		c.t.Fatalf("%s: the broker sent % x before closing an MQTT 3.1.1 connection, which has no server DISCONNECT", what, got)
	}
}

// closedWithin waits up to d for the broker to close the connection,
// whatever it sends first.
func (c *rawClient) closedWithin(d time.Duration) error {
	if err := c.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("still open after %v", d)
	}
	return nil
}

// grepLines returns the lines of text that contain substr.
func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
