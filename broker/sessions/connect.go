package sessions

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
)

// A restored session becomes what mochi makes of a persistent session
// whose client has left: a stopped Client in the server's client list,
// with its subscriptions in the topic index. A client that connects with
// its client ID and clean session off then takes it over, and mochi
// answers session present. The hook does this itself, in Init and when it
// claims a session at connect, rather than through mochi's Stored* hooks:
// those run only at Serve, drop the MQTT 5 expiry of retained messages, and
// give every restored session a full expiry period from the restart.

// load reads the stored sessions and retained messages into the server.
func (h *Hook) load() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	now := h.clock.Now()
	var messages int
	res, err := h.st.LoadSessions(ctx, now, func(st *store.StoredSession) error {
		messages += len(st.Messages)
		h.restore(st, now)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load sessions: %w", err)
	}
	h.seq.Store(max(res.NextSeq, 1))
	retained, err := h.st.RetainedMessages(ctx)
	if err != nil {
		return fmt.Errorf("load retained messages: %w", err)
	}
	n := h.applyRetained(retained)
	h.Log.Info("loaded persistent sessions", "sessions", res.Sessions, "messages", messages, "retained", n,
		"expired", res.Expired, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// applyRetained makes the server's retained messages those stored, and
// returns how many there are.
func (h *Hook) applyRetained(retained []store.RetainedMessage) int {
	h.retainMu.Lock()
	defer h.retainMu.Unlock()
	old := h.retainedTopics
	h.retainedTopics = make(map[string]struct{}, len(retained))
	for _, r := range retained {
		pk, _, err := decodeMessage(r.Data)
		if err != nil {
			h.Log.Warn("skipped a stored retained message that does not decode", "topic", r.Topic, "error", err)
			continue
		}
		pk.FixedHeader.Retain = true
		h.server.Topics.RetainMessage(pk)
		h.retainedTopics[pk.TopicName] = struct{}{}
	}
	for topic := range old {
		if _, ok := h.retainedTopics[topic]; !ok {
			// Deleted meanwhile: an empty retained message deletes.
			h.server.Topics.RetainMessage(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: topic})
		}
	}
	atomic.StoreInt64(&h.server.Info.Retained, int64(h.server.Topics.Retained.Len()))
	return len(h.retainedTopics)
}

// ReloadRetained reads the retained messages from the store again: a
// node of a cluster that lost touch with the others missed those set or
// deleted meanwhile.
func (h *Hook) ReloadRetained(ctx context.Context) error {
	retained, err := h.st.RetainedMessages(ctx)
	if err != nil {
		return fmt.Errorf("load retained messages: %w", err)
	}
	h.applyRetained(retained)
	return nil
}

// restore puts a stored session into the server as an offline session.
func (h *Hook) restore(st *store.StoredSession, now time.Time) *session {
	rec := st.Session
	cl := h.server.NewClient(nil, rec.Listener, rec.ClientID, false)
	cl.Properties.Username = rec.Username
	cl.Properties.ProtocolVersion = rec.ProtocolVersion
	if rec.ProtocolVersion == 5 {
		cl.Properties.Props.SessionExpiryInterval = rec.ExpiryInterval
		cl.Properties.Props.SessionExpiryIntervalFlag = true
	}
	cl.Stop(packets.ErrServerShuttingDown)
	offline(cl)
	for _, sub := range st.Subscriptions {
		sb := packets.Subscription{Filter: sub.Filter, Qos: sub.QoS, NoLocal: sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, Identifier: sub.Identifier}
		if h.server.Topics.Subscribe(rec.ClientID, sb) {
			atomic.AddInt64(&h.server.Info.Subscriptions, 1)
		}
		cl.State.Subscriptions.Add(sub.Filter, sb)
	}
	h.server.Clients.Add(cl)

	s := newSession(rec.ClientID, cl, rec)
	s.persistent = true
	if rec.ExpiresAt == 0 {
		// Connected when the broker stopped without saying so: the
		// session's expiry starts now.
		s.expiresAt = now.Add(time.Duration(rec.ExpiryInterval) * time.Second)
		s.rec.ExpiresAt = s.expiresAt.Unix()
		rec := s.rec
		h.w.async(store.SessionOp{Kind: store.PutSession, Session: &rec})
	} else {
		s.expiresAt = time.Unix(rec.ExpiresAt, 0)
	}
	for _, m := range st.Messages {
		md, err := decodeMeta(m.Data)
		if err != nil {
			h.Log.Warn("dropped a stored message that does not decode", "client", rec.ClientID, "seq", m.Seq, "error", err)
			h.w.async(store.SessionOp{Kind: store.DeleteMessage, ClientID: rec.ClientID, Message: &store.QueuedMessage{Seq: m.Seq}})
			continue
		}
		e := entry{seq: m.Seq, sent: md.sent, packetID: md.packetID, replaceable: md.replaceable}
		if md.replaceable {
			e.topic = md.topic
		}
		s.entries = append(s.entries, e)
	}
	h.mu.Lock()
	h.sessions[s.id] = s
	h.mu.Unlock()
	h.stats.Sessions.Add(1)
	h.stats.Queued.Add(int64(len(s.entries)))
	return s
}

// offline prepares the client of a session whose connection has ended to
// take messages for later: mochi stops handing a client messages (and
// keeps them in its in-flight map instead) once its send quota is used
// up, and an offline client's quota never comes back.
func offline(cl *mqtt.Client) {
	cl.State.Inflight.ResetSendQuota(math.MaxInt32)
}

// OnSessionEstablish runs before mochi looks for the client's earlier
// session: it claims the session from the store when this node does not
// hold it, ends it when the client asks for a clean start or comes under
// another identity, and takes the client as the session's own.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	now := h.clock.Now()
	s := h.session(cl.ID)
	if s == nil && h.opts.Claim {
		s = h.claim(cl.ID, now)
	}
	_, persistent := h.expiry(cl)
	if s != nil {
		s.mu.Lock()
		resume := !pk.Connect.Clean && !s.gone
		if resume && !s.online {
			// As on AWS IoT, a session is not resumed over the other MQTT
			// version; nor, here, under another identity.
			why := ""
			if old := h.identityOf(s); old != h.identity(cl) {
				why = "the client connected under another identity than its persistent session's"
			} else if s.rec.ProtocolVersion != 0 && (s.rec.ProtocolVersion == 5) != (cl.Properties.ProtocolVersion == 5) {
				why = "MQTT 3.1.1 and MQTT 5 sessions are not resumed by the other version"
			}
			if why != "" {
				h.Log.Info("a persistent session ends: "+why, "client", cl.ID)
				resume = false
				if cur, ok := h.server.Clients.Get(s.id); ok && cur == s.cl && cur.Closed() {
					h.dropClient(cur)
				}
			}
		}
		if !resume {
			h.endLocked(s)
			s.mu.Unlock()
			ctx, cancel := ctx()
			err := h.w.sync(ctx, store.SessionOp{Kind: store.DeleteSession, ClientID: cl.ID})
			cancel()
			if err != nil {
				h.Log.Warn("could not delete a persistent session the client started afresh", "client", cl.ID, "error", err)
			}
			s = nil
		} else {
			if s.online && s.cl != nil && s.cl != cl {
				// A takeover: the client is back before its earlier
				// connection was seen to end. What is in flight there
				// becomes owed, as when a client leaves, and is sent
				// again below in publish order and at the client's pace;
				// mochi would send it all at once, in an order of its own
				// (by the second each message was created).
				h.disconnectedLocked(s, s.cl, false)
			}
			if !s.online {
				h.stats.Connected.Add(1)
			}
			s.cl, s.online, s.persistent = cl, true, persistent
			s.backlog, s.sending = nil, 0
			for i := range s.entries {
				s.entries[i].backlog = false
			}
			h.connectedLocked(s, cl)
			s.mu.Unlock()
		}
	}
	if s == nil && persistent {
		s = newSession(cl.ID, cl, store.Session{})
		s.online, s.persistent = true, true
		h.mu.Lock()
		old := h.sessions[cl.ID]
		h.sessions[cl.ID] = s
		h.mu.Unlock()
		h.stats.Sessions.Add(1)
		h.stats.Connected.Add(1)
		if old != nil {
			// Another connection with the same client ID got here at the
			// same moment; the later one starts afresh, as in mochi.
			old.mu.Lock()
			h.endLocked(old)
			old.mu.Unlock()
			h.w.async(store.SessionOp{Kind: store.DeleteSession, ClientID: cl.ID})
		}
		s.mu.Lock()
		h.connectedLocked(s, cl)
		s.mu.Unlock()
	}
}

