package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// ClusterCounts are a cluster node's counters (see cluster.Stats).
type ClusterCounts struct {
	Connected                                    bool
	Sent, Received, Duplicates                   int64
	Unconfirmed, Refused, TakenOver, Undecodable int64
	HintsSent, HintsIn                           int64
	Rescued                                      int64
}

// RegisterCluster exposes a cluster node's counters, read at scrape time.
func RegisterCluster(reg prometheus.Registerer, counts func() ClusterCounts) {
	reg.MustRegister(&clusterCollector{counts: counts})
}

var (
	clusterConnectedDesc = desc("cluster_connected", "1 while the node is connected to the cluster's NATS, 0 otherwise.")
	clusterMessagesDesc  = prometheus.NewDesc(namespace+"_cluster_messages_total",
		"Publishes between nodes, by direction: sent (to NATS), received (delivered here), duplicate (a copy of one received, dropped), undecodable (dropped).",
		[]string{"direction"}, nil)
	clusterUnconfirmedDesc = desc("cluster_publishes_unconfirmed_total",
		"QoS 1 publishes acknowledged, NATS having taken them, without word from the node that delivers them within the wait.")
	clusterRescuedDesc = desc("cluster_publishes_rescued_total",
		"QoS 1 publishes acknowledged once the persistent sessions of a node that did not answer (killed, say) were made to owe them through the store.")
	clusterRefusedDesc = desc("cluster_publishes_refused_total", "Publishes refused because NATS did not take them.")
	clusterHintsDesc   = prometheus.NewDesc(namespace+"_cluster_hints_total",
		"Change hints of the jobs store between nodes, by direction (sent, received).", []string{"direction"}, nil)
	clusterTakeoversDesc = desc("cluster_takeovers_total", "Local clients closed because a client with the same ID connected to another node.")
)

type clusterCollector struct{ counts func() ClusterCounts }

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{clusterConnectedDesc, clusterMessagesDesc, clusterUnconfirmedDesc, clusterRescuedDesc, clusterRefusedDesc, clusterTakeoversDesc, clusterHintsDesc} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.counts()
	connected := 0.0
	if n.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(clusterConnectedDesc, prometheus.GaugeValue, connected)
	for dir, v := range map[string]int64{"sent": n.Sent, "received": n.Received, "duplicate": n.Duplicates, "undecodable": n.Undecodable} {
		ch <- prometheus.MustNewConstMetric(clusterMessagesDesc, prometheus.CounterValue, float64(v), dir)
	}
	ch <- prometheus.MustNewConstMetric(clusterUnconfirmedDesc, prometheus.CounterValue, float64(n.Unconfirmed))
	ch <- prometheus.MustNewConstMetric(clusterRescuedDesc, prometheus.CounterValue, float64(n.Rescued))
	ch <- prometheus.MustNewConstMetric(clusterRefusedDesc, prometheus.CounterValue, float64(n.Refused))
	ch <- prometheus.MustNewConstMetric(clusterTakeoversDesc, prometheus.CounterValue, float64(n.TakenOver))
	ch <- prometheus.MustNewConstMetric(clusterHintsDesc, prometheus.CounterValue, float64(n.HintsSent), "sent")
	ch <- prometheus.MustNewConstMetric(clusterHintsDesc, prometheus.CounterValue, float64(n.HintsIn), "received")
}
