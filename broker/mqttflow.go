package broker

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker/sessions"
)

// Flow control (MQTT 5 §4.9). An MQTT 5 client that declares a Receive
// Maximum gets at most that many QoS 1 messages unacknowledged at once,
// in the order they were published (§4.6).
//
// mochi v2.7.9 gets this wrong in two ways. It counts a send quota and
// parks a message published while the quota is used up in the client's
// in-flight map, marked with expiry -1; after each packet it reads from
// the client it sends one parked message if the quota allows and then
// deletes it from the map, so that the client's PUBACK for it finds
// nothing and returns no quota: after as many such messages as the
// Receive Maximum the client gets no live message again until it
// reconnects. And it reads the quota before it stores the message and
// parks it after, so a message published while a PUBACK returns the
// quota can overtake one being parked.
//
// flowHook takes the counting over for such clients. It keeps mochi's
// quota at zero, so that mochi parks every QoS 1 message for them and
// never sends one itself (its own sending after a read needs quota), and
// hands mochi their PUBACKs under packet id 0, which mochi ignores, so
// that the quota stays there. It counts the client's own quota, sends a
// message when mochi announces it (OnQosPublish, on the publishing
// goroutine, right after mochi has stored it) if the client has quota and
// nothing is waiting before it, and otherwise queues its packet id; a
// PUBACK (OnPacketRead, on the client's goroutine) settles the message
// itself, as mochi would have (deletes it from the map and tells the
// hooks that track acknowledgements), and sends the oldest queued one.
// Messages stay in mochi's in-flight map throughout, so a client that
// reconnects is sent again what it had not acknowledged, as before.
//
// mochi marks a message parked only after OnQosPublish has returned: one
// the hook wrote there, and the client acknowledged at once, comes back
// into the map after the hook deleted it. The hook notes each message it
// settles that way (a tombstone) and removes it if it reappears, at the
// client's next message or PUBACK.
//
// It is added after every hook that consumes OnQosPublish (the sessions
// hook records a message in flight there), so that a message is written
// only once they all have.
type flowHook struct {
	mqtt.HookBase
	server           *mqtt.Server
	maxMessageExpiry int64 // the server's MaximumMessageExpiryInterval
	// acked is what mochi calls OnQosComplete with when a client's PUBACK
	// settles a message, and dropped what it calls OnQosDropped with when
	// it gives up on one: the hooks that provide them (the sessions hook).
	acked, dropped func(*mqtt.Client, packets.Packet)
	flows          sync.Map // client id -> *flowState of its latest connection
}

// flowState is flowHook's count for one client.
type flowState struct {
	cl     *mqtt.Client // the connection counted
	mu     sync.Mutex
	quota  int                 // messages the client may still be sent unacknowledged
	queued []uint16            // packet ids of messages in the map not sent yet, oldest first
	sent   map[uint16]struct{} // packet ids of messages counted against the quota
	// announced are packet ids of messages mochi announced (OnQosPublish)
	// that the hook has not yet seen marked parked: mochi may still store
	// them again.
	announced map[uint16]struct{}
	// settled are announced messages settled (acknowledged or dropped)
	// before mochi marked them parked, by packet id: their creation time
	// and topic, and when they were settled.
	settled map[uint16]tombstone
	// rechecking is set while a timer is due to look at the tombstones
	// again (recheckLocked).
	rechecking bool
	// drops are messages given up on under mu, for the hooks that keep
	// them to hear of once mu is released (the sessions hook takes its
	// own lock, and calls Sent holding it).
	drops []packets.Packet
}

// tombstone identifies a settled message that mochi may put back.
type tombstone struct {
	created int64
	topic   string
	at      time.Time
}

// tombstoneTTL is how long a tombstone is kept: mochi puts a message back
// within microseconds of announcing it.
const tombstoneTTL = 2 * time.Second

// tombstoneRecheck is how soon tombstones are looked at again when the
// client sends nothing more.
const tombstoneRecheck = 20 * time.Millisecond

// flowLimited reports whether the client declared a Receive Maximum that
// the hook counts: an MQTT 5 network client's.
func flowLimited(cl *mqtt.Client) bool {
	return cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.ReceiveMaximum > 0 && !cl.Net.Inline
}