// connectedLocked records the session as connected through cl.
func (h *Hook) connectedLocked(s *session, cl *mqtt.Client) {
	d, _ := h.expiry(cl)
	s.rec = store.Session{ClientID: cl.ID, Username: bytes.Clone(cl.Properties.Username), Listener: cl.Net.Listener,
		ProtocolVersion: cl.Properties.ProtocolVersion, ExpiryInterval: uint32(d / time.Second)}
	rec := s.rec
	h.w.async(store.SessionOp{Kind: store.PutSession, Session: &rec})
}

// identityOf is the enforced identity the session's client had.
func (h *Hook) identityOf(s *session) string { return h.identity(s.cl) }

// claim asks the store for a session another node held and restores it.
func (h *Hook) claim(id string, now time.Time) *session {
	if cur, ok := h.server.Clients.Get(id); ok && !cur.Closed() {
		return nil // connected here already (with a clean session): mochi decides
	}
	ctx, cancel := ctx()
	defer cancel()
	st, err := h.st.ClaimSession(ctx, id, now)
	if err != nil {
		h.Log.Warn("could not look the client's session up in the store", "client", id, "error", err)
		return nil
	}
	if st == nil {
		return nil
	}
	return h.take(st, now)
}

// take restores a session claimed from the store, after the sequence
// numbers of its messages and in place of any stale copy.
func (h *Hook) take(st *store.StoredSession, now time.Time) *session {
	for _, m := range st.Messages {
		for cur := h.seq.Load(); m.Seq >= cur && !h.seq.CompareAndSwap(cur, m.Seq+1); cur = h.seq.Load() {
		}
	}
	if cur, ok := h.server.Clients.Get(st.Session.ClientID); ok && cur.Closed() {
		h.dropClient(cur) // a stale copy of the session from before another node took it
	}
	return h.restore(st, now)
}

