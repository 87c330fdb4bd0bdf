package jobshook

import (
	"strings"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

var _ store.Interest = (*Hook)(nil)

// Has reports whether a client of this broker subscribes to thing's notify
// or notify-next topic (directly or through a wildcard), plain or of a job
// namespace this broker has seen. A store shared with other nodes hands
// over their changes for such things only.
func (h *Hook) Has(thing string) bool {
	if hasSubscribers(h.server, topics.NotifyNext(thing)) || hasSubscribers(h.server, topics.Notify(thing)) {
		return true
	}
	return h.namespaces.some(func(ns string) bool {
		return hasSubscribers(h.server, topics.NotifyNextNamespace(thing, ns)) || hasSubscribers(h.server, topics.NotifyNamespace(thing, ns))
	})
}

// Things lists the things that clients of this broker subscribe to by
// name under $aws/things/{thing}/jobs/. A subscription with a wildcard in
// the thing's place names no thing: Has still sees it, but a store cannot
// list what it covers.
func (h *Hook) Things() []string {
	seen := map[string]bool{}
	for _, cl := range h.server.Clients.GetAll() {
		for filter := range cl.State.Subscriptions.GetAll() {
			if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
				if _, f, ok := strings.Cut(rest, "/"); ok {
					filter = f
				}
			}
			rest, ok := strings.CutPrefix(filter, "$aws/things/")
			if !ok {
				continue
			}
			thing, _, _ := strings.Cut(rest, "/")
			if topics.ValidThingName(thing) && (matches(filter, topics.Notify(thing)) || matches(filter, topics.NotifyNext(thing))) {
				seen[thing] = true
			}
			// A namespace's notify topics, subscribed by name (as
			// Greengrass does): the thing, and the namespace for Has.
			if t, err := topics.Parse(filter); err == nil && t.Namespace != "" && (t.Kind == topics.KindNotify || t.Kind == topics.KindNotifyNext) {
				seen[t.Thing] = true
				h.namespaces.learn(t.Namespace)
			}
		}
	}
	things := make([]string, 0, len(seen))
	for t := range seen {
		things = append(things, t)
	}
	return things
}

// matches reports whether an MQTT topic filter matches a topic name.
func matches(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		switch {
		case level == "#":
			return true
		case i >= len(t):
			return false
		case level != "+" && level != t[i]:
			return false
		}
	}
	return len(f) == len(t)
}
