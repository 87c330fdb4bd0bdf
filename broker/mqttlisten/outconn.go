//go:build unix

package mqttlisten

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// maxPendingWrite is how many bytes may wait in memory for a client whose
// socket takes no more: as much as mochi's write queue for one client can
// hold (256 packets of at most 128 KiB), so that the limit never binds
// before mochi's own would. A client still past it is disconnected.
const maxPendingWrite = 256 * 128 << 10

// errWriteLimit ends a connection whose client left more than
// maxPendingWrite bytes unread.
var errWriteLimit = errors.New("mqttlisten: client reads too slowly: its pending output passed the limit")

// outConn is an accepted TCP connection whose writes never wait for the
// client. mochi writes to a client while holding the client's lock, and
// takes the same lock to give a QoS 1 message for the client a packet id:
// a write that waited for a client whose socket is full would hold up
// every publisher with a message for it. A write puts what the socket
// takes at once into it (one non-blocking system call) and leaves the
// rest, in order, to a goroutine that writes it out with the write
// timeout: a client that takes none of it for that long, or leaves more
// than maxPendingWrite unread, is disconnected. TLS, when used, runs over
// it, so that a timed-out write never leaves a TLS record half-sent.
type outConn struct {
	*net.TCPConn
	raw     syscall.RawConn
	timeout time.Duration // how long pending output may go without progress; 0: no limit
	limit   int

	mu       sync.Mutex
	pending  []byte // bytes the socket has not taken yet, oldest first
	flushing bool   // a goroutine is writing pending out
	closing  bool   // Close was called while flushing: close once flushed
	err      error  // the error that ended writing

	// The state of one direct write, kept here (under mu) rather than in
	// a closure, which would cost three allocations per packet sent:
	// wbuf is what Write puts into the socket, wn how much it took, werr
	// why it stopped; put is c.putNow, made once.
	wbuf []byte
	wn   int
	werr error
	put  func(fd uintptr) bool
}

// bufferWrites returns c with writes that never wait, if it is a TCP
// connection; any other connection is returned as is.
func bufferWrites(c net.Conn, timeout time.Duration) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	oc := &outConn{TCPConn: tc, raw: raw, timeout: timeout, limit: maxPendingWrite}
	oc.put = oc.putNow
	return oc
}

// Write writes what the socket takes now and keeps the rest for the
// flushing goroutine. It reports all of p written unless writing has
// failed: the connection is then closed (or closing) and the error says
// why.
func (c *outConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.closing {
		return 0, net.ErrClosed
	}
	n := 0
	if !c.flushing {
		c.wbuf, c.wn, c.werr = p, 0, nil
		err := c.raw.Write(c.put)
		n = c.wn
		werr := c.werr
		c.wbuf, c.werr = nil, nil
		if err != nil {
			werr = err
		}
		if werr != nil {
			c.err = werr
			return n, werr
		}
		if n == len(p) {
			return n, nil
		}
	}
	if len(c.pending)+len(p)-n > c.limit {
		c.err = errWriteLimit
		c.pending = nil
		c.TCPConn.Close()
		return n, c.err
	}
	c.pending = append(c.pending, p[n:]...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return len(p), nil
}

// putNow puts as much of c.wbuf into the socket fd as it takes at once,
// counting it in c.wn; an error other than a full socket goes to c.werr.
// It never waits for the socket. Called by Write, under c.mu.
func (c *outConn) putNow(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		m, err := syscall.Write(int(fd), c.wbuf[c.wn:])
		if m > 0 {
			c.wn += m
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil && err != syscall.EAGAIN {
			c.werr = err
		}
		if err != nil || m <= 0 {
			break
		}
	}
	return true
}

// flushChunk is how much the flushing goroutine writes under one
// deadline: the write timeout bounds a client that makes no progress, not
// one that reads a large backlog slowly.
const flushChunk = 64 << 10

// closeGrace bounds how long a closed connection's pending output may take
// to leave when the listener has no write timeout.
const closeGrace = 10 * time.Second

// flush writes the pending bytes out until none are left, then ends; it
// closes the connection when a write fails or times out, and once it is
// done if Close came meanwhile. Each chunk gets a fresh deadline, and the
// deadline is cleared before the goroutine ends: the next write goes to
// the socket directly, and a passed deadline would fail it.
func (c *outConn) flush() {
	for {
		c.mu.Lock()
		if len(c.pending) == 0 || c.err != nil {
			_ = c.TCPConn.SetWriteDeadline(time.Time{})
			c.flushing = false
			closing := c.closing
			c.pending = nil // a slow client's buffer is not kept for the next one
			c.mu.Unlock()
			if closing {
				c.TCPConn.Close()
			}
			return
		}
		out := c.pending
		c.pending = nil
		closing := c.closing
		c.mu.Unlock()
		for len(out) > 0 {
			chunk := out[:min(len(out), flushChunk)]
			switch {
			case c.timeout > 0:
				_ = c.TCPConn.SetWriteDeadline(time.Now().Add(c.timeout))
			case closing:
				_ = c.TCPConn.SetWriteDeadline(time.Now().Add(closeGrace))
			}
			n, err := c.TCPConn.Write(chunk)
			out = out[n:]
			if err != nil {
				c.mu.Lock()
				if c.err == nil {
					c.err = err
				}
				c.pending, c.flushing = nil, false
				c.mu.Unlock()
				c.TCPConn.Close()
				return
			}
		}
	}
}

// Close closes the connection, or, while output is pending, stops its
// reads at once and leaves the close to the flushing goroutine, so that a
// last packet (a DISCONNECT, a refusal) still reaches the client; without
// a write timeout that goroutine gives it closeGrace.
func (c *outConn) Close() error {
	c.mu.Lock()
	if c.flushing && c.err == nil {
		c.closing = true
		if c.timeout <= 0 {
			// The chunk being written has no deadline: give it one.
			_ = c.TCPConn.SetWriteDeadline(time.Now().Add(closeGrace))
		}
		c.mu.Unlock()
		return c.TCPConn.CloseRead()
	}
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.TCPConn.Close()
}

// SetDeadline sets the read deadline only: writes never wait, and the
// flushing goroutine keeps its own deadline.
func (c *outConn) SetDeadline(t time.Time) error { return c.TCPConn.SetReadDeadline(t) }

// SetWriteDeadline does nothing: writes never wait, and the flushing
// goroutine keeps its own deadline.
func (c *outConn) SetWriteDeadline(time.Time) error { return nil }
