package jobshook

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/topics"
)

// clientQueueLength is how many notifications may wait for one client;
// beyond it they are dropped for that client, as mochi drops what does not
// fit its own per-client queue.
const clientQueueLength = 1024

// Notifications are written to each subscriber by a goroutine of that
// subscriber's own, not by the dispatcher. mochi holds a client's lock
// while it writes to the client's connection, and taking a packet id for a
// QoS 1 delivery needs that lock: publishing through the broker would make
// the dispatcher, and through it every notification and eventually every
// commit, wait for the slowest connection. Here a stalled client holds up
// only its own queue.

// clientQueue holds the notifications waiting for one client.
type clientQueue struct {
	cl      *mqtt.Client
	pending []packets.Packet
	running bool
}

// outbox is the set of client queues.
type outbox struct {
	mu     sync.Mutex
	queues map[*mqtt.Client]*clientQueue
}

// fanOut queues a notification for every client subscribed to topic, one
// member of each shared subscription included, and reports how many
// clients it was queued for.
func (h *Hook) fanOut(topic string, payload []byte) int {
	return h.fanOutWith(topic, payload, nil)
}

// fanOutWith is fanOut with set, when not nil, completing each packet
// (properties, expiry) before it is queued.
func (h *Hook) fanOutWith(topic string, payload []byte, set func(pk *packets.Packet)) int {
	subs := h.server.Topics.Subscribers(topic)
	if len(subs.Shared) > 0 {
		subs.SelectShared()
		subs.MergeSharedSelected()
	}
	now := time.Now().Unix()
	n := 0
	if len(subs.InlineSubscriptions) > 0 {
		// In-process subscribers (mqtt.Server.Subscribe) are called here,
		// as mochi calls them from its publish path.
		inline, _ := h.server.Clients.Get(mqtt.InlineClientId)
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: notificationQoS},
			TopicName: topic, Payload: payload, Created: now}
		if set != nil {
			set(&pk)
		}
		for _, s := range subs.InlineSubscriptions {
			s.Handler(inline, s.Subscription, pk)
			n++
		}
	}
	for id, sub := range subs.Subscriptions {
		cl, ok := h.server.Clients.Get(id)
		if !ok || cl.Net.Inline {
			continue
		}
		out := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish,
				Qos: min(notificationQoS, sub.Qos, h.server.Options.Capabilities.MaximumQos)},
			TopicName: topic,
			Payload:   payload,
			Created:   now,
		}
		if len(sub.Identifiers) > 0 && cl.Properties.ProtocolVersion == 5 {
			ids := make([]int, 0, len(sub.Identifiers))
			for _, id := range sub.Identifiers {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			out.Properties.SubscriptionIdentifier = ids
		}
		if set != nil {
			set(&out)
		}
		if cl.Closed() {
			// Away: a persistent session keeps it for the client's return.
			if h.keep(cl, out) {
				n++
			}
			continue
		}
		if h.queue(cl, out) {
			n++
		}
	}
	return n
}

// keep hands pk to the client's persistent session, if it has one. notify
// and notify-next carry a thing's whole current state, so each replaces an
// older one of its topic that the client has not been sent.
func (h *Hook) keep(cl *mqtt.Client, pk packets.Packet) bool {
	if h.opts.Sessions == nil || pk.FixedHeader.Qos == 0 {
		return false
	}
	t, err := topics.Parse(pk.TopicName)
	latest := err == nil && (t.Kind == topics.KindNotify || t.Kind == topics.KindNotifyNext)
	return h.opts.Sessions.Keep(cl, pk, latest)
}

// queue adds a packet to cl's queue and makes sure a goroutine is writing
// it. It reports false when the queue was full and the packet dropped.
func (h *Hook) queue(cl *mqtt.Client, pk packets.Packet) bool {
	o := &h.outbox
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queues[cl]
	if q == nil {
		q = &clientQueue{cl: cl}
		o.queues[cl] = q
	}
	if len(q.pending) >= clientQueueLength {
		atomic.AddInt64(&h.server.Info.MessagesDropped, 1)
		return false
	}
	q.pending = append(q.pending, pk)
	if !q.running {
		q.running = true
		h.wg.Add(1)
		go h.drainQueue(q)
	}
	return true
}

// drainQueue writes a client's notifications in order until none are
// left, then ends; the next notification starts another.
func (h *Hook) drainQueue(q *clientQueue) {
	defer h.wg.Done()
	o := &h.outbox
	for {
		o.mu.Lock()
		if len(q.pending) == 0 || q.cl.Closed() {
			left := q.pending
			q.pending = nil
			delete(o.queues, q.cl)
			q.running = false
			o.mu.Unlock()
			for _, pk := range left {
				h.keep(q.cl, pk) // the client left before it was sent these
			}
			return
		}
		pk := q.pending[0]
		q.pending[0] = packets.Packet{}
		q.pending = q.pending[1:]
		o.mu.Unlock()
		h.write(q.cl, pk)
	}
}

// write sends one notification to cl, tracking it in flight at QoS 1.
func (h *Hook) write(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Qos > 0 && !h.track(cl, &pk, 0) {
		atomic.AddInt64(&h.server.Info.InflightDropped, 1)
		return // no room in flight: dropped, as mochi drops over quota
	}
	if pk.FixedHeader.Qos > 0 {
		h.keep(cl, pk) // in flight: a persistent session gets it again if it is not acknowledged
	}
	if err := h.sendQoS(cl, pk); err != nil {
		h.Log.Debug("could not write a jobs notification", "client", cl.ID, "topic", pk.TopicName, "error", err)
		if pk.FixedHeader.Qos > 0 && cl.State.Inflight.Delete(pk.PacketID) {
			atomic.AddInt64(&h.server.Info.Inflight, -1)
			if h.opts.Send == nil {
				cl.State.Inflight.IncreaseSendQuota() // with Send, the flow hook keeps the count
			}
		}
	}
}
