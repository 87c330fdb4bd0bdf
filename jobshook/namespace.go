package jobshook

import (
	"sync"

	"github.com/jobsbroker/jobsbroker/topics"
)

// Job namespaces (CreateJob's namespaceId). AWS IoT sends the
// notifications about a namespaced job to the namespace's own topics,
// notify-namespace-{ns} and notify-next-namespace-{ns}, and AWS IoT
// Greengrass, the one client that uses namespaces, describes and updates
// its jobs on {jobId}/namespace-{ns}/get and /update. The store keeps a
// queue per namespace for each thing (store.Change.Namespace): the plain
// topics (notify, notify-next, get, start-next, $next) are those of the
// jobs without a namespace, and each namespace's topics those of its
// jobs, $next on a namespaced topic included.

// namespaceSet is the set of namespaces seen in subscriptions, which
// Has checks besides the plain topics.
type namespaceSet struct {
	mu    sync.Mutex
	known map[string]bool
}

// learn records that namespace ns exists.
func (c *namespaceSet) learn(ns string) {
	if ns == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known == nil {
		c.known = map[string]bool{}
	}
	c.known[ns] = true
}

// some reports whether fn holds for any namespace seen so far.
func (c *namespaceSet) some(fn func(ns string) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ns := range c.known {
		if fn(ns) {
			return true
		}
	}
	return false
}

func notifyTopic(thing, ns string) string {
	if ns == "" {
		return topics.Notify(thing)
	}
	return topics.NotifyNamespace(thing, ns)
}

func notifyNextTopic(thing, ns string) string {
	if ns == "" {
		return topics.NotifyNext(thing)
	}
	return topics.NotifyNextNamespace(thing, ns)
}
