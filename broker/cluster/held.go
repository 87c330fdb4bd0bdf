package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/nats-io/nats.go"

	"github.com/jobsbroker/jobsbroker/broker/sessions"
	"github.com/jobsbroker/jobsbroker/store"
)

// A QoS 1 publish is acknowledged only once every persistent session in
// the cluster subscribed to it is owed it. Each node keeps an index of the
// other nodes' persistent sessions (their QoS 1 filters and the node that
// holds each), read from the store at start, after NATS comes back and
// every minute, and kept current by "held" hints: the node that takes a
// session (its client connects, or it adopts it), or whose session
// subscribes, unsubscribes or ends, tells the others. A publish that
// matches sessions of other nodes waits for each of those nodes to answer
// that it delivered it (the node wrote it for its sessions first). A node
// that does not answer soon (it was killed: NATS knows at once that it has
// no subscriptions left) is rescued: the publishing node asks the store
// which node holds each of those sessions now, takes over the sessions of
// a node that has stopped (as the nodes do a few seconds later anyway),
// and has the holder write the message for them: itself, or another node
// through its "owe" subject. A session's row is locked by that write, so
// that a client claiming its session on another node at the same moment
// either reads the message or makes the write fail and the publishing
// node ask again. A message may so reach a session twice (QoS 1 allows
// it); it is not lost.

// Sessions is what the cluster needs of the node's persistent sessions
// (sessions.Hook).
type Sessions interface {
	Persistent(id string) bool
	Owe(pk packets.Packet, ids []string, local bool) ([]string, error)
	Adopt(ctx context.Context, node string) (int, error)
	SessionHolders(ctx context.Context, ids []string) (map[string]string, error)
	HeldSubscriptions(ctx context.Context) ([]store.HeldSubscription, error)
}

// How long a publish waits for a node holding sessions it matches before
// it rescues them, and between attempts.
const (
	rescueAfter = 250 * time.Millisecond
	rescueRetry = 20 * time.Millisecond
	oweTimeout  = time.Second
	heldReload  = time.Minute
)

// held is the index of the other nodes' persistent sessions.
type held struct {
	mu      sync.RWMutex
	topics  *mqtt.TopicsIndex
	node    map[string]string   // client id -> node holding it
	filters map[string][]string // client id -> its filters in topics
}

func newHeld() *held {
	return &held{topics: mqtt.NewTopicsIndex(), node: map[string]string{}, filters: map[string][]string{}}
}

// setLocked makes the client's entry node and filters (none: no entry).
func (x *held) setLocked(id, node string, filters []string) {
	for _, f := range x.filters[id] {
		x.topics.Unsubscribe(f, id)
	}
	delete(x.filters, id)
	delete(x.node, id)
	if node == "" {
		return
	}
	x.node[id] = node
	x.filters[id] = filters
	for _, f := range filters {
		x.topics.Subscribe(id, packets.Subscription{Filter: f, Qos: 1})
	}
}

// known reports whether the index has an entry for id.
func (x *held) known(id string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.node[id]
	return ok
}

// match returns, by node other than self, the sessions subscribed to
// topic.
func (x *held) match(topic, self string) map[string][]string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.node) == 0 {
		return nil
	}
	var out map[string][]string
	for id := range x.topics.Subscribers(topic).Subscriptions {
		n := x.node[id]
		if n == "" || n == self {
			continue
		}
		if out == nil {
			out = map[string][]string{}
		}
		out[n] = append(out[n], id)
	}
	return out
}

// heldHint is what travels on the "held" subject: node holds client's
// session with these QoS 1 filters, or (Gone) holds no session of it.
type heldHint struct {
	Node    string   `json:"n"`
	Client  string   `json:"c"`
	Filters []string `json:"f,omitempty"`
	Gone    bool     `json:"g,omitempty"`
}

// qos1Filters are the filters of cl that a publish is stored for.
func qos1Filters(cl *mqtt.Client) []string {
	var out []string
	for f, sub := range cl.State.Subscriptions.GetAll() {
		if sub.Qos > 0 && !isShared(f) {
			out = append(out, f)
		}
	}
	return out
}

func isShared(f string) bool { return len(f) > 7 && f[:7] == "$share/" }

// announce tells the other nodes what this node holds of cl's session.
func (h *Hook) announce(cl *mqtt.Client) {
	if cl.Net.Inline {
		return
	}
	h.announceFrom(cl.ID, cl)
}

// subscriber is the client holding the subscriptions of cl's session
// while cl connects: the one of the session it resumes, if any.
func (h *Hook) subscriber(cl *mqtt.Client) *mqtt.Client {
	if prev, ok := h.server.Clients.Get(cl.ID); ok && prev != cl {
		return prev
	}
	return cl
}

