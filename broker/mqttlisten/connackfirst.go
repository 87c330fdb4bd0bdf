package mqttlisten

// connackFirst keeps a CONNACK the first packet a client receives, as
// MQTT requires ([MQTT-3.2.0-1]). mochi adds a client to its table before
// it writes the CONNACK, so a message published in between to a
// subscription the client resumed (a persistent session's) could reach
// the connection first; paho, the AWS CRT and libmosquitto end such a
// connection as a protocol error. Packets written before the CONNACK are
// kept and follow it, in their order. AUTH packets, which MQTT 5 sends
// before the CONNACK, pass. The zero value is ready; the connection's
// write lock guards it.
type connackFirst struct {
	done  bool   // the CONNACK went out
	early []byte // whole packets written before it
}

// MQTT control packet types, the high nibble of a packet's first byte.
const (
	typeConnack = 2
	typeAuth    = 15
)

// order returns what to write for p: p itself once the CONNACK is out;
// before that, nothing while p holds no CONNACK (its packets are kept),
// and for the write that holds it, the CONNACK, then the kept packets,
// then the rest of p. Bytes it cannot read as whole packets end the
// ordering: they go out after what was kept.
func (g *connackFirst) order(p []byte) []byte {
	if g.done || len(g.early) == 0 && onlyAuth(p) {
		return p
	}
	for i := 0; i < len(p); {
		n := packetLen(p[i:])
		if n == 0 {
			break
		}
		if p[i]>>4 == typeConnack {
			out := make([]byte, 0, len(g.early)+len(p))
			out = append(out, p[i:i+n]...)
			out = append(out, g.early...)
			out = append(out, p[:i]...)
			out = append(out, p[i+n:]...)
			g.done, g.early = true, nil
			return out
		}
		i += n
	}
	if packetsOf(p) {
		g.early = append(g.early, p...)
		return nil
	}
	out := append(g.early, p...)
	g.done, g.early = true, nil
	return out
}

// onlyAuth reports whether p is one or more whole AUTH packets.
func onlyAuth(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	for i := 0; i < len(p); {
		n := packetLen(p[i:])
		if n == 0 || p[i]>>4 != typeAuth {
			return false
		}
		i += n
	}
	return true
}

// packetsOf reports whether p is whole packets only.
func packetsOf(p []byte) bool {
	for i := 0; i < len(p); {
		n := packetLen(p[i:])
		if n == 0 {
			return false
		}
		i += n
	}
	return true
}

// packetLen returns the length of the whole packet at the start of p
// (fixed header and remaining length), 0 when p does not hold one whole.
func packetLen(p []byte) int {
	var remaining, shift int
	for i := 1; i < len(p) && i <= 4; i++ {
		remaining |= int(p[i]&0x7f) << shift
		if p[i]&0x80 == 0 {
			n := 1 + i + remaining
			if n > len(p) {
				return 0
			}
			return n
		}
		shift += 7
	}
	return 0
}
