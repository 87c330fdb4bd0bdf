package sessions

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
)

// retainRefusal says why a retained message with a payload of size bytes
// on topic is refused, "" when it is not: the payload is over the size
// limit, or the topic holds no retained message and the count is at its
// limit (AWS IoT answers such publishes as throttled until retained
// messages are deleted). An empty payload, which deletes, is always taken.
func (h *Hook) retainRefusal(topic string, size int) string {
	if h.opts.RetainedMaxBytes > 0 && size > h.opts.RetainedMaxBytes {
		return fmt.Sprintf("a retained message may carry at most %d bytes; this one has %d", h.opts.RetainedMaxBytes, size)
	}
	if h.opts.RetainedLimit <= 0 {
		return ""
	}
	h.retainMu.Lock()
	defer h.retainMu.Unlock()
	if _, ok := h.retainedTopics[topic]; !ok && len(h.retainedTopics) >= h.opts.RetainedLimit {
		return fmt.Sprintf("the broker holds %d retained messages, its limit; delete some (an empty retained publish deletes one)", len(h.retainedTopics))
	}
	return ""
}

// OnRetainMessage writes the topic's retained message as mochi holds it
// now (or deletes it), before mochi acknowledges the publish. The write is
// queued under a lock, so that the store applies the retained messages of
// a topic in the order mochi did.
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	h.retainMu.Lock()
	if h.opts.Replica != nil && h.opts.Replica(cl) {
		// Another node stored it; only the count of topics follows.
		if cur, ok := h.server.Topics.Retained.Get(pk.TopicName); ok && len(cur.Payload) > 0 {
			h.retainedTopics[pk.TopicName] = struct{}{}
		} else {
			delete(h.retainedTopics, pk.TopicName)
		}
		h.retainMu.Unlock()
		return
	}
	op := store.SessionOp{Kind: store.DeleteRetained, Topic: pk.TopicName}
	if cur, ok := h.server.Topics.Retained.Get(pk.TopicName); ok && len(cur.Payload) > 0 {
		data, err := encodeMessage(cur, meta{created: cur.Created, expiry: cur.Expiry})
		if err != nil {
			h.retainMu.Unlock()
			h.Log.Warn("cannot store a retained message", "topic", pk.TopicName, "error", err)
			return
		}
		op = store.SessionOp{Kind: store.PutRetained, Retained: &store.RetainedMessage{Topic: pk.TopicName, Data: data}}
		h.retainedTopics[pk.TopicName] = struct{}{}
	} else {
		delete(h.retainedTopics, pk.TopicName)
	}
	req := h.w.queueReq(op)
	h.retainMu.Unlock()
	ctx, cancel := ctx()
	defer cancel()
	if err := h.w.wait(ctx, req); err != nil {
		h.Log.Warn("could not store a retained message", "topic", pk.TopicName, "error", err)
	}
}

// OnRetainedExpired deletes a retained message whose MQTT 5 expiry passed.
func (h *Hook) OnRetainedExpired(topic string) {
	h.retainMu.Lock()
	defer h.retainMu.Unlock()
	delete(h.retainedTopics, topic)
	h.w.async(store.SessionOp{Kind: store.DeleteRetained, Topic: topic})
}

// OnSubscribed stores the subscriptions mochi granted a persistent
// session, before mochi sends the SUBACK.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Net.Inline || !h.persistentNow(cl) {
		return
	}
	ops := make([]store.SessionOp, 0, len(pk.Filters))
	for i, f := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		ops = append(ops, store.SessionOp{Kind: store.PutSubscription, ClientID: cl.ID, Subscription: &store.Subscription{
			Filter: f.Filter, QoS: reasonCodes[i], NoLocal: f.NoLocal, RetainAsPublished: f.RetainAsPublished,
			RetainHandling: f.RetainHandling, Identifier: f.Identifier,
		}})
	}
	h.writeNow(cl, "subscription", ops)
}

// OnUnsubscribed deletes a persistent session's subscriptions before
// mochi sends the UNSUBACK.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || !h.persistentNow(cl) {
		return
	}
	ops := make([]store.SessionOp, 0, len(pk.Filters))
	for _, f := range pk.Filters {
		ops = append(ops, store.SessionOp{Kind: store.DeleteSubscription, ClientID: cl.ID, Topic: f.Filter})
	}
	h.writeNow(cl, "unsubscription", ops)
}

// persistentNow reports whether cl holds a session whose state is kept.
func (h *Hook) persistentNow(cl *mqtt.Client) bool {
	s := h.session(cl.ID)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cl == cl && s.persistent && !s.gone
}

// writeNow writes ops and waits. The packet that waits is answered either
// way (mochi has decided); a failure is logged, and the store reports
// itself unready.
func (h *Hook) writeNow(cl *mqtt.Client, what string, ops []store.SessionOp) {
	if len(ops) == 0 {
		return
	}
	ctx, cancel := ctx()
	defer cancel()
	if err := h.w.sync(ctx, ops...); err != nil {
		h.Log.Warn("could not store a persistent session's "+what, "client", cl.ID, "error", err)
	}
}
