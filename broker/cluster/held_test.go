package cluster

import (
	"fmt"
	"slices"
	"testing"
)

// TestHeldMatch: the index gives, by node, the sessions of other nodes
// subscribed to a topic, and a node's word that it holds no session of a
// client ends the entry only when that node is the one holding it.
func TestHeldMatch(t *testing.T) {
	h := &Hook{held: newHeld()}
	h.applyHeld(heldHint{Node: "a", Client: "dev-1", Filters: []string{"cmd/+", "other"}})
	h.applyHeld(heldHint{Node: "b", Client: "dev-2", Filters: []string{"cmd/#"}})
	h.applyHeld(heldHint{Node: "me", Client: "dev-3", Filters: []string{"cmd/x"}})
	got := h.held.match("cmd/x", "me")
	if fmt.Sprint(got) != "map[a:[dev-1] b:[dev-2]]" {
		t.Fatalf("match = %v", got)
	}
	// dev-1 moves to b; a's late word that it let it go changes nothing.
	h.applyHeld(heldHint{Node: "b", Client: "dev-1", Filters: []string{"cmd/x"}})
	h.applyHeld(heldHint{Node: "a", Client: "dev-1", Gone: true})
	got = h.held.match("cmd/x", "me")
	for _, ids := range got {
		slices.Sort(ids)
	}
	if fmt.Sprint(got) != "map[b:[dev-1 dev-2]]" {
		t.Fatalf("match after the move = %v", got)
	}
	if got := h.held.match("other", "me"); len(got) != 0 {
		t.Fatalf("a filter dev-1 dropped still matches: %v", got)
	}
	h.applyHeld(heldHint{Node: "b", Client: "dev-2", Gone: true})
	if got := h.held.match("cmd/y", "me"); len(got) != 0 {
		t.Fatalf("an ended session still matches: %v", got)
	}
}

// TestOweIDs: the client ids of an owe request survive the wire, any
// bytes in them.
func TestOweIDs(t *testing.T) {
	ids := []string{"dev-1", "", "a/b\n\x00c", "ü"}
	b := append(encodeIDs(ids), "rest"...)
	got, rest, ok := decodeIDs(b)
	if !ok || !slices.Equal(got, ids) || string(rest) != "rest" {
		t.Fatalf("decoded %q, %q, %v", got, rest, ok)
	}
	if _, _, ok := decodeIDs(b[:5]); ok {
		t.Fatal("a cut request decoded")
	}
}
