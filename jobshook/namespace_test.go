package jobshook

import (
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/topics"
)

// TestInterestNamespaced checks that a client that subscribes only to a
// namespace's notify topics, as Greengrass does, makes its thing one a
// shared store hands other nodes' changes over for.
func TestInterestNamespaced(t *testing.T) {
	f := newFixture(t)
	cl, _ := newPipeClient(t, f.server, "gg-core-1", false)
	f.server.Clients.Add(cl)
	filter := topics.NotifyNextNamespace("gg-core-1", "aws-gg-deployment")
	sub := packets.Subscription{Filter: filter}
	cl.State.Subscriptions.Add(filter, sub)
	f.server.Topics.Subscribe(cl.ID, sub)

	if f.hook.Has("gg-core-1") {
		t.Fatal("Has before the namespace was known")
	}
	if things := f.hook.Things(); !slices.Contains(things, "gg-core-1") {
		t.Fatalf("Things() = %v, want gg-core-1 for its namespaced subscription", things)
	}
	if !f.hook.Has("gg-core-1") {
		t.Error("Has is false for a thing subscribed to a known namespace's notify-next")
	}
	if f.hook.Has("other-thing") {
		t.Error("Has is true for a thing nobody subscribes to")
	}
}
