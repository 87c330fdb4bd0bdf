package sessions

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// A stored message is a small header and the PUBLISH packet as mochi
// encodes it for MQTT 5, so that every property survives (an MQTT 3.1.1
// client is sent what its protocol carries):
//
//	byte 0     format (1)
//	byte 1     flags: 1 sent before (resent with DUP), 2 replaceable
//	bytes 2-3  packet identifier it was last sent with (0: none)
//	bytes 4-11 created, Unix seconds
//	bytes 12-19 expiry, Unix seconds (0: none)
//	the rest   the PUBLISH packet, fixed header included
const (
	messageFormat = 1
	headerLen     = 20

	flagSent        = 1
	flagReplaceable = 2
)

// meta is what the hook keeps in memory of a stored message.
type meta struct {
	sent        bool
	replaceable bool
	packetID    uint16
	created     int64
	expiry      int64
	topic       string
}

var errBadMessage = errors.New("malformed stored message")

// encodeMessage encodes pk (a PUBLISH) with its delivery state.
func encodeMessage(pk packets.Packet, m meta) ([]byte, error) {
	out := pk.Copy(false)
	out.ProtocolVersion = 5
	out.FixedHeader.Dup = false
	out.PacketID = 1 // required by the encoding at QoS 1; replaced when sent
	out.Properties.TopicAlias, out.Properties.TopicAliasFlag = 0, false
	out.Properties.MessageExpiryInterval = 0 // the expiry below rules
	out.Mods = packets.Mods{AllowResponseInfo: true}
	var buf bytes.Buffer
	buf.Grow(headerLen + len(pk.TopicName) + len(pk.Payload) + 32)
	var flags byte
	if m.sent {
		flags |= flagSent
	}
	if m.replaceable {
		flags |= flagReplaceable
	}
	buf.WriteByte(messageFormat)
	buf.WriteByte(flags)
	var h [18]byte
	binary.BigEndian.PutUint16(h[0:], m.packetID)
	binary.BigEndian.PutUint64(h[2:], uint64(m.created))
	binary.BigEndian.PutUint64(h[10:], uint64(m.expiry))
	buf.Write(h[:])
	if err := out.PublishEncode(&buf); err != nil {
		return nil, fmt.Errorf("encode message on %s: %w", pk.TopicName, err)
	}
	return buf.Bytes(), nil
}

// decodeMeta reads a stored message's header and topic.
func decodeMeta(b []byte) (meta, error) {
	if len(b) < headerLen+4 || b[0] != messageFormat {
		return meta{}, errBadMessage
	}
	m := meta{
		sent:        b[1]&flagSent != 0,
		replaceable: b[1]&flagReplaceable != 0,
		packetID:    binary.BigEndian.Uint16(b[2:]),
		created:     int64(binary.BigEndian.Uint64(b[4:])),
		expiry:      int64(binary.BigEndian.Uint64(b[12:])),
	}
	if m.expiry < 0 {
		// Stored by an earlier build with mochi's mark for a message held
		// back (expiry -1): no expiry is known.
		m.expiry = 0
	}
	r := bytes.NewReader(b[headerLen+1:])
	if _, _, err := packets.DecodeLength(r); err != nil {
		return meta{}, errBadMessage
	}
	rest := b[len(b)-r.Len():]
	if len(rest) < 2 {
		return meta{}, errBadMessage
	}
	n := int(binary.BigEndian.Uint16(rest))
	if len(rest) < 2+n {
		return meta{}, errBadMessage
	}
	m.topic = string(rest[2 : 2+n])
	return m, nil
}

// decodeMessage reads a stored message back into a PUBLISH packet.
func decodeMessage(b []byte) (packets.Packet, meta, error) {
	m, err := decodeMeta(b)
	if err != nil {
		return packets.Packet{}, m, err
	}
	var pk packets.Packet
	if err := pk.FixedHeader.Decode(b[headerLen]); err != nil || pk.FixedHeader.Type != packets.Publish {
		return pk, m, errBadMessage
	}
	r := bytes.NewReader(b[headerLen+1:])
	n, _, err := packets.DecodeLength(r)
	if err != nil || n != r.Len() {
		return pk, m, errBadMessage
	}
	pk.FixedHeader.Remaining = n
	pk.ProtocolVersion = 5
	if err := pk.PublishDecode(b[len(b)-n:]); err != nil {
		return pk, m, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	pk.PacketID = 0
	pk.Created, pk.Expiry = m.created, m.expiry
	return pk, m, nil
}

// EncodePublish encodes a publish, with its MQTT 5 properties and its
// creation and expiry times, in the form the store keeps messages in.
// Nodes of a cluster send each other publishes in this form.
func EncodePublish(pk packets.Packet) ([]byte, error) {
	return encodeMessage(pk, meta{created: pk.Created, expiry: pk.Expiry})
}

// DecodePublish decodes what EncodePublish encoded; the packet has no
// packet id.
func DecodePublish(b []byte) (packets.Packet, error) {
	pk, _, err := decodeMessage(b)
	return pk, err
}

// PublishTopic returns the topic of a publish EncodePublish encoded, ""
// when it does not decode.
func PublishTopic(b []byte) string {
	m, err := decodeMeta(b)
	if err != nil {
		return ""
	}
	return m.topic
}

// MessageExpiry is the expiry mochi gives a message in flight: its creation
// plus its MQTT 5 message expiry interval (at most max, if max is set), in
// Unix seconds, or 0 for none. A message mochi holds back for a client's
// Receive Maximum carries -1 instead, and gets this back once sent.
func MessageExpiry(pk packets.Packet, max int64) int64 {
	e := int64(pk.Properties.MessageExpiryInterval)
	if e <= 0 {
		return 0
	}
	if max > 0 && max < e {
		e = max
	}
	return pk.Created + e
}
