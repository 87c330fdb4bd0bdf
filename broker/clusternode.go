package broker

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/jobsbroker/jobsbroker/broker/cluster"
	"github.com/jobsbroker/jobsbroker/broker/metrics"
	"github.com/jobsbroker/jobsbroker/store"
)

// nodeID is the node's name among the nodes of a shared store: the one
// the store settled on (its default is hostname-pid).
func (b *Broker) nodeID() string {
	if n, ok := b.Store.(interface{ NodeID() string }); ok {
		return n.NodeID()
	}
	return b.cfg.NodeID
}

// joinCluster connects to the cluster's NATS when one is configured,
// retrying for Config.StartTimeout; a node whose node ID another running
// node has is refused.
func (b *Broker) joinCluster() error {
	if b.cfg.ClusterNATSURL == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.StartTimeout)
	defer cancel()
	node, err := cluster.Connect(ctx, cluster.Options{
		URL:    b.cfg.ClusterNATSURL,
		NodeID: b.nodeID(),
		Logger: b.log.With("component", "cluster"),
		// The callbacks run on NATS's goroutines, from now on: they use
		// the sessions hook only once it is initialized (before, the node
		// has no clients and no sessions to act on).
		Release: func(id string) {
			if h := b.sessionsUp.Load(); h != nil {
				h.Release(id)
			}
		},
		OnReconnect: b.resyncCluster,
		OnNodeGone:  b.adoptSessions,
	})
	if err != nil {
		return fmt.Errorf("join the cluster (%s): %w", b.cfg.name("cluster_nats_url"), err)
	}
	b.cluster = node
	if router, ok := b.Store.(store.HintRouter); ok {
		if err := node.Hints(router.Hint); err != nil {
			node.Close()
			return err
		}
		router.SetHintBus(node)
	}
	metrics.RegisterCluster(b.cfg.Registry, func() metrics.ClusterCounts {
		s := node.Stats()
		return metrics.ClusterCounts{Connected: node.Connected(), Sent: s.Sent.Load(), Received: s.Received.Load(),
			Duplicates: s.Duplicates.Load(), Unconfirmed: s.Unconfirmed.Load(), Refused: s.Refused.Load(),
			TakenOver: s.TakenOver.Load(), Undecodable: s.Undecodable.Load(), HintsSent: s.HintsSent.Load(), HintsIn: s.HintsIn.Load(),
			Rescued: s.Rescued.Load()}
	})
	return nil
}

// addClusterHook adds the hook that routes publishes between nodes, last:
// after the hooks that consume publishes and after the sessions hook.
func (b *Broker) addClusterHook() error {
	if b.cluster == nil {
		return nil
	}
	h := b.cluster.Hook(b.MQTT)
	if b.Sessions != nil {
		h.SetSessions(b.Sessions)
	}
	if err := b.MQTT.AddHook(h, nil); err != nil {
		return fmt.Errorf("add cluster hook: %w", err)
	}
	return nil
}

// isReplica reports whether cl delivers another node's publishes.
func isReplica(cl *mqtt.Client) bool { return cl.Net.Inline && cl.ID == cluster.ClientID }

// resyncCluster reads again what the node may have missed while it was
// cut off from NATS.
func (b *Broker) resyncCluster() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if router, ok := b.Store.(store.HintRouter); ok {
		router.Resync()
	}
	if h := b.sessionsUp.Load(); h != nil {
		if err := h.ReloadRetained(ctx); err != nil {
			b.log.Warn("could not read the retained messages again after NATS came back", "error", err)
		}
	}
}

// clusterAttrs names the node and its cluster in the start log.
func (b *Broker) clusterAttrs() []any {
	attrs := []any{"store", b.cfg.Store}
	if b.cfg.Store != StoreBadger {
		attrs = append(attrs, "node", b.nodeID())
	}
	if b.cluster != nil {
		attrs = append(attrs, "cluster", redactURLs(b.cfg.ClusterNATSURL))
	}
	return attrs
}

// redactURLs hides the passwords of a comma-separated list of URLs.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// leaveCluster closes the NATS connection, after what it buffered went out.
func (b *Broker) leaveCluster() error {
	if b.cluster == nil {
		return nil
	}
	if err := b.cluster.Close(); err != nil {
		return fmt.Errorf("leave the cluster: %w", err)
	}
	return nil
}

// adoptSessions takes over the sessions of a node that fell silent, if
// the store says it has stopped: until their clients come back they are
// owed what is published for them, here.
func (b *Broker) adoptSessions(node string) {
	h := b.sessionsUp.Load()
	if h == nil || b.stopping.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := h.Adopt(ctx, node)
	if err != nil {
		b.log.Warn("could not take over the sessions of a node that stopped", "node", node, "adopted", n, "error", err)
		return
	}
	if n > 0 {
		b.log.Info("took over the sessions of a node that stopped", "node", node, "sessions", n)
	}
}

// watchRestored subscribes the cluster to a session restored without its
// client.
func (b *Broker) watchRestored(cl *mqtt.Client) {
	if b.cluster != nil {
		b.cluster.Hook(b.MQTT).Watch(cl)
	}
}
