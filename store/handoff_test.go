package store

import (
	"sync"
	"testing"
)

func TestHandoffHoldsUntilSet(t *testing.T) {
	var h Handoff[int]
	h.Deliver([]int{1, 2})
	h.Deliver(nil)
	h.Deliver([]int{3})
	var got []int
	if n := h.Set(func(cs []int) { got = append(got, cs...) }); n != 0 {
		t.Fatalf("dropped %d", n)
	}
	h.Deliver([]int{4})
	if len(got) != 4 || got[0] != 1 || got[3] != 4 {
		t.Fatalf("got %v, want the held changes first, then the later one", got)
	}
}

func TestHandoffBound(t *testing.T) {
	var h Handoff[int]
	for i := range MaxHeldChanges + 10 {
		h.Deliver([]int{i})
	}
	var got []int
	n := h.Set(func(cs []int) { got = append(got, cs...) })
	if n == 0 || len(got) > MaxHeldChanges || n+len(got) != MaxHeldChanges+10 {
		t.Fatalf("dropped %d and handed over %d of %d", n, len(got), MaxHeldChanges+10)
	}
	for i, v := range got {
		if v != n+i {
			t.Fatalf("change %d is %d: the newest are kept, in order", i, v)
		}
	}
}

func TestHandoffNilDrops(t *testing.T) {
	var h Handoff[int]
	h.Deliver([]int{1})
	if n := h.Set(nil); n != 1 {
		t.Fatalf("a nil receiver dropped %d held changes, want 1 counted", n)
	}
	h.Deliver([]int{2}) // dropped, as with no receiver before
	var got []int
	h.Set(func(cs []int) { got = append(got, cs...) })
	if len(got) != 0 {
		t.Fatalf("got %v after a nil receiver", got)
	}
}

// TestHandoffOrderUnderRace: changes delivered from one goroutine while
// another installs the receiver arrive whole and in order.
func TestHandoffOrderUnderRace(t *testing.T) {
	for range 50 {
		var h Handoff[int]
		var mu sync.Mutex
		var got []int
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range 1000 {
				h.Deliver([]int{i})
			}
		})
		h.Set(func(cs []int) { mu.Lock(); got = append(got, cs...); mu.Unlock() })
		wg.Wait()
		if len(got) != 1000 {
			t.Fatalf("got %d changes, want 1000", len(got))
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("change %d is %d: out of order", i, v)
			}
		}
	}
}