// announceFrom tells the other nodes what this node holds of id's
// session, whose subscriptions subs holds.
func (h *Hook) announceFrom(id string, subs *mqtt.Client) {
	if h.sessions == nil || subs.Net.Inline {
		return
	}
	hint := heldHint{Node: h.n.opts.NodeID, Client: id}
	if h.sessions.Persistent(id) {
		hint.Filters = qos1Filters(subs)
		// Deliveries from now on reach the session (later is safe: a
		// publish owed to it again comes twice, not never).
		h.hmu.Lock()
		h.since[id] = h.marks.Load()
		h.hmu.Unlock()
	} else {
		h.forget(id)
		if !h.held.known(id) {
			return // nobody had a persistent session of it
		}
		hint.Gone = true
	}
	h.applyHeld(hint)
	data, _ := json.Marshal(hint)
	if err := h.n.nc.Publish(h.n.subject("held"), data); err != nil {
		h.Log.Warn("could not tell the other nodes of a persistent session's subscriptions", "client", id, "error", err)
	}
}

// receiveHeld applies another node's hint.
func (h *Hook) receiveHeld(m *nats.Msg) {
	var hint heldHint
	if err := json.Unmarshal(m.Data, &hint); err != nil || hint.Node == "" || hint.Client == "" {
		h.n.stats.Undecodable.Add(1)
		return
	}
	if hint.Node == h.n.opts.NodeID {
		return
	}
	h.applyHeld(hint)
}

func (h *Hook) applyHeld(hint heldHint) {
	h.held.mu.Lock()
	defer h.held.mu.Unlock()
	if hint.Gone {
		// Only the holder's word ends an entry: a hint from a node that
		// held the session before another took it comes too late.
		if h.held.node[hint.Client] == hint.Node {
			h.held.setLocked(hint.Client, "", nil)
		}
		return
	}
	h.held.setLocked(hint.Client, hint.Node, hint.Filters)
}

// loadHeld reads the index from the store.
func (h *Hook) loadHeld() error {
	if h.sessions == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subs, err := h.sessions.HeldSubscriptions(ctx)
	if errors.Is(err, sessions.ErrNotShared) {
		return nil
	}
	if err != nil {
		return err
	}
	by := map[string]*heldHint{}
	for _, s := range subs {
		if s.QoS == 0 || isShared(s.Filter) {
			continue
		}
		e := by[s.ClientID]
		if e == nil {
			e = &heldHint{Node: s.Node, Client: s.ClientID}
			by[s.ClientID] = e
		}
		e.Filters = append(e.Filters, s.Filter)
	}
	fresh := newHeld()
	for id, e := range by {
		fresh.setLocked(id, e.Node, e.Filters)
	}
	h.held.mu.Lock()
	h.held.topics, h.held.node, h.held.filters = fresh.topics, fresh.node, fresh.filters
	h.held.mu.Unlock()
	return nil
}

// reloadIndex reads the index from the store, logging a failure.
func (h *Hook) reloadIndex() {
	if err := h.loadHeld(); err != nil {
		h.Log.Warn("could not read the cluster's persistent sessions", "error", err)
	}
}

// confirmed waits until each node in waiting (node -> the sessions it
// holds that pk matches) has answered the publish, rescuing those that do
// not answer soon. It reports whether every one was answered for.
func (h *Hook) confirmed(ctx context.Context, pk packets.Packet, data []byte, replies <-chan *nats.Msg, waiting map[string][]string) bool {
	rescue := time.NewTimer(rescueAfter)
	defer rescue.Stop()
	rescued := false
	try := func() {
		for node, ids := range waiting {
			left := h.rescue(ctx, pk, data, ids)
			if len(left) == 0 {
				delete(waiting, node)
				rescued = true
			} else {
				waiting[node] = left
			}
		}
	}
	for len(waiting) > 0 {
		select {
		case m := <-replies:
			if m.Header.Get("Status") == "503" { // NATS: no node subscribes
				try()
				if len(waiting) > 0 {
					rescue.Reset(rescueRetry)
				}
				continue
			}
			delete(waiting, string(m.Data))
		case <-rescue.C:
			try()
			rescue.Reset(rescueAfter)
		case <-ctx.Done():
			return false
		}
	}
	if rescued {
		h.n.stats.Rescued.Add(1)
	}
	return true
}

// rescue makes pk owed to the sessions ids wherever the store says they
// are held, and returns those it could not (yet).
func (h *Hook) rescue(ctx context.Context, pk packets.Packet, data []byte, ids []string) []string {
	if h.sessions == nil {
		return nil
	}
	holders, err := h.sessions.SessionHolders(ctx, ids)
	if err != nil {
		h.Log.Warn("could not look up who holds the persistent sessions a publish is for", "error", err)
		return ids
	}
	by := map[string][]string{}
	for _, id := range ids {
		node, ok := holders[id]
		if !ok {
			h.applyHeld(heldHint{Node: h.held.nodeOf(id), Client: id, Gone: true}) // ended
			continue
		}
		by[node] = append(by[node], id)
	}
	var left []string
	for node, ids := range by {
		var done []string
		if node == h.n.opts.NodeID {
			done, err = h.sessions.Owe(pk, ids, true)
		} else {
			done, err = h.oweRemote(ctx, node, data, ids)
			if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				h.adopt(ctx, node)
			}
		}
		if err != nil && !errors.Is(err, nats.ErrNoResponders) {
			h.Log.Debug("could not have a publish owed to persistent sessions", "node", node, "error", err)
		}
		ok := make(map[string]bool, len(done))
		for _, id := range done {
			ok[id] = true
		}
		for _, id := range ids {
			if !ok[id] {
				left = append(left, id)
			}
		}
	}
	return left
}

