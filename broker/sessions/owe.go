package sessions

import (
	"context"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
)

// In a cluster, a QoS 1 publish must be owed to every persistent session
// subscribed to it before the publisher's PUBACK, wherever the session is
// held: when the node holding one does not answer (it has just been
// killed, say), the publishing node finds out from the store who holds it
// now (after taking the sessions of a stopped node over) and has the
// holder write it: itself, or another node through Owe there.

// ErrNotShared is returned when the store is not shared between nodes.
var ErrNotShared = errors.New("the session store is not shared between nodes")

// Persistent reports whether this node holds a persistent session for
// the client id.
func (h *Hook) Persistent(id string) bool {
	_, ok := h.persistentVersion(id)
	return ok
}

// SessionHolders returns the node holding each of ids' sessions (see
// store.SessionLocator).
func (h *Hook) SessionHolders(ctx context.Context, ids []string) (map[string]string, error) {
	loc, ok := h.st.(store.SessionLocator)
	if !ok {
		return nil, ErrNotShared
	}
	return loc.SessionHolders(ctx, ids)
}

// HeldSubscriptions lists the subscriptions of every node's persistent
// sessions (see store.SessionLocator).
func (h *Hook) HeldSubscriptions(ctx context.Context) ([]store.HeldSubscription, error) {
	loc, ok := h.st.(store.SessionLocator)
	if !ok {
		return nil, ErrNotShared
	}
	return loc.HeldSubscriptions(ctx)
}

// Owe writes pk for those of the persistent sessions ids that this node
// holds and that subscribe to its topic, and waits for the write. It
// returns the ids it answers for: those owed pk now, and those held here
// that pk does not concern; the others are not held here (any more, or
// not yet: a claim in progress).
//
// local is set on the node the publish came in through, before mochi
// hands pk to its subscribers: the copies are then given to the
// sessions as OnPublish's are, when mochi hands pk over. Otherwise (pk
// came from another node for these sessions only) each session takes its
// copy at once, and a connected client is sent it.
func (h *Hook) Owe(pk packets.Packet, ids []string, local bool) ([]string, error) {
	loc, ok := h.st.(store.SessionLocator)
	if !ok {
		return nil, ErrNotShared
	}
	subs := h.server.Topics.Subscribers(pk.TopicName)
	var already map[string]uint64
	if local {
		already = h.fanouts.seqsOf(&pk)
	}
	answered := make([]string, 0, len(ids))
	var ops []store.SessionOp
	copies := map[string]packets.Packet{}
	for _, id := range ids {
		version, keep := h.persistentVersion(id)
		if !keep {
			continue
		}
		sub, subscribed := subs.Subscriptions[id]
		_, written := already[id]
		if !subscribed || written || min(pk.FixedHeader.Qos, sub.Qos, h.server.Options.Capabilities.MaximumQos) == 0 ||
			(sub.NoLocal && pk.Origin == id) {
			answered = append(answered, id)
			continue
		}
		out := outgoing(pk, sub, version)
		data, err := encodeMessage(out, meta{created: pk.Created, expiry: pk.Expiry})
		if err != nil {
			h.Log.Warn("cannot store a message for a persistent session", "client", id, "topic", pk.TopicName, "error", err)
			answered = append(answered, id)
			continue
		}
		seq := h.nextSeq()
		ops = append(ops, store.SessionOp{Kind: store.PutMessage, ClientID: id, Message: &store.QueuedMessage{Seq: seq, Data: data}})
		copies[id] = out
	}
	if len(ops) == 0 {
		return answered, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	// Everything this node queued for these sessions goes first: the
	// store must hold them as this node's before a message is added.
	if err := h.w.flush(ctx); err != nil {
		return answered, err
	}
	took, err := loc.OweMessages(ctx, ops)
	if err != nil {
		h.stats.WriteErrors.Add(1)
		return answered, err
	}
	seqs := make(map[string]uint64, len(ops))
	for _, op := range ops {
		seqs[op.ClientID] = op.Message.Seq
	}
	if local {
		fo := &fanout{origin: pk.Origin, topic: pk.TopicName, created: pk.Created, payload: pk.Payload,
			seqs: map[string]uint64{}, at: time.Now()}
		for _, id := range took {
			fo.seqs[id] = seqs[id]
		}
		h.fanouts.merge(fo)
		return append(answered, took...), nil
	}
	for _, id := range took {
		s := h.session(id)
		if s == nil {
			continue // released meanwhile: the claim read the message
		}
		if h.oweLocked(s, seqs[id], copies[id]) {
			h.drain(s, s.clientOf())
		}
	}
	return append(answered, took...), nil
}

// oweLocked adds the stored message seq to the session and, when its
// client is connected, to what is sent it next; it reports whether to
// drain.
func (h *Hook) oweLocked(s *session, seq uint64, pk packets.Packet) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return false
	}
	h.appendLocked(s, entry{seq: seq})
	if !s.online || s.cl.Closed() {
		return false
	}
	if s.window == 0 {
		s.window = deliveryWindow
		if rm := int(s.cl.Properties.Props.ReceiveMaximum); s.cl.Properties.ProtocolVersion == 5 && rm > 0 {
			s.window = min(s.window, rm)
		}
	}
	pk.Origin = ""
	s.backlog = append(s.backlog, pending{seq: seq, pk: pk})
	return true
}

// clientOf returns the client of the session's latest connection.
func (s *session) clientOf() *mqtt.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cl
}
