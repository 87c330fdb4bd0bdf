package broker

import (
	"bytes"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
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
// It is added after every hook that consumes OnQosPublish (the sessions
// hook records a message in flight there), so that a message is written
// only once they all have.
type flowHook struct {
	mqtt.HookBase
	server           *mqtt.Server
	maxMessageExpiry int64 // the server's MaximumMessageExpiryInterval
	// acked is what mochi calls OnQosComplete with when a client's PUBACK
	// settles a message: the hooks that provide it (the sessions hook).
	acked func(*mqtt.Client, packets.Packet)
	flows sync.Map // *mqtt.Client -> *flowState
}

// flowState is flowHook's count for one client.
type flowState struct {
	mu     sync.Mutex
	quota  int                 // messages the client may still be sent unacknowledged
	queued []uint16            // packet ids of messages in the map not sent yet, oldest first
	sent   map[uint16]struct{} // packet ids of messages counted against the quota
}

// flowLimited reports whether the client declared a Receive Maximum that
// the hook counts: an MQTT 5 network client's.
func flowLimited(cl *mqtt.Client) bool {
	return cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.ReceiveMaximum > 0 && !cl.Net.Inline
}

// OnSessionEstablished takes the counting of a flow-limited client's quota
// over from mochi. What a resumed session is owed comes through Send and
// counts from there.
func (h *flowHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if !flowLimited(cl) {
		return
	}
	rm := int32(cl.Properties.Props.ReceiveMaximum)
	cl.State.Inflight.ResetSendQuota(rm)
	for range rm {
		cl.State.Inflight.DecreaseSendQuota()
	}
	h.flows.Store(cl, &flowState{quota: int(rm), sent: map[uint16]struct{}{}})
}

// OnQosPublish sends a message mochi has just stored for a flow-limited
// client, or queues it behind those waiting.
func (h *flowHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup || !flowLimited(cl) {
		return // a PUBACK to a publisher, or mochi sending again what is in flight
	}
	if v, ok := h.flows.Load(cl); ok {
		h.offer(cl, v.(*flowState), pk)
	}
}

// Send sends a message that is in cl's in-flight map now, or queues it
// while cl has its Receive Maximum unacknowledged: the sessions hook sends
// what it kept for a client that was away through it.
func (h *flowHook) Send(cl *mqtt.Client, pk packets.Packet) error {
	if flowLimited(cl) {
		if v, ok := h.flows.Load(cl); ok {
			return h.offer(cl, v.(*flowState), pk)
		}
	}
	return cl.WritePacket(pk)
}

// offer writes pk if cl has quota and nothing waits before it, and queues
// it otherwise. The lock is held across the write, so that messages go
// out in the order they were offered.
func (h *flowHook) offer(cl *mqtt.Client, st *flowState, pk packets.Packet) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, counted := st.sent[pk.PacketID]; counted {
		return cl.WritePacket(pk) // sent again on this connection: counted once
	}
	if st.quota > 0 && len(st.queued) == 0 {
		st.quota--
		st.sent[pk.PacketID] = struct{}{}
		return cl.WritePacket(pk) // a failed write ends the connection; the message stays in the map
	}
	st.queued = append(st.queued, pk.PacketID)
	return nil
}

// OnPacketRead settles a flow-limited client's PUBACK and sends what its
// quota allows; it returns the PUBACK with packet id 0, for mochi to
// ignore.
func (h *flowHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Puback || !flowLimited(cl) {
		return pk, nil
	}
	v, ok := h.flows.Load(cl)
	if !ok {
		return pk, nil
	}
	st := v.(*flowState)
	if held, ok := cl.State.Inflight.Get(pk.PacketID); ok && held.FixedHeader.Type == packets.Publish && cl.State.Inflight.Delete(pk.PacketID) {
		if h.server != nil {
			atomic.AddInt64(&h.server.Info.Inflight, -1)
		}
		if h.acked != nil {
			h.acked(cl, pk) // may Send what it kept for the client: not under st.mu
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.sent[pk.PacketID]; ok {
		delete(st.sent, pk.PacketID)
		st.quota++
	}
	for st.quota > 0 && len(st.queued) > 0 {
		id := st.queued[0]
		st.queued = st.queued[1:]
		next, ok := cl.State.Inflight.Get(id)
		if !ok || next.FixedHeader.Type != packets.Publish {
			continue // acknowledged or dropped meanwhile
		}
		next = h.unpark(cl, next)
		st.quota--
		st.sent[id] = struct{}{}
		if cl.WritePacket(next) != nil {
			break // the connection is ending; the message stays in the map
		}
	}
	pk.PacketID = 0
	return pk, nil
}

// unpark stores pk in cl's in-flight map without mochi's parked mark,
// with the expiry mochi gives a message in flight, and returns it as
// stored.
func (h *flowHook) unpark(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.Expiry >= 0 {
		return pk
	}
	pk.Expiry = 0
	if e := int64(pk.Properties.MessageExpiryInterval); e > 0 {
		if max := h.maxMessageExpiry; max > 0 && max < e {
			e = max
		}
		pk.Expiry = pk.Created + e
	}
	cl.State.Inflight.Set(pk)
	return pk
}

// ID returns the hook's identifier.
func (h *flowHook) ID() string { return "jobsbroker-flow" }

// Provides lists the hook methods the hook answers.
func (h *flowHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished,
		mqtt.OnQosPublish,
		mqtt.OnPacketRead,
		mqtt.OnDisconnect,
	}, []byte{b})
}

// OnDisconnect drops the client's count; what it had not acknowledged
// stays in mochi's map, for mochi (and the sessions hook) to send again.
func (h *flowHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if flowLimited(cl) {
		h.flows.Delete(cl)
	}
}
