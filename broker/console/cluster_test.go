package console_test

import (
	"testing"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// A console on one node of a cluster follows a job whose devices are on
// another node: no change of those devices reaches this node's store
// handler (it has no client listening for them), so the stream's periodic
// re-read brings them in.
func TestStreamFollowsAnotherNodesDevices(t *testing.T) {
	url := brokertest.PostgresURL(t)
	node := func(id string) *brokertest.Instance {
		return brokertest.Start(t, func(c *broker.Config) { c.Store, c.StoreURL, c.NodeID = broker.StorePostgres, url, id })
	}
	a, b := node("node-a"), node("node-b")
	createJob(t, b, "across-1", brokertest.ThingARN("far-1"), brokertest.ThingARN("far-2"))
	v := newVisitor(t, a)
	s := v.openStream("/console/jobs/across-1")
	s.waitPart(t, "job-summary", `aria-valuenow="0"`)
	runDevice(t, b, "far-1")
	s.waitPart(t, "job-summary", `aria-valuenow="50"`)
	runDevice(t, b, "far-2")
	s.waitPart(t, "job-summary", `aria-valuenow="100"`)
	list := v.openStream("/console/")
	list.waitPart(t, "jobs-list", `aria-valuenow="100"`)
}
