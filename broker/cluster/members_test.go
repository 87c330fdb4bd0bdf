package cluster

import (
	"context"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestNodeGone: a node hears the others' heartbeats and reports one that
// falls silent, once.
func TestNodeGone(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	defer ns.Shutdown()
	gone := make(chan string, 4)
	ctx := context.Background()
	a, err := Connect(ctx, Options{URL: ns.ClientURL(), NodeID: "a", OnNodeGone: func(n string) { gone <- n }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Connect(ctx, Options{URL: ns.ClientURL(), NodeID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	// b beats every second; a must hear one before b goes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := a.Members(); len(m) == 1 && m[0] == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never heard b")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Close()
	select {
	case n := <-gone:
		if n != "b" {
			t.Fatalf("gone: %q", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b's silence was not reported")
	}
	select {
	case n := <-gone:
		t.Fatalf("reported again: %q", n)
	case <-time.After(2 * goneAfter):
	}
}
