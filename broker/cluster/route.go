package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/nats-io/nats.go"

	"github.com/jobsbroker/jobsbroker/broker/sessions"
)

// ClientID is the ID of the inline client through which a node delivers
// what other nodes' clients published; mochi hooks that must tell such
// publishes apart compare cl.ID with it.
const ClientID = "jobsbroker-cluster"

// A message on NATS is a header (format, the sending run's boot id, a
// sequence number: together the message's identity) and the publish in
// sessions.EncodePublish's encoding.
const (
	wireFormat = 1
	wireHeader = 1 + 8 + 8
)

type msgID [16]byte

var errNotConnected = errors.New("not connected to NATS")

// workers is how many goroutines deliver received publishes. A topic's
// publishes always go to the same one, so that they stay in order.
const workers = 8

// dedupWindow is how many message identities a node remembers to drop
// copies: the copies of a publish arrive together.
const dedupWindow = 1 << 16

// reconcileEvery is how often the node's NATS subscriptions are checked
// against the clients mochi holds (a session dropped without a hook call
// leaves interest behind until then).
const reconcileEvery = 10 * time.Second

// Hook is the mochi hook of a Node.
type Hook struct {
	mqtt.HookBase
	n      *Node
	server *mqtt.Server
	client *mqtt.Client // delivers received publishes

	imu      sync.Mutex
	byClient map[string]map[string]struct{} // client id -> filters
	subs     map[string]*interest           // subject -> NATS subscription

	dmu   sync.Mutex       // orders delivery: taken while a message is checked and queued
	seen  map[msgID]uint64 // 0: queued; then the delivery's mark (see owed)
	ring  []msgID
	next  int
	queue [workers]chan queued

	sessions   Sessions // nil: no persistent sessions to answer for
	held       *held
	adoptMu    sync.Mutex
	reloadHeld chan struct{}

	marks atomic.Uint64 // counts deliveries started (see owed)
	hmu   sync.Mutex
	since map[string]uint64 // persistent session held here -> marks when it came

	inbox   string // replies to publishes that wait for several nodes
	rmu     sync.Mutex
	waiters map[string]chan *nats.Msg
	rseq    uint64

	wg   sync.WaitGroup
	done chan struct{}
	once sync.Once
}

// SetSessions gives the hook the node's persistent sessions, before the
// hook is added to the server: a QoS 1 publish is then acknowledged only
// once every persistent session of the cluster subscribed to it is owed
// it (see held.go).
func (h *Hook) SetSessions(s Sessions) { h.sessions = s }

// queued is a received publish waiting for its worker; a copy of one
// already queued that carries a request for confirmation only confirms.
type queued struct {
	m       *nats.Msg
	confirm bool
}

type interest struct {
	n   int
	sub *nats.Subscription
}

func newHook(n *Node, server *mqtt.Server) *Hook {
	h := &Hook{n: n, server: server, byClient: map[string]map[string]struct{}{}, subs: map[string]*interest{},
		seen: make(map[msgID]uint64, dedupWindow), ring: make([]msgID, dedupWindow), done: make(chan struct{}),
		held: newHeld(), since: map[string]uint64{}, reloadHeld: make(chan struct{}, 1), waiters: map[string]chan *nats.Msg{}, inbox: nats.NewInbox()}
	h.client = server.NewClient(nil, mqtt.LocalListener, ClientID, true)
	h.client.Properties.ProtocolVersion = 5
	return h
}

// IsReplica reports whether cl is the client through which the node
// delivers other nodes' publishes.
func (h *Hook) IsReplica(cl *mqtt.Client) bool { return cl == h.client }

// ID returns the hook's identifier.
func (h *Hook) ID() string { return "jobsbroker-cluster" }

// Provides lists the hook methods the hook answers.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnPublish,
		mqtt.OnWillSent,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnClientExpired,
	}, []byte{b})
}

// Init subscribes on NATS to the node's own subjects and to the filters
// of the sessions already in the server (restored from the store), and
// starts the delivery workers.
func (h *Hook) Init(any) error {
	h.Log = h.n.log
	for i := range h.queue {
		h.queue[i] = make(chan queued, 1024)
		h.wg.Add(1)
		go h.deliver(h.queue[i])
	}
	n := h.n
	for _, s := range []struct {
		subject string
		fn      nats.MsgHandler
	}{{n.subject("retained"), h.receive}, {n.subject("connected"), h.connected}, {n.subject("held"), h.receiveHeld},
		{n.oweSubject(n.opts.NodeID), h.receiveOwe}, {h.inbox + ".*", h.reply}} {
		sub, err := n.nc.Subscribe(s.subject, s.fn)
		if err != nil {
			return err
		}
		_ = sub.SetPendingLimits(-1, -1)
		n.mu.Lock()
		n.fixed = append(n.fixed, sub)
		n.mu.Unlock()
	}
	for id, cl := range h.server.Clients.GetAll() {
		if !cl.Net.Inline {
			h.set(id, filters(cl))
		}
	}
	h.wg.Add(1)
	go h.reconcileLoop()
	if err := h.flush(); err != nil {
		return err
	}
	if err := h.loadHeld(); err != nil {
		// Publishes rescue what the index misses; it is read again soon.
		h.Log.Warn("could not read the cluster's persistent sessions; retrying", "error", err)
		h.resync()
	}
	return nil
}

