package jobshook

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/jobshook/faults"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Where faults (Options.Faults) act on the hook's messages. Each one is
// reported to the fault set at the moment it acts, so that a transcript
// shows it between the messages the device saw.

// reply sends a request's reply, as the fault that matched the request,
// if any, says.
func (h *Hook) reply(cl *mqtt.Client, req packets.Packet, thing, topic string, payload []byte, f *faults.Fault) {
	if f == nil {
		h.answer(cl, req, topic, payload)
		return
	}
	h.opts.Faults.Fired(faults.Event{Thing: thing, ClientID: cl.ID, Topic: topic, Fault: *f, Payload: payload})
	switch f.Kind {
	case faults.Drop:
		// The request ran; its reply is not sent.
	case faults.Duplicate:
		// Only the second may wait for the PUBACK: a held write is
		// replaced by the next one held.
		h.answerHolding(cl, req, topic, payload, false)
		h.answer(cl, req, topic, payload)
	case faults.Delay:
		// The client's next packets are read meanwhile: the reply goes
		// from a goroutine of its own, after the request's PUBACK. The
		// request is done (committed), so shutdown does not wait for it.
		// The closure takes a copy of the request: capturing the parameter
		// itself would move every request's packet (800 bytes) to the heap
		// on entry, faulted or not.
		req := req
		h.later(time.Duration(f.Delay), func() {
			if !cl.Closed() {
				h.answerHolding(cl, req, topic, payload, false)
			}
		})
	case faults.Disconnect:
		// The change is committed; the device is never told.
		cl.Stop(faults.ErrDisconnect)
	default: // faults.Reject: payload is the rejection it chose
		h.answer(cl, req, topic, payload)
	}
}

// faultNotification applies the fault that matches a notification, if
// any, and reports whether one did (the caller then sends nothing).
func (h *Hook) faultNotification(topic, kind string, payload []byte) bool {
	t, err := topics.Parse(topic)
	if err != nil {
		return false
	}
	f := h.opts.Faults.Notification(t.Thing, t.Kind)
	if f == nil {
		return false
	}
	h.opts.Faults.Fired(faults.Event{Thing: t.Thing, Topic: topic, Fault: *f, Payload: payload})
	deliver := func() {
		if h.fanOut(topic, payload) > 0 && h.opts.Observer != nil {
			h.opts.Observer.Notification(kind)
		}
	}
	switch f.Kind {
	case faults.Duplicate:
		deliver()
		deliver()
	case faults.Delay:
		h.later(time.Duration(f.Delay), deliver)
	}
	return true // faults.Drop: not sent
}

// later runs fn after d on a goroutine of its own, unless the hook stops
// first.
func (h *Hook) later(d time.Duration, fn func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fn()
		case <-h.stop:
		}
	}()
}
