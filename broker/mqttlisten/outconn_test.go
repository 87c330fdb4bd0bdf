//go:build unix

package mqttlisten

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection: the accepted
// one with writes that never wait, and the dialled one.
func tcpPair(t *testing.T, timeout time.Duration) (*outConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	c, err := outListener{ln, timeout}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	oc, ok := c.(*outConn)
	if !ok {
		t.Fatalf("accepted %T, want *outConn", c)
	}
	return oc, peer
}

// pattern is n bytes that say where in the stream they are.
func pattern(from, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((from + i) % 251)
	}
	return b
}

// writeAll writes total bytes in chunks and fails the test if the writes
// do not all return within 10 s (they would wait for ever for a peer
// that reads nothing, were they to wait for the socket).
func writeAll(t *testing.T, c net.Conn, total, chunk int) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for off := 0; off < total; off += chunk {
			if _, err := c.Write(pattern(off, min(chunk, total-off))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("writes to a peer that reads nothing waited")
		return nil
	}
}

// TestOutConnWritesDoNotWait: 16 MiB written to a peer that reads
// nothing all return, and the peer then reads every byte in order, and
// the end of the stream after Close.
func TestOutConnWritesDoNotWait(t *testing.T) {
	c, peer := tcpPair(t, 0)
	const total = 16 << 20
	if err := writeAll(t, c, total, 100_000); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // with output pending: closed once it is written
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a write after Close: %v, want net.ErrClosed", err)
	}
	peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got), err)
	}
	if len(got) != total || !bytes.Equal(got, pattern(0, total)) {
		t.Fatalf("read %d bytes, want the %d written, in order", len(got), total)
	}
}

// TestOutConnLimit: a peer that leaves more than the limit unread is
// disconnected, and the write that passed the limit says so.
func TestOutConnLimit(t *testing.T) {
	c, peer := tcpPair(t, 0)
	c.limit = 1 << 20
	err := writeAll(t, c, 64<<20, 100_000)
	if !errors.Is(err, errWriteLimit) {
		t.Fatalf("writes past the limit: %v, want errWriteLimit", err)
	}
	peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, peer); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer's read after the limit: %v, want the connection ended", err)
	}
}

// TestOutConnTimeout: output that makes no progress for the timeout ends
// the connection, and later writes fail.
func TestOutConnTimeout(t *testing.T) {
	c, _ := tcpPair(t, 200*time.Millisecond)
	if err := writeAll(t, c, 16<<20, 100_000); err != nil && !isTimeout(err) {
		t.Fatal(err) // the timeout may pass while it writes
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Write([]byte("x")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection still takes writes long after its output stopped moving")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutConnIdleAfterBacklog: once a backlog has been written out, the
// connection writes again after an idle spell longer than the timeout (a
// device idle between messages is the usual case).
func TestOutConnIdleAfterBacklog(t *testing.T) {
	c, peer := tcpPair(t, 300*time.Millisecond)
	go io.Copy(io.Discard, peer)
	if _, err := c.Write(make([]byte, 8<<20)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		flushing := c.flushing
		c.mu.Unlock()
		if !flushing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backlog was never written out to a peer that reads")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond) // idle for twice the timeout
	if _, err := c.Write([]byte("after a pause")); err != nil {
		t.Fatalf("a write after an idle spell: %v", err)
	}
}

// TestOutConnSlowReaderKeepsUp: a peer that reads slowly but steadily
// (64 KiB every 10 ms, about 6 MB/s) takes a 12 MiB backlog, which needs
// several times the timeout to leave, without being disconnected: the
// timeout bounds a client that makes no progress.
func TestOutConnSlowReaderKeepsUp(t *testing.T) {
	c, peer := tcpPair(t, 300*time.Millisecond)
	const total = 12 << 20
	got := make(chan error, 1)
	go func() {
		peer.SetReadDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 64<<10)
		for read := 0; read < total; {
			n, err := io.ReadFull(peer, buf[:min(len(buf), total-read)])
			read += n
			if err != nil {
				got <- fmt.Errorf("after %d of %d bytes: %w", read, total, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		got <- nil
	}()
	if err := writeAll(t, c, total, 100_000); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
