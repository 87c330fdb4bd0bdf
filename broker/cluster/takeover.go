package cluster

import (
	"github.com/nats-io/nats.go"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A node that accepts a connection (after authentication: an
// unauthenticated connection takes nothing over) tells the others on the
// "connected" subject: the sending run's boot id, then the client ID.

// OnSessionEstablish tells the other nodes that the client connected
// here, and subscribes on NATS, before the CONNACK, to what the session
// it resumes subscribes to: the sessions hook, before this one, has
// claimed that session from the shared store, and delivers what it is
// owed before this hook's OnSessionEstablished runs, so a publish the
// client makes on receiving it must find the subscriptions in place.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	if prev, ok := h.server.Clients.Get(cl.ID); ok && prev != cl && !pk.Connect.Clean {
		if fs := filters(prev); len(fs) > 0 {
			for f := range fs {
				h.add(cl.ID, f)
			}
			if err := h.flush(); err != nil {
				h.Log.Warn("NATS did not confirm the node's subscriptions", "client", cl.ID, "error", err)
			}
		}
	}
	subs := cl // a clean start keeps nothing of the session
	if !pk.Connect.Clean {
		subs = h.subscriber(cl)
	}
	h.announceFrom(cl.ID, subs)
	data := make([]byte, 8+len(cl.ID))
	copy(data, h.n.boot[:])
	copy(data[8:], cl.ID)
	if err := h.n.nc.Publish(h.n.subject("connected"), data); err != nil {
		h.Log.Warn("could not tell the other nodes that a client connected; a connection elsewhere with its client ID is not taken over",
			"client", cl.ID, "error", err)
	}
}

// connected closes the local client whose ID connected to another node,
// and forgets its session there.
func (h *Hook) connected(m *nats.Msg) {
	if len(m.Data) < 8 || string(m.Data[:8]) == string(h.n.boot[:]) {
		return
	}
	id := string(m.Data[8:])
	cl, ok := h.server.Clients.Get(id)
	if !ok || cl.Net.Inline {
		return
	}
	if h.n.opts.Release != nil {
		h.n.opts.Release(id)
	}
	if !cl.Closed() {
		h.n.stats.TakenOver.Add(1)
		h.Log.Info("a client connected to another node: its connection here is taken over", "client", id)
		if cl.Properties.ProtocolVersion >= 5 {
			_ = h.server.DisconnectClient(cl, packets.ErrSessionTakenOver)
		} else {
			cl.Stop(packets.ErrSessionTakenOver)
		}
	}
	h.server.UnsubscribeClient(cl)
	if cur, ok := h.server.Clients.Get(id); ok && cur == cl {
		h.server.Clients.Delete(id)
	}
	h.set(id, nil)
	h.forget(id)
}