// zeroQuota sets mochi's send quota for cl to zero with a maximum of one
// (so that mochi parks what it publishes to cl and its own sending never
// starts). mochi's decrement is a check and a subtraction: it is meant to
// run while no publisher can reach cl.
func zeroQuota(cl *mqtt.Client) {
	cl.State.Inflight.ResetSendQuota(1)
	cl.State.Inflight.DecreaseSendQuota()
}

// state returns the count of cl, if cl is the connection counted.
func (h *flowHook) state(cl *mqtt.Client) (*flowState, bool) {
	v, ok := h.flows.Load(cl.ID)
	if !ok {
		return nil, false
	}
	st := v.(*flowState)
	return st, st.cl == cl
}

// locked runs fn holding st.mu, then tells the hooks that keep messages
// of those fn gave up on.
func (h *flowHook) locked(cl *mqtt.Client, st *flowState, fn func()) {
	st.mu.Lock()
	fn()
	drops := st.drops
	st.drops = nil
	st.mu.Unlock()
	if h.dropped != nil {
		for _, pk := range drops {
			h.dropped(cl, pk)
		}
	}
}

// OnSessionEstablish takes the counting of a flow-limited client's quota
// over from mochi before the client can be reached (mochi adds it to its
// clients after this), so that every message for it comes through the
// hook, the sessions hook's included.
func (h *flowHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if !flowLimited(cl) {
		return
	}
	zeroQuota(cl)
	// Keyed by client id: a connection mochi never reported gone (a
	// failed CONNACK) is replaced, not kept.
	h.flows.Store(cl.ID, &flowState{cl: cl, quota: int(cl.Properties.Props.ReceiveMaximum),
		sent: map[uint16]struct{}{}, announced: map[uint16]struct{}{}, settled: map[uint16]tombstone{}})
}

// OnSessionEstablished queues, in publish order, messages mochi parked in
// a session it took over from an earlier connection still open (an MQTT
// 5 session resumed without the sessions hook); mochi then also reset the
// quota, which it set from the client's Receive Maximum.
func (h *flowHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	st, ok := h.state(cl)
	if !ok {
		return
	}
	var inherited []packets.Packet
	for _, pk := range cl.State.Inflight.GetAll(true) {
		if pk.FixedHeader.Type == packets.Publish {
			inherited = append(inherited, pk)
		}
	}
	if len(inherited) == 0 {
		return
	}
	h.locked(cl, st, func() {
		known := map[uint16]bool{}
		for _, id := range st.queued {
			known[id] = true
		}
		for id := range st.sent {
			known[id] = true
		}
		unknown := inherited[:0]
		for _, pk := range inherited {
			if !known[pk.PacketID] {
				unknown = append(unknown, pk)
			}
		}
		if len(unknown) == 0 {
			return // parked since the client was reachable: queued or sent already
		}
		zeroQuota(cl) // mochi reset it when it carried the session over
		sortParked(unknown)
		for _, pk := range unknown {
			st.queued = append(st.queued, pk.PacketID)
		}
		h.pumpLocked(cl, st)
	})
}

// OnQosPublish sends a message mochi has just stored for a flow-limited
// client, or queues it behind those waiting.
func (h *flowHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup || !flowLimited(cl) {
		return // a PUBACK to a publisher, or mochi sending again what is in flight
	}
	st, ok := h.state(cl)
	if !ok {
		return
	}
	if _, held := cl.State.Inflight.Get(pk.PacketID); !held {
		return // taken out by the sessions hook (the client was taken over)
	}
	h.locked(cl, st, func() {
		h.buryLocked(cl, st)
		st.announced[pk.PacketID] = struct{}{}
		h.offerLocked(cl, st, pk)
	})
}

// Send sends a message that is in cl's in-flight map now, or queues it
// while cl has its Receive Maximum unacknowledged: the sessions hook and
// jobshook send through it what they put in the map themselves.
func (h *flowHook) Send(cl *mqtt.Client, pk packets.Packet) error {
	if flowLimited(cl) {
		if st, ok := h.state(cl); ok {
			var err error
			h.locked(cl, st, func() { err = h.offerLocked(cl, st, pk) })
			return err
		}
	}
	return cl.WritePacket(pk)
}

