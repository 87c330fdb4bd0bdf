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
	if n := h.Set(func(cs []int) { got = append(got, cs...) }); n != 10 {
		t.Fatalf("dropped %d, want 10", n)
	}
	if len(got) != MaxHeldChanges || got[0] != 10 {
		t.Fatalf("held %d from %d, want the newest %d", len(got), got[0], MaxHeldChanges)
	}
}

func TestHandoffNilDrops(t *testing.T) {
	var h Handoff[int]
	h.Deliver([]int{1})
	h.Set(nil)
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
