package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// encodeMochi encodes packets as the broker would, with mochi's encoders.
func encodeMochi(t testing.TB, pks ...packets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, pk := range pks {
		pk.ProtocolVersion = mqtt311
		var err error
		switch pk.FixedHeader.Type {
		case packets.Publish:
			err = pk.PublishEncode(&buf)
		case packets.Puback:
			err = pk.PubackEncode(&buf)
		case packets.Connack:
			err = pk.ConnackEncode(&buf)
		case packets.Suback:
			err = pk.SubackEncode(&buf)
		case packets.Pingresp:
			err = pk.PingrespEncode(&buf)
		case packets.Subscribe:
			err = pk.SubscribeEncode(&buf)
		default:
			t.Fatalf("encodeMochi: no encoder for %s", packets.PacketNames[pk.FixedHeader.Type])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func pub(topic string, payload []byte, qos byte, id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: payload, PacketID: id}
}

// TestReadPacket reads what mochi encodes through a small buffer, with
// remaining lengths of one to three bytes, and checks that nothing of a
// packet leaks into the next one read into the same Packet.
func TestReadPacket(t *testing.T) {
	big := bytes.Repeat([]byte("p"), 20_000) // a three-byte remaining length
	raw := encodeMochi(t,
		pub("bench/dev-1/reply", big, 1, 42),
		pub("a/b", []byte("hi"), 0, 0),
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: 5},
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: 9, ReasonCodes: []byte{1}},
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 65535},
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}},
	)
	r := &packetReader{br: bufio.NewReaderSize(bytes.NewReader(raw), 16)}
	read := func(typ byte) *packets.Packet {
		t.Helper()
		pk, err := r.readPacket()
		if err != nil {
			t.Fatalf("read %s: %v", packets.PacketNames[typ], err)
		}
		if pk.FixedHeader.Type != typ {
			t.Fatalf("read %s, want %s", packets.PacketNames[pk.FixedHeader.Type], packets.PacketNames[typ])
		}
		return pk
	}
	if pk := read(packets.Publish); pk.TopicName != "bench/dev-1/reply" || !bytes.Equal(pk.Payload, big) ||
		pk.FixedHeader.Qos != 1 || pk.PacketID != 42 || pk.FixedHeader.Remaining != 2+17+2+len(big) {
		t.Errorf("QoS 1 publish read as topic %q qos %d id %d remaining %d payload %d bytes",
			pk.TopicName, pk.FixedHeader.Qos, pk.PacketID, pk.FixedHeader.Remaining, len(pk.Payload))
	}
	if pk := read(packets.Publish); pk.TopicName != "a/b" || string(pk.Payload) != "hi" || pk.FixedHeader.Qos != 0 || pk.PacketID != 0 {
		t.Errorf("QoS 0 publish read as topic %q qos %d id %d payload %q", pk.TopicName, pk.FixedHeader.Qos, pk.PacketID, pk.Payload)
	}
	if pk := read(packets.Connack); pk.ReasonCode != 5 || pk.Payload != nil {
		t.Errorf("connack read as code %d, payload %q", pk.ReasonCode, pk.Payload)
	}
	if pk := read(packets.Suback); pk.PacketID != 9 || !bytes.Equal(pk.ReasonCodes, []byte{1}) {
		t.Errorf("suback read as id %d codes %v", pk.PacketID, pk.ReasonCodes)
	}
	if pk := read(packets.Puback); pk.PacketID != 65535 || pk.ReasonCodes != nil {
		t.Errorf("puback read as id %d codes %v", pk.PacketID, pk.ReasonCodes)
	}
	read(packets.Pingresp)
	if _, err := r.readPacket(); err != io.EOF {
		t.Errorf("read past the end: %v, want EOF", err)
	}
}

func TestReadPacketErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		want error // nil: any error
	}{
		{"truncated body", []byte{0x30, 10, 0, 3, 'a'}, io.ErrUnexpectedEOF},
		{"truncated length", []byte{0x30, 0x80}, io.ErrUnexpectedEOF},
		{"length too long", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, packets.ErrMalformedVariableByteInteger},
		{"QoS 3", []byte{0x36, 0}, packets.ErrProtocolViolationQosOutOfRange},
		{"flags on a puback", []byte{0x42, 2, 0, 1}, packets.ErrMalformedFlags},
		{"short topic", []byte{0x32, 3, 0, 5, 'a'}, packets.ErrMalformedTopic},
		{"QoS 1 without packet id", []byte{0x32, 4, 0, 1, 'a', 0}, packets.ErrMalformedPacketID},
		{"topic not UTF-8", []byte{0x30, 3, 0, 1, 0xff}, packets.ErrMalformedTopic},
		{"empty puback", []byte{0x40, 0}, packets.ErrMalformedPacketID},
		{"subscribe from the broker", encodeMochi(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
			PacketID: 1, Filters: packets.Subscriptions{{Filter: "a"}}}), nil},
	} {
		r := &packetReader{br: bufio.NewReader(bytes.NewReader(tc.raw))}
		_, err := r.readPacket()
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestPacketBuffered(t *testing.T) {
	for _, size := range []int{0, 100, 200} { // one and two length bytes
		raw := encodeMochi(t, pub("a/b", bytes.Repeat([]byte("x"), size), 1, 1))
		for n := 0; n <= len(raw); n++ {
			r := &packetReader{br: bufio.NewReaderSize(bytes.NewReader(raw[:n]), 1024)}
			r.br.Peek(n) // fill the buffer with what there is
			if got, want := r.packetBuffered(), n == len(raw); got != want {
				t.Errorf("%d of %d bytes buffered: packetBuffered = %v", n, len(raw), got)
			}
		}
	}
}

// repeater reads data over and over.
type repeater struct {
	data []byte
	off  int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// TestReadPacketAllocs checks that reading reuses the Packet and the body
// buffer: the load generator reads millions of packets.
func TestReadPacketAllocs(t *testing.T) {
	raw := encodeMochi(t, pub("$aws/things/steady-0001/jobs/start-next/accepted", bytes.Repeat([]byte("x"), 300), 1, 7),
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7})
	r := newPacketReader(&repeater{data: raw})
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.readPacket(); err != nil {
			t.Fatal(err)
		}
		r.packetBuffered()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet read", allocs)
	}
}

// BenchmarkReadPublish measures reading a delivery and its PUBACK, as the
// reader goroutine does.
func BenchmarkReadPublish(b *testing.B) {
	raw := encodeMochi(b, pub("$aws/things/steady-0001/jobs/start-next/accepted", bytes.Repeat([]byte("x"), 300), 1, 7),
		packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7})
	r := newPacketReader(&repeater{data: raw})
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		for range 2 {
			if _, err := r.readPacket(); err != nil {
				b.Fatal(err)
			}
			r.packetBuffered()
		}
	}
}

// BenchmarkEncodePublish measures encoding a QoS 1 request and the PUBACK
// of a delivery, as Client.Publish and the reader goroutine do.
func BenchmarkEncodePublish(b *testing.B) {
	var c Client
	topic, payload := "$aws/things/steady-0001/jobs/start-next", []byte(`{"clientToken":"12345678"}`)
	b.ReportAllocs()
	for b.Loop() {
		c.wbuf.Reset()
		c.encodeLocked(packets.Puback, 0, 7, "", nil)
		c.encodeLocked(packets.Publish, 1, 8, topic, payload)
	}
}
