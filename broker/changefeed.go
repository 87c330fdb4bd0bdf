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
//
// The handler reaches the store only when the broker's MQTT side is
// assembled (open, in New once every hook is added): the store holds what
// it commits before then (timers that came due while the broker was
// stopped fire as the store opens), and hands it over once the persistent
// sessions that may be owed the notifications are loaded.
type changeFeed struct {
	store.Store
	mu      sync.RWMutex
	subs    []store.ChangeHandler
	handler deferred[store.ChangeHandler] // the jobs hook's
	// commands defers the command handler in the same way; nil when the
	// store keeps no commands.
	commands *commandFeed
}

// deferred keeps a handler until open, and installs it (with install)
// then, or at once once open.
type deferred[H any] struct {
	mu      sync.Mutex
	h       H
	opened  bool
	install func(H)
}

func (d *deferred[H]) set(h H) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.h = h
	if d.opened {
		d.install(h)
	}
}

func (d *deferred[H]) open() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opened = true
	d.install(d.h)
}

func newChangeFeed(st store.Store) *changeFeed {
	f := &changeFeed{Store: st}
	f.handler.install = f.install
	if cs, ok := st.(store.CommandStore); ok {
		f.commands = &commandFeed{CommandStore: cs}
		f.commands.handler.install = func(h store.CommandHandler) {
			if h != nil {
				cs.SetCommandHandler(h)
			}
		}
	}
	return f
}

// SetChangeHandler installs h on the store, behind the subscribers, once
// the feed is open.
func (f *changeFeed) SetChangeHandler(h store.ChangeHandler) { f.handler.set(h) }

func (f *changeFeed) install(h store.ChangeHandler) {
	f.Store.SetChangeHandler(func(changes []store.Change) {
		f.mu.RLock()
		for _, sub := range f.subs {
			sub(changes)
		}
		f.mu.RUnlock()
		if h != nil {
			h(changes)
		}
	})
}

// commandStore is the store's command operations with the deferred
// handler, or nil when the store keeps no commands.
func (f *changeFeed) commandStore() store.CommandStore {
	if f.commands == nil {
		return nil
	}
	return f.commands
}

// open installs the handlers on the store, which hands them what it
// committed before.
func (f *changeFeed) open() {
	f.handler.open()
	if f.commands != nil {
		f.commands.handler.open()
	}
}

// Subscribe adds a handler that sees every committed change. It must not
// block, keep or change the slice.
func (f *changeFeed) Subscribe(h store.ChangeHandler) {
	f.mu.Lock()
	f.subs = append(f.subs, h)
	f.mu.Unlock()
}

// commandFeed is the store's command operations, with the command handler
// installed only when the change feed opens.
type commandFeed struct {
	store.CommandStore
	handler deferred[store.CommandHandler]
}

// SetCommandHandler installs h on the store once the feed is open.
func (f *commandFeed) SetCommandHandler(h store.CommandHandler) { f.handler.set(h) }

// EventConfig is the store's event configuration: command execution events
// are published while job-execution events are on (jobshook asks its
// command store).
func (f *commandFeed) EventConfig() store.EventConfigurations {
	if ec, ok := f.CommandStore.(interface {
		EventConfig() store.EventConfigurations
	}); ok {
		return ec.EventConfig()
	}
	return store.EventConfigurations{}
}
