package cluster

import (
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Every node says it is alive on the "alive" subject when it starts, each
// aliveEvery, and when it hears of a node it did not know (so that the
// new node hears of it at once); a node not heard from for goneAfter is
// reported to Options.OnNodeGone on every node that heard it before,
// once. A node only cut off from NATS is
// reported too: what OnNodeGone does must check that the node has really
// stopped (the store knows: see store.SessionAdopter).
const (
	aliveEvery = time.Second
	goneAfter  = 3 * time.Second
)

// heartbeat says the node is alive, and reports the nodes that fell
// silent, until the node closes.
func (n *Node) heartbeat() {
	alive := make(chan string, 64)
	sub, err := n.nc.Subscribe(n.subject("alive"), func(m *nats.Msg) {
		select {
		case alive <- string(m.Data):
		default: // the loop is behind; the next beat will do
		}
	})
	if err != nil {
		n.log.Error("cannot hear the other nodes; the sessions of a node that stops wait for their clients", "error", err)
		return
	}
	defer sub.Unsubscribe()
	t := time.NewTicker(aliveEvery)
	defer t.Stop()
	id := []byte(n.opts.NodeID)
	beat := func() {
		if err := n.nc.Publish(n.subject("alive"), id); err != nil {
			n.log.Debug("could not say the node is alive", "error", err)
		}
	}
	beat() // at once: the others learn of a new node, and answer
	for {
		select {
		case <-n.stopped:
			return
		case node := <-alive:
			if node == n.opts.NodeID {
				continue
			}
			n.mu.Lock()
			_, known := n.seen[node]
			n.seen[node] = time.Now()
			n.mu.Unlock()
			if !known {
				beat() // so that a node that just started hears of this one
			}
		case now := <-t.C:
			beat()
			if !n.nc.IsConnected() {
				continue // silence is ours
			}
			n.mu.Lock()
			var silent []string
			for node, last := range n.seen {
				if now.Sub(last) > goneAfter {
					delete(n.seen, node)
					silent = append(silent, node)
				}
			}
			n.mu.Unlock()
			for _, node := range silent {
				n.log.Info("a node fell silent", "node", node)
				if n.opts.OnNodeGone != nil {
					go n.opts.OnNodeGone(node)
				}
			}
		}
	}
}

// Watch subscribes on NATS to the filters of cl, a session the server
// holds without a connection (one adopted from a node that stopped).
func (h *Hook) Watch(cl *mqtt.Client) {
	h.set(cl.ID, filters(cl))
	if err := h.flush(); err != nil {
		h.Log.Warn("NATS did not confirm the node's subscriptions", "client", cl.ID, "error", err)
	}
	h.announce(cl)
}

// Members returns the other nodes heard from lately, sorted.
func (n *Node) Members() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.seen))
}
