package jobshook

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Job namespaces (CreateJob's namespaceId). AWS IoT sends the
// notifications about a namespaced job to the namespace's own topics,
// notify-namespace-{ns} and notify-next-namespace-{ns}, and AWS IoT
// Greengrass, the one client that uses namespaces, describes and updates
// its jobs on {jobId}/namespace-{ns}/get and /update. Each namespace is a
// view of the thing's pending executions: the plain notify and notify-next
// topics carry the executions of jobs without a namespace, each
// namespace's topics those of its jobs, and $next on a namespaced topic is
// the namespace's next execution.

// namespaceCache maps job sequence numbers to their namespaceId, which
// never changes once a job exists.
type namespaceCache struct {
	mu    sync.Mutex
	m     map[uint64]string
	known map[string]bool // every namespace seen, in jobs or subscriptions
}

// learn records that namespace ns exists. Call it with c.mu held.
func (c *namespaceCache) learn(ns string) {
	if ns == "" {
		return
	}
	if c.known == nil {
		c.known = map[string]bool{}
	}
	c.known[ns] = true
}

// namespacesKnown lists the namespaces seen so far.
func (c *namespaceCache) namespacesKnown() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.known))
	for ns := range c.known {
		out = append(out, ns)
	}
	return out
}

// maxNamespacesCached bounds the cache; past it the cache starts over.
const maxNamespacesCached = 1 << 16

