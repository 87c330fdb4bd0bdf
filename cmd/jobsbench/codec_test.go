package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// decodeWithMochi decodes one packet of ours with mochi's codec.
func decodeWithMochi(t *testing.T, raw []byte) packets.Packet {
	t.Helper()
	r := bytes.NewReader(raw)
	hb, _ := r.ReadByte()
	var pk packets.Packet
	pk.ProtocolVersion = 4
	if err := pk.FixedHeader.Decode(hb); err != nil {
		t.Fatalf("mochi fixed header: %v", err)
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		t.Fatalf("mochi remaining length: %v", err)
	}
	if n != r.Len() {
		t.Fatalf("remaining length %d, but %d bytes follow", n, r.Len())
	}
	body := raw[len(raw)-n:]
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
		t.Fatalf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatalf("mochi decode: %v", err)
	}
	return pk
}

func TestEncodeMatchesMochi(t *testing.T) {
	pk := decodeWithMochi(t, appendConnect(nil, "dev-1", 60))
	if pk.Connect.ClientIdentifier != "dev-1" || pk.Connect.Keepalive != 60 || !pk.Connect.Clean ||
		pk.ProtocolVersion != 4 || string(pk.Connect.ProtocolName) != "MQTT" {
		t.Errorf("connect decoded as %+v", pk.Connect)
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		t.Errorf("mochi rejects our CONNECT: %v", code)
	}

	long := strings.Repeat("x", 300) // a two-byte remaining length
	pk = decodeWithMochi(t, appendPublish(nil, "$aws/things/t/jobs/start-next", []byte(long), 1, 513))
	if pk.TopicName != "$aws/things/t/jobs/start-next" || string(pk.Payload) != long || pk.FixedHeader.Qos != 1 || pk.PacketID != 513 {
		t.Errorf("publish decoded as topic %q qos %d id %d payload %d bytes", pk.TopicName, pk.FixedHeader.Qos, pk.PacketID, len(pk.Payload))
	}
	pk = decodeWithMochi(t, appendPublish(nil, "a/b", []byte("hi"), 0, 0))
	if pk.TopicName != "a/b" || string(pk.Payload) != "hi" || pk.FixedHeader.Qos != 0 {
		t.Errorf("QoS 0 publish decoded as %+v", pk)
	}

	pk = decodeWithMochi(t, appendPuback(nil, 65535))
	if pk.PacketID != 65535 {
		t.Errorf("puback id %d", pk.PacketID)
	}

	pk = decodeWithMochi(t, appendSubscribe(nil, 7, "$aws/things/t/jobs/notify-next", 1))
	if pk.PacketID != 7 || len(pk.Filters) != 1 || pk.Filters[0].Filter != "$aws/things/t/jobs/notify-next" || pk.Filters[0].Qos != 1 {
		t.Errorf("subscribe decoded as id %d filters %+v", pk.PacketID, pk.Filters)
	}
	decodeWithMochi(t, appendPingreq(nil))
	decodeWithMochi(t, appendDisconnect(nil))
}

func TestDecodeMochiEncoded(t *testing.T) {
	var buf bytes.Buffer
	payload := bytes.Repeat([]byte("p"), 20_000) // a three-byte remaining length
	for _, qos := range []byte{0, 1} {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, ProtocolVersion: 4,
			TopicName: "bench/dev-1/reply", Payload: payload}
		if qos > 0 {
			pk.PacketID = 42
		}
		if err := pk.PublishEncode(&buf); err != nil {
			t.Fatal(err)
		}
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: 4, ReasonCode: 5}
	if err := ack.ConnackEncode(&buf); err != nil {
		t.Fatal(err)
	}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, ProtocolVersion: 4, PacketID: 9, ReasonCodes: []byte{1}}
	if err := sub.SubackEncode(&buf); err != nil {
		t.Fatal(err)
	}

	r := bufio.NewReaderSize(bytes.NewReader(buf.Bytes()), 64)
	var rbuf []byte
	for _, qos := range []byte{0, 1} {
		h, body, err := readPacket(r, &rbuf)
		if err != nil || h>>4 != typePublish {
			t.Fatalf("read publish: type %d, %v", h>>4, err)
		}
		m, err := parsePublish(h, body)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Topic) != "bench/dev-1/reply" || !bytes.Equal(m.Payload, payload) || m.QoS != qos || (qos == 1 && m.ID != 42) {
			t.Errorf("publish read as topic %q qos %d id %d payload %d bytes", m.Topic, m.QoS, m.ID, len(m.Payload))
		}
	}
	h, body, err := readPacket(r, &rbuf)
	if err != nil || h>>4 != typeConnack {
		t.Fatalf("read connack: type %d, %v", h>>4, err)
	}
	if code, err := parseConnack(body); err != nil || code != 5 {
		t.Errorf("connack code %d, %v", code, err)
	}
	h, body, err = readPacket(r, &rbuf)
	if err != nil || h>>4 != typeSuback {
		t.Fatalf("read suback: type %d, %v", h>>4, err)
	}
	if id, codes, err := parseAck(body); err != nil || id != 9 || !bytes.Equal(codes, []byte{1}) {
		t.Errorf("suback id %d codes %v, %v", id, codes, err)
	}
	if _, _, err := readPacket(r, &rbuf); err == nil {
		t.Error("read past the end without an error")
	}
}

func TestReadPacketErrors(t *testing.T) {
	var rbuf []byte
	for name, raw := range map[string][]byte{
		"truncated body":   {0x30, 10, 0, 3, 'a'},
		"truncated length": {0x30, 0x80},
		"length too long":  {0x30, 0x80, 0x80, 0x80, 0x80, 0x01},
	} {
		if _, _, err := readPacket(bufio.NewReader(bytes.NewReader(raw)), &rbuf); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := parsePublish(0x32, []byte{0, 5, 'a'}); err == nil {
		t.Error("publish with a short topic: no error")
	}
	if _, err := parsePublish(0x32, []byte{0, 1, 'a', 0}); err == nil {
		t.Error("QoS 1 publish without a packet id: no error")
	}
}

func TestPacketBuffered(t *testing.T) {
	pub := appendPublish(nil, "a/b", bytes.Repeat([]byte("x"), 200), 1, 1)
	for n := 0; n <= len(pub); n++ {
		r := bufio.NewReaderSize(bytes.NewReader(pub[:n]), 1024)
		r.Peek(n) // fill the buffer with what there is
		if got, want := packetBuffered(r), n == len(pub); got != want {
			t.Errorf("%d of %d bytes buffered: packetBuffered = %v", n, len(pub), got)
		}
	}
}

func TestJSONString(t *testing.T) {
	data := []byte(`{"execution":{"jobId":"steady-1-t000-j00","thingName":"x","jobDocument":{"jobId":"other"}}}`)
	if v, ok := jsonString(data, "jobId"); !ok || string(v) != "steady-1-t000-j00" {
		t.Errorf("jobId = %q, %v", v, ok)
	}
	if _, ok := jsonString(data, "missing"); ok {
		t.Error("found a missing key")
	}
	if _, ok := jsonString([]byte(`{"jobId":"unterminated`), "jobId"); ok {
		t.Error("accepted an unterminated string")
	}
}
