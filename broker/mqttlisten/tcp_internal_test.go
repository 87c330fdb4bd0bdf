package mqttlisten

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// countingConn records each Write the connection makes.
type countingConn struct {
	net.Conn
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func TestDeadlineConnHoldsOneWrite(t *testing.T) {
	inner := &countingConn{}
	c := &deadlineConn{Conn: inner, timeout: time.Second}

	// A held write goes out with the next one, in order, in one write.
	c.HoldNextWrite()
	if n, err := c.Write([]byte("reply")); n != 5 || err != nil {
		t.Fatalf("held write: %d, %v", n, err)
	}
	if len(inner.writes) != 0 {
		t.Fatalf("the held write went out at once: %q", inner.writes)
	}
	if n, err := c.Write([]byte("ack")); n != 3 || err != nil {
		t.Fatalf("next write: %d, %v (want 3: only its own bytes count)", n, err)
	}
	if len(inner.writes) != 1 || string(inner.writes[0]) != "replyack" {
		t.Fatalf("writes %q, want one write \"replyack\"", inner.writes)
	}

	// Without a hold every write goes out by itself.
	c.Write([]byte("a"))
	c.Write([]byte("b"))
	if len(inner.writes) != 3 || string(inner.writes[1]) != "a" || string(inner.writes[2]) != "b" {
		t.Fatalf("writes %q, want \"a\" and \"b\" apart", inner.writes[1:])
	}

	// A released hold that no write used holds nothing back.
	c.HoldNextWrite()
	c.ReleaseHold()
	c.Write([]byte("c"))
	if len(inner.writes) != 4 || string(inner.writes[3]) != "c" {
		t.Fatalf("writes %q: a released hold kept \"c\"", inner.writes)
	}

	// Releasing after the hold was used keeps the held bytes for the
	// next write (the PUBACK that follows a reply).
	c.HoldNextWrite()
	c.Write([]byte("r"))
	c.ReleaseHold()
	c.Write([]byte("p"))
	if len(inner.writes) != 5 || string(inner.writes[4]) != "rp" {
		t.Fatalf("writes %q, want \"rp\" last", inner.writes)
	}
}