// namespaceOf returns the namespace of the job with id jobID and sequence
// number seq, "" when it has none or cannot be read.
func (h *Hook) namespaceOf(ctx context.Context, jobID string, seq uint64) string {
	c := &h.namespaces
	c.mu.Lock()
	ns, ok := c.m[seq]
	c.mu.Unlock()
	if ok {
		return ns
	}
	job, err := h.store.DescribeJob(ctx, jobID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		ns = "" // deleted: its executions are leaving too, and seq never comes back
	case err != nil:
		return "" // not remembered: asked again next time
	case job.Seq != seq:
		ns = "" // deleted and created again: seq is the old job's
	default:
		ns = job.NamespaceID
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxNamespacesCached {
		c.m = map[uint64]string{}
	}
	c.m[seq] = ns
	c.learn(ns)
	c.mu.Unlock()
	return ns
}

// inNamespace returns the executions of set whose jobs are in namespace
// ns, in the set's order.
func (h *Hook) inNamespace(ctx context.Context, set store.PendingSet, ns string) store.PendingSet {
	var out store.PendingSet
	for _, e := range set {
		if h.namespaceOf(ctx, e.JobID, e.JobSeq) == ns {
			out = append(out, e)
		}
	}
	return out
}

// anyNamespaced reports whether a change involves a namespaced job.
func (h *Hook) anyNamespaced(ctx context.Context, c *store.Change) bool {
	for _, set := range []store.PendingSet{c.Pending, c.Before} {
		for _, e := range set {
			if h.namespaceOf(ctx, e.JobID, e.JobSeq) != "" {
				return true
			}
		}
	}
	return c.Next != nil && h.namespaceOf(ctx, c.Next.JobID, c.Next.JobSeq) != ""
}

// namespacesIn adds the namespaces of set's jobs to seen.
func (h *Hook) namespacesIn(ctx context.Context, set store.PendingSet, seen map[string]bool) {
	for _, e := range set {
		seen[h.namespaceOf(ctx, e.JobID, e.JobSeq)] = true
	}
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

// publishNamespaced publishes the notifications of a change that touches
// namespaced jobs: for each namespace (the plain one included) a notify
// when the namespace's executions changed and a notify-next when its next
// execution did. It reports false, having done nothing, when no namespace
// is involved.
func (h *Hook) publishNamespaced(c *store.Change, now time.Time) bool {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.RequestTimeout)
	defer cancel()
	if !h.anyNamespaced(ctx, c) {
		return false
	}
	seen := map[string]bool{"": true}
	h.namespacesIn(ctx, c.Pending, seen)
	h.namespacesIn(ctx, c.Before, seen)
	if c.Next != nil {
		seen[h.namespaceOf(ctx, c.Next.JobID, c.Next.JobSeq)] = true
	}
	for ns := range seen {
		after := h.inNamespace(ctx, c.Pending, ns)
		notify, next := c.Notify, c.NotifyNext
		if c.Before != nil {
			before := h.inNamespace(ctx, c.Before, ns)
			notify, next = !sameMembers(before, after), !sameHead(before, after)
		} else if c.Next != nil {
			// Without the set before, notify-next goes to the namespace
			// of the new next execution only.
			next = next && h.namespaceOf(ctx, c.Next.JobID, c.Next.JobSeq) == ns
		}
		if notify {
			if topic := notifyTopic(c.ThingName, ns); hasSubscribers(h.server, topic) {
				payload, err := notifyPayload(after, now)
				h.send(topic, "notify", payload, err)
			}
		}
		if next {
			if topic := notifyNextTopic(c.ThingName, ns); hasSubscribers(h.server, topic) {
				e, doc := h.namespaceHead(ctx, c, after.Head())
				payload, err := notifyNextPayload(e, h.nextDocument(e, doc), now)
				h.send(topic, "notify-next", payload, err)
			}
		}
	}
	return true
}

// namespaceHead returns the execution, with its document, that head
// summarizes: the change's own next execution when it is that one,
// otherwise read from the store. It returns nil for a nil head, and for
// one that can no longer be read.
func (h *Hook) namespaceHead(ctx context.Context, c *store.Change, head *store.PendingExecution) (*store.Execution, string) {
	if head == nil {
		return nil, ""
	}
	if n := c.Next; n != nil && n.JobID == head.JobID && n.ExecutionNumber == head.ExecutionNumber {
		return n, c.NextDocument
	}
	number := head.ExecutionNumber
	out, err := h.store.DescribeJobExecution(ctx, &store.DescribeExecutionInput{
		ThingName: c.ThingName, JobID: head.JobID, ExecutionNumber: &number, IncludeJobDocument: true,
	})
	if err != nil || out.Execution == nil {
		h.Log.Warn("could not read a namespace's next execution for notify-next", "thing", c.ThingName, "job", head.JobID, "error", err)
		return nil, ""
	}
	return out.Execution, out.Document
}

// describeNextIn serves DescribeJobExecution of $next on a namespaced
// topic: the next pending execution among the namespace's jobs.
func (h *Hook) describeNextIn(ctx context.Context, in *store.DescribeExecutionInput, ns string, token *string) ([]byte, *rejection) {
	pending, err := h.store.GetPendingJobExecutions(ctx, in.ThingName)
	if err != nil {
		return nil, rejectionFor(err)
	}
	for _, list := range [][]store.PendingExecution{pending.InProgress, pending.Queued} {
		for _, e := range list {
			if h.namespaceOf(ctx, e.JobID, e.JobSeq) != ns {
				continue
			}
			number := e.ExecutionNumber
			out, err := h.store.DescribeJobExecution(ctx, &store.DescribeExecutionInput{
				ThingName: in.ThingName, JobID: e.JobID, ExecutionNumber: &number, IncludeJobDocument: in.IncludeJobDocument,
			})
			if err != nil {
				return nil, rejectionFor(err)
			}
			return h.executionReply(ctx, out, token)
		}
	}
	return h.executionReply(ctx, &store.ExecutionOutput{}, token)
}

// sameMembers reports whether two sets hold the same executions.
func sameMembers(a, b store.PendingSet) bool {
	if len(a) != len(b) {
		return false
	}
	for _, e := range a {
		if !slices.ContainsFunc(b, func(x store.PendingExecution) bool {
			return x.JobID == e.JobID && x.ExecutionNumber == e.ExecutionNumber
		}) {
			return false
		}
	}
	return true
}

// sameHead reports whether both sets have the same next execution.
func sameHead(a, b store.PendingSet) bool {
	ha, hb := a.Head(), b.Head()
	if ha == nil || hb == nil {
		return ha == nil && hb == nil
	}
	return ha.JobID == hb.JobID && ha.ExecutionNumber == hb.ExecutionNumber
}
