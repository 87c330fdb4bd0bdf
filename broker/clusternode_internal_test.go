package broker

import (
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/sessions"
)

// TestClusterCallbacksBeforeSessions: NATS may call the node's callbacks
// as soon as it joins the cluster, before the sessions hook exists or is
// initialized; they must do nothing then, not reach into a hook that has
// no store yet.
func TestClusterCallbacksBeforeSessions(t *testing.T) {
	b := &Broker{}
	b.Sessions = new(sessions.Hook) // assigned, not yet initialized
	b.resyncCluster()
	b.adoptSessions("node-gone")
	if b.sessionsUp.Load() != nil {
		t.Fatal("the sessions hook counts as up before its Init ran")
	}
}