// offerLocked writes pk if cl has quota and nothing waits before it, and
// queues it otherwise. st.mu is held across the write, so that messages go
// out in the order they were offered.
func (h *flowHook) offerLocked(cl *mqtt.Client, st *flowState, pk packets.Packet) error {
	if _, counted := st.sent[pk.PacketID]; counted && pk.FixedHeader.Dup {
		return cl.WritePacket(pk) // sent again on this connection: counted once
	}
	if st.quota > 0 && len(st.queued) == 0 {
		return h.writeLocked(cl, st, pk)
	}
	st.queued = append(st.queued, pk.PacketID)
	return nil
}

// writeLocked writes pk, counting it against the quota. A packet larger
// than the client takes is dropped as if sent (MQTT 5 §3.1.2.11.4): it
// leaves the map and takes no quota.
func (h *flowHook) writeLocked(cl *mqtt.Client, st *flowState, pk packets.Packet) error {
	st.quota--
	st.sent[pk.PacketID] = struct{}{}
	err := cl.WritePacket(pk)
	if errors.Is(err, packets.ErrPacketTooLarge) {
		st.quota++
		delete(st.sent, pk.PacketID)
		h.dropLocked(cl, st, pk)
		return nil
	}
	return err // a failed write ends the connection; the message stays in the map
}

// dropLocked takes pk out of cl's in-flight map for good; the hooks that
// keep it (the sessions hook's stored copy goes too) hear of it when
// st.mu is released.
func (h *flowHook) dropLocked(cl *mqtt.Client, st *flowState, pk packets.Packet) {
	if cl.State.Inflight.Delete(pk.PacketID) && h.server != nil {
		atomic.AddInt64(&h.server.Info.Inflight, -1)
	}
	h.settleLocked(st, pk)
	st.drops = append(st.drops, pk) // told once st.mu is released (locked)
}

// OnPacketRead settles a flow-limited client's PUBACK and sends what its
// quota allows; it returns the PUBACK with packet id 0, for mochi to
// ignore. A PUBREC or PUBCOMP (this broker sends nothing at QoS 2) is
// turned into such a PUBACK too: mochi would return quota for it.
func (h *flowHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !flowLimited(cl) {
		return pk, nil
	}
	switch pk.FixedHeader.Type {
	case packets.Puback:
	case packets.Pubrec, packets.Pubcomp:
		pk.FixedHeader.Type, pk.PacketID = packets.Puback, 0
		return pk, nil
	default:
		return pk, nil
	}
	st, ok := h.state(cl)
	if !ok {
		return pk, nil
	}
	held, ok := cl.State.Inflight.Get(pk.PacketID)
	if ok && held.FixedHeader.Type == packets.Publish && cl.State.Inflight.Delete(pk.PacketID) {
		if h.server != nil {
			atomic.AddInt64(&h.server.Info.Inflight, -1)
		}
		if h.acked != nil {
			h.acked(cl, pk) // may Send what it kept for the client: not under st.mu
		}
	}
	h.locked(cl, st, func() {
		if ok && held.FixedHeader.Type == packets.Publish {
			h.settleLocked(st, held)
		}
		if _, ok := st.sent[pk.PacketID]; ok {
			delete(st.sent, pk.PacketID)
			st.quota++
		}
		h.buryLocked(cl, st)
		h.pumpLocked(cl, st)
	})
	pk.PacketID = 0
	return pk, nil
}

// pumpLocked sends queued messages while the quota allows, dropping those
// whose MQTT 5 expiry passed while they waited.
func (h *flowHook) pumpLocked(cl *mqtt.Client, st *flowState) {
	now := time.Now().Unix()
	for st.quota > 0 && len(st.queued) > 0 {
		id := st.queued[0]
		st.queued = st.queued[1:]
		next, ok := cl.State.Inflight.Get(id)
		if !ok || next.FixedHeader.Type != packets.Publish {
			continue // acknowledged or dropped meanwhile
		}
		if next.Expiry < 0 {
			delete(st.announced, id) // marked parked: mochi is done with it
		}
		if next = h.unpark(cl, next); next.Expiry > 0 && next.Expiry <= now {
			h.dropLocked(cl, st, next)
			continue
		}
		if h.writeLocked(cl, st, next) != nil {
			return // the connection is ending; the message stays in the map
		}
	}
}

