package storetest

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// SessionNodes opens session stores for one test. Every call with the
// same name returns the same store; for a backend several nodes share,
// stores of different names are different nodes on one database, and for
// a single-node backend the name is ignored.
type SessionNodes func(name string) store.SessionStore

// RunSessions runs the contract suite of store.SessionStore. shared says
// whether the backend is shared by several nodes (ClaimSession moves
// sessions between them).
func RunSessions(t *testing.T, shared bool, open func(t *testing.T) SessionNodes) {
	tests := []struct {
		name   string
		shared bool
		fn     func(t *testing.T, nodes SessionNodes)
	}{
		{"RoundTrip", false, testSessionRoundTrip},
		{"DeleteSessionCascades", false, testDeleteSessionCascades},
		{"ExpiredAtLoad", false, testSessionExpiredAtLoad},
		{"Retained", false, testRetained},
		{"OrphansDropped", false, testSessionOrphans},
		{"Claim", true, testSessionClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.shared && !shared {
				t.Skip("a single-node store has no sessions to claim")
			}
			tt.fn(t, open(t))
		})
	}
}

var sessionNow = Epoch

func write(t *testing.T, s store.SessionStore, ops ...store.SessionOp) {
	t.Helper()
	if err := s.WriteSessions(context.Background(), ops); err != nil {
		t.Fatalf("WriteSessions: %v", err)
	}
}

func putSession(client string, expiresAt int64) store.SessionOp {
	return store.SessionOp{Kind: store.PutSession, Session: &store.Session{
		ClientID: client, Username: []byte("user-" + client), Listener: "tcp", ProtocolVersion: 4,
		ExpiryInterval: 3600, ExpiresAt: expiresAt,
	}}
}

func putSub(client, filter string, qos byte) store.SessionOp {
	return store.SessionOp{Kind: store.PutSubscription, ClientID: client,
		Subscription: &store.Subscription{Filter: filter, QoS: qos, NoLocal: true, RetainHandling: 2, Identifier: 7}}
}

func putMsg(client string, seq uint64, data string) store.SessionOp {
	return store.SessionOp{Kind: store.PutMessage, ClientID: client, Message: &store.QueuedMessage{Seq: seq, Data: []byte(data)}}
}

// load returns what LoadSessions hands over, by client.
func load(t *testing.T, s store.SessionStore, now time.Time) (map[string]*store.StoredSession, *store.SessionLoad) {
	t.Helper()
	got := map[string]*store.StoredSession{}
	var order []string
	res, err := s.LoadSessions(context.Background(), now, func(st *store.StoredSession) error {
		cp := *st
		cp.Messages = slices.Clone(st.Messages)
		for i := range cp.Messages {
			cp.Messages[i].Data = bytes.Clone(cp.Messages[i].Data)
		}
		got[st.Session.ClientID] = &cp
		order = append(order, st.Session.ClientID)
		return nil
	})
	if err != nil {
		t.Fatalf("LoadSessions: %v", err)
	}
	if res.Sessions != len(got) {
		t.Errorf("LoadSessions says %d sessions, handed over %d", res.Sessions, len(got))
	}
	return got, res
}

func usage(t *testing.T, s store.SessionStore) *store.SessionUsage {
	t.Helper()
	u, err := s.SessionUsage(context.Background())
	if err != nil {
		t.Fatalf("SessionUsage: %v", err)
	}
	return u
}

