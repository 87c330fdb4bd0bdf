package jobshook

import (
	"slices"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// maxReplyQoS is the highest QoS of a reply; AWS IoT has no QoS 2.
const maxReplyQoS = 1

// Answer writes payload on topic to the client that sent req, as the hook
// answers jobs requests (see answer). It is exported for the broker's
// benchmark echo.
func (h *Hook) Answer(cl *mqtt.Client, req packets.Packet, topic string, payload []byte) {
	h.answer(cl, req, topic, payload)
}

// WriteHolder is a connection that can keep a write back and send it with
// the next one, in one system call (the broker's TCP and TLS listeners'
// connections are). HoldNextWrite holds the next write; ReleaseHold
// cancels a hold that no write has used. Any write sends what is held
// ahead of its own bytes.
type WriteHolder interface {
	HoldNextWrite()
	ReleaseHold()
}

// answer writes a reply to the client that sent the request, and to no one
// else. AWS delivers replies to the requester whether or not it subscribed
// to them (seqsense's Go client and the FreeRTOS OTA agent rely on that),
// and other clients never see them, whatever their subscriptions.
//
// A requester that is subscribed to the reply topic gets the reply once, at
// its subscription's QoS and with its subscription identifiers; one that is
// not gets it at the QoS of its request.
func (h *Hook) answer(cl *mqtt.Client, req packets.Packet, topic string, payload []byte) {
	h.answerHolding(cl, req, topic, payload, req.FixedHeader.Qos > 0)
}

// answerHolding is answer; hold says the request's PUBACK follows on this
// goroutine, so that the reply may wait for it and share its write.
func (h *Hook) answerHolding(cl *mqtt.Client, req packets.Packet, topic string, payload []byte, hold bool) {
	qos := min(req.FixedHeader.Qos, maxReplyQoS)
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
		Created:     time.Now().Unix(),
	}
	subs := h.server.Topics.Subscribers(topic)
	if sub, ok := subs.Subscriptions[cl.ID]; ok {
		qos = min(sub.Qos, maxReplyQoS)
		if len(sub.Identifiers) > 0 {
			ids := make([]int, 0, len(sub.Identifiers))
			for _, id := range sub.Identifiers {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			out.Properties.SubscriptionIdentifier = ids
		}
	}
	out.FixedHeader.Qos = min(qos, h.server.Options.Capabilities.MaximumQos)
	if out.FixedHeader.Qos > 0 && !h.track(cl, &out, req.PacketID) {
		out.FixedHeader.Qos = 0
	}
	// The PUBACK (or PUBREC) of a QoS 1 or 2 request follows the reply at
	// once, on this goroutine: where the connection can, it sends both in
	// one write.
	holder, canHold := cl.Net.Conn.(WriteHolder)
	hold = hold && canHold
	if hold {
		holder.HoldNextWrite()
	}
	err := h.sendQoS(cl, out)
	if hold {
		holder.ReleaseHold()
	}
	if err != nil {
		h.Log.Debug("could not write a jobs reply", "client", cl.ID, "topic", topic, "error", err)
		if out.FixedHeader.Qos > 0 && cl.State.Inflight.Delete(out.PacketID) {
			atomic.AddInt64(&h.server.Info.Inflight, -1)
			if h.opts.Send == nil {
				cl.State.Inflight.IncreaseSendQuota() // with Send, the flow hook keeps the count
			}
		}
	}
}

// sendQoS writes pk to cl, a QoS 1 packet through Options.Send.
func (h *Hook) sendQoS(cl *mqtt.Client, pk packets.Packet) error {
	if pk.FixedHeader.Qos > 0 && h.opts.Send != nil {
		return h.opts.Send(cl, pk)
	}
	return cl.WritePacket(pk)
}

// track gives a QoS 1 reply a packet id and records it as in flight, as
// the broker does for its own deliveries, so that the client's PUBACK
// completes it and a resumed session gets it again. It reports false when
// the client has no room, in which case the reply goes at QoS 0.
//
// The id must differ from the request's own: mochi keeps inbound and
// outbound ids in one in-flight map, and once OnPublish returns it records
// and then deletes the request's id there, which would take the reply's
// entry with it.
func (h *Hook) track(cl *mqtt.Client, out *packets.Packet, requestID uint16) bool {
	if cl.State.Inflight.Len() >= int(h.server.Options.Capabilities.MaximumInflight) {
		return false
	}
	id, err := cl.NextPacketID()
	if err == nil && uint16(id) == requestID {
		id, err = cl.NextPacketID()
	}
	if err != nil {
		return false
	}
	out.PacketID = uint16(id)
	if cl.State.Inflight.Set(*out) {
		atomic.AddInt64(&h.server.Info.Inflight, 1)
		cl.State.Inflight.DecreaseSendQuota()
	}
	return true
}