// Adopt takes over the sessions of node, a node of the cluster that has
// stopped, as sessions whose clients are away: they are owed what is
// published for them from now on, here. It returns how many it took; a
// store that is not shared, or a node still running, gives none.
func (h *Hook) Adopt(ctx context.Context, node string) (int, error) {
	ad, ok := h.st.(store.SessionAdopter)
	if !ok {
		return 0, nil
	}
	now := h.clock.Now()
	taken, err := ad.AdoptSessions(ctx, node, now)
	n := 0
	for _, st := range taken {
		if cur, ok := h.server.Clients.Get(st.Session.ClientID); ok && !cur.Closed() {
			continue // its client connected here meanwhile and claimed it
		}
		s := h.take(st, now)
		n++
		if h.opts.Restored != nil {
			h.opts.Restored(s.cl)
		}
	}
	if err != nil {
		return n, fmt.Errorf("adopt the sessions of node %s: %w", node, err)
	}
	return n, nil
}

// OnSessionEstablished delivers, after the CONNACK, what a returning
// session is owed: the messages read back from the store, in order, at
// most a window of them unacknowledged at once. The packet ids of those
// sent on an earlier connection are reserved first, since they are resent
// under the same ids.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	s := h.session(cl.ID)
	if s == nil {
		return
	}
	if !h.prepareBacklog(s, cl) {
		return
	}
	h.drain(s, cl)
}

