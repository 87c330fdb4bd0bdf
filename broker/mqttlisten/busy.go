package mqttlisten

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// How a listener at its connection limit answers: at most maxRefusing
// connections at once are read until their CONNECT (for at most
// busyTimeout) and answered CONNACK "server unavailable" (MQTT 5: 0x89
// "server busy"), which tells a client to try again later; beyond that a
// connection is closed at once. Either way its descriptor is given back
// within busyTimeout.
const (
	maxRefusing     = 16
	busyTimeout     = 2 * time.Second
	maxBusyConnect  = 64 << 10 // a longer CONNECT is not read
	refuseLogPeriod = time.Minute
)

// refuser answers the connections a listener has no room for.
type refuser struct {
	id    string
	opts  Options
	slots chan struct{}

	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup
	logged  time.Time // when the last refusal was logged
	unsaid  int       // refusals since then
	tracked bool      // logged at least once
}

func (r *refuser) init(id string, opts Options) {
	r.id, r.opts, r.slots = id, opts, make(chan struct{}, maxRefusing)
}

// refused counts a connection refused for the limit, and logs the
// refusals at most once per refuseLogPeriod.
func (r *refuser) refused() {
	if r.opts.Stats != nil {
		r.opts.Stats.ConnectionRefused(r.id, refusedLimit)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unsaid++
	if now := time.Now(); !r.tracked || now.Sub(r.logged) >= refuseLogPeriod {
		r.opts.Log.Warn("MQTT listener at its connection limit: refusing connections", "listener", r.id,
			"limit", r.opts.MaxConns, "refused", r.unsaid)
		r.logged, r.unsaid, r.tracked = now, 0, true
	}
}

// busy answers c, over the limit, and closes it.
func (r *refuser) busy(c net.Conn) {
	r.refused()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return
	}
	select {
	case r.slots <- struct{}{}:
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.slots }()
			answerBusy(c)
		}()
	default:
		c.Close()
	}
}

// wait waits for the refusals in progress; none starts after it.
func (r *refuser) wait() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}

// answerBusy reads the CONNECT of a connection the listener has no room
// for, answers it with the CONNACK refusal of its protocol version, and
// closes it. Reading the whole CONNECT first lets the close end with a
// FIN, not a reset that could discard the CONNACK before the client
// reads it.
func answerBusy(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(busyTimeout))
	r := bufio.NewReader(c)
	first, err := r.ReadByte()
	if err != nil || first>>4 != packets.Connect {
		return
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil || n > maxBusyConnect {
		return
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil || len(body) < 2 {
		return
	}
	// Protocol name (a length and the bytes), then the protocol level.
	level := 4
	if at := 2 + int(binary.BigEndian.Uint16(body)); at < len(body) {
		level = int(body[at])
	}
	ack := []byte{packets.Connack << 4, 2, 0, packets.Err3ServerUnavailable.Code}
	if level == 5 {
		ack = []byte{packets.Connack << 4, 3, 0, packets.ErrServerBusy.Code, 0}
	}
	_, _ = c.Write(ack)
}
