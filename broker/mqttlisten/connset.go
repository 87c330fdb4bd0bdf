package mqttlisten

import (
	"net"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// connSet tracks the connections a listener has handed to mochi, so that
// closing the listener ends every one of them and waits until mochi is
// done with them.
//
// mochi counts its connections in a WaitGroup that it adds to inside the
// connection's own goroutine and waits on after closing the listeners. A
// connection accepted just before the listener closed could add to it
// while the server waits, which the WaitGroup forbids (the race detector
// reports it); and one that had not yet sent CONNECT is in no client
// table, so mochi's shutdown would not end it. With connSet, nothing is
// handed to mochi once closing has begun, and closing returns only after
// every connection handed over has come back.
type connSet struct {
	mu      sync.Mutex
	stopped bool                  // no connection is added any more
	conns   map[net.Conn]struct{} // handed to mochi and not yet back
	wg      sync.WaitGroup        // counts the conns
}

// add records c; it reports false, and records nothing, once the set is
// stopped, in which case the caller closes c instead of serving it.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// len returns how many connections are being served.
func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// done records that mochi has finished with c.
func (s *connSet) done(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// stop refuses connections from now on. It reports whether this call
// stopped the set, false when it was stopped already: a listener's Close
// goes on only in the first case.
func (s *connSet) stop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := !s.stopped
	s.stopped = true
	return first
}

// closeAll closes the connections still open and waits until mochi has
// finished with each.
func (s *connSet) closeAll() {
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// closeListener ends the connections of a stopped listener: it tells its
// MQTT 5 clients that the server is shutting down (an MQTT 3.1.1 client
// has no such packet: the protocol hook closes its connection instead of
// sending one), then closes every connection, those that never sent
// CONNECT included, and waits for mochi to let go of them.
//
// The clients are found with Clients.GetAll, not through the CloseFn mochi
// hands a listener: that one lists them with Clients.GetByListener, which
// in mochi v2.7.9 read-locks the client table twice in a row and, when a
// client connects or leaves in between (its write lock queues between the
// two), deadlocks the broker for good (mochi-mqtt/server#488, unmerged).
func closeListener(srv *mqtt.Server, id string, conns *connSet) {
	for _, cl := range srv.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	conns.closeAll()
}