// resync reads again what hints may have been missed: NATS came back.
func (h *Hook) resync() {
	select {
	case h.reloadHeld <- struct{}{}:
	default:
	}
}

// reply hands an answer to a publish to the publish waiting for it.
func (h *Hook) reply(m *nats.Msg) {
	tok := m.Subject[len(h.inbox)+1:]
	h.rmu.Lock()
	ch := h.waiters[tok]
	h.rmu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default: // more copies than the publish waits for
		}
	}
}

func (h *Hook) stop() {
	h.once.Do(func() {
		h.rmu.Lock()
		close(h.done)
		h.rmu.Unlock()
		h.wg.Wait()
	})
}

// messageSubject is where a publish on topic travels.
func (h *Hook) messageSubject(topic string) string { return topicSubject(h.n.subject("msg"), topic) }

// filters returns the filters cl subscribes to.
func filters(cl *mqtt.Client) map[string]struct{} {
	out := map[string]struct{}{}
	for f := range cl.State.Subscriptions.GetAll() {
		out[f] = struct{}{}
	}
	return out
}

// set makes filters the interest of client id, subscribing on NATS to
// what no other client wanted and unsubscribing from what nobody wants
// any more.
func (h *Hook) set(id string, fs map[string]struct{}) {
	h.imu.Lock()
	defer h.imu.Unlock()
	old := h.byClient[id]
	for f := range fs {
		if _, ok := old[f]; !ok {
			h.addLocked(f)
		}
	}
	for f := range old {
		if _, ok := fs[f]; !ok {
			h.removeLocked(f)
		}
	}
	if len(fs) == 0 {
		delete(h.byClient, id)
	} else {
		h.byClient[id] = fs
	}
}

func (h *Hook) add(id string, fs ...string) {
	h.imu.Lock()
	defer h.imu.Unlock()
	cur := h.byClient[id]
	if cur == nil {
		cur = map[string]struct{}{}
		h.byClient[id] = cur
	}
	for _, f := range fs {
		if _, ok := cur[f]; !ok {
			cur[f] = struct{}{}
			h.addLocked(f)
		}
	}
}

func (h *Hook) remove(id string, fs ...string) {
	h.imu.Lock()
	defer h.imu.Unlock()
	cur := h.byClient[id]
	for _, f := range fs {
		if _, ok := cur[f]; ok {
			delete(cur, f)
			h.removeLocked(f)
		}
	}
	if len(cur) == 0 {
		delete(h.byClient, id)
	}
}

func (h *Hook) addLocked(filter string) {
	for _, subj := range filterSubjects(h.n.subject("msg"), filter) {
		if in := h.subs[subj]; in != nil {
			in.n++
			continue
		}
		sub, err := h.n.nc.Subscribe(subj, h.receive)
		if err != nil {
			h.Log.Error("cannot subscribe on NATS; publishes of other nodes' clients do not reach this one", "filter", filter, "error", err)
			continue
		}
		_ = sub.SetPendingLimits(-1, -1)
		h.subs[subj] = &interest{n: 1, sub: sub}
	}
}

func (h *Hook) removeLocked(filter string) {
	for _, subj := range filterSubjects(h.n.subject("msg"), filter) {
		in := h.subs[subj]
		if in == nil {
			continue
		}
		if in.n--; in.n == 0 {
			delete(h.subs, subj)
			if err := in.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				h.Log.Warn("cannot unsubscribe on NATS", "subject", subj, "error", err)
			}
		}
	}
}

// Subjects returns the NATS subjects the node subscribes to for its
// clients' filters, sorted.
func (h *Hook) Subjects() []string {
	h.imu.Lock()
	defer h.imu.Unlock()
	return slices.Sorted(maps.Keys(h.subs))
}

// flush waits until NATS has the node's subscriptions, so that a SUBACK
// sent after it is followed by other nodes' publishes.
func (h *Hook) flush() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return h.n.nc.FlushWithContext(ctx)
}

