package cluster

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// Hints carry the jobs store's change hints between nodes (see
// store.HintRouter) on the "hints" subject, which every node subscribes
// to: a commit on one node reaches the others without PostgreSQL's
// NOTIFY, whose lock every notifying commit of every node waits for.

// Publish sends a change hint to the other nodes without waiting; while
// NATS is unreachable it is buffered, and the nodes resync after.
func (n *Node) Publish(hint []byte) {
	n.stats.HintsSent.Add(1)
	if err := n.nc.Publish(n.subject("hints"), hint); err != nil {
		n.log.Warn("could not send a change hint to the other nodes", "error", err)
	}
}

// Hints hands every hint another node publishes to handle, one at a
// time.
func (n *Node) Hints(handle func([]byte)) error {
	sub, err := n.nc.Subscribe(n.subject("hints"), func(m *nats.Msg) {
		n.stats.HintsIn.Add(1)
		handle(m.Data)
	})
	if err != nil {
		return fmt.Errorf("subscribe to change hints on NATS: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	n.mu.Lock()
	n.fixed = append(n.fixed, sub)
	n.mu.Unlock()
	return n.nc.Flush()
}
