package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

func TestSessionContract(t *testing.T) {
	storetest.RunSessions(t, true, func(t *testing.T) storetest.SessionNodes {
		url, schema := freshSchema(t)
		var mu sync.Mutex
		nodes := map[string]*Store{}
		return func(name string) store.SessionStore {
			mu.Lock()
			defer mu.Unlock()
			if nodes[name] == nil {
				nodes[name] = openNode(t, url, schema, name, clock.NewFake(storetest.Epoch), 0)
			}
			return nodes[name]
		}
	})
}

// TestSweepSessionsOfStoppedNode: a session marked connected by a node
// that stopped without saying so starts to expire when another node
// sweeps, and is deleted once its expiry has passed.
func TestSweepSessionsOfStoppedNode(t *testing.T) {
	url, schema := freshSchema(t)
	ctx := context.Background()
	now := storetest.Epoch
	gone := openNode(t, url, schema, "gone", clock.NewFake(now), 0)
	live := openNode(t, url, schema, "live", clock.NewFake(now), 0)
	for _, n := range []*Store{gone, live} {
		err := n.WriteSessions(ctx, []store.SessionOp{{Kind: store.PutSession, Session: &store.Session{
			ClientID: "dev-of-" + n.NodeID(), ProtocolVersion: 4, ExpiryInterval: 60}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	gone.Close()
	// PostgreSQL ends the closed node's backends a moment later.
	storetest.Eventually(t, "the stopped node's listening connection is gone", func() error {
		var n int
		err := live.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'jobsbroker listen gone'`).Scan(&n)
		if err == nil && n > 0 {
			err = fmt.Errorf("%d connections", n)
		}
		return err
	})
	if n, err := live.SweepSessions(ctx, now); err != nil || n != 0 {
		t.Fatalf("first sweep deleted %d: %v", n, err)
	}
	if n, err := live.SweepSessions(ctx, now.Add(59*time.Second)); err != nil || n != 0 {
		t.Fatalf("a sweep before the expiry deleted %d: %v", n, err)
	}
	if n, err := live.SweepSessions(ctx, now.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("the sweep at the expiry deleted %d, want the stopped node's session: %v", n, err)
	}
	u, err := live.SessionUsage(ctx)
	if err != nil || u.Sessions != 1 {
		t.Fatalf("usage %+v, %v: want the live node's connected session only", u, err)
	}
}

// TestAdoptSessionsOfStoppedNode: a running node's sessions are not taken
// over; once it has stopped, another node adopts them with their
// subscriptions and messages, and a third finds nothing left.
func TestAdoptSessionsOfStoppedNode(t *testing.T) {
	url, schema := freshSchema(t)
	ctx := context.Background()
	now := storetest.Epoch
	gone := openNode(t, url, schema, "gone", clock.NewFake(now), 0)
	heir := openNode(t, url, schema, "heir", clock.NewFake(now), 0)
	other := openNode(t, url, schema, "other", clock.NewFake(now), 0)
	err := gone.WriteSessions(ctx, []store.SessionOp{
		{Kind: store.PutSession, Session: &store.Session{ClientID: "dev", ProtocolVersion: 4, ExpiryInterval: 60}},
		{Kind: store.PutSubscription, ClientID: "dev", Subscription: &store.Subscription{Filter: "a/#", QoS: 1}},
		{Kind: store.PutMessage, ClientID: "dev", Message: &store.QueuedMessage{Seq: 7, Data: []byte("m")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := heir.AdoptSessions(ctx, "gone", now); err != nil || len(got) != 0 {
		t.Fatalf("adopted %d sessions of a running node: %v", len(got), err)
	}
	gone.Close()
	var got []*store.StoredSession
	storetest.Eventually(t, "the stopped node's sessions are adopted", func() error {
		var err error
		if got, err = heir.AdoptSessions(ctx, "gone", now); err == nil && len(got) == 0 {
			err = fmt.Errorf("nothing adopted yet")
		}
		return err
	})
	if len(got) != 1 || got[0].Session.ClientID != "dev" || len(got[0].Subscriptions) != 1 || len(got[0].Messages) != 1 {
		t.Fatalf("adopted %+v", got)
	}
	if again, err := other.AdoptSessions(ctx, "gone", now); err != nil || len(again) != 0 {
		t.Fatalf("a second adoption got %d: %v", len(again), err)
	}
}

// TestOweMessages: a node writes a message owed to a session only while
// it holds it, and learns which writes took; a session claimed by another
// node is left alone, and the holders and subscriptions of every node's
// sessions can be listed.
func TestOweMessages(t *testing.T) {
	url, schema := freshSchema(t)
	ctx := context.Background()
	now := storetest.Epoch
	a := openNode(t, url, schema, "a", clock.NewFake(now), 0)
	b := openNode(t, url, schema, "b", clock.NewFake(now), 0)
	for _, id := range []string{"dev-1", "dev-2"} {
		if err := a.WriteSessions(ctx, []store.SessionOp{
			{Kind: store.PutSession, Session: &store.Session{ClientID: id, ProtocolVersion: 4, ExpiryInterval: 60}},
			{Kind: store.PutSubscription, ClientID: id, Subscription: &store.Subscription{Filter: "cmd/" + id, QoS: 1}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.ClaimSession(ctx, "dev-2", now); err != nil {
		t.Fatal(err)
	}
	holders, err := b.SessionHolders(ctx, []string{"dev-1", "dev-2", "nobody"})
	if err != nil || fmt.Sprint(holders) != "map[dev-1:a dev-2:b]" {
		t.Fatalf("holders %v, %v", holders, err)
	}
	subs, err := b.HeldSubscriptions(ctx)
	if err != nil || len(subs) != 2 {
		t.Fatalf("held subscriptions %v, %v", subs, err)
	}
	for _, s := range subs {
		if s.Node != holders[s.ClientID] || s.Filter != "cmd/"+s.ClientID || s.QoS != 1 {
			t.Errorf("held subscription %+v", s)
		}
	}
	ops := []store.SessionOp{
		{Kind: store.PutMessage, ClientID: "dev-1", Message: &store.QueuedMessage{Seq: 7, Data: []byte("m")}},
		{Kind: store.PutMessage, ClientID: "dev-2", Message: &store.QueuedMessage{Seq: 7, Data: []byte("m")}},
		{Kind: store.PutMessage, ClientID: "nobody", Message: &store.QueuedMessage{Seq: 7, Data: []byte("m")}},
	}
	took, err := a.OweMessages(ctx, ops)
	if err != nil || fmt.Sprint(took) != "[dev-1]" {
		t.Fatalf("node a wrote for %v, %v", took, err)
	}
	for id, want := range map[string]int{"dev-1": 1, "dev-2": 0} {
		ms, err := a.QueuedMessages(ctx, id)
		if err != nil || len(ms) != want {
			t.Errorf("%s has %d messages (%v), want %d", id, len(ms), err, want)
		}
	}
}
