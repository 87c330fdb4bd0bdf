package badger

import (
	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// The committer keeps the records it reads and writes most (executions,
// the first entries of things' queues, job records and counts) decoded in
// memory. A device operation reads the head of its thing's queue, its
// execution, the job and the job's counts; from Badger each of those is a
// lookup through the memtables and the levels of the tree (an iterator,
// for the queue) and then a decode, which together were most of the
// committer's time. The committer is the only writer, so what it has seen
// committed stays true until it writes again.
//
// Writes are staged per transaction and reach the cache only once the
// transaction commits; a discarded transaction leaves the cache as it was.
// Readers outside the committer (Badger views) never use the cache.

// DefaultCacheBytes is the default of Options.CacheBytes. The records in
// use at any time are few (for each device at work, its thing's queue head
// and current execution, plus the jobs and their counts: a few MiB for
// thousands of devices), and everything the cache holds is decoded records
// full of pointers that the garbage collector marks on every cycle. With
// 32 MiB the marking of a mostly stale cache doubled each collection's mark
// phase and with it the latency tail (BENCHMARKS.md, "The committer's cache").
const DefaultCacheBytes = 8 << 20

// absent marks a key known not to exist.
type absent struct{}

// unknown marks a key written in a way the cache does not follow (raw
// bytes); it is dropped from the cache when the transaction commits.
type unknown struct{}

// recordCache is a two-generation cache bounded by the approximate size
// of what it holds: lookups promote entries of the old generation into
// the new one, and when the new one holds half the budget it becomes the
// old one. Committer only.
type recordCache struct {
	cur, old map[string]any
	curBytes int
	limit    int // bytes, both generations together
}

func (c *recordCache) get(k string) (any, bool) {
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	if ok {
		c.put(k, v)
	}
	return v, ok
}

func (c *recordCache) put(k string, v any) {
	if c.limit <= 0 {
		return
	}
	if c.cur == nil {
		c.cur = c.generation()
	}
	n := len(k) + sizeOf(v)
	if c.curBytes+n > c.limit/2 {
		c.old, c.cur, c.curBytes = c.cur, c.generation(), 0
	}
	if _, ok := c.cur[k]; !ok {
		c.curBytes += n
	}
	c.cur[k] = v
}

// generation makes a generation's map at about the size it will reach,
// so that filling it does not grow it step by step.
func (c *recordCache) generation() map[string]any {
	return make(map[string]any, min(c.limit/2/1024, 1<<15))
}

func (c *recordCache) drop(k string) {
	if v, ok := c.cur[k]; ok {
		// Queue views change size in place, so what is taken off may
		// differ from what was counted: never below zero.
		c.curBytes = max(0, c.curBytes-len(k)-sizeOf(v))
		delete(c.cur, k)
	}
	delete(c.old, k)
}

// clear empties the cache (after a failed commit, when nothing is certain).
func (c *recordCache) clear() { c.cur, c.old, c.curBytes = nil, nil, 0 }

// sizeOf approximates the memory a cached value holds, map entry included.
func sizeOf(v any) int {
	const entry = 64
	switch x := v.(type) {
	case *store.Execution:
		n := entry + 320 + len(x.JobID) + len(x.ThingName)
		for k, s := range x.StatusDetails {
			n += 48 + len(k) + len(s)
		}
		return n
	case *store.Job:
		return entry + 1024 + len(x.Description)
	case *store.ProcessDetails:
		return entry + 96
	case *engine.QueueView:
		return entry + x.Size()
	}
	return entry
}

// txnCache is one Badger transaction's view of the cache: the records its
// operations wrote, over the committed ones.
type txnCache struct {
	c      *recordCache
	staged map[string]any
	// written holds the thing\x00job of every execution the transaction
	// wrote or deleted: the latest execution of those must be read from
	// the transaction itself, not from the committed state.
	written map[string]bool
	// lastThing, lastNS and lastKey remember the last queue's view key: an
	// operation asks for it several times.
	lastThing, lastNS, lastKey string
	// ro reads the committed state (see rtx.committed); discarded with
	// the transaction.
	ro *badgerdb.Txn
}

// viewKey is the cache key of the view of a thing's queue of namespace
// ns.
func (t *txnCache) viewKey(thing, ns string) string {
	if thing != t.lastThing || ns != t.lastNS || t.lastKey == "" {
		t.lastThing, t.lastNS, t.lastKey = thing, ns, string(queuePrefix(thing, ns))
	}
	return t.lastKey
}

// close discards the transaction's read of the committed state.
func (t *txnCache) close() {
	if t.ro != nil {
		t.ro.Discard()
		t.ro = nil
	}
}

// discard forgets a transaction that will not commit: the queue views it
// changed (in place, see rtx.queueView) leave the cache.
func (t *txnCache) discard() {
	for k, v := range t.staged {
		if _, ok := v.(*engine.QueueView); ok {
			t.c.drop(k)
		}
	}
	clear(t.staged)
	t.close()
}

func newTxnCache(c *recordCache) *txnCache {
	return &txnCache{c: c, staged: map[string]any{}}
}

// lookup returns what the transaction knows of k: ok is false when the
// record must be read from Badger.
// It takes the key as bytes: map reads keyed by string(k) do not copy it.
func (t *txnCache) lookup(k []byte) (any, bool) {
	if v, ok := t.staged[string(k)]; ok {
		if _, u := v.(unknown); u {
			return nil, false
		}
		return v, true
	}
	if v, ok := t.c.cur[string(k)]; ok {
		return v, true
	}
	if _, ok := t.c.old[string(k)]; !ok {
		return nil, false
	}
	return t.c.get(string(k))
}

// remember records what a Badger read returned. A key the transaction
// wrote raw is not remembered: the read saw the transaction's own write.
func (t *txnCache) remember(k string, v any) {
	if _, ok := t.staged[k]; ok || !worthKeeping(v) {
		return
	}
	t.c.put(k, v)
}

// worthKeeping says whether a record is likely to be read by the
// committer again. A finished execution (SUCCEEDED, FAILED, ...) is not:
// no device operation changes it, so the committer reads it again only
// for a rare rejected update or a re-run. Kept, finished executions would
// fill most of the cache (each device finishes one every few operations),
// crowding out the records in use and giving the garbage collector a heap
// of pointers to mark for nothing.
func worthKeeping(v any) bool {
	e, ok := v.(*store.Execution)
	return !ok || !e.Status.Terminal()
}

// stage records a write of the transaction.
func (t *txnCache) stage(k string, v any) { t.staged[k] = v }

// apply moves the staged writes into the cache; call it once the
// transaction has committed.
func (t *txnCache) apply() {
	for k, v := range t.staged {
		switch x := v.(type) {
		case unknown:
			t.c.drop(k)
		case *engine.QueueView:
			x.Committed()
			t.c.put(k, x)
		case *store.Execution:
			if worthKeeping(x) {
				t.c.put(k, x)
			} else {
				t.c.drop(k)
			}
		default:
			t.c.put(k, v)
		}
	}
}

// Copies handed out by the cache: callers change what they load.

func copyCounts(p *store.ProcessDetails) *store.ProcessDetails {
	c := *p
	c.ProcessingTargets = append([]string(nil), p.ProcessingTargets...)
	return &c
}