// prepareBacklog reads back what cl's session is owed; the session's
// lock is not held while the store is read (the store's commits may wait
// for jobshook, which may wait for the session).
func (h *Hook) prepareBacklog(s *session, cl *mqtt.Client) bool {
	s.mu.Lock()
	h.writeUnwrittenLocked(s, time.Time{}, true) // read back below with the rest
	owed := map[uint64]bool{}
	for _, e := range s.entries {
		if !e.inflight {
			owed[e.seq] = true
		}
	}
	mine := s.cl == cl && !s.gone
	s.mu.Unlock()
	if !mine || len(owed) == 0 {
		return false
	}
	ctx, cancel := ctx()
	defer cancel()
	err := h.w.flush(ctx)
	var stored []store.QueuedMessage
	if err == nil {
		stored, err = h.st.QueuedMessages(ctx, s.id)
	}
	if err != nil {
		h.Log.Warn("could not read a returning client's queued messages; they stay queued", "client", s.id, "error", err)
		return false
	}
	data := make(map[uint64][]byte, len(stored))
	for _, m := range stored {
		data[m.Seq] = m.Data
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != cl || s.gone {
		return false
	}
	s.window = deliveryWindow
	if rm := int(cl.Properties.Props.ReceiveMaximum); cl.Properties.ProtocolVersion == 5 && rm > 0 {
		s.window = min(s.window, rm)
	}
	var ops []store.SessionOp
	for i := 0; i < len(s.entries); i++ {
		e := &s.entries[i]
		if e.inflight || !owed[e.seq] {
			continue // sent on this connection already, or queued after the read
		}
		b, ok := data[e.seq]
		var pk packets.Packet
		if ok {
			pk, _, err = decodeMessage(b)
		}
		if !ok || err != nil {
			// Its write failed (the store said so when it happened), or
			// the stored bytes are damaged: nothing to deliver.
			h.Log.Warn("dropped a queued message that is not in the store", "client", s.id, "seq", e.seq, "error", err)
			h.dropLocked(s, i, &ops)
			i--
			continue
		}
		pk.Origin = ""
		if e.sent && e.packetID != 0 {
			if _, taken := cl.State.Inflight.Get(e.packetID); taken {
				e.packetID = 0 // in use on this connection already: it goes under a new id
			} else {
				res := pk
				res.PacketID, res.FixedHeader.Dup, res.ProtocolVersion = e.packetID, true, cl.Properties.ProtocolVersion
				if cl.State.Inflight.Set(res) {
					atomic.AddInt64(&h.server.Info.Inflight, 1)
				}
			}
		}
		s.backlog = append(s.backlog, pending{seq: e.seq, pk: pk})
	}
	h.w.async(ops...)
	return len(s.backlog) > 0
}

// OnDisconnect ends a session that does not outlive its connection, and
// keeps one that does for its expiry: what is in flight becomes owed, to
// be sent again with DUP when the client is back.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Conn == nil || cl.Net.Inline || cl.IsTakenOver() {
		return
	}
	s := h.session(cl.ID)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h.disconnectedLocked(s, cl, expire)
}

func (h *Hook) disconnectedLocked(s *session, cl *mqtt.Client, expire bool) {
	if s.cl != cl || !s.online || s.gone {
		return
	}
	if expire || !s.persistent {
		h.endLocked(s)
		h.w.async(store.SessionOp{Kind: store.DeleteSession, ClientID: s.id})
		return
	}
	var ops []store.SessionOp
	// Everything in flight is owed now. mochi's in-flight map holds the
	// packets: their stored copies learn the ids they went under, and a
	// message the hook did not know of (a jobs reply) joins the queue.
	for i := range s.entries {
		e := &s.entries[i]
		e.inflight, e.backlog = false, false
	}
	for _, tk := range cl.State.Inflight.GetAll(false) {
		if cl.State.Inflight.Delete(tk.PacketID) {
			atomic.AddInt64(&h.server.Info.Inflight, -1)
		}
		if tk.FixedHeader.Type != packets.Publish || tk.FixedHeader.Qos == 0 {
			continue
		}
		seq, known := s.byPacket[tk.PacketID]
		var e *entry
		if known {
			if i := s.find(seq); i >= 0 {
				e = &s.entries[i]
			}
		} else if tk.Expiry < 0 {
			continue // held back by mochi's flow control; OnQosPublish queued it
		}
		// A message mochi marked parked (expiry -1) went out only if the
		// flow hook says so; its own expiry is worked out again.
		sent := tk.Expiry >= 0 || h.opts.Sent == nil || h.opts.Sent(cl, tk)
		m := meta{sent: sent, created: tk.Created, expiry: tk.Expiry}
		if sent {
			m.packetID = tk.PacketID
		}
		if m.expiry < 0 {
			m.expiry = MessageExpiry(tk, h.server.Options.Capabilities.MaximumMessageExpiryInterval)
		}
		if e == nil {
			if known {
				continue
			}
			seq = h.nextSeq()
			h.appendLocked(s, entry{seq: seq, sent: sent, packetID: m.packetID})
		} else {
			m.replaceable = e.replaceable
			e.unwritten = nil
			e.sent, e.packetID = sent, m.packetID
		}
		data, err := encodeMessage(tk, m)
		if err != nil {
			continue
		}
		ops = append(ops, store.SessionOp{Kind: store.PutMessage, ClientID: s.id, Message: &store.QueuedMessage{Seq: seq, Data: data}})
	}
	h.writeUnwrittenLocked(s, time.Time{}, true) // those whose sending failed
	clear(s.byPacket)
	s.backlog, s.sending = nil, 0
	s.online = false
	d, _ := h.expiry(cl)
	s.expiresAt = h.clock.Now().Add(d)
	s.rec.ExpiryInterval = uint32(d / time.Second)
	s.rec.ExpiresAt = s.expiresAt.Unix()
	rec := s.rec
	ops = append(ops, store.SessionOp{Kind: store.PutSession, Session: &rec})
	offline(cl)
	h.stats.Connected.Add(-1)
	h.w.async(ops...)
}