// reconcileLoop drops the interest of clients mochi no longer holds, and
// reads the index of the other nodes' persistent sessions again every
// heldReload and when asked (NATS came back: hints were missed).
func (h *Hook) reconcileLoop() {
	defer h.wg.Done()
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	reload := time.NewTicker(heldReload)
	defer reload.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
			h.reconcile()
		case <-reload.C:
			h.reloadIndex()
		case <-h.reloadHeld:
			h.reloadIndex()
		}
	}
}

func (h *Hook) reconcile() {
	h.imu.Lock()
	ids := slices.Collect(maps.Keys(h.byClient))
	h.imu.Unlock()
	for _, id := range ids {
		cl, ok := h.server.Clients.Get(id)
		if !ok {
			h.set(id, nil)
			continue
		}
		h.set(id, filters(cl))
	}
}

// OnSubscribed subscribes on NATS to the filters mochi granted, before
// mochi sends the SUBACK.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	var fs []string
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code {
			fs = append(fs, f.Filter)
		}
	}
	h.add(cl.ID, fs...)
	if err := h.flush(); err != nil {
		h.Log.Warn("NATS did not confirm the node's subscriptions", "client", cl.ID, "error", err)
	}
	h.announce(cl)
}

// OnUnsubscribed drops the client's interest in the filters.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	fs := make([]string, 0, len(pk.Filters))
	for _, f := range pk.Filters {
		fs = append(fs, f.Filter)
	}
	h.remove(cl.ID, fs...)
	h.announce(cl)
}

// OnSessionEstablished takes the subscriptions a client came back to (a
// session resumed here, or claimed from another node) as its interest.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.set(cl.ID, filters(cl))
	if err := h.flush(); err != nil {
		h.Log.Warn("NATS did not confirm the node's subscriptions", "client", cl.ID, "error", err)
	}
	h.announce(cl)
}

// OnDisconnect drops the interest of a client whose session ends.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline || !expire || cl.IsTakenOver() {
		return
	}
	if cur, ok := h.server.Clients.Get(cl.ID); ok && cur != cl {
		return
	}
	h.set(cl.ID, nil)
	h.announce(cl)
}

// OnClientExpired drops the interest of an expired session.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	if cur, ok := h.server.Clients.Get(cl.ID); ok && cur != cl {
		return
	}
	h.set(cl.ID, nil)
	h.announce(cl)
}

// OnPublish sends a client's publish to the other nodes; a QoS 1 publish
// is acknowledged to its publisher only once NATS took it (see the
// package documentation). It runs after the hooks that consume publishes
// (jobs requests go no further) and after the sessions hook wrote the
// publish for this node's persistent sessions.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if err := h.send(pk); err != nil {
		h.n.stats.Refused.Add(1)
		code := packets.Code{Code: packets.ErrUnspecifiedError.Code, Reason: "the broker's nodes cannot reach each other (NATS): " + err.Error()}
		h.Log.Warn("refused a publish: NATS did not take it", "client", cl.ID, "topic", pk.TopicName, "error", err)
		if cl.Properties.ProtocolVersion < 5 {
			if pk.FixedHeader.Qos > 0 {
				cl.Stop(code) // MQTT 3.1.1 has no negative PUBACK: no acknowledgement at all
			}
			return pk, packets.ErrRejectPacket
		}
		return pk, code
	}
	return pk, nil
}

// OnWillSent sends a will mochi published to the other nodes.
func (h *Hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	pk.FixedHeader.Qos = 0 // nobody waits for it
	if err := h.send(pk); err != nil {
		h.Log.Warn("could not send a will to the other nodes", "client", cl.ID, "topic", pk.TopicName, "error", err)
	}
}

