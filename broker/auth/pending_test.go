package auth

import (
	"net"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestPlaceOfClientGoneBeforeEstablishedIsFreed: a client that passed
// authentication holds one of its identity's places until its session is
// established; if it closes before that (mochi then calls no hook), the
// place is given back when the identity next reaches its limit.
func TestPlaceOfClientGoneBeforeEstablishedIsFreed(t *testing.T) {
	h := new(Hook)
	if err := h.Init(&Options{MaxConnections: 1}); err != nil {
		t.Fatal(err)
	}
	srv := mqtt.New(nil)
	client := func() *mqtt.Client {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		cl := srv.NewClient(a, "tcp", "dev", false)
		cl.ID = "dev"
		return cl
	}
	first := client()
	if !h.OnConnectAuthenticate(first, packets.Packet{}) {
		t.Fatal("the first client was refused")
	}
	if h.OnConnectAuthenticate(client(), packets.Packet{}) {
		t.Fatal("a second client took the only place while the first still holds it")
	}
	first.Stop(nil) // closed before its session was established
	second := client()
	if !h.OnConnectAuthenticate(second, packets.Packet{}) {
		t.Fatal("the place of a client that closed before its session was established was not freed")
	}
	h.OnSessionEstablished(second, packets.Packet{})
	h.mu.Lock()
	n, pending := h.count["dev"], len(h.pending)
	h.mu.Unlock()
	if n != 1 || pending != 0 {
		t.Fatalf("count %d and %d pending after the second client was established; want 1 and 0", n, pending)
	}
	h.OnDisconnect(second, nil, true)
	h.mu.Lock()
	n = h.count["dev"]
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("count %d after the last client left, want 0", n)
	}
}
