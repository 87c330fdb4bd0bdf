package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mqtt311 is the protocol level of MQTT 3.1.1, the only version jobsbench
// speaks: mochi's encoders and decoders take it from Packet.ProtocolVersion.
const mqtt311 = 4

// packetReader reads MQTT 3.1.1 packets from the broker with mochi's
// decoders, into one Packet and one body buffer that it reuses: reading
// allocates nothing once the buffer has grown to the largest packet.
type packetReader struct {
	br   *bufio.Reader
	body []byte
	pk   packets.Packet
	peek bytes.Reader // packetBuffered's view of the buffered bytes
}

func newPacketReader(r io.Reader) *packetReader {
	return &packetReader{br: bufio.NewReaderSize(r, 2048), body: make([]byte, 512)}
}

// readPacket reads and decodes one packet. The packet is r's own and is
// overwritten by the next call; its byte slices and strings (TopicName too:
// mochi converts it without a copy) alias the body buffer, so they must be
// copied to be kept.
func (r *packetReader) readPacket() (*packets.Packet, error) {
	hb, err := r.br.ReadByte()
	if err != nil {
		return nil, err
	}
	// mochi's decoders leave the fields a packet lacks as they were: clear
	// those the 3.1.1 decoders below set. (Zeroing all 800 bytes of a
	// Packet would cost more than decoding a PUBLISH.)
	pk := &r.pk
	pk.FixedHeader = packets.FixedHeader{}
	pk.ProtocolVersion = mqtt311
	pk.PacketID, pk.TopicName, pk.Payload = 0, "", nil
	pk.SessionPresent, pk.ReasonCode, pk.ReasonCodes = false, 0, nil
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return nil, fmt.Errorf("decode fixed header %#x: %w", hb, err)
	}
	n, _, err := packets.DecodeLength(r.br)
	if err != nil {
		return nil, fmt.Errorf("decode remaining length: %w", noEOF(err))
	}
	pk.FixedHeader.Remaining = n
	if cap(r.body) < n {
		r.body = make([]byte, n)
	}
	body := r.body[:n]
	if _, err := io.ReadFull(r.br, body); err != nil {
		return nil, noEOF(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Pingresp:
		err = pk.PingrespDecode(body)
	default:
		return nil, fmt.Errorf("unexpected %s packet from the broker", packets.PacketNames[pk.FixedHeader.Type])
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", packets.PacketNames[pk.FixedHeader.Type], err)
	}
	return pk, nil
}

// noEOF turns an EOF in the middle of a packet into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// packetBuffered reports whether r holds a whole packet already, so that
// reading it will not block. mochi reads whole packets only (it has no
// such check), so this decodes the peeked remaining length with mochi's
// DecodeLength.
func (r *packetReader) packetBuffered() bool {
	avail := r.br.Buffered()
	if avail < 2 {
		return false
	}
	peek, _ := r.br.Peek(min(avail, 5))
	r.peek.Reset(peek[1:])
	n, lenBytes, err := packets.DecodeLength(&r.peek)
	return err == nil && avail >= 1+lenBytes+n
}