// send publishes pk on NATS; a retained publish also goes to every node.
func (h *Hook) send(pk packets.Packet) error {
	body, err := sessions.EncodePublish(pk)
	if err != nil {
		return err
	}
	data := make([]byte, wireHeader+len(body))
	data[0] = wireFormat
	copy(data[1:9], h.n.boot[:])
	binary.BigEndian.PutUint64(data[9:17], h.n.seq.Add(1))
	copy(data[wireHeader:], body)
	nc := h.n.nc
	if pk.FixedHeader.Qos > 0 && !nc.IsConnected() {
		return errNotConnected // refused at once, rather than after AckTimeout
	}
	if pk.FixedHeader.Retain {
		if err := nc.Publish(h.n.subject("retained"), data); err != nil {
			return err
		}
	}
	subj := h.messageSubject(pk.TopicName)
	h.n.stats.Sent.Add(1)
	if pk.FixedHeader.Qos == 0 {
		return nc.Publish(subj, data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.n.opts.AckTimeout)
	defer cancel()
	if waiting := h.held.match(pk.TopicName, h.n.opts.NodeID); len(waiting) > 0 {
		return h.sendHeld(ctx, pk, subj, data, waiting)
	}
	_, err = nc.RequestWithContext(ctx, subj, data)
	switch {
	case err == nil, errors.Is(err, nats.ErrNoResponders):
		return nil
	case errors.Is(err, context.DeadlineExceeded) && nc.IsConnected():
		// NATS has it; the node that wants it is slow to say so.
		h.n.stats.Unconfirmed.Add(1)
		return nil
	}
	return err
}

// sendHeld sends a QoS 1 publish that persistent sessions of other nodes
// subscribe to, and waits until each of their nodes delivered it, or the
// sessions were rescued (see held.go).
func (h *Hook) sendHeld(ctx context.Context, pk packets.Packet, subj string, data []byte, waiting map[string][]string) error {
	h.rmu.Lock()
	h.rseq++
	tok := strconv.FormatUint(h.rseq, 36)
	ch := make(chan *nats.Msg, 2*len(waiting)+8)
	h.waiters[tok] = ch
	h.rmu.Unlock()
	defer func() {
		h.rmu.Lock()
		delete(h.waiters, tok)
		h.rmu.Unlock()
	}()
	nc := h.n.nc
	if err := nc.PublishMsg(&nats.Msg{Subject: subj, Reply: h.inbox + "." + tok, Data: data}); err != nil {
		return err
	}
	if !h.confirmed(ctx, pk, data, ch, waiting) {
		if !nc.IsConnected() {
			return errNotConnected
		}
		return errUnowed
	}
	return nil
}

// errUnowed refuses a publish that persistent sessions of another node
// subscribe to, when neither that node nor the store made them owe it
// within the wait.
var errUnowed = errors.New("a node holding persistent sessions subscribed to the topic did not answer, and the store did not take the message for them")

// receive takes a publish from NATS: the first copy is queued for its
// topic's worker, the others are dropped. Checking and queueing under one
// lock keeps each sender's publishes in order even when they arrive
// through several subscriptions (each has its own goroutine).
func (h *Hook) receive(m *nats.Msg) {
	if len(m.Data) < wireHeader || m.Data[0] != wireFormat {
		h.n.stats.Undecodable.Add(1)
		return
	}
	var id msgID
	copy(id[:], m.Data[1:wireHeader])
	if bytes.Equal(id[:8], h.n.boot[:]) {
		return
	}
	f := fnv.New32a()
	f.Write([]byte(sessions.PublishTopic(m.Data[wireHeader:])))
	q := h.queue[f.Sum32()%workers]
	item := queued{m: m}
	h.dmu.Lock()
	defer h.dmu.Unlock()
	if _, dup := h.seen[id]; dup {
		h.n.stats.Duplicates.Add(1)
		if m.Reply == "" {
			return
		}
		item.confirm = true // behind the first copy in the same worker
	} else {
		delete(h.seen, h.ring[h.next])
		h.ring[h.next] = id
		h.next = (h.next + 1) % len(h.ring)
		h.seen[id] = 0
	}
	select {
	case q <- item:
	case <-h.done:
	}
}

// deliver hands received publishes to mochi, in order, and answers the
// sender of a QoS 1 publish once mochi has delivered it.
func (h *Hook) deliver(q chan queued) {
	defer h.wg.Done()
	for {
		select {
		case <-h.done:
			return
		case it := <-q:
			if !it.confirm {
				start := h.marks.Add(1)
				h.inject(it.m)
				h.delivered(it.m, start)
			}
			if it.m.Reply != "" {
				if err := it.m.Respond([]byte(h.n.opts.NodeID)); err != nil {
					h.Log.Debug("could not confirm a delivery", "error", err)
				}
			}
		}
	}
}

func (h *Hook) inject(m *nats.Msg) {
	pk, err := sessions.DecodePublish(m.Data[wireHeader:])
	if err != nil {
		h.n.stats.Undecodable.Add(1)
		h.Log.Warn("dropped a publish from another node that does not decode", "error", err)
		return
	}
	pk.FixedHeader.Type = packets.Publish
	if pk.FixedHeader.Qos > 0 {
		pk.PacketID = 1 // mochi checks one is there; the inline client never acknowledges
	}
	if err := h.server.InjectPacket(h.client, pk); err != nil {
		h.Log.Warn("could not deliver a publish from another node", "topic", pk.TopicName, "error", err)
	}
	h.n.stats.Received.Add(1)
}
