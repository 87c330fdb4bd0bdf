package throttle

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l := New(10, 5)
	l.now = func() time.Time { return at }
	for i := range 5 {
		if !l.Allow("a") {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.Allow("a") {
		t.Fatal("request beyond the burst allowed")
	}
	if !l.Allow("b") {
		t.Fatal("another thing is limited by the first one's requests")
	}
	at = at.Add(100 * time.Millisecond) // one token at 10/s
	if !l.Allow("a") || l.Allow("a") {
		t.Fatal("the bucket did not refill at the rate")
	}
	// Idle buckets are dropped, and a dropped bucket starts full.
	at = at.Add(2 * idleAfter)
	l.Allow("c")
	if _, ok := l.buckets["a"]; ok {
		t.Fatal("an idle bucket was kept")
	}
	for range 5 {
		if !l.Allow("a") {
			t.Fatal("a returning thing did not get a full bucket")
		}
	}
	var none *Limiter
	if !none.Allow("x") || New(0, 10) != nil {
		t.Fatal("a zero rate must allow everything")
	}
}
