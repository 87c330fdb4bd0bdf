package sessions

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
)

// session is what the hook knows of one session beside mochi's Client.
type session struct {
	id string

	mu         sync.Mutex
	rec        store.Session
	cl         *mqtt.Client // the client of the session's latest connection
	online     bool
	persistent bool // the session outlives the current connection
	gone       bool // ended: nothing more is written for it
	expiresAt  time.Time

	// entries are the messages the session is owed, in sequence order: in
	// flight on the current connection, sent on an earlier one and not
	// acknowledged, or not sent yet.
	entries  []entry
	byPacket map[uint16]uint64 // packet id -> seq, for messages in flight now

	// backlog holds the messages read back for a returning client that
	// are not sent yet; sending counts those sent and not acknowledged.
	backlog []pending
	sending int
	window  int
}

// entry is one message a session is owed.
type entry struct {
	seq         uint64
	packetID    uint16 // the id it was last sent with
	sent        bool   // sent at least once: resent with DUP
	inflight    bool   // sent on the current connection, not acknowledged
	backlog     bool   // its current sending is from the backlog
	replaceable bool   // a newer one on the same topic replaces it while unsent
	topic       string // kept for replaceable entries only

	// unwritten holds a notification in flight that is not in the store
	// yet (see lazyWrite), from when it was sent.
	unwritten *packets.Packet
	sentAt    time.Time
}

// pending is a backlog message.
type pending struct {
	seq uint64
	pk  packets.Packet
}

func newSession(id string, cl *mqtt.Client, rec store.Session) *session {
	return &session{id: id, cl: cl, rec: rec, byPacket: map[uint16]uint64{}}
}

// find returns the index of the entry of seq, or -1.
func (s *session) find(seq uint64) int {
	for i := range s.entries {
		if s.entries[i].seq == seq {
			return i
		}
	}
	return -1
}

// remove drops entry i from memory and returns it.
func (s *session) remove(i int) entry {
	e := s.entries[i]
	s.entries = append(s.entries[:i], s.entries[i+1:]...)
	if e.inflight {
		if s.byPacket[e.packetID] == e.seq {
			delete(s.byPacket, e.packetID)
		}
		if e.backlog {
			s.sending--
		}
	}
	return e
}

// stale marks the entry in flight under id as owed, when mochi hands the
// id out again: its sending was lost (a write that failed).
func (s *session) stale(id uint16) {
	seq, ok := s.byPacket[id]
	if !ok {
		return
	}
	delete(s.byPacket, id)
	if i := s.find(seq); i >= 0 {
		e := &s.entries[i]
		e.inflight = false
		if e.backlog {
			e.backlog = false
			s.sending--
		}
	}
}
