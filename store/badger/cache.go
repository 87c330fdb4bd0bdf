package badger

import "github.com/jobsbroker/jobsbroker/store"

// The committer keeps the records it reads and writes most (executions,
// pending sets, job records and counts) decoded in memory. A device
// operation reads its thing's pending set, its execution, the job and the
// job's counts; from Badger each of those is a lookup through the
// memtables and the levels of the tree and then a JSON decode, which
// together were most of the committer's time. The committer is the only
// writer, so what it has seen committed stays true until it writes again.
//
// Writes are staged per transaction and reach the cache only once the
// transaction commits; a discarded transaction leaves the cache as it was.
// Readers outside the committer (Badger views) never use the cache.

// recordCacheSize is how many records one generation of the cache holds;
// with two generations the cache keeps between one and two times that.
const recordCacheSize = 1 << 16

// absent marks a key known not to exist.
type absent struct{}

// unknown marks a key written in a way the cache does not follow (raw
// bytes); it is dropped from the cache when the transaction commits.
type unknown struct{}

// recordCache is a two-generation cache: lookups promote entries of the
// old generation into the new one, and when the new one is full it
// becomes the old one. Committer only.
type recordCache struct {
	cur, old map[string]any
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
	if c.cur == nil {
		c.cur = make(map[string]any, recordCacheSize)
	}
	if len(c.cur) >= recordCacheSize {
		c.old, c.cur = c.cur, make(map[string]any, recordCacheSize)
	}
	c.cur[k] = v
}

func (c *recordCache) drop(k string) {
	delete(c.cur, k)
	delete(c.old, k)
}

// clear empties the cache (after a failed commit, when nothing is certain).
func (c *recordCache) clear() { c.cur, c.old = nil, nil }

// txnCache is one transaction's view of the cache: the records its
// operations wrote, over the committed ones.
type txnCache struct {
	c      *recordCache
	staged map[string]any
}

func newTxnCache(c *recordCache) *txnCache {
	return &txnCache{c: c, staged: map[string]any{}}
}

// lookup returns what the transaction knows of k: ok is false when the
// record must be read from Badger.
func (t *txnCache) lookup(k string) (any, bool) {
	if v, ok := t.staged[k]; ok {
		if _, u := v.(unknown); u {
			return nil, false
		}
		return v, true
	}
	return t.c.get(k)
}

// remember records what a Badger read returned. A key the transaction
// wrote raw is not remembered: the read saw the transaction's own write.
func (t *txnCache) remember(k string, v any) {
	if _, ok := t.staged[k]; ok {
		return
	}
	t.c.put(k, v)
}

// stage records a write of the transaction.
func (t *txnCache) stage(k string, v any) { t.staged[k] = v }

// apply moves the staged writes into the cache; call it once the
// transaction has committed.
func (t *txnCache) apply() {
	for k, v := range t.staged {
		if _, u := v.(unknown); u {
			t.c.drop(k)
		} else {
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
