package brokertest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// RawOptions configures a RawClient's connection.
type RawOptions struct {
	ID string
	// Version is 4 (MQTT 3.1.1, the default) or 5.
	Version byte
	// Clean asks for a clean session (3.1.1) or a clean start (5).
	Clean bool
	// Expiry is the MQTT 5 session expiry interval, in seconds.
	Expiry uint32
	// ReceiveMaximum is the MQTT 5 receive maximum (0: not sent).
	ReceiveMaximum uint16
	// Username is sent when set.
	Username string
}

// RawClient is an MQTT client that does only what the test says: it
// never acknowledges, resends or reconnects by itself, so that a test can
// see packet ids, DUP flags and session-present bits and leave messages
// unacknowledged. Packets are encoded and decoded by mochi's packets
// package.
type RawClient struct {
	t              testing.TB
	opts           RawOptions
	conn           net.Conn
	r              *bufio.Reader
	SessionPresent bool
	// Connack is the CONNACK the broker sent.
	Connack packets.Packet
	nextID  uint16
	held    []packets.Packet // read while waiting for something else
}

// DialRaw connects and returns the client once the broker has accepted
// the connection; it fails the test otherwise.
func DialRaw(t testing.TB, addr string, o RawOptions) *RawClient {
	t.Helper()
	c, err := TryDialRaw(t, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TryDialRaw is DialRaw returning the error.
func TryDialRaw(t testing.TB, addr string, o RawOptions) (*RawClient, error) {
	t.Helper()
	if o.Version == 0 {
		o.Version = 4
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &RawClient{t: t, opts: o, conn: conn, r: bufio.NewReader(conn), nextID: 1000}
	t.Cleanup(func() { conn.Close() })
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.Version,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: o.Clean, Keepalive: 60, ClientIdentifier: o.ID,
		},
	}
	if o.Version == 5 {
		pk.Properties.SessionExpiryInterval = o.Expiry
		pk.Properties.SessionExpiryIntervalFlag = o.Expiry > 0
		pk.Properties.ReceiveMaximum = o.ReceiveMaximum
	}
	if o.Username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(o.Username)
	}
	if err := c.write(pk); err != nil {
		return nil, err
	}
	ack, err := c.read(10 * time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: no CONNACK: %w", o.ID, err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		return nil, fmt.Errorf("%s: got %s, want CONNACK", o.ID, packets.PacketNames[ack.FixedHeader.Type])
	}
	if ack.ReasonCode != 0 {
		return nil, fmt.Errorf("%s: connection refused with %#x", o.ID, ack.ReasonCode)
	}
	c.Connack, c.SessionPresent = ack, ack.SessionPresent
	return c, nil
}

func (c *RawClient) write(pk packets.Packet) error {
	pk.ProtocolVersion = c.opts.Version
	pk.Mods.AllowResponseInfo = true
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
	default:
		err = fmt.Errorf("the raw client cannot send %s", packets.PacketNames[pk.FixedHeader.Type])
	}
	if err != nil {
		return err
	}
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.conn.Write(buf.Bytes())
	return err
}

// read reads the next packet from the wire.
func (c *RawClient) read(d time.Duration) (packets.Packet, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	var pk packets.Packet
	b, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
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
	pk.ProtocolVersion = c.opts.Version
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
	}
	return pk, err
}

// await returns the first packet, held or read within d, that match
// accepts; others read meanwhile are held for later.
func (c *RawClient) await(d time.Duration, what string, match func(packets.Packet) bool) packets.Packet {
	c.t.Helper()
	pk, err := c.tryAwait(d, match)
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v", c.opts.ID, what, err)
	}
	return pk
}

func (c *RawClient) tryAwait(d time.Duration, match func(packets.Packet) bool) (packets.Packet, error) {
	for i, pk := range c.held {
		if match(pk) {
			c.held = append(c.held[:i], c.held[i+1:]...)
			return pk, nil
		}
	}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return packets.Packet{}, fmt.Errorf("nothing within %v (held: %d packets)", d, len(c.held))
		}
		pk, err := c.read(left)
		if err != nil {
			return pk, err
		}
		if match(pk) {
			return pk, nil
		}
		c.held = append(c.held, pk)
	}
}

