package store

import (
	"sync"
	"sync/atomic"
)

// MaxHeldChanges bounds what a Handoff keeps while no receiver is
// installed: beyond it, the oldest quarter of the changes held is dropped
// (and counted), so that a store nobody receives changes from (a scratch
// store, a backup) costs a bounded memory and little time.
const MaxHeldChanges = 1 << 16

// Handoff passes committed changes to the receiver a store's user
// installs (SetChangeHandler, SetCommandHandler). A store's background
// loops start when the store opens, before its user has installed a
// receiver: a timer that came due while the broker was stopped fires at
// once. What they commit before a receiver is installed is held and handed
// to the first receiver installed, ahead of any later change, so that the
// notifications and events it calls for are not lost. The zero value holds
// changes until Set.
//
// The receiver may be called with the Handoff's lock held (by Set, and by a
// Deliver that races with it): it must not call back into the Handoff, nor
// wait for anything that waits for a Deliver.
type Handoff[T any] struct {
	// fn is the receiver once installed; nil before.
	fn      atomic.Pointer[func([]T)]
	mu      sync.Mutex
	held    []T
	dropped int
}

// Set installs the receiver (nil: changes are dropped from now on). The
// first call hands it what was held, and returns how many changes were
// dropped for want of room before it.
func (h *Handoff[T]) Set(fn func([]T)) (dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if held := h.held; len(held) > 0 {
		if fn != nil {
			fn(held)
		} else {
			h.dropped += len(held)
		}
	}
	h.held, dropped, h.dropped = nil, h.dropped, 0
	h.fn.Store(&fn)
	return dropped
}

// Deliver hands changes to the receiver, or holds them until one is
// installed.
func (h *Handoff[T]) Deliver(changes []T) {
	if len(changes) == 0 {
		return
	}
	if h.deliverTo(changes) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deliverTo(changes) { // installed meanwhile, held ones handed over
		return
	}
	h.held = append(h.held, changes...)
	if len(h.held) > MaxHeldChanges {
		drop := len(h.held) - MaxHeldChanges*3/4
		h.dropped += drop
		h.held = append(h.held[:0], h.held[drop:]...)
	}
}

// deliverTo hands changes to the receiver, if one was installed (a nil one
// drops them), and reports whether one was.
func (h *Handoff[T]) deliverTo(changes []T) bool {
	fn := h.fn.Load()
	if fn == nil {
		return false
	}
	if *fn != nil {
		(*fn)(changes)
	}
	return true
}
