package sessions

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
)

// How a publish reaches a persistent session: OnPublish, which mochi calls
// on the publisher's goroutine before it acknowledges the publish, writes
// the message for every persistent session subscribed to the topic and
// waits for the write; mochi then acknowledges it and hands it to each
// subscriber, calling OnQosPublish with the packet id it chose (a
// subscriber that is offline keeps it queued). fanouts connects the two:
// the sequence number each session's copy was written under. A copy no
// subscriber took (mochi dropped it: the client's quota, its access rules)
// is deleted when mochi reports the publish done (OnPublished).
//
// Messages that reach a session any other way (a will, a shared
// subscription's member, a jobs notification through Keep) are written in
// the background when mochi or jobshook hands them over: no PUBACK waits
// for them (mochi picks a shared subscription's member only after the
// publisher's PUBACK).

type fanout struct {
	origin  string
	topic   string
	created int64
	payload []byte
	seqs    map[string]uint64 // client id -> the sequence number of its copy
	at      time.Time
}

type fanouts struct {
	mu     sync.Mutex
	byOrig map[string][]*fanout
	n      atomic.Int32
}

func (f *fanouts) init() { f.byOrig = map[string][]*fanout{} }

func (f *fanouts) add(fo *fanout) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byOrig[fo.origin] = append(f.byOrig[fo.origin], fo)
	f.n.Add(1)
}

func (fo *fanout) is(pk *packets.Packet) bool {
	return fo.topic == pk.TopicName && fo.created == pk.Created && bytes.Equal(fo.payload, pk.Payload)
}

// merge adds fo, or its copies to the fanout of the same publish.
func (f *fanouts) merge(fo *fanout) {
	if len(fo.seqs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, old := range f.byOrig[fo.origin] {
		if old.topic == fo.topic && old.created == fo.created && bytes.Equal(old.payload, fo.payload) {
			for id, seq := range fo.seqs {
				old.seqs[id] = seq
			}
			return
		}
	}
	f.byOrig[fo.origin] = append(f.byOrig[fo.origin], fo)
	f.n.Add(1)
}

// seqsOf returns a copy of the sequence numbers of pk's copies not taken
// yet.
func (f *fanouts) seqsOf(pk *packets.Packet) map[string]uint64 {
	if f.n.Load() == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fo := range f.byOrig[pk.Origin] {
		if fo.is(pk) {
			out := make(map[string]uint64, len(fo.seqs))
			for id, seq := range fo.seqs {
				out[id] = seq
			}
			return out
		}
	}
	return nil
}

// take returns the sequence number of client's copy of pk, if OnPublish
// wrote one.
func (f *fanouts) take(client string, pk *packets.Packet) (uint64, bool) {
	if f.n.Load() == 0 {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fo := range f.byOrig[pk.Origin] {
		if !fo.is(pk) {
			continue
		}
		seq, ok := fo.seqs[client]
		delete(fo.seqs, client)
		return seq, ok
	}
	return 0, false
}

// finish forgets pk's fanout and returns the copies nobody took.
func (f *fanouts) finish(pk *packets.Packet) map[string]uint64 {
	if f.n.Load() == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.byOrig[pk.Origin]
	for i, fo := range list {
		if fo.is(pk) {
			f.remove(pk.Origin, list, i)
			return fo.seqs
		}
	}
	return nil
}

func (f *fanouts) remove(origin string, list []*fanout, i int) {
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(f.byOrig, origin)
	} else {
		f.byOrig[origin] = list
	}
	f.n.Add(-1)
}

// stale removes fanouts older than d (mochi never finished them: its
// PUBACK to the publisher failed) and returns their untaken copies.
func (f *fanouts) stale(now time.Time, d time.Duration) []map[string]uint64 {
	if f.n.Load() == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]uint64
	for origin, list := range f.byOrig {
		for i := len(list) - 1; i >= 0; i-- {
			if now.Sub(list[i].at) > d {
				out = append(out, list[i].seqs)
				f.remove(origin, list, i)
				list = f.byOrig[origin]
			}
		}
	}
	return out
}