func seqs(ms []store.QueuedMessage) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func testSessionRoundTrip(t *testing.T, nodes SessionNodes) {
	s := nodes("a")
	ctx := context.Background()
	write(t, s, putSession("dev-1", 0), putSub("dev-1", "$aws/things/dev-1/jobs/notify-next", 1),
		putSub("dev-1", "things/dev-1/#", 0))
	// Messages arrive out of order and in several writes; they come back
	// in sequence order.
	write(t, s, putMsg("dev-1", 12, "twelve"), putMsg("dev-1", 3, "three"))
	write(t, s, putMsg("dev-1", 300, "three hundred"))
	write(t, s, putSession("dev-2", sessionNow.Add(time.Hour).Unix()))

	got, res := load(t, s, sessionNow)
	if len(got) != 2 {
		t.Fatalf("loaded %d sessions, want 2", len(got))
	}
	d1 := got["dev-1"]
	want := store.Session{ClientID: "dev-1", Username: []byte("user-dev-1"), Listener: "tcp", ProtocolVersion: 4, ExpiryInterval: 3600}
	if !reflect.DeepEqual(d1.Session, want) {
		t.Errorf("session = %+v, want %+v", d1.Session, want)
	}
	subs := map[string]store.Subscription{}
	for _, sub := range d1.Subscriptions {
		subs[sub.Filter] = sub
	}
	if sub := subs["$aws/things/dev-1/jobs/notify-next"]; sub.QoS != 1 || !sub.NoLocal || sub.RetainHandling != 2 || sub.Identifier != 7 {
		t.Errorf("subscriptions = %+v", d1.Subscriptions)
	}
	if len(subs) != 2 {
		t.Errorf("subscriptions = %+v, want 2", d1.Subscriptions)
	}
	if s := seqs(d1.Messages); !slices.Equal(s, []uint64{3, 12, 300}) {
		t.Errorf("message order = %v, want [3 12 300]", s)
	}
	if string(d1.Messages[1].Data) != "twelve" {
		t.Errorf("message 12 = %q", d1.Messages[1].Data)
	}
	if res.NextSeq <= 300 {
		t.Errorf("NextSeq = %d, want above 300", res.NextSeq)
	}
	if got["dev-2"].Session.ExpiresAt != sessionNow.Add(time.Hour).Unix() {
		t.Errorf("dev-2 ExpiresAt = %d", got["dev-2"].Session.ExpiresAt)
	}

	queued, err := s.QueuedMessages(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if s := seqs(queued); !slices.Equal(s, []uint64{3, 12, 300}) || string(queued[2].Data) != "three hundred" {
		t.Errorf("QueuedMessages = %v", queued)
	}
	write(t, s, store.SessionOp{Kind: store.DeleteMessage, ClientID: "dev-1", Message: &store.QueuedMessage{Seq: 12}},
		store.SessionOp{Kind: store.DeleteSubscription, ClientID: "dev-1", Topic: "things/dev-1/#"})
	queued, err = s.QueuedMessages(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if s := seqs(queued); !slices.Equal(s, []uint64{3, 300}) {
		t.Errorf("after deleting 12: %v", s)
	}
	got, _ = load(t, s, sessionNow)
	if n := len(got["dev-1"].Subscriptions); n != 1 {
		t.Errorf("after unsubscribing: %d subscriptions", n)
	}
	u := usage(t, s)
	if u.Sessions != 2 || u.Subscriptions != 1 || u.Messages != 2 || u.Bytes <= 0 {
		t.Errorf("usage = %+v", u)
	}
}

func testDeleteSessionCascades(t *testing.T, nodes SessionNodes) {
	s := nodes("a")
	empty := usage(t, s)
	write(t, s, putSession("gone", 0), putSub("gone", "a/b", 1), putMsg("gone", 1, "x"), putMsg("gone", 2, "y"),
		putSession("kept", 0), putMsg("kept", 1, "z"))
	write(t, s, store.SessionOp{Kind: store.DeleteSession, ClientID: "gone"})
	got, _ := load(t, s, sessionNow)
	if _, ok := got["gone"]; ok || got["kept"] == nil || len(got["kept"].Messages) != 1 {
		t.Fatalf("after deleting a session: %v", got)
	}
	write(t, s, store.SessionOp{Kind: store.DeleteSession, ClientID: "kept"})
	if u := usage(t, s); u.Sessions != 0 || u.Subscriptions != 0 || u.Messages != 0 || u.Bytes != empty.Bytes {
		t.Errorf("usage after deleting every session = %+v, before any = %+v", u, empty)
	}
	// A session deleted and created again in one write starts empty.
	write(t, s, putSession("again", 0), putMsg("again", 5, "old"))
	write(t, s, store.SessionOp{Kind: store.DeleteSession, ClientID: "again"}, putSession("again", 0), putMsg("again", 6, "new"))
	q, err := s.QueuedMessages(context.Background(), "again")
	if err != nil {
		t.Fatal(err)
	}
	if s := seqs(q); !slices.Equal(s, []uint64{6}) {
		t.Errorf("messages of a session started afresh = %v, want [6]", s)
	}
}

func testSessionExpiredAtLoad(t *testing.T, nodes SessionNodes) {
	s := nodes("a")
	write(t, s, putSession("old", sessionNow.Unix()), putSub("old", "a/#", 1), putMsg("old", 1, "x"),
		putSession("young", sessionNow.Add(time.Second).Unix()), putMsg("young", 2, "y"),
		putSession("online", 0))
	got, res := load(t, s, sessionNow)
	if _, ok := got["old"]; ok || res.Expired != 1 {
		t.Errorf("a session that expired at now was loaded (expired count %d)", res.Expired)
	}
	if got["young"] == nil || got["online"] == nil {
		t.Errorf("loaded %v, want young and online", got)
	}
	if u := usage(t, s); u.Sessions != 2 || u.Subscriptions != 0 || u.Messages != 1 {
		t.Errorf("usage after the expired session went = %+v", u)
	}
	got, _ = load(t, s, sessionNow.Add(2*time.Second))
	if _, ok := got["young"]; ok || got["online"] == nil {
		t.Errorf("two seconds on: %v", got)
	}
}

func testRetained(t *testing.T, nodes SessionNodes) {
	s := nodes("a")
	ctx := context.Background()
	put := func(topic, data string) store.SessionOp {
		return store.SessionOp{Kind: store.PutRetained, Retained: &store.RetainedMessage{Topic: topic, Data: []byte(data)}}
	}
	write(t, s, put("a/b", "1"), put("a/c", "2"))
	write(t, s, put("a/b", "3"))
	write(t, s, store.SessionOp{Kind: store.DeleteRetained, Topic: "a/c"}, put("x/y/z", "4"))
	rs, err := s.RetainedMessages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rs {
		got[r.Topic] = string(r.Data)
	}
	if want := map[string]string{"a/b": "3", "x/y/z": "4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("retained = %v, want %v", got, want)
	}
	if u := usage(t, s); u.Retained != 2 {
		t.Errorf("usage counts %d retained, want 2", u.Retained)
	}
}

func testSessionOrphans(t *testing.T, nodes SessionNodes) {
	s := nodes("a")
	// Messages and subscriptions written for a session already deleted
	// (a publish racing the session's expiry) are not handed over, and do
	// not stay after a load.
	write(t, s, putSession("live", 0), putMsg("live", 1, "x"))
	write(t, s, putMsg("ghost", 2, "y"), putSub("ghost", "a/b", 1), putMsg("zzz", 3, "z"))
	got, _ := load(t, s, sessionNow)
	if len(got) != 1 || got["live"] == nil {
		t.Fatalf("loaded %v, want live only", got)
	}
	if u := usage(t, s); u.Messages != 1 || u.Subscriptions != 0 {
		t.Errorf("usage after a load = %+v, want one message and no subscription", u)
	}
}

func testSessionClaim(t *testing.T, nodes SessionNodes) {
	a, b := nodes("a"), nodes("b")
	ctx := context.Background()
	write(t, a, putSession("dev", 0), putSub("dev", "a/#", 1), putMsg("dev", 10, "x"))
	if got, _ := load(t, b, sessionNow); len(got) != 0 {
		t.Fatalf("node b loaded node a's sessions: %v", got)
	}
	st, err := b.ClaimSession(ctx, "dev", sessionNow)
	if err != nil {
		t.Fatal(err)
	}
	if st == nil || len(st.Subscriptions) != 1 || !slices.Equal(seqs(st.Messages), []uint64{10}) || string(st.Messages[0].Data) != "x" {
		t.Fatalf("claimed %+v", st)
	}
	if missing, err := b.ClaimSession(ctx, "nobody", sessionNow); err != nil || missing != nil {
		t.Fatalf("claiming an unknown session: %+v, %v", missing, err)
	}
	// Node a no longer holds the session: its writes for it change
	// nothing, node b's go through.
	write(t, a, putMsg("dev", 11, "from a"), store.SessionOp{Kind: store.DeleteSession, ClientID: "dev"})
	write(t, b, putMsg("dev", 12, "from b"))
	q, err := b.QueuedMessages(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if s := seqs(q); !slices.Equal(s, []uint64{10, 12}) {
		t.Errorf("messages after both nodes wrote = %v, want [10 12]", s)
	}
	if got, _ := load(t, b, sessionNow); got["dev"] == nil {
		t.Errorf("node b does not hold the session it claimed")
	}
	if got, _ := load(t, a, sessionNow); len(got) != 0 {
		t.Errorf("node a still holds %v", got)
	}
	// An expired session cannot be claimed, and is gone.
	write(t, a, putSession("late", sessionNow.Unix()), putMsg("late", 1, "x"))
	if st, err := b.ClaimSession(ctx, "late", sessionNow); err != nil || st != nil {
		t.Errorf("claimed an expired session: %+v, %v", st, err)
	}
	write(t, b, store.SessionOp{Kind: store.DeleteSession, ClientID: "dev"})
	if u := usage(t, a); u.Sessions != 0 || u.Messages != 0 {
		t.Errorf("usage after deleting = %+v", u)
	}
}