// endLocked forgets a session that ended; its store deletion is the
// caller's.
func (h *Hook) endLocked(s *session) {
	if s.gone {
		return
	}
	s.gone = true
	h.mu.Lock()
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
	h.mu.Unlock()
	h.stats.Sessions.Add(-1)
	if s.online {
		h.stats.Connected.Add(-1)
	}
	h.stats.Queued.Add(-int64(len(s.entries)))
	s.entries, s.backlog = nil, nil
	clear(s.byPacket)
}

// dropClient takes an offline session's client out of the server: its
// subscriptions out of the topic index, itself out of the client list.
// mochi's own expiry leaves the subscriptions behind.
func (h *Hook) dropClient(cl *mqtt.Client) {
	h.unsubscribe(cl)
	if cur, ok := h.server.Clients.Get(cl.ID); ok && cur == cl {
		h.server.Clients.Delete(cl.ID)
	}
}

// Release forgets the session of id without touching the store: another
// node of a cluster claimed it when its client connected there. The
// caller closes the session's client and takes it out of the server.
func (h *Hook) Release(id string) {
	s := h.session(id)
	if s == nil {
		return
	}
	s.mu.Lock()
	h.endLocked(s)
	s.mu.Unlock()
}

// OnClientExpired ends a session mochi expired before the hook did, and
// takes the client's subscriptions out of the topic index, which mochi
// does not.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	if s := h.session(cl.ID); s != nil {
		s.mu.Lock()
		if s.cl == cl && !s.online {
			h.expireLocked(s)
		}
		s.mu.Unlock()
	}
	if cur, ok := h.server.Clients.Get(cl.ID); ok && cur == cl && cl.Closed() {
		h.unsubscribe(cl)
	}
}

// unsubscribe takes cl's subscriptions out of the topic index.
func (h *Hook) unsubscribe(cl *mqtt.Client) {
	for filter := range cl.State.Subscriptions.GetAll() {
		if h.server.Topics.Unsubscribe(filter, cl.ID) {
			atomic.AddInt64(&h.server.Info.Subscriptions, -1)
		}
		cl.State.Subscriptions.Delete(filter)
	}
}

func (h *Hook) expireLocked(s *session) {
	h.endLocked(s)
	h.stats.Expired.Add(1)
	if cur, ok := h.server.Clients.Get(s.id); ok && cur == s.cl && cur.Closed() {
		h.dropClient(cur)
	}
	h.w.async(store.SessionOp{Kind: store.DeleteSession, ClientID: s.id})
}

// expiryLoop ends the sessions whose clients stayed away past their
// expiry, every second.
func (h *Hook) expiryLoop() {
	defer h.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	// On a store shared with other nodes, the sessions of a node that
	// stopped for good are expired by the others.
	var shared <-chan time.Time
	if h.opts.Claim {
		st := time.NewTicker(time.Minute)
		defer st.Stop()
		shared = st.C
	}
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.sweep()
		case <-shared:
			ctx, cancel := ctx()
			if _, err := h.st.SweepSessions(ctx, h.clock.Now()); err != nil {
				h.Log.Warn("could not expire the sessions of other nodes", "error", err)
			}
			cancel()
		}
	}
}

// lostDisconnect is how long a session's client may be closed before the
// hook treats it as disconnected without mochi saying so (mochi does not
// when a connection fails between its CONNACK and its first read).
const lostDisconnect = 5 * time.Second

func (h *Hook) sweep() {
	now := h.clock.Now()
	h.mu.RLock()
	all := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.RUnlock()
	for _, s := range all {
		s.mu.Lock()
		switch {
		case s.gone:
		case !s.online && !now.Before(s.expiresAt):
			h.expireLocked(s)
		case s.online && s.cl.Closed() && time.Since(time.Unix(s.cl.StopTime(), 0)) > lostDisconnect:
			h.disconnectedLocked(s, s.cl, false)
		}
		s.mu.Unlock()
	}
	for _, left := range h.fanouts.stale(time.Now(), time.Minute) {
		h.w.async(deletes(left)...)
	}
	h.writeLazy(time.Now())
}