func (h *Hook) nextSeq() uint64 { return h.seq.Add(1) - 1 }

// persistentVersion returns the protocol version of id's session, and
// whether this node holds it as a persistent session.
func (h *Hook) persistentVersion(id string) (byte, bool) {
	s := h.session(id)
	if s == nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.ProtocolVersion, s.persistent && !s.gone
}

// OnPublish refuses retained messages beyond the limits, and writes a
// QoS 1 publish for every persistent session subscribed to its topic
// before mochi acknowledges it.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && len(pk.Payload) > 0 && !cl.Net.Inline {
		if reason := h.retainRefusal(pk.TopicName, len(pk.Payload)); reason != "" {
			return pk, h.refuse(cl, pk, packets.ErrQuotaExceeded, reason)
		}
	}
	if pk.FixedHeader.Qos == 0 || h.stats.Sessions.Load() == 0 {
		return pk, nil
	}
	subs := h.server.Topics.Subscribers(pk.TopicName)
	var ops []store.SessionOp
	var fo *fanout
	for id, sub := range subs.Subscriptions {
		if min(pk.FixedHeader.Qos, sub.Qos, h.server.Options.Capabilities.MaximumQos) == 0 || (sub.NoLocal && pk.Origin == id) {
			continue
		}
		version, keep := h.persistentVersion(id)
		if !keep {
			continue
		}
		data, err := encodeMessage(outgoing(pk, sub, version), meta{created: pk.Created, expiry: pk.Expiry})
		if err != nil {
			h.Log.Warn("cannot store a message for a persistent session", "client", id, "topic", pk.TopicName, "error", err)
			continue
		}
		if fo == nil {
			fo = &fanout{origin: pk.Origin, topic: pk.TopicName, created: pk.Created, payload: pk.Payload,
				seqs: map[string]uint64{}, at: time.Now()}
		}
		seq := h.nextSeq()
		fo.seqs[id] = seq
		ops = append(ops, store.SessionOp{Kind: store.PutMessage, ClientID: id, Message: &store.QueuedMessage{Seq: seq, Data: data}})
	}
	if len(ops) == 0 {
		return pk, nil
	}
	ctx, cancel := ctx()
	defer cancel()
	if err := h.w.sync(ctx, ops...); err != nil {
		h.w.async(deletes(fo.seqs)...)
		return pk, h.refuse(cl, pk, packets.ErrUnspecifiedError, "the message could not be stored for the persistent sessions subscribed to it: "+err.Error())
	}
	h.fanouts.add(fo)
	return pk, nil
}

// outgoing is pk as mochi delivers it through sub to a client of the
// given protocol version (see mochi's publishToClient), before it picks a
// packet id.
func outgoing(pk packets.Packet, sub packets.Subscription, version byte) packets.Packet {
	out := pk.Copy(false)
	if version < 5 || !sub.RetainAsPublished {
		out.FixedHeader.Retain = false
	}
	if len(sub.Identifiers) > 0 {
		out.Properties.SubscriptionIdentifier = make([]int, 0, len(sub.Identifiers))
		for _, id := range sub.Identifiers {
			out.Properties.SubscriptionIdentifier = append(out.Properties.SubscriptionIdentifier, id)
		}
		slices.Sort(out.Properties.SubscriptionIdentifier)
	}
	out.FixedHeader.Qos = min(out.FixedHeader.Qos, sub.Qos, 1)
	return out
}

func deletes(seqs map[string]uint64) []store.SessionOp {
	ops := make([]store.SessionOp, 0, len(seqs))
	for id, seq := range seqs {
		ops = append(ops, store.SessionOp{Kind: store.DeleteMessage, ClientID: id, Message: &store.QueuedMessage{Seq: seq}})
	}
	return ops
}