// settleLocked forgets pk, settled; if mochi announced it and has not yet
// marked it parked, it leaves a tombstone, for mochi may store it again.
func (h *flowHook) settleLocked(st *flowState, pk packets.Packet) {
	if _, ok := st.announced[pk.PacketID]; !ok {
		return
	}
	delete(st.announced, pk.PacketID)
	if pk.Expiry < 0 {
		return // marked parked already: mochi is done with it
	}
	st.settled[pk.PacketID] = tombstone{created: pk.Created, topic: pk.TopicName, at: time.Now()}
	h.recheckLocked(st)
}

// recheckLocked looks at st's tombstones again shortly, and again while
// any are left: the PUBACK that settled a message mochi then puts back may
// be the last packet the client sends for a while, and the message would
// otherwise stay in its in-flight map (to be sent again when the client
// comes back) until the client's next packet.
func (h *flowHook) recheckLocked(st *flowState) {
	if st.rechecking || len(st.settled) == 0 {
		return
	}
	st.rechecking = true
	time.AfterFunc(tombstoneRecheck, func() {
		h.locked(st.cl, st, func() {
			st.rechecking = false
			h.buryLocked(st.cl, st)
			h.recheckLocked(st)
		})
	})
}

// buryLocked removes settled messages that mochi has put back into cl's
// in-flight map, and forgets tombstones past their time.
func (h *flowHook) buryLocked(cl *mqtt.Client, st *flowState) {
	if len(st.settled) == 0 {
		return
	}
	now := time.Now()
	for id, ts := range st.settled {
		held, ok := cl.State.Inflight.Get(id)
		_, sent := st.sent[id]
		switch {
		case ok && held.Expiry < 0 && held.Created == ts.created && held.TopicName == ts.topic && !sent && !slices.Contains(st.queued, id):
			if cl.State.Inflight.Delete(id) && h.server != nil {
				atomic.AddInt64(&h.server.Info.Inflight, -1)
			}
			delete(st.settled, id)
		case ok, now.Sub(ts.at) > tombstoneTTL:
			delete(st.settled, id) // the id went to another message, or mochi is done with it
		}
	}
}

// unpark stores pk in cl's in-flight map without mochi's parked mark,
// with the expiry mochi gives a message in flight, and returns it as
// stored.
func (h *flowHook) unpark(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.Expiry >= 0 {
		return pk
	}
	pk.Expiry = sessions.MessageExpiry(pk, h.maxMessageExpiry)
	cl.State.Inflight.Set(pk)
	return pk
}

// Sent reports whether pk, in cl's in-flight map, was written to cl: a
// flow-limited client's queued messages were not (mochi marks them all
// parked). The sessions hook asks it when the client leaves.
func (h *flowHook) Sent(cl *mqtt.Client, pk packets.Packet) bool {
	st, ok := h.state(cl)
	if !ok {
		return true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	_, sent := st.sent[pk.PacketID]
	return sent
}

// sortParked puts parked messages in the order they were published.
// mochi hands out packet ids upwards and wraps after 65535, and parked
// messages are at most a few thousand apart, so ids more than half the
// space below the highest one have wrapped and count as later.
func sortParked(parked []packets.Packet) {
	if len(parked) == 0 {
		return
	}
	hi := slices.MaxFunc(parked, func(a, b packets.Packet) int { return int(a.PacketID) - int(b.PacketID) }).PacketID
	order := func(id uint16) int {
		if int(hi)-int(id) > 1<<15 {
			return int(id) + 1<<16
		}
		return int(id)
	}
	slices.SortFunc(parked, func(a, b packets.Packet) int { return order(a.PacketID) - order(b.PacketID) })
}

// ID returns the hook's identifier.
func (h *flowHook) ID() string { return "jobsbroker-flow" }

// Provides lists the hook methods the hook answers.
func (h *flowHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnQosPublish,
		mqtt.OnPacketRead,
		mqtt.OnDisconnect,
	}, []byte{b})
}

// OnDisconnect drops the client's count; what it had not acknowledged
// stays in mochi's map, for mochi (and the sessions hook) to send again.
func (h *flowHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if st, ok := h.state(cl); ok {
		h.flows.CompareAndDelete(cl.ID, st)
	}
}
