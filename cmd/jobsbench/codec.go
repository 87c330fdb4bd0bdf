package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The MQTT 3.1.1 control packet types jobsbench sends or reads (the high
// nibble of the fixed header's first byte).
const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typeSubscribe  = 8
	typeSuback     = 9
	typePingreq    = 12
	typePingresp   = 13
	typeDisconnect = 14
)

// maxRemaining is the largest remaining length MQTT can encode.
const maxRemaining = 268_435_455

var errMalformed = errors.New("malformed MQTT packet")

// appendRemaining appends the variable-length encoding of n.
func appendRemaining(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendConnect appends an MQTT 3.1.1 CONNECT with a clean session, no
// will and no credentials.
func appendConnect(b []byte, clientID string, keepAliveSecs uint16) []byte {
	n := 10 + 2 + len(clientID)
	b = append(b, typeConnect<<4)
	b = appendRemaining(b, n)
	b = appendString(b, "MQTT")
	b = append(b, 4, 0x02) // protocol level 4 (3.1.1), clean session
	b = binary.BigEndian.AppendUint16(b, keepAliveSecs)
	return appendString(b, clientID)
}

// appendPublish appends a PUBLISH; id is ignored at QoS 0.
func appendPublish(b []byte, topic string, payload []byte, qos byte, id uint16) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, typePublish<<4|qos<<1)
	b = appendRemaining(b, n)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

// appendPuback appends the PUBACK of packet id.
func appendPuback(b []byte, id uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, typePuback<<4, 2), id)
}

// appendSubscribe appends a SUBSCRIBE to one topic filter.
func appendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, typeSubscribe<<4|0x02)
	b = appendRemaining(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = appendString(b, filter)
	return append(b, qos)
}

func appendPingreq(b []byte) []byte    { return append(b, typePingreq<<4, 0) }
func appendDisconnect(b []byte) []byte { return append(b, typeDisconnect<<4, 0) }

// readPacket reads one packet. It returns the first byte of the fixed
// header and the rest of the packet, which lives in *buf (grown as needed)
// and is only valid until the next call.
func readPacket(r *bufio.Reader, buf *[]byte) (byte, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, noEOF(err)
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, fmt.Errorf("%w: remaining length longer than 4 bytes", errMalformed)
		}
		mult *= 128
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	body := (*buf)[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, noEOF(err)
	}
	return h, body, nil
}

// noEOF turns an EOF in the middle of a packet into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// packetBuffered reports whether r holds a whole packet already, so that
// reading it will not block.
func packetBuffered(r *bufio.Reader) bool {
	avail := r.Buffered()
	if avail < 2 {
		return false
	}
	peek, _ := r.Peek(min(avail, 5))
	n, mult := 0, 1
	for i := 1; i < len(peek); i++ {
		n += int(peek[i]&0x7f) * mult
		if peek[i]&0x80 == 0 {
			return avail >= 1+i+n
		}
		mult *= 128
	}
	return false
}

// publish is a decoded PUBLISH; Topic and Payload alias the read buffer.
type publish struct {
	Topic   []byte
	Payload []byte
	QoS     byte
	ID      uint16
}

// parsePublish decodes the body of a PUBLISH whose fixed header byte is h.
func parsePublish(h byte, body []byte) (publish, error) {
	var p publish
	p.QoS = (h >> 1) & 0x03
	if p.QoS > 2 || len(body) < 2 {
		return p, fmt.Errorf("%w: publish", errMalformed)
	}
	tl := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	if len(rest) < tl {
		return p, fmt.Errorf("%w: publish topic", errMalformed)
	}
	p.Topic, rest = rest[:tl], rest[tl:]
	if p.QoS > 0 {
		if len(rest) < 2 {
			return p, fmt.Errorf("%w: publish packet id", errMalformed)
		}
		p.ID, rest = binary.BigEndian.Uint16(rest), rest[2:]
	}
	p.Payload = rest
	return p, nil
}

// parseConnack returns the return code of a CONNACK (0 is accepted).
func parseConnack(body []byte) (byte, error) {
	if len(body) != 2 {
		return 0, fmt.Errorf("%w: connack of %d bytes", errMalformed, len(body))
	}
	return body[1], nil
}

// parseAck returns the packet id of a PUBACK or the id and first return
// code of a SUBACK.
func parseAck(body []byte) (uint16, []byte, error) {
	if len(body) < 2 {
		return 0, nil, fmt.Errorf("%w: ack of %d bytes", errMalformed, len(body))
	}
	return binary.BigEndian.Uint16(body), body[2:], nil
}