// refuse answers a publish that is not taken: an MQTT 5 client gets the
// reason code in its PUBACK; an MQTT 3.1.1 client, whose PUBACK cannot
// carry one, is disconnected, so that it does not take the message as
// delivered. The hook writes the PUBACK itself and rejects the packet, so
// that mochi neither forwards it nor logs the refusal as an error.
func (h *Hook) refuse(cl *mqtt.Client, pk packets.Packet, code packets.Code, reason string) error {
	h.stats.Refused.Add(1)
	h.Log.Debug("refused a publish", "client", cl.ID, "topic", pk.TopicName, "reason", reason)
	switch {
	case cl.Properties.ProtocolVersion < 5:
		cl.Stop(code)
	case pk.FixedHeader.Qos > 0:
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID,
			ReasonCode: code.Code, Properties: packets.Properties{ReasonString: reason}}
		if err := cl.WritePacket(ack); err != nil {
			h.Log.Debug("could not refuse a publish", "client", cl.ID, "error", err)
		}
	}
	return packets.ErrRejectPacket
}

// OnPublished deletes the stored copies of a publish that mochi handed to
// no subscriber.
func (h *Hook) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Qos == 0 {
		return
	}
	if left := h.fanouts.finish(&pk); len(left) > 0 {
		h.w.async(deletes(left)...)
	}
}

// OnQosPublish records a QoS 1 message mochi has given a persistent
// session: in flight when the client is connected, queued when it is not
// (mochi keeps those in the client's in-flight map, which the hook empties
// so that they are delivered in order when the client returns). A message
// mochi gives the client of a connection the session has left (a publish
// racing the client's return) is queued for the session too.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if cl.Net.Inline || pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 {
		return
	}
	s := h.session(cl.ID)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return
	}
	online := s.cl == cl && s.online && !cl.Closed()
	if !online {
		if cl.State.Inflight.Delete(pk.PacketID) {
			atomic.AddInt64(&h.server.Info.Inflight, -1)
		}
	} else if _, known := s.byPacket[pk.PacketID]; known {
		if pk.FixedHeader.Dup {
			return // mochi resending what is in flight on a taken-over connection
		}
		s.stale(pk.PacketID)
	}
	seq, written := h.fanouts.take(cl.ID, &pk)
	if !written {
		if !s.persistent {
			return
		}
		data, err := encodeMessage(pk, meta{created: pk.Created, expiry: pk.Expiry})
		if err != nil {
			h.Log.Warn("cannot store a message for a persistent session", "client", cl.ID, "topic", pk.TopicName, "error", err)
			return
		}
		seq = h.nextSeq()
		h.w.async(store.SessionOp{Kind: store.PutMessage, ClientID: s.id, Message: &store.QueuedMessage{Seq: seq, Data: data}})
	}
	e := entry{seq: seq}
	if online {
		e.inflight, e.sent, e.packetID = true, true, pk.PacketID
		s.byPacket[pk.PacketID] = seq
	}
	h.appendLocked(s, e)
}

// Keep holds a jobs notification for cl until cl acknowledges it, if cl
// has a persistent session: in flight when pk carries the packet id it is
// being sent with, queued when cl is offline. latest drops an older
// notification on the same topic that is still queued unsent: it only
// repeats, out of date, what pk says. It reports whether the session took
// pk.
func (h *Hook) Keep(cl *mqtt.Client, pk packets.Packet, latest bool) bool {
	if cl.Net.Inline || pk.FixedHeader.Qos == 0 {
		return false
	}
	s := h.session(cl.ID)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || !s.persistent {
		return false
	}
	e := entry{seq: h.nextSeq(), replaceable: latest}
	if latest {
		e.topic = pk.TopicName
	}
	if pk.PacketID != 0 && s.cl == cl && s.online && !cl.Closed() {
		// In flight to a connected client: written only if it is not
		// acknowledged soon (lazyWrite).
		s.stale(pk.PacketID)
		e.inflight, e.sent, e.packetID = true, true, pk.PacketID
		e.unwritten, e.sentAt = &pk, time.Now()
		s.byPacket[pk.PacketID] = e.seq
		h.appendLocked(s, e)
		h.lazy.add(s)
		return true
	}
	data, err := encodeMessage(pk, meta{created: pk.Created, expiry: pk.Expiry, replaceable: latest})
	if err != nil {
		h.Log.Warn("cannot store a notification for a persistent session", "client", cl.ID, "topic", pk.TopicName, "error", err)
		return false
	}
	h.w.async(store.SessionOp{Kind: store.PutMessage, ClientID: s.id, Message: &store.QueuedMessage{Seq: e.seq, Data: data}})
	h.appendLocked(s, e)
	return true
}

