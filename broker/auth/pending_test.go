package auth

import (
	"io"
	"net"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// newTestHook returns a hook under identity password for thing "dev"
// (password "pw"), at bcrypt's lowest cost.
func newTestHook(t *testing.T, o Options) *Hook {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePasswords([]byte("dev:" + string(hash) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	o.Mode, o.Passwords = ModePassword, p
	h := new(Hook)
	if err := h.Init(&o); err != nil {
		t.Fatal(err)
	}
	return h
}

// pipeClient returns a mochi client on one end of a pipe whose other end
// is read and thrown away (a refusal writes a CONNACK to it).
func pipeClient(t *testing.T, srv *mqtt.Server, id string) *mqtt.Client {
	t.Helper()
	a, b := net.Pipe()
	go io.Copy(io.Discard, b)
	t.Cleanup(func() { a.Close(); b.Close() })
	cl := srv.NewClient(a, "tcp", id, false)
	cl.ID = id
	cl.Properties.ProtocolVersion = 4
	return cl
}

// login is the CONNECT of thing dev with its password and client ID id.
func login(id string) packets.Packet {
	return packets.Packet{Connect: packets.ConnectParams{ClientIdentifier: id,
		UsernameFlag: true, Username: []byte("dev"), PasswordFlag: true, Password: []byte("pw")}}
}

// TestPlaceOfClientGoneBeforeEstablishedIsFreed: a client that passed
// authentication holds one of its identity's places until its session is
// established; if it closes before that (mochi then calls no hook), the
// place is given back when the identity next reaches its limit.
func TestPlaceOfClientGoneBeforeEstablishedIsFreed(t *testing.T) {
	h := newTestHook(t, Options{MaxConnections: 1})
	srv := mqtt.New(nil)
	first := pipeClient(t, srv, "dev")
	if !h.OnConnectAuthenticate(first, login("dev")) {
		t.Fatal("the first client was refused")
	}
	if h.OnConnectAuthenticate(pipeClient(t, srv, "dev-2"), login("dev-2")) {
		t.Fatal("a second client took the only place while the first still holds it")
	}
	first.Stop(nil) // closed before its session was established
	second := pipeClient(t, srv, "dev-2")
	if !h.OnConnectAuthenticate(second, login("dev-2")) {
		t.Fatal("the place of a client that closed before its session was established was not freed")
	}
	h.OnSessionEstablished(second, packets.Packet{})
	h.mu.Lock()
	n, pending, ids := h.count["dev"], len(h.pending), len(h.byID)
	h.mu.Unlock()
	if n != 1 || pending != 0 || ids != 1 {
		t.Fatalf("count %d, %d pending and %d client IDs after the second client was established; want 1, 0 and 1", n, pending, ids)
	}
	h.OnDisconnect(second, nil, true)
	h.mu.Lock()
	n, ids = h.count["dev"], len(h.byID)
	h.mu.Unlock()
	if n != 0 || ids != 0 {
		t.Fatalf("count %d and %d client IDs after the last client left, want 0 and 0", n, ids)
	}
}

// TestTakeoverAtTheLimitBeforeEstablished: a client is recorded under its
// client ID as soon as it is authenticated, so a reconnect that comes
// before mochi has established the first connection (mochi sends CONNACK
// first) takes it over instead of being refused for the limit. This is
// the race that failed TestPasswordIdentity one run in fifteen.
func TestTakeoverAtTheLimitBeforeEstablished(t *testing.T) {
	h := newTestHook(t, Options{MaxConnections: 1})
	srv := mqtt.New(nil)
	first := pipeClient(t, srv, "dev")
	if !h.OnConnectAuthenticate(first, login("dev")) {
		t.Fatal("the first client was refused")
	}
	// Not yet established: its reconnect takes it over.
	again := pipeClient(t, srv, "dev")
	if !h.OnConnectAuthenticate(again, login("dev")) {
		t.Fatal("a reconnect with the same client ID, before the first connection was established, was refused")
	}
	// The reconnect goes away before it is established and before it took
	// the first one over: the first one holds the client ID again.
	again.Stop(nil)
	h.mu.Lock()
	h.sweepPending()
	holder := h.byID["dev"]
	h.mu.Unlock()
	if holder != first {
		t.Fatal("the client ID was not given back to the connection it was taken from")
	}
}