// nodeOf is the node the index says holds id.
func (x *held) nodeOf(id string) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.node[id]
}

// adopt takes over the sessions of node if it has stopped; one adoption
// at a time.
func (h *Hook) adopt(ctx context.Context, node string) {
	h.adoptMu.Lock()
	defer h.adoptMu.Unlock()
	n, err := h.sessions.Adopt(ctx, node)
	if err != nil {
		h.Log.Warn("could not take over the sessions of a node that does not answer", "node", node, "error", err)
	}
	if n > 0 {
		h.Log.Info("took over the sessions of a node that stopped, for a publish owed to them", "node", node, "sessions", n)
	}
}

// The "owe" request to a node: the client ids (a count, then each with
// its length, two bytes each) and the message as it travels on NATS. The
// answer lists, the same way, the ids the node answers for.

func encodeIDs(ids []string) []byte {
	n := 2
	for _, id := range ids {
		n += 2 + len(id)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ids)))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
		b = append(b, id...)
	}
	return b
}

func decodeIDs(b []byte) ([]string, []byte, bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	ids := make([]string, 0, n)
	for range n {
		if len(b) < 2 {
			return nil, nil, false
		}
		l := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+l {
			return nil, nil, false
		}
		ids = append(ids, string(b[2:2+l]))
		b = b[2+l:]
	}
	return ids, b, true
}

// oweSubject is where node takes publishes owed to its sessions.
func (n *Node) oweSubject(node string) string { return n.subject("owe." + token(node)) }

// oweRemote asks node to write data's publish for its sessions ids, and
// returns those it answers for.
func (h *Hook) oweRemote(ctx context.Context, node string, data []byte, ids []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, oweTimeout)
	defer cancel()
	m, err := h.n.nc.RequestWithContext(ctx, h.n.oweSubject(node), append(encodeIDs(ids), data...))
	if err != nil {
		return nil, err
	}
	done, _, ok := decodeIDs(m.Data)
	if !ok {
		return nil, errors.New("undecodable answer")
	}
	return done, nil
}

// forget drops what the hook knows of a session no longer held here.
func (h *Hook) forget(id string) {
	h.hmu.Lock()
	delete(h.since, id)
	h.hmu.Unlock()
}

// delivered records that the publish m, whose delivery started at mark
// start, has been delivered (and written for the persistent sessions
// held here then).
func (h *Hook) delivered(m *nats.Msg, start uint64) {
	var id msgID
	copy(id[:], m.Data[1:wireHeader])
	h.dmu.Lock()
	if _, ok := h.seen[id]; ok {
		h.seen[id] = start
	}
	h.dmu.Unlock()
}

// owed splits ids, sessions a publish is owed to, into those that have it
// already (held here since before its delivery here started) and the
// others. A publish that is being delivered here is waited for a while.
func (h *Hook) owed(data []byte, ids []string) (have, rest []string) {
	var id msgID
	copy(id[:], data[1:wireHeader])
	var start uint64
	for deadline := time.Now().Add(oweTimeout / 2); ; {
		h.dmu.Lock()
		mark, queued := h.seen[id]
		h.dmu.Unlock()
		start = mark
		if !queued || mark > 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-h.done:
			return nil, ids
		case <-time.After(5 * time.Millisecond):
		}
	}
	if start == 0 {
		return nil, ids
	}
	h.hmu.Lock()
	defer h.hmu.Unlock()
	for _, c := range ids {
		if since, ok := h.since[c]; ok && since < start {
			have = append(have, c)
		} else {
			rest = append(rest, c)
		}
	}
	return have, rest
}

// receiveOwe writes a publish another node asks this one to owe to its
// sessions, and answers with the sessions it answers for. Sessions that
// were held here when the publish came through NATS have it already.
func (h *Hook) receiveOwe(m *nats.Msg) {
	ids, data, ok := decodeIDs(m.Data)
	if !ok || len(data) < wireHeader || data[0] != wireFormat || h.sessions == nil {
		h.n.stats.Undecodable.Add(1)
		return
	}
	pk, err := sessions.DecodePublish(data[wireHeader:])
	if err != nil {
		h.n.stats.Undecodable.Add(1)
		return
	}
	pk.FixedHeader.Type = packets.Publish
	h.rmu.Lock() // orders the Add before stop's Wait
	select {
	case <-h.done:
		h.rmu.Unlock()
		return
	default:
	}
	h.wg.Add(1)
	h.rmu.Unlock()
	go func() {
		defer h.wg.Done()
		done, ids := h.owed(data, ids)
		if len(ids) > 0 {
			more, err := h.sessions.Owe(pk, ids, false)
			if err != nil {
				h.Log.Warn("could not write a publish another node owes to this node's sessions", "topic", pk.TopicName, "error", err)
			}
			done = append(done, more...)
		}
		if err := m.Respond(encodeIDs(done)); err != nil {
			h.Log.Debug("could not answer an owed publish", "error", err)
		}
	}()
}
