package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// startTestBroker builds and starts a jobsbroker for a test.
func startTestBroker(t *testing.T) *target {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts a jobsbroker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := buildBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := startBroker(ctx, bin, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tg.Close(); err != nil {
			t.Error(err)
		}
	})
	return tg
}

type message struct {
	topic, payload string
	qos            byte
}

// TestClientAgainstJobsbroker runs the client's whole protocol surface
// against a real broker: CONNECT, SUBSCRIBE, a QoS 1 delivery (which the
// client acknowledges), QoS 1 requests and their replies, PINGREQ and
// DISCONNECT.
func TestClientAgainstJobsbroker(t *testing.T) {
	tg := startTestBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	msgs := make(chan message, 16)
	c, err := Dial(ctx, tg.MQTTAddr, ClientOptions{ClientID: "codec-dev", KeepAlive: 30 * time.Second,
		OnMessage: func(_ *Client, m *packets.Packet) {
			msgs <- message{strings.Clone(m.TopicName), string(m.Payload), m.FixedHeader.Qos}
		}})
	if err != nil {
		t.Fatal(err)
	}
	// next returns the next message, which must be on topic unless topic
	// is "".
	next := func(topic string) message {
		t.Helper()
		select {
		case m := <-msgs:
			if topic != "" && m.topic != topic {
				t.Fatalf("got a message on %s (%s), want one on %s", m.topic, m.payload, topic)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no message on %s", topic)
		}
		return message{}
	}
	const prefix = "$aws/things/codec-dev/jobs/"
	if err := c.Subscribe(ctx, prefix+"notify-next", 1); err != nil {
		t.Fatal(err)
	}
	api := newAPIClient(tg.APIURL, 1)
	if err := api.createJob(ctx, "codec-job", []string{thingARN("codec-dev")}, benchDocument); err != nil {
		t.Fatal(err)
	}
	if m := next(prefix + "notify-next"); m.qos != 1 || !strings.Contains(m.payload, `"jobId":"codec-job"`) {
		t.Errorf("notify-next at QoS %d: %s", m.qos, m.payload)
	}

	if err := c.Publish(prefix+"start-next", []byte(`{"clientToken":"t1"}`), 1); err != nil {
		t.Fatal(err)
	}
	m := next(prefix + "start-next/accepted")
	if id, ok := jsonString([]byte(m.payload), "jobId"); !ok || string(id) != "codec-job" || !strings.Contains(m.payload, `"clientToken":"t1"`) {
		t.Errorf("start-next accepted: %s", m.payload)
	}
	if err := c.Publish(prefix+"codec-job/update", []byte(`{"status":"SUCCEEDED","clientToken":"t2"}`), 1); err != nil {
		t.Fatal(err)
	}
	// The reply and notify-next (nothing pending any more), in either
	// order: the broker bounds how long a notification waits for its
	// reply, and this is a test of the client, not of that order.
	first := next("")
	second := next("")
	if got := []string{first.topic, second.topic}; !slices.Contains(got, prefix+"codec-job/update/accepted") ||
		!slices.Contains(got, prefix+"notify-next") {
		t.Fatalf("after the update got messages on %q", got)
	}
	if err := c.Publish(prefix+"codec-job/update", []byte(`{"status":"SUCCEEDED","clientToken":"t3"}`), 1); err != nil {
		t.Fatal(err)
	}
	if m := next(prefix + "codec-job/update/rejected"); !strings.Contains(m.payload, "InvalidStateTransition") {
		t.Errorf("second SUCCEEDED: %s", m.payload)
	}

	if err := c.PingIfIdle(0); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("e", 70_000) // a three-byte remaining length
	if err := c.Publish(echoPrefix+"codec-dev", []byte(payload), 1); err != nil {
		t.Fatal(err)
	}
	if m := next(echoPrefix + "codec-dev/reply"); m.payload != payload || m.qos != 1 {
		t.Errorf("echo at QoS %d with %d bytes", m.qos, len(m.payload))
	}
	if err := c.Publish(echoPrefix+"codec-dev", []byte("q0"), 0); err != nil {
		t.Fatal(err)
	}
	if m := next(echoPrefix + "codec-dev/reply"); m.payload != "q0" || m.qos != 0 {
		t.Errorf("QoS 0 echo at QoS %d: %q", m.qos, m.payload)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err after Close: %v", err)
	}
	if err := c.Publish("a/b", nil, 0); err == nil {
		t.Error("publish after Close: no error")
	}
}

func TestDialRefused(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), ClientOptions{ClientID: "x", DialTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

// readWrite reads one write of a client on a net.Pipe (whose reads never
// span two writes) and decodes the packets in it as a broker would.
func readWrite(t *testing.T, conn net.Conn) []packets.Packet {
	t.Helper()
	buf := make([]byte, 1<<16)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read the client's write: %v", err)
	}
	r := bytes.NewReader(buf[:n])
	var pks []packets.Packet
	for r.Len() > 0 {
		hb, _ := r.ReadByte()
		pk := packets.Packet{ProtocolVersion: mqtt311}
		if err := pk.FixedHeader.Decode(hb); err != nil {
			t.Fatalf("fixed header %#x: %v", hb, err)
		}
		size, _, err := packets.DecodeLength(r)
		if err != nil || size > r.Len() {
			t.Fatalf("remaining length %d of %d bytes left: %v", size, r.Len(), err)
		}
		body := make([]byte, size)
		r.Read(body)
		switch pk.FixedHeader.Type {
		case packets.Connect:
			err = pk.ConnectDecode(body)
		case packets.Publish:
			err = pk.PublishDecode(body)
		case packets.Puback:
			err = pk.PubackDecode(body)
		case packets.Subscribe:
			err = pk.SubscribeDecode(body)
		case packets.Pingreq:
			err = pk.PingreqDecode(body)
		case packets.Disconnect:
			err = pk.DisconnectDecode(body)
		default:
			t.Fatalf("unexpected %s packet", packets.PacketNames[pk.FixedHeader.Type])
		}
		if err != nil {
			t.Fatalf("decode %s: %v", packets.PacketNames[pk.FixedHeader.Type], err)
		}
		pks = append(pks, pk)
	}
	return pks
}

// wantTypes fails the test unless pks are packets of the given types.
func wantTypes(t *testing.T, pks []packets.Packet, types ...byte) {
	t.Helper()
	var got, want []string
	for _, pk := range pks {
		got = append(got, packets.PacketNames[pk.FixedHeader.Type])
	}
	for _, typ := range types {
		want = append(want, packets.PacketNames[typ])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the client wrote %v in one write, want %v", got, want)
	}
}

// pipeClient connects a Client over a net.Pipe, playing the broker's part
// of the handshake, and returns the broker's end.
func pipeClient(t *testing.T, opts ClientOptions) (*Client, net.Conn) {
	t.Helper()
	cend, bend := net.Pipe()
	t.Cleanup(func() { bend.Close() })
	type result struct {
		c   *Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := connect(t.Context(), cend, opts)
		done <- result{c, err}
	}()
	pks := readWrite(t, bend)
	wantTypes(t, pks, packets.Connect)
	pk := pks[0]
	if pk.Connect.ClientIdentifier != opts.ClientID || pk.Connect.Keepalive != uint16(opts.KeepAlive/time.Second) ||
		!pk.Connect.Clean || pk.ProtocolVersion != 4 || string(pk.Connect.ProtocolName) != "MQTT" {
		t.Errorf("CONNECT decoded as %+v, protocol level %d", pk.Connect, pk.ProtocolVersion)
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		t.Errorf("mochi rejects the CONNECT: %v", code)
	}
	bend.Write(encodeMochi(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, bend
}

// TestClientOverPipe checks what the client writes, and that it answers
// the deliveries that arrive together in one write: their PUBACKs and the
// publishes OnMessage makes.
func TestClientOverPipe(t *testing.T) {
	var ids []uint16 // the packet ids OnMessage saw
	c, broker := pipeClient(t, ClientOptions{ClientID: "pipe-dev", KeepAlive: 45 * time.Second,
		OnMessage: func(c *Client, m *packets.Packet) {
			ids = append(ids, m.PacketID)
			c.Publish(m.TopicName+"/reply", m.Payload, m.FixedHeader.Qos)
		}})

	broker.Write(encodeMochi(t, pub("req/a", []byte("one"), 1, 7), pub("req/b", []byte("two"), 1, 8)))
	pks := readWrite(t, broker)
	wantTypes(t, pks, packets.Puback, packets.Publish, packets.Puback, packets.Publish)
	if pks[0].PacketID != 7 || pks[2].PacketID != 8 {
		t.Errorf("PUBACKs of packets %d and %d, want 7 and 8", pks[0].PacketID, pks[2].PacketID)
	}
	for i, want := range []struct{ topic, payload string }{{"req/a/reply", "one"}, {"req/b/reply", "two"}} {
		pk := pks[1+2*i]
		if pk.TopicName != want.topic || string(pk.Payload) != want.payload || pk.FixedHeader.Qos != 1 || pk.PacketID == 0 {
			t.Errorf("reply %d: topic %q payload %q qos %d id %d", i, pk.TopicName, pk.Payload, pk.FixedHeader.Qos, pk.PacketID)
		}
	}
	if pks[1].PacketID == pks[3].PacketID {
		t.Errorf("two publishes with packet id %d", pks[1].PacketID)
	}

	broker.Write(encodeMochi(t, pub("req/c", []byte("zero"), 0, 0)))
	pks = readWrite(t, broker)
	wantTypes(t, pks, packets.Publish)
	if pk := pks[0]; pk.TopicName != "req/c/reply" || string(pk.Payload) != "zero" || pk.FixedHeader.Qos != 0 {
		t.Errorf("QoS 0 reply: topic %q payload %q qos %d", pk.TopicName, pk.Payload, pk.FixedHeader.Qos)
	}
	if !slices.Equal(ids, []uint16{7, 8, 0}) {
		t.Errorf("OnMessage saw packet ids %v, want [7 8 0]", ids)
	}

	subErr := make(chan error, 1)
	go func() { subErr <- c.Subscribe(t.Context(), "a/+", 1) }()
	pks = readWrite(t, broker)
	wantTypes(t, pks, packets.Subscribe)
	if pk := pks[0]; pk.PacketID == 0 || len(pk.Filters) != 1 || pk.Filters[0].Filter != "a/+" || pk.Filters[0].Qos != 1 {
		t.Errorf("SUBSCRIBE decoded as id %d filters %+v", pk.PacketID, pk.Filters)
	}
	broker.Write(encodeMochi(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: pks[0].PacketID, ReasonCodes: []byte{1}}))
	if err := <-subErr; err != nil {
		t.Errorf("subscribe: %v", err)
	}
	go func() { subErr <- c.Subscribe(t.Context(), "b/#", 1) }()
	pks = readWrite(t, broker)
	broker.Write(encodeMochi(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: pks[0].PacketID, ReasonCodes: []byte{0x80}}))
	if err := <-subErr; err == nil {
		t.Error("a refused subscription succeeded")
	}

	go c.PingIfIdle(0)
	wantTypes(t, readWrite(t, broker), packets.Pingreq)
	broker.Write(encodeMochi(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}}))

	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	wantTypes(t, readWrite(t, broker), packets.Disconnect)
	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err after Close: %v", err)
	}
}

// TestClientBrokerErrors checks that a refused connection fails connect,
// and that a broken packet from the broker ends the connection with the
// reason in Err.
func TestClientBrokerErrors(t *testing.T) {
	cend, bend := net.Pipe()
	defer bend.Close()
	go func() {
		bend.Read(make([]byte, 512)) // the CONNECT
		bend.Write(encodeMochi(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: 5}))
	}()
	if _, err := connect(t.Context(), cend, ClientOptions{ClientID: "refused"}); err == nil || !strings.Contains(err.Error(), "return code 5") {
		t.Errorf("connect to a refusing broker: %v", err)
	}

	c, broker := pipeClient(t, ClientOptions{ClientID: "broken"})
	broker.Write([]byte{0x32, 10, 0, 3, 'a'}) // a PUBLISH cut short
	broker.Close()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end")
	}
	if err := c.Err(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Err = %v, want %v", err, io.ErrUnexpectedEOF)
	}
}