// lazyWrite is how long a notification in flight to a connected client
// waits for its PUBACK before it is written to the store. Most are
// acknowledged within milliseconds and cost no write (nor a deletion);
// one the broker is stopped or killed before it was written is not
// resent. A notification for a client that is away is written at once.
const lazyWrite = time.Second

// lazySet holds the sessions that have notifications in flight not yet
// written.
type lazySet struct {
	mu       sync.Mutex
	sessions map[*session]struct{}
}

func (l *lazySet) add(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions == nil {
		l.sessions = map[*session]struct{}{}
	}
	l.sessions[s] = struct{}{}
}

func (l *lazySet) take() []*session {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*session, 0, len(l.sessions))
	for s := range l.sessions {
		out = append(out, s)
	}
	clear(l.sessions)
	return out
}

// writeUnwritten writes the session's notifications in flight that have
// waited lazyWrite (all of them when all is set) and reports whether any
// are left to write later.
func (h *Hook) writeUnwrittenLocked(s *session, now time.Time, all bool) (left bool) {
	var ops []store.SessionOp
	for i := range s.entries {
		e := &s.entries[i]
		if e.unwritten == nil {
			continue
		}
		if !all && now.Sub(e.sentAt) < lazyWrite {
			left = true
			continue
		}
		pk := e.unwritten
		e.unwritten = nil
		data, err := encodeMessage(*pk, meta{sent: true, packetID: e.packetID, created: pk.Created, expiry: pk.Expiry, replaceable: e.replaceable})
		if err != nil {
			h.Log.Warn("cannot store a notification for a persistent session", "client", s.id, "topic", pk.TopicName, "error", err)
			continue
		}
		ops = append(ops, store.SessionOp{Kind: store.PutMessage, ClientID: s.id, Message: &store.QueuedMessage{Seq: e.seq, Data: data}})
	}
	if !s.gone {
		h.w.async(ops...)
	}
	return left
}

// writeLazy writes the notifications that have waited long enough.
func (h *Hook) writeLazy(now time.Time) {
	for _, s := range h.lazy.take() {
		s.mu.Lock()
		left := h.writeUnwrittenLocked(s, now, false)
		s.mu.Unlock()
		if left {
			h.lazy.add(s)
		}
	}
}

// appendLocked adds e to the session's messages: it first drops an unsent
// replaceable message on the same topic (when e replaces), and the oldest
// messages beyond the queue limit.
func (h *Hook) appendLocked(s *session, e entry) {
	var ops []store.SessionOp
	if e.replaceable {
		for i := range s.entries {
			old := &s.entries[i]
			if old.replaceable && !old.inflight && old.topic == e.topic {
				h.dropLocked(s, i, &ops)
				break
			}
		}
	}
	for h.opts.QueueLimit > 0 && len(s.entries) >= h.opts.QueueLimit {
		h.dropLocked(s, 0, &ops)
		h.stats.Dropped.Add(1)
	}
	s.entries = append(s.entries, e)
	h.stats.Queued.Add(1)
	h.w.async(ops...)
}

// dropLocked forgets entry i, taking it out of mochi's in-flight map if
// it is there, and adds its deletion to ops.
func (h *Hook) dropLocked(s *session, i int, ops *[]store.SessionOp) {
	e := s.remove(i)
	if e.inflight && s.cl.State.Inflight.Delete(e.packetID) {
		atomic.AddInt64(&h.server.Info.Inflight, -1)
	}
	h.stats.Queued.Add(-1)
	if e.unwritten == nil {
		*ops = append(*ops, store.SessionOp{Kind: store.DeleteMessage, ClientID: s.id, Message: &store.QueuedMessage{Seq: e.seq}})
	}
}

