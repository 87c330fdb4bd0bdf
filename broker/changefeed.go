package broker

import (
	"sync"

	"github.com/jobsbroker/jobsbroker/store"
)

// changeFeed shares the store's one change handler. The jobs hook installs
// its handler through it (it is the Store the hook is given), and other
// parts of the broker (the console) subscribe to the same committed
// changes. Subscribers are called on the store's commit path, before the
// jobs hook queues the batch: they must only take note and return.
type changeFeed struct {
	store.Store
	mu   sync.RWMutex
	subs []store.ChangeHandler
}

// SetChangeHandler installs h on the store, behind the subscribers.
func (f *changeFeed) SetChangeHandler(h store.ChangeHandler) {
	f.Store.SetChangeHandler(func(changes []store.Change) {
		f.mu.RLock()
		for _, sub := range f.subs {
			sub(changes)
		}
		f.mu.RUnlock()
		h(changes)
	})
}

// Subscribe adds a handler that sees every committed change. It must not
// block, keep or change the slice.
func (f *changeFeed) Subscribe(h store.ChangeHandler) {
	f.mu.Lock()
	f.subs = append(f.subs, h)
	f.mu.Unlock()
}
