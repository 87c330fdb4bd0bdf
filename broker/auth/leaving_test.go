package auth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// doneConn is a connection that says when mochi has finished with it, as
// the broker's listeners' do.
type doneConn struct {
	net.Conn
	done chan struct{}
}

func (c *doneConn) Done() <-chan struct{} { return c.done }

// doneClient returns a mochi client on a doneConn, and the channel that
// says mochi has finished with it.
func doneClient(t *testing.T, srv *mqtt.Server, id string) (*mqtt.Client, chan struct{}) {
	t.Helper()
	a, b := net.Pipe()
	go io.Copy(io.Discard, b)
	t.Cleanup(func() { a.Close(); b.Close() })
	done := make(chan struct{})
	cl := srv.NewClient(&doneConn{Conn: a, done: done}, "tcp", id, false)
	cl.ID = id
	cl.Properties.ProtocolVersion = 4
	return cl, done
}

// waitLog closes seen at the first record with message msg.
type waitLog struct {
	msg  string
	seen chan struct{}
}

func (w *waitLog) Enabled(context.Context, slog.Level) bool { return true }
func (w *waitLog) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *waitLog) WithGroup(string) slog.Handler            { return w }
func (w *waitLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == w.msg {
		select {
		case <-w.seen:
		default:
			close(w.seen)
		}
	}
	return nil
}

// TestConnectionWaitsForTheLeavingOne: a clean-session client that leaves
// with no successor is recorded as leaving until mochi has finished with
// its connection, and a connection with its client ID that comes
// meanwhile is admitted only after that. A client whose session outlives
// it is not recorded (mochi does not remove it), nor is one another
// connection is taking over (it waits for that one instead).
func TestConnectionWaitsForTheLeavingOne(t *testing.T) {
	log := &waitLog{msg: "a connection waits until its client ID's previous connection is removed", seen: make(chan struct{})}
	h := newTestHook(t, Options{Logger: slog.New(log)})
	srv := mqtt.New(nil)
	leaving := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.leaving)
	}

	persistent, _ := doneClient(t, srv, "dev-p")
	h.OnConnectAuthenticate(persistent, login("dev-p"))
	h.OnSessionEstablished(persistent, packets.Packet{})
	persistent.Stop(nil)
	h.OnDisconnect(persistent, nil, false)
	if n := leaving(); n != 0 {
		t.Fatalf("a client whose session outlives it was recorded as leaving (%d)", n)
	}

	taken, _ := doneClient(t, srv, "dev-t")
	h.OnConnectAuthenticate(taken, login("dev-t"))
	h.OnSessionEstablished(taken, packets.Packet{})
	successor := pipeClient(t, srv, "dev-t")
	h.OnConnectAuthenticate(successor, login("dev-t"))
	h.OnSessionEstablished(successor, packets.Packet{})
	taken.Stop(nil)
	h.OnDisconnect(taken, nil, true)
	if n := leaving(); n != 0 {
		t.Fatalf("a client another connection took over was recorded as leaving (%d)", n)
	}

	first, done := doneClient(t, srv, "dev")
	if !h.OnConnectAuthenticate(first, login("dev")) {
		t.Fatal("the first client was refused")
	}
	h.OnSessionEstablished(first, packets.Packet{})
	first.Stop(nil)
	h.OnDisconnect(first, nil, true)
	if n := leaving(); n != 1 {
		t.Fatalf("%d clients leaving after a clean-session client left, want 1", n)
	}
	admitted := make(chan bool, 1)
	go func() { admitted <- h.OnConnectAuthenticate(pipeClient(t, srv, "dev"), login("dev")) }()
	select {
	case <-log.seen:
	case ok := <-admitted:
		t.Fatalf("the next connection was answered (%v) before mochi had finished with the one that left", ok)
	case <-time.After(10 * time.Second):
		t.Fatal("the next connection did not wait")
	}
	close(done)
	if ok := <-admitted; !ok {
		t.Fatal("the next connection was refused")
	}
	if n := leaving(); n != 0 {
		t.Fatalf("%d clients leaving after the next connection was admitted, want 0", n)
	}

	// Those no connection came for are swept as they pile up.
	for i := range 1000 {
		id := fmt.Sprintf("dev-%d", i)
		cl, done := doneClient(t, srv, id)
		h.OnConnectAuthenticate(cl, login(id))
		h.OnSessionEstablished(cl, packets.Packet{})
		cl.Stop(nil)
		h.OnDisconnect(cl, nil, true)
		close(done)
	}
	if n := leaving(); n > 64 {
		t.Fatalf("%d clients recorded as leaving after mochi finished with each, want at most 64", n)
	}
}
