package jobshook

import (
	"context"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/jobsbroker/jobsbroker/store"
)

// notificationQoS is the QoS notify and notify-next are published at; each
// subscriber gets them at the lower of this and its subscription's QoS.
const notificationQoS = 1

// enqueue is the store's change handler. It hands changes to the
// dispatcher in commit order; when the queue is full it waits, which slows
// commits down instead of dropping notifications.
func (h *Hook) enqueue(changes []store.Change) {
	select {
	case h.changes <- changes:
	case <-h.stop:
	}
}

// replyWait bounds how long a notification waits for the reply to the
// request that caused it, so that a stalled requester cannot hold up
// notifications for everyone else.
const replyWait = 100 * time.Millisecond

// dispatch publishes notifications in commit order until Stop.
func (h *Hook) dispatch() {
	defer h.wg.Done()
	for {
		select {
		case batch := <-h.changes:
			for i := range batch {
				if !h.awaitReply(batch[i].After) {
					return
				}
				h.publish(&batch[i])
			}
		case <-h.stop:
			return
		}
	}
}

// awaitReply waits (briefly) until the reply that goes before a
// notification has been sent; it returns false on Stop.
func (h *Hook) awaitReply(after <-chan struct{}) bool {
	if after == nil {
		return true
	}
	select {
	case <-after:
		return true
	default:
	}
	t := time.NewTimer(replyWait)
	defer t.Stop()
	select {
	case <-after:
	case <-t.C:
	case <-h.stop:
		return false
	}
	return true
}

// publish sends the notify and notify-next messages a change calls for,
// on the topics of its job namespace, skipping the work when nobody
// listens.
func (h *Hook) publish(c *store.Change) {
	now := h.clock.Now()
	if c.Event != nil {
		topic, payload, err := h.eventMessage(c.Event)
		if hasSubscribers(h.server, topic) {
			h.send(topic, "event", payload, err)
		}
		return
	}
	if c.Notify {
		topic := notifyTopic(c.ThingName, c.Namespace)
		if hasSubscribers(h.server, topic) {
			payload, err := notifyPayload(c.Pending, now)
			h.send(topic, "notify", payload, err)
		}
	}
	if c.NotifyNext {
		topic := notifyNextTopic(c.ThingName, c.Namespace)
		if hasSubscribers(h.server, topic) {
			payload, err := notifyNextPayload(c.Next, h.nextDocument(c.Next, c.NextDocument), now)
			h.send(topic, "notify-next", payload, err)
		}
	}
}

// nextDocument prepares the document a notify-next message carries (see
// Options.Documents), within the request timeout.
func (h *Hook) nextDocument(next *store.Execution, doc string) string {
	if next == nil || doc == "" || h.opts.Documents == nil {
		return doc
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.RequestTimeout)
	defer cancel()
	return h.opts.Documents.Document(ctx, next.JobID, next.JobSeq, doc)
}

func (h *Hook) send(topic, kind string, payload []byte, err error) {
	if err != nil {
		h.Log.Error("could not render a jobs notification", "topic", topic, "error", err)
		return
	}
	if kind != "event" && h.opts.Faults.Armed() && h.faultNotification(topic, kind, payload) {
		return
	}
	if h.fanOut(topic, payload) > 0 && h.opts.Observer != nil {
		h.opts.Observer.Notification(kind)
	}
}

func hasSubscribers(s *mqtt.Server, topic string) bool {
	subs := s.Topics.Subscribers(topic)
	return len(subs.Subscriptions) > 0 || len(subs.Shared) > 0 || len(subs.InlineSubscriptions) > 0
}
