package badger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
)

// errMissing reports a key that is not there; record loaders turn it into
// store.ErrNotFound with a message that names the resource.
var errMissing = badgerdb.ErrKeyNotFound

// rtx reads inside a Badger transaction (read-only or the committer's).
type rtx struct {
	txn *badgerdb.Txn
	s   *Store
	tc  *txnCache // the committer's record cache; nil in read-only views
}

// get returns a copy of the value at k, or errMissing.
func (r *rtx) get(k []byte) ([]byte, error) {
	item, err := r.txn.Get(k)
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (r *rtx) has(k []byte) (bool, error) {
	_, err := r.txn.Get(k)
	if errors.Is(err, errMissing) {
		return false, nil
	}
	return err == nil, err
}

// each calls fn for every key with prefix, from start (or the first or, in
// reverse, the last key of the prefix when start is nil), until fn returns
// false.
func (r *rtx) each(prefix, start []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	return r.iterate(prefix, start, reverse, true, fn)
}

// eachKey is each without values.
func (r *rtx) eachKey(prefix, start []byte, reverse bool, fn func(k []byte) (bool, error)) error {
	return r.iterate(prefix, start, reverse, false, func(k, _ []byte) (bool, error) { return fn(k) })
}

func (r *rtx) iterate(prefix, start []byte, reverse, values bool, fn func(k, v []byte) (bool, error)) error {
	opts := badgerdb.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.Reverse = reverse
	opts.PrefetchValues = values
	opts.PrefetchSize = 16
	it := r.txn.NewIterator(opts)
	defer it.Close()
	seek := start
	if seek == nil {
		seek = prefix
		if reverse {
			seek = append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 16)...)
		}
	}
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var v []byte
		if values {
			var err error
			if v, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		more, err := fn(item.KeyCopy(nil), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (r *rtx) getJSON(k []byte, v any) error {
	b, err := r.get(k)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %q: %w", k, err)
	}
	return nil
}

// job loads a job record without its counts.
func (r *rtx) job(id string) (*store.Job, error) {
	k := jobKey(id)
	if v, ok := r.cached(k); ok {
		if j, ok := v.(*store.Job); ok {
			return j.Clone(), nil
		}
		return nil, store.Errorf(store.ErrNotFound, "job %s does not exist", id)
	}
	var j store.Job
	if err := r.getJSON(k, &j); err != nil {
		if errors.Is(err, errMissing) {
			r.remember(k, absent{})
			return nil, store.Errorf(store.ErrNotFound, "job %s does not exist", id)
		}
		return nil, err
	}
	r.remember(k, j.Clone())
	return &j, nil
}

// cached returns what the committer's cache knows of k (never in views).
func (r *rtx) cached(k []byte) (any, bool) {
	if r.tc == nil {
		return nil, false
	}
	return r.tc.lookup(string(k))
}

// remember tells the committer's cache what k holds.
func (r *rtx) remember(k []byte, v any) {
	if r.tc != nil {
		r.tc.remember(string(k), v)
	}
}

// counts loads a job's process details.
func (r *rtx) counts(id string) (*store.ProcessDetails, error) {
	k := countsKey(id)
	if v, ok := r.cached(k); ok {
		if p, ok := v.(*store.ProcessDetails); ok {
			return copyCounts(p), nil
		}
		return &store.ProcessDetails{}, nil
	}
	var p store.ProcessDetails
	if err := r.getJSON(k, &p); err != nil {
		if !errors.Is(err, errMissing) {
			return nil, err
		}
		r.remember(k, absent{})
		return &p, nil
	}
	r.remember(k, copyCounts(&p))
	return &p, nil
}

// document returns a job's document, from the cache when it can.
func (r *rtx) document(job string, seq uint64) (string, error) {
	if d, ok := r.s.docs.Get(seq); ok {
		return d, nil
	}
	b, err := r.get(docKey(job))
	if err != nil {
		if errors.Is(err, errMissing) {
			return "", store.Errorf(store.ErrNotFound, "job %s has no document", job)
		}
		return "", err
	}
	r.s.docs.Put(seq, string(b))
	return string(b), nil
}

// pending loads a thing's pending set as stored.
func (r *rtx) pending(thing string) (store.PendingSet, error) {
	k := thingKey(thing)
	if v, ok := r.cached(k); ok {
		if set, ok := v.(store.PendingSet); ok {
			return slices.Clone(set), nil
		}
		return nil, nil
	}
	item, err := r.txn.Get(k)
	if errors.Is(err, errMissing) {
		r.remember(k, absent{})
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var set store.PendingSet
	err = item.Value(func(b []byte) error {
		set, err = decodePending(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decode %q: %w", k, err)
	}
	r.remember(k, slices.Clone(set))
	return set, nil
}

// exec loads one execution.
func (r *rtx) exec(thing, job string, n int64) (*store.Execution, error) {
	k := execKey(thing, job, n)
	if v, ok := r.cached(k); ok {
		if e, ok := v.(*store.Execution); ok {
			return e.Clone(), nil
		}
		return nil, store.Errorf(store.ErrNotFound, "no execution %d of job %s exists for thing %s", n, job, thing)
	}
	var e store.Execution
	if err := r.getJSON(k, &e); err != nil {
		if errors.Is(err, errMissing) {
			r.remember(k, absent{})
			return nil, store.Errorf(store.ErrNotFound, "no execution %d of job %s exists for thing %s", n, job, thing)
		}
		return nil, err
	}
	r.remember(k, e.Clone())
	return &e, nil
}

// latestExec loads the execution of job on thing with the highest number.
// set, when given, is the thing's pending set: a pending execution is always
// the latest of its job, which saves an iterator.
func (r *rtx) latestExec(thing, job string, set store.PendingSet) (*store.Execution, error) {
	for _, p := range set {
		if p.JobID == job {
			return r.exec(thing, job, p.ExecutionNumber)
		}
	}
	var found *store.Execution
	err := r.each(execPrefix(thing, job), nil, true, func(_, v []byte) (bool, error) {
		found = new(store.Execution)
		return false, json.Unmarshal(v, found)
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, store.Errorf(store.ErrNotFound, "no execution of job %s exists for thing %s", job, thing)
	}
	return found, nil
}

// findExec loads execution n of job on thing, or the latest when n is nil.
func (r *rtx) findExec(thing, job string, n *int64, set store.PendingSet) (*store.Execution, error) {
	if n != nil {
		return r.exec(thing, job, *n)
	}
	return r.latestExec(thing, job, set)
}

// effective returns e as it stands given its job's status: executions of a
// canceled job that is still being written out read as CANCELED, and those
// of a job being deleted read as missing. The job is only consulted for
// such jobs.
func (r *rtx) effective(e *store.Execution) (*store.Execution, error) {
	if !r.s.isUnsettled(e.JobID) {
		return e, nil
	}
	job, err := r.job(e.JobID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	switch store.JobStateEffect(job, e) {
	case store.EffectCancel:
		return store.CancelByJob(e, job), nil
	case store.EffectDelete:
		return nil, store.Errorf(store.ErrNotFound, "job %s is being deleted", e.JobID)
	}
	return e, nil
}

// effectivePending is a thing's pending set as it stands, leaving out
// executions that their job's cancellation or deletion has ended.
func (r *rtx) effectivePending(thing string) (store.PendingSet, error) {
	set, err := r.pending(thing)
	if err != nil || r.s.nUnsettled.Load() == 0 {
		return set, err
	}
	out := set[:0:0]
	for _, p := range set {
		if r.s.isUnsettled(p.JobID) {
			e, err := r.exec(thing, p.JobID, p.ExecutionNumber)
			if err != nil {
				return nil, err
			}
			e, err = r.effective(e)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if !e.Status.Pending() {
				continue
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// wtx is the committer's view of one operation inside the batch
// transaction.
type wtx struct {
	rtx
	now           time.Time
	changes       []store.Change
	after         []func()
	counts        map[string]*store.ProcessDetails
	timersChanged bool
	tasksChanged  bool
	written       int64 // bytes this operation has written, roughly as Badger counts them
	entries       int64 // keys this operation has written or deleted
}

// entryOverhead approximates what Badger adds to each entry of a batch
// (meta, version, skiplist node) when it checks the batch's size.
const entryOverhead = 32

func (w *wtx) set(k, v []byte) error {
	w.written += int64(len(k) + len(v) + entryOverhead)
	w.entries++
	w.stage(k, unknown{})
	return w.txn.Set(k, v)
}

func (w *wtx) del(k []byte) error {
	w.written += int64(len(k) + entryOverhead)
	w.entries++
	w.stage(k, absent{})
	return w.txn.Delete(k)
}

// stage tells the transaction's cache what this operation wrote at k.
func (w *wtx) stage(k []byte, v any) {
	if w.tc != nil {
		w.tc.stage(string(k), v)
	}
}

// full reports whether the operation has written half of what one Badger
// transaction may hold. Background steps (rollouts, cancellations, timer
// sweeps) stop taking on things when it has, and carry on in the next
// step: how much one thing costs depends on how many executions it has
// pending, so a fixed number of things per step could outgrow a batch.
func (w *wtx) full() bool {
	return w.written >= w.s.maxBytes/2 || w.entries >= w.s.maxEntries/2
}

func (w *wtx) setJSON(k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", k, err)
	}
	return w.set(k, b)
}

// afterCommit runs f once the operation's batch is committed.
func (w *wtx) afterCommit(f func()) { w.after = append(w.after, f) }

// saveJob stores the job record. Its targets are stored once, by
// saveTargetARNs, and left out here: device operations read the job
// record, and a job can name very many targets.
func (w *wtx) saveJob(j *store.Job) error {
	rec := j.Clone()
	rec.Targets = nil
	if err := w.setJSON(jobKey(j.JobID), rec); err != nil {
		return err
	}
	w.stage(jobKey(j.JobID), rec)
	return nil
}

func (w *wtx) saveTargetARNs(j *store.Job) error {
	return w.setJSON(jobTargetsKey(j.JobID), j.Targets)
}

func (w *wtx) saveExec(e *store.Execution) error {
	k := execKey(e.ThingName, e.JobID, e.ExecutionNumber)
	if err := w.setJSON(k, e); err != nil {
		return err
	}
	w.stage(k, e.Clone())
	return nil
}

func (w *wtx) savePending(thing string, set store.PendingSet) error {
	if len(set) == 0 {
		return w.del(thingKey(thing))
	}
	if err := w.set(thingKey(thing), appendPending(nil, set)); err != nil {
		return err
	}
	w.stage(thingKey(thing), slices.Clone(set))
	return nil
}

// jobCounts returns the job's counts, cached for the rest of the
// operation and written back by flushCounts.
func (w *wtx) jobCounts(job string) (*store.ProcessDetails, error) {
	if p, ok := w.counts[job]; ok {
		return p, nil
	}
	p, err := w.rtx.counts(job)
	if err != nil {
		return nil, err
	}
	if w.counts == nil {
		w.counts = map[string]*store.ProcessDetails{}
	}
	w.counts[job] = p
	return p, nil
}

// forgetCounts drops a deleted job's counts from the cache.
func (w *wtx) forgetCounts(job string) {
	if w.counts != nil {
		w.counts[job] = nil
	}
}

func (w *wtx) flushCounts() error {
	for job, p := range w.counts {
		if p == nil {
			continue
		}
		if err := w.setJSON(countsKey(job), p); err != nil {
			return err
		}
		w.stage(countsKey(job), copyCounts(p))
	}
	w.counts = nil
	return nil
}

// retime moves the execution's entry in the timer index from the old
// deadline to the new one.
func (w *wtx) retime(old, cur *store.Execution) error {
	var od, nd time.Time
	if old != nil {
		od = old.Deadline()
	}
	if cur != nil {
		nd = cur.Deadline()
	}
	if od.Equal(nd) {
		return nil
	}
	w.timersChanged = true
	if !od.IsZero() {
		if err := w.del(timerKey(od, old.ThingName, old.JobID, old.ExecutionNumber)); err != nil {
			return err
		}
	}
	if !nd.IsZero() {
		return w.set(timerKey(nd, cur.ThingName, cur.JobID, cur.ExecutionNumber), nil)
	}
	return nil
}