func (c *RawClient) id() uint16 {
	c.nextID++
	return c.nextID
}

// Subscribe subscribes to filter at qos (with an MQTT 5 subscription
// identifier when id > 0) and returns the SUBACK's reason code.
func (c *RawClient) Subscribe(filter string, qos byte, id int) byte {
	c.t.Helper()
	pid := c.id()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: pid,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos, Identifier: id}}}
	if id > 0 {
		pk.Properties.SubscriptionIdentifier = []int{id}
	}
	if err := c.write(pk); err != nil {
		c.t.Fatalf("%s: subscribe %s: %v", c.opts.ID, filter, err)
	}
	ack := c.await(10*time.Second, "SUBACK", func(p packets.Packet) bool {
		return p.FixedHeader.Type == packets.Suback && p.PacketID == pid
	})
	return ack.ReasonCodes[0]
}

// Publish publishes; at QoS 1 it waits for the PUBACK and returns its
// reason code (0 for MQTT 3.1.1).
func (c *RawClient) Publish(topic string, payload []byte, qos byte, retain bool) byte {
	c.t.Helper()
	code, err := c.TryPublish(topic, payload, qos, retain)
	if err != nil {
		c.t.Fatalf("%s: publish %s: %v", c.opts.ID, topic, err)
	}
	return code
}

// TryPublish is Publish returning the error (the broker closed the
// connection, say).
func (c *RawClient) TryPublish(topic string, payload []byte, qos byte, retain bool) (byte, error) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName: topic, Payload: payload}
	if qos > 0 {
		pk.PacketID = c.id()
	}
	if err := c.write(pk); err != nil || qos == 0 {
		return 0, err
	}
	ack, err := c.tryAwait(10*time.Second, func(p packets.Packet) bool {
		return p.FixedHeader.Type == packets.Puback && p.PacketID == pk.PacketID
	})
	return ack.ReasonCode, err
}

// NextPublish waits up to d for the next PUBLISH and returns it without
// acknowledging it; ok is false when none came.
func (c *RawClient) NextPublish(d time.Duration) (packets.Packet, bool) {
	pk, err := c.tryAwait(d, func(p packets.Packet) bool { return p.FixedHeader.Type == packets.Publish })
	return pk, err == nil
}

// NextPacket waits up to d for the next packet of type typ (a
// DISCONNECT, say) and returns it; ok is false when none came.
func (c *RawClient) NextPacket(d time.Duration, typ byte) (packets.Packet, bool) {
	pk, err := c.tryAwait(d, func(p packets.Packet) bool { return p.FixedHeader.Type == typ })
	return pk, err == nil
}

// ExpectPublish is NextPublish that fails the test when none comes
// within 10 seconds.
func (c *RawClient) ExpectPublish() packets.Packet {
	c.t.Helper()
	return c.await(10*time.Second, "a PUBLISH", func(p packets.Packet) bool { return p.FixedHeader.Type == packets.Publish })
}

// Ack sends the PUBACK of packet id.
func (c *RawClient) Ack(id uint16) {
	c.t.Helper()
	if err := c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id}); err != nil {
		c.t.Fatalf("%s: PUBACK %d: %v", c.opts.ID, id, err)
	}
}

// Disconnect sends DISCONNECT and closes the connection.
func (c *RawClient) Disconnect() {
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c.conn.Close()
}

// Drop closes the connection without a DISCONNECT, as a device that
// loses its network does.
func (c *RawClient) Drop() { c.conn.Close() }

// Closed reports whether the broker has closed the connection, waiting up
// to d for it.
func (c *RawClient) Closed(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		pk, err := c.read(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false
			}
			return true
		}
		c.held = append(c.held, pk)
	}
	return false
}