// OnQosComplete forgets a message the client acknowledged and sends the
// next one waiting in the backlog.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	// mochi also reports the broker's own PUBACK of an inbound publish
	// here, under the publisher's packet id; only a client's PUBACK, read
	// from the wire, has no creation time.
	if cl.Net.Inline || pk.Created != 0 {
		return
	}
	if h.acknowledged(cl, pk.PacketID) {
		h.drain(h.session(cl.ID), cl)
	}
}

// OnQosDropped forgets a message mochi gave up on (its MQTT 5 expiry
// passed while in flight).
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || cl.IsTakenOver() {
		return
	}
	h.acknowledged(cl, pk.PacketID)
}

// acknowledged forgets the message in flight to cl under id; it reports
// whether there was one.
func (h *Hook) acknowledged(cl *mqtt.Client, id uint16) bool {
	s := h.session(cl.ID)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, ok := s.byPacket[id]
	if !ok || s.cl != cl {
		return false
	}
	i := s.find(seq)
	if i < 0 {
		delete(s.byPacket, id)
		return false
	}
	var ops []store.SessionOp
	h.dropLocked(s, i, &ops)
	if !s.gone {
		h.w.async(ops...)
	}
	return true
}

// drain sends backlog messages while fewer than the window are
// unacknowledged. It runs on the client's own goroutine (after its
// CONNACK, and after each PUBACK), and writes without holding the
// session's lock.
func (h *Hook) drain(s *session, cl *mqtt.Client) {
	if s == nil {
		return
	}
	for {
		pk, ok := h.nextBacklog(s, cl)
		if !ok {
			return
		}
		send := cl.WritePacket
		if h.opts.Send != nil {
			send = func(pk packets.Packet) error { return h.opts.Send(cl, pk) }
		}
		if err := send(pk); err != nil {
			h.Log.Debug("could not send a queued message", "client", cl.ID, "topic", pk.TopicName, "error", err)
			return // it stays owed; the client gets it when it is back
		}
		h.stats.Delivered.Add(1)
	}
}

// nextBacklog takes the next backlog message to send and puts it in
// flight.
func (h *Hook) nextBacklog(s *session, cl *mqtt.Client) (packets.Packet, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ops []store.SessionOp
	defer func() { h.w.async(ops...) }()
	for s.cl == cl && s.online && !s.gone && s.sending < s.window && len(s.backlog) > 0 {
		p := s.backlog[0]
		s.backlog[0] = pending{}
		s.backlog = s.backlog[1:]
		i := s.find(p.seq)
		if i < 0 {
			continue // acknowledged, dropped or replaced meanwhile
		}
		if p.pk.Expiry > 0 && p.pk.Expiry < time.Now().Unix() {
			h.dropLocked(s, i, &ops)
			h.stats.ExpiredMessages.Add(1)
			continue
		}
		e := &s.entries[i]
		if e.inflight {
			continue // sent already: queued twice (Owe and the client's return)
		}
		pk := p.pk
		pk.ProtocolVersion = cl.Properties.ProtocolVersion
		pk.FixedHeader.Dup = e.sent
		if e.sent && e.packetID != 0 {
			pk.PacketID = e.packetID // reserved for it when the client connected
		} else {
			id, err := cl.NextPacketID()
			if err != nil {
				s.backlog = append([]pending{p}, s.backlog...)
				return packets.Packet{}, false
			}
			pk.PacketID = uint16(id)
		}
		if cl.State.Inflight.Set(pk) {
			atomic.AddInt64(&h.server.Info.Inflight, 1)
		}
		s.stale(pk.PacketID)
		e.inflight, e.sent, e.backlog, e.packetID = true, true, true, pk.PacketID
		s.byPacket[pk.PacketID] = e.seq
		s.sending++
		return pk, true
	}
	return packets.Packet{}, false
}
