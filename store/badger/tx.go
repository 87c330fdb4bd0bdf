package badger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// errMissing reports a key that is not there.
var errMissing = badgerdb.ErrKeyNotFound

// rtx reads inside a Badger transaction (a read-only view, or the
// committer's batch transaction); it is the engine's Reader.
type rtx struct {
	txn *badgerdb.Txn
	s   *Store
	tc  *txnCache // the committer's record cache; nil in read-only views
}

var (
	_ engine.Reader = (*rtx)(nil)
	_ engine.Tx     = (*wtx)(nil)
)

// get returns a copy of the value at k, or errMissing.
func (r *rtx) get(k []byte) ([]byte, error) {
	item, err := r.txn.Get(k)
	if err != nil {
		return nil, err
	}
	return valueOf(item)
}

// errLostValue is the error of a value the value log no longer holds.
var errLostValue = errors.New("the value cannot be read from the store's value log, which is damaged " +
	"(see the store's errors at start)")

// valueOf returns a copy of item's value. When Badger cannot read a value
// from the value log (the file cut short or gone, or the entry failing its
// checksum), it logs the error and answers an empty value with no error;
// every value the store keeps in the value log is larger than the value
// threshold, so an empty one there is an error here.
func valueOf(item *badgerdb.Item) ([]byte, error) {
	v, err := item.ValueCopy(nil)
	if err == nil && len(v) == 0 && item.ValueSize() > 0 {
		return nil, fmt.Errorf("read %q: %w", item.Key(), errLostValue)
	}
	return v, err
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
	return iterate(r.txn, prefix, start, reverse, true, fn)
}

// eachKey is each without values.
func (r *rtx) eachKey(prefix, start []byte, reverse bool, fn func(k []byte) (bool, error)) error {
	return iterate(r.txn, prefix, start, reverse, false, func(k, _ []byte) (bool, error) { return fn(k) })
}

func iterate(txn *badgerdb.Txn, prefix, start []byte, reverse, values bool, fn func(k, v []byte) (bool, error)) error {
	opts := badgerdb.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.Reverse = reverse
	// Values are read here, one at a time, as the walk reaches them. Badger's
	// prefetch starts a goroutine for each of the next PrefetchSize values
	// and makes the reader wait on it: most walks here stop after one or a
	// few records, whose values sit in the LSM tree beside their keys, and
	// in the committer every such wait is a trip through the scheduler
	// behind all runnable request goroutines (BENCHMARKS.md, "Latency at
	// half the peak").
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
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
			if v, err = valueOf(item); err != nil {
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

// getOptJSON is getJSON that reports a missing key as false.
func (r *rtx) getOptJSON(k []byte, v any) (bool, error) {
	err := r.getJSON(k, v)
	if errors.Is(err, errMissing) {
		return false, nil
	}
	return err == nil, err
}

// cached returns what the committer's cache knows of k (never in views).
func (r *rtx) cached(k []byte) (any, bool) {
	if r.tc == nil {
		return nil, false
	}
	return r.tc.lookup(k)
}

// remember tells the committer's cache what k holds.
func (r *rtx) remember(k []byte, v any) {
	if r.tc != nil {
		r.tc.remember(string(k), v)
	}
}

// committed returns a read transaction on the committed state, for
// iterations in the committer that the batch's own writes cannot affect:
// an iterator over the batch transaction sorts every write of the batch
// first, and a batch holds thousands. In views it is the view itself.
func (r *rtx) committed() *badgerdb.Txn {
	if r.tc == nil {
		return r.txn
	}
	if r.tc.ro == nil {
		r.tc.ro = r.s.db.NewTransaction(false)
	}
	return r.tc.ro
}

// jobRecord loads a job record; nil when it does not exist. The result is
// shared with the cache: callers clone it before changing it.
func (r *rtx) jobRecord(id string) (*store.Job, error) {
	k := jobKey(id)
	if v, ok := r.cached(k); ok {
		j, _ := v.(*store.Job)
		return j, nil
	}
	var j store.Job
	found, err := r.getOptJSON(k, &j)
	if err != nil {
		return nil, err
	}
	if !found {
		r.remember(k, absent{})
		return nil, nil
	}
	r.remember(k, &j)
	return &j, nil
}

// Job returns a job record the caller may change.
func (r *rtx) Job(id string) (*store.Job, error) {
	j, err := r.jobRecord(id)
	if j == nil || err != nil {
		return nil, err
	}
	return j.Clone(), nil
}

// JobHead returns a job record the caller must not change.
func (r *rtx) JobHead(id string) (*store.Job, error) { return r.jobRecord(id) }

// JobTargets returns a job's target ARNs.
func (r *rtx) JobTargets(id string) ([]string, error) {
	var targets []string
	_, err := r.getOptJSON(jobTargetsKey(id), &targets)
	return targets, err
}

// JobCounts returns a job's process details.
func (r *rtx) JobCounts(id string) (store.ProcessDetails, error) {
	k := countsKey(id)
	if v, ok := r.cached(k); ok {
		if p, ok := v.(*store.ProcessDetails); ok {
			return *p, nil
		}
		return store.ProcessDetails{}, nil
	}
	var p store.ProcessDetails
	b, err := r.get(k)
	if errors.Is(err, errMissing) {
		r.remember(k, absent{})
		return p, nil
	}
	if err == nil {
		err = decodeCounts(b, &p)
	}
	if err != nil {
		return p, fmt.Errorf("read %q: %w", k, err)
	}
	r.remember(k, copyCounts(&p))
	return p, nil
}

// JobTask returns a job's background task.
func (r *rtx) JobTask(id string) (*engine.Task, error) {
	var t engine.Task
	found, err := r.getOptJSON(taskKey(id), &t)
	if !found || err != nil {
		return nil, err
	}
	return &t, nil
}

// Document returns a job's document.
func (r *rtx) Document(id string, _ uint64, before bool) (string, bool, error) {
	k := docKey(id)
	if before {
		k = docBeforeKey(id)
	}
	b, err := r.get(k)
	if errors.Is(err, errMissing) {
		return "", false, nil
	}
	return string(b), err == nil, err
}

// EachJob walks the job order index, newest first.
func (r *rtx) EachJob(from uint64, f *engine.JobFilter, fn func(*store.Job, bool) (bool, error)) error {
	var start []byte
	if from != 0 {
		start = jobOrderKey(from)
	}
	var groupJobs map[string]bool
	if f.Group != "" {
		ids, err := r.GroupJobs([]string{f.Group})
		if err != nil {
			return err
		}
		groupJobs = map[string]bool{}
		for _, id := range ids {
			groupJobs[id] = true
		}
	}
	return r.each([]byte{prefixJobOrder}, start, true, func(_, v []byte) (bool, error) {
		if groupJobs != nil && !groupJobs[string(v)] {
			return true, nil
		}
		job, err := r.Job(string(v))
		if err != nil || job == nil || !f.Match(job) {
			return err == nil, err
		}
		t, err := r.JobTask(job.JobID)
		if err != nil {
			return false, err
		}
		return fn(job, t.Concurrent())
	})
}

// GroupJobs lists the jobs that target groups.
func (r *rtx) GroupJobs(groups []string) ([]string, error) {
	jobs := map[string]bool{}
	for _, g := range groups {
		err := r.eachKey(groupJobPrefix(g), nil, false, func(k []byte) (bool, error) {
			jobs[lastPart(k)] = true
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return slices.Sorted(maps.Keys(jobs)), nil
}

// Settling reports whether the job's cancellation or deletion is being
// written out.
func (r *rtx) Settling(job string) bool { return r.s.isUnsettled(job) }

// Execution loads one execution (a copy the caller may change).
func (r *rtx) Execution(thing, job string, n int64) (*store.Execution, error) {
	k := execKey(thing, job, n)
	if v, ok := r.cached(k); ok {
		if e, ok := v.(*store.Execution); ok {
			return e.Clone(), nil
		}
		return nil, nil
	}
	var e store.Execution
	item, err := r.txn.Get(k)
	if errors.Is(err, errMissing) {
		r.remember(k, absent{})
		return nil, nil
	}
	if err == nil {
		err = item.Value(func(b []byte) error { return decodeExecution(b, &e) })
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", k, err)
	}
	if r.tc != nil && worthKeeping(&e) {
		r.remember(k, e.Clone())
	}
	return &e, nil
}

// LatestExecution loads the execution of job on thing with the highest
// number. A pending execution is always the latest of its job, so the
// committer finds it in the thing's queue when the queue's first entries
// hold it; otherwise it is a reverse seek.
func (r *rtx) LatestExecution(thing, job string) (*store.Execution, error) {
	src := r.txn
	if r.tc != nil {
		if v := r.queueView(thing, "", false); v != nil {
			if n, ok := v.Find(job); ok {
				return r.Execution(thing, job, n)
			}
		}
		if !r.tc.written[thing+"\x00"+job] {
			src = r.committed()
		}
	}
	var found *store.Execution
	err := iterate(src, execPrefix(thing, job), nil, true, true, func(_, v []byte) (bool, error) {
		found = new(store.Execution)
		return false, decodeExecution(v, found)
	})
	if err != nil {
		return nil, err
	}
	if found != nil && src != r.txn {
		// The committed state says which execution is the latest (the
		// batch created and deleted none of this job's on the thing), but
		// an operation before this one in the batch may have changed it:
		// read it as the batch has it.
		return r.Execution(thing, job, found.ExecutionNumber)
	}
	return found, nil
}

// EachExecutionOfJob walks the executions-of-a-job index.
func (r *rtx) EachExecutionOfJob(job string, after engine.Cursor, fn func(*store.Execution) (bool, error)) error {
	prefix := jobExecPrefix(job)
	var start []byte
	if after.Name != "" {
		start = append(jobExecKey(job, after.Name, after.N), 0)
	}
	return r.eachKey(prefix, start, false, func(k []byte) (bool, error) {
		thing, n, ok := parseJobExecKey(k, job)
		if !ok {
			return true, nil
		}
		e, err := r.Execution(thing, job, n)
		if err != nil || e == nil {
			return err == nil, err
		}
		return fn(e)
	})
}

// EachExecutionOfThing walks a thing's executions, by job and number.
func (r *rtx) EachExecutionOfThing(thing, job string, after engine.Cursor, fn func(*store.Execution) (bool, error)) error {
	var start []byte
	if after.Name != "" {
		start = append(execKey(thing, after.Name, after.N), 0)
	}
	return r.each(execPrefix(thing, job), start, false, func(_, v []byte) (bool, error) {
		var e store.Execution
		if err := decodeExecution(v, &e); err != nil {
			return false, err
		}
		return fn(&e)
	})
}

// Queue reads the entries of a thing's queue of namespace ns: in views
// from Badger, in the committer through the queue's cached view.
func (r *rtx) Queue(thing, ns string, after *store.PendingExecution, limit int) ([]store.PendingExecution, error) {
	if r.tc == nil {
		return readQueue(r.txn, thing, ns, after, limit)
	}
	v := r.queueView(thing, ns, false)
	if v == nil {
		var err error
		if v, err = r.loadQueueView(thing, ns); err != nil {
			return nil, err
		}
	}
	return v.Read(after, limit, func(bound *store.PendingExecution, n int) ([]store.PendingExecution, error) {
		src := r.committed()
		if v.Beyond() {
			src = r.txn
		}
		return readQueue(src, thing, ns, bound, n)
	})
}

// QueueNamespaces lists the namespaces of the thing's queue entries. It
// seeks from one namespace to the next rather than reading every entry.
func (r *rtx) QueueNamespaces(thing string) ([]string, error) {
	opts := badgerdb.DefaultIteratorOptions
	opts.Prefix = append(key(prefixQueue, thing), 0)
	opts.PrefetchValues = false
	it := r.txn.NewIterator(opts)
	defer it.Close()
	var out []string
	for it.Seek(opts.Prefix); it.ValidForPrefix(opts.Prefix); {
		ns, ok := queueNamespace(it.Item().Key(), thing)
		if !ok {
			return nil, fmt.Errorf("%w: queue key %q", errCorrupt, it.Item().Key())
		}
		out = append(out, ns)
		// Past every entry of ns: its prefix ends in 0, so the same prefix
		// ending in 1 sorts after all of them.
		next := queuePrefix(thing, ns)
		next[len(next)-1] = 1
		it.Seek(next)
	}
	return out, nil
}

// queueView returns the cached view of a thing's queue; with write,
// staged for the transaction to change. The transaction changes it in
// place: if it does not commit, txnCache.discard drops the view from the
// cache.
func (r *rtx) queueView(thing, ns string, write bool) *engine.QueueView {
	k := r.tc.viewKey(thing, ns)
	if v, ok := r.tc.staged[k]; ok {
		return v.(*engine.QueueView)
	}
	v, ok := r.tc.c.get(k)
	if !ok {
		return nil
	}
	qv := v.(*engine.QueueView)
	if write {
		r.tc.stage(k, qv)
	}
	return qv
}

// loadQueueView reads the first entries of a thing's queue into a cached
// view. No write of this transaction has touched the queue (writes go
// through its view), so the committed state is the transaction's.
func (r *rtx) loadQueueView(thing, ns string) (*engine.QueueView, error) {
	entries, err := readQueue(r.committed(), thing, ns, nil, engine.QueueWindow)
	if err != nil {
		return nil, err
	}
	v := engine.NewQueueView(entries, len(entries) < engine.QueueWindow)
	r.tc.c.put(r.tc.viewKey(thing, ns), v)
	return v, nil
}

// readQueue reads up to limit entries of a thing's queue of namespace ns
// after after.
func readQueue(txn *badgerdb.Txn, thing, ns string, after *store.PendingExecution, limit int) ([]store.PendingExecution, error) {
	var start []byte
	if after != nil {
		start = append(queueKey(thing, ns, after), 0)
	}
	out := make([]store.PendingExecution, 0, min(limit, engine.QueueWindow))
	err := iterate(txn, queuePrefix(thing, ns), start, false, true, func(k, v []byte) (bool, error) {
		p, err := decodeEntry(v)
		if err != nil {
			return false, fmt.Errorf("decode %q: %w", k, err)
		}
		out = append(out, p)
		return len(out) < limit, nil
	})
	return out, err
}

// Thing loads a registered thing.
func (r *rtx) Thing(name string, _ engine.LockMode) (*store.Thing, error) {
	var th store.Thing
	found, err := r.getOptJSON(thingRegKey(name), &th)
	if !found || err != nil {
		return nil, err
	}
	return &th, nil
}

// EachThing walks the registered things by name.
func (r *rtx) EachThing(after string, fn func(*store.Thing) (bool, error)) error {
	return r.each([]byte{prefixThingReg}, afterName(prefixThingReg, after), false, func(_, v []byte) (bool, error) {
		var th store.Thing
		if err := json.Unmarshal(v, &th); err != nil {
			return false, err
		}
		return fn(&th)
	})
}

// afterName is where a name-ordered walk starts after the name after.
func afterName(prefix byte, after string) []byte {
	if after == "" {
		return nil
	}
	return append(key(prefix, after), 0)
}

// Group loads a thing group with its ancestors.
func (r *rtx) Group(name string, _ engine.LockMode) (*store.ThingGroup, error) {
	var g store.ThingGroup
	found, err := r.getOptJSON(groupKey(name), &g)
	if !found || err != nil {
		return nil, err
	}
	if g.Ancestors, err = r.ancestors(g.ParentName); err != nil {
		return nil, err
	}
	return &g, nil
}

// ancestors returns parent and its ancestors, root first.
func (r *rtx) ancestors(parent string) ([]string, error) {
	var chain []string
	for parent != "" && len(chain) <= store.MaxGroupDepth {
		chain = append(chain, parent)
		var g store.ThingGroup
		found, err := r.getOptJSON(groupKey(parent), &g)
		if err != nil {
			return nil, err
		}
		if !found {
			break
		}
		parent = g.ParentName
	}
	slices.Reverse(chain)
	return chain, nil
}

// GroupNames lists every group, or parent's children.
func (r *rtx) GroupNames(parent string) ([]string, error) {
	var names []string
	prefix, part := []byte{prefixGroup}, func(k []byte) string { return string(k[1:]) }
	if parent != "" {
		prefix, part = childPrefix(parent), lastPart
	}
	err := r.eachKey(prefix, nil, false, func(k []byte) (bool, error) {
		names = append(names, part(k))
		return true, nil
	})
	return names, err
}

// Subtree returns group and all its descendants.
func (r *rtx) Subtree(group string) ([]string, error) {
	out := []string{group}
	for i := 0; i < len(out); i++ {
		children, err := r.GroupNames(out[i])
		if err != nil {
			return nil, err
		}
		out = append(out, children...)
	}
	return out, nil
}

// GroupThings returns the direct members of groups, sorted.
func (r *rtx) GroupThings(groups []string) ([]string, error) {
	seen := map[string]bool{}
	for _, g := range groups {
		err := r.eachKey(memberPrefix(g), nil, false, func(k []byte) (bool, error) {
			seen[lastPart(k)] = true
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// GroupsOf returns the groups a thing belongs to directly.
func (r *rtx) GroupsOf(thing string) ([]string, error) {
	var groups []string
	err := r.eachKey(thingOfPrefix(thing), nil, false, func(k []byte) (bool, error) {
		groups = append(groups, lastPart(k))
		return true, nil
	})
	return groups, err
}

// EnclosingGroups returns the thing's groups and all their ancestors.
func (r *rtx) EnclosingGroups(thing string) (map[string]bool, error) {
	direct, err := r.GroupsOf(thing)
	if err != nil {
		return nil, err
	}
	all := map[string]bool{}
	for _, g := range direct {
		all[g] = true
		group, err := r.Group(g, engine.NoLock)
		if err != nil {
			return nil, err
		}
		if group != nil {
			for _, a := range group.Ancestors {
				all[a] = true
			}
		}
	}
	return all, nil
}

// Template loads a job template.
func (r *rtx) Template(id string) (*store.JobTemplate, error) {
	var t store.JobTemplate
	found, err := r.getOptJSON(templateKey(id), &t)
	if !found || err != nil {
		return nil, err
	}
	return &t, nil
}

// EachTemplate walks the job templates by id.
func (r *rtx) EachTemplate(after string, fn func(*store.JobTemplate) (bool, error)) error {
	return r.each([]byte{prefixTemplate}, afterName(prefixTemplate, after), false, func(_, v []byte) (bool, error) {
		var t store.JobTemplate
		if err := json.Unmarshal(v, &t); err != nil {
			return false, err
		}
		return fn(&t)
	})
}

// EventConfig reads the stored event configuration.
func (r *rtx) EventConfig(engine.LockMode) (store.EventConfigurations, error) {
	var cfg store.EventConfigurations
	_, err := r.getOptJSON([]byte(metaEvents), &cfg)
	return cfg, err
}

// wtx is the committer's view of one operation inside the batch
// transaction: the engine's Tx.
type wtx struct {
	rtx
	now           time.Time
	changes       []store.Change
	after         []func()
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
	if cachedKind(k) {
		w.stage(k, unknown{})
	}
	return w.txn.Set(k, v)
}

// cachedKind reports whether the committer's cache may hold k (job
// records, counts, executions): a raw write of such a key must drop it.
func cachedKind(k []byte) bool {
	return len(k) > 0 && (k[0] == prefixJob || k[0] == prefixCounts || k[0] == prefixExec)
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

func (w *wtx) setJSON(k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", k, err)
	}
	return w.set(k, b)
}

// Now is the operation's time.
func (w *wtx) Now() time.Time { return w.now }

// NextSeq hands out the next sequence number.
func (w *wtx) NextSeq() (uint64, error) { return w.s.nextSeq(), nil }

// ReserveSeqs does nothing: sequence numbers cost no read here.
func (*wtx) ReserveSeqs(int) error { return nil }

// Full reports whether the operation has written half of what one Badger
// transaction may hold. Background steps (rollouts, cancellations, timer
// sweeps) stop taking on things when it has, and carry on in the next
// step.
func (w *wtx) Full() bool {
	return w.written >= w.s.maxBytes/2 || w.entries >= w.s.maxEntries/2
}

// LockThings holds every thing: the committer is the only writer.
func (*wtx) LockThings(names []string, _, _ bool) ([]string, error) { return names, nil }

// LockThing holds the thing.
func (*wtx) LockThing(string, bool) error { return nil }

// ThingChanged keeps the change for the handler when it notifies.
func (w *wtx) ThingChanged(c store.Change, _ *store.PendingExecution) {
	if c.Notify || c.NotifyNext {
		w.changes = append(w.changes, c)
	}
}

// Emit keeps a change for the handler.
func (w *wtx) Emit(c store.Change) { w.changes = append(w.changes, c) }

// AfterCommit runs f once the operation's batch is committed.
func (w *wtx) AfterCommit(f func()) { w.after = append(w.after, f) }

// afterCommit is AfterCommit, for operations submitted directly.
func (w *wtx) afterCommit(f func()) { w.AfterCommit(f) }

// TimersChanged wakes the timer loop after the commit.
func (w *wtx) TimersChanged() { w.timersChanged = true }

// TasksChanged wakes the task loop after the commit.
func (w *wtx) TasksChanged() { w.tasksChanged = true }

// saveJob stores the job record. Its targets are stored apart: device
// operations read the job record, and a job can name very many targets.
func (w *wtx) saveJob(j *store.Job) error {
	rec := j.Clone()
	rec.Targets = nil
	if err := w.setJSON(jobKey(j.JobID), rec); err != nil {
		return err
	}
	w.stage(jobKey(j.JobID), rec)
	return nil
}

// InsertJob stores a new job.
func (w *wtx) InsertJob(job *store.Job, doc, before string) (bool, error) {
	if exists, err := w.has(jobKey(job.JobID)); err != nil || exists {
		return false, err
	}
	writes := []func() error{
		func() error { return w.saveJob(job) },
		func() error { return w.setJSON(jobTargetsKey(job.JobID), job.Targets) },
		func() error { return w.set(docKey(job.JobID), []byte(doc)) },
		func() error { return w.set(jobOrderKey(job.Seq), []byte(job.JobID)) },
	}
	if before != "" {
		writes = append(writes, func() error { return w.set(docBeforeKey(job.JobID), []byte(before)) })
	}
	for _, write := range writes {
		if err := write(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// WriteJob writes a job's changes; its counts are read, moved and
// written back (the committer is the only writer).
func (w *wtx) WriteJob(jw *engine.JobWrite) (store.ProcessDetails, bool, error) {
	p, err := w.JobCounts(jw.ID)
	if err != nil {
		return p, false, err
	}
	if moved(&jw.Delta) {
		for _, s := range store.Statuses {
			p.Add(s, jw.Delta.Count(s))
		}
		if err := w.set(countsKey(jw.ID), appendCounts(make([]byte, 0, 32), &p)); err != nil {
			return p, false, err
		}
		w.stage(countsKey(jw.ID), copyCounts(&p))
	}
	if jw.Job != nil {
		if err := w.saveJob(jw.Job); err != nil {
			return p, false, err
		}
	}
	if jw.Targets != nil {
		if err := w.setJSON(jobTargetsKey(jw.ID), jw.Targets); err != nil {
			return p, false, err
		}
	}
	task := jw.Task
	if jw.TaskSet {
		if task == nil {
			err = w.del(taskKey(jw.ID))
		} else {
			err = w.setJSON(taskKey(jw.ID), task)
		}
		if err != nil {
			return p, false, err
		}
	} else if p.Pending() == 0 {
		// Only a job with nothing pending asks whether it is rolling out.
		if task, err = w.JobTask(jw.ID); err != nil {
			return p, false, err
		}
	}
	return p, task != nil && task.Rollout != nil, nil
}

// DeleteJob removes a job and everything kept for it.
func (w *wtx) DeleteJob(id string) (store.ProcessDetails, error) {
	counts, err := w.JobCounts(id)
	if err != nil {
		return counts, err
	}
	job, err := w.jobRecord(id)
	if err != nil || job == nil {
		return counts, err
	}
	targets, err := w.JobTargets(id)
	if err != nil {
		return counts, err
	}
	gone := [][]byte{jobKey(id), jobTargetsKey(id), docKey(id), docBeforeKey(id), countsKey(id), jobOrderKey(job.Seq), taskKey(id)}
	for _, arn := range targets {
		if kind, g, err := store.ParseTargetARN(arn); err == nil && kind == store.TargetThingGroup {
			gone = append(gone, groupJobKey(g, id))
		}
	}
	for _, k := range gone {
		if err := w.del(k); err != nil {
			return counts, err
		}
	}
	return counts, w.DropRolloutTargets(id)
}

// AddGroupJob records that job targets group.
func (w *wtx) AddGroupJob(group, job string) error { return w.set(groupJobKey(group, job), nil) }

// DeletionsInProgress counts the jobs being deleted.
func (w *wtx) DeletionsInProgress() (int, error) { return w.s.deletionsInProgress(), nil }

// BeginSettle marks the job's executions as read through its status.
func (w *wtx) BeginSettle(job string, deleting bool) { w.s.setUnsettled(job, deleting) }

// EndSettle unmarks the job once the transaction commits.
func (w *wtx) EndSettle(job string) { w.AfterCommit(func() { w.s.settled(job) }) }

// targetChunk is how many rollout targets one r<job> record holds.
const targetChunk = 4096

// SetRolloutTargets stores the things a rollout visits, in chunks.
func (w *wtx) SetRolloutTargets(job string, things []string) error {
	if err := w.DropRolloutTargets(job); err != nil {
		return err
	}
	for i := 0; i*targetChunk < len(things); i++ {
		chunk := things[i*targetChunk : min((i+1)*targetChunk, len(things))]
		if err := w.setJSON(targetsKey(job, i), chunk); err != nil {
			return err
		}
	}
	return nil
}

// RolloutTargets reads the rollout's things from position from.
func (w *wtx) RolloutTargets(job string, from, limit int) ([]string, error) {
	var out []string
	for len(out) < limit {
		c := (from + len(out)) / targetChunk
		var chunk []string
		found, err := w.getOptJSON(targetsKey(job, c), &chunk)
		if err != nil {
			return nil, err
		}
		i := (from + len(out)) % targetChunk
		if !found || i >= len(chunk) {
			break
		}
		out = append(out, chunk[i:min(len(chunk), i+limit-len(out))]...)
	}
	return out, nil
}

// DropRolloutTargets deletes the rollout's things.
func (w *wtx) DropRolloutTargets(job string) error { return w.delPrefix(targetsPrefix(job)) }

// delPrefix deletes every key with prefix.
func (w *wtx) delPrefix(prefix []byte) error {
	var keys [][]byte
	err := w.eachKey(prefix, nil, false, func(k []byte) (bool, error) {
		keys = append(keys, k)
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := w.del(k); err != nil {
			return err
		}
	}
	return nil
}

// PutExecution writes an execution with its index entries.
func (w *wtx) PutExecution(old, cur *store.Execution) error {
	k := execKey(cur.ThingName, cur.JobID, cur.ExecutionNumber)
	if err := w.set(k, appendExecution(make([]byte, 0, 160), cur)); err != nil {
		return err
	}
	if worthKeeping(cur) {
		// A finished execution stays staged as set left it (unknown): the
		// batch reads it back from its own writes, and the cache drops it.
		w.stage(k, cur.Clone())
	}
	if old == nil {
		if err := w.set(jobExecKey(cur.JobID, cur.ThingName, cur.ExecutionNumber), nil); err != nil {
			return err
		}
		w.wrote(cur)
	}
	if err := w.retime(old, cur); err != nil {
		return err
	}
	return w.requeue(old, cur)
}

// DeleteExecution removes an execution with its index entries.
func (w *wtx) DeleteExecution(e *store.Execution) error {
	if err := w.del(execKey(e.ThingName, e.JobID, e.ExecutionNumber)); err != nil {
		return err
	}
	if err := w.del(jobExecKey(e.JobID, e.ThingName, e.ExecutionNumber)); err != nil {
		return err
	}
	w.wrote(e)
	if err := w.retime(e, nil); err != nil {
		return err
	}
	return w.requeue(e, nil)
}

// wrote records that the transaction created or deleted an execution of
// its job on its thing.
func (w *wtx) wrote(e *store.Execution) {
	if w.tc == nil {
		return
	}
	if w.tc.written == nil {
		w.tc.written = map[string]bool{}
	}
	w.tc.written[e.ThingName+"\x00"+e.JobID] = true
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

// requeue moves the execution's queue entry from its old state to its
// new one, through the view of its queue.
func (w *wtx) requeue(old, cur *store.Execution) error {
	oe, ce, was, is := engine.Entries(old, cur)
	if !was && !is {
		return nil
	}
	e := cur
	if e == nil {
		e = old
	}
	if w.tc != nil {
		v := w.queueView(e.ThingName, e.Namespace, true)
		if v == nil {
			loaded, err := w.loadQueueView(e.ThingName, e.Namespace)
			if err != nil {
				return err
			}
			v = loaded
			w.tc.stage(w.tc.viewKey(e.ThingName, e.Namespace), v)
		}
		v.PutEntries(&oe, &ce, was, is)
	}
	if was && (!is || (oe.Status == store.StatusInProgress) != (ce.Status == store.StatusInProgress)) {
		if err := w.del(queueKey(e.ThingName, e.Namespace, &oe)); err != nil {
			return err
		}
	}
	if is {
		k := queueKey(e.ThingName, e.Namespace, &ce)
		return w.set(k, appendEntry(k[len(k):], &ce))
	}
	return nil
}

// InsertThing stores a registered thing.
func (w *wtx) InsertThing(th *store.Thing) error { return w.setJSON(thingRegKey(th.ThingName), th) }

// DeleteThing removes a registered thing.
func (w *wtx) DeleteThing(name string) error { return w.del(thingRegKey(name)) }

// InsertGroup stores a group under its parent.
func (w *wtx) InsertGroup(g *store.ThingGroup) error {
	if g.ParentName != "" {
		if err := w.set(childKey(g.ParentName, g.Name), nil); err != nil {
			return err
		}
	}
	rec := *g
	rec.Ancestors = nil
	return w.setJSON(groupKey(g.Name), &rec)
}

// DeleteGroup removes a group and the jobs' references to it.
func (w *wtx) DeleteGroup(g *store.ThingGroup) error {
	var gone [][]byte
	err := w.eachKey(groupJobPrefix(g.Name), nil, false, func(k []byte) (bool, error) {
		gone = append(gone, k)
		return true, nil
	})
	if err != nil {
		return err
	}
	gone = append(gone, groupKey(g.Name))
	if g.ParentName != "" {
		gone = append(gone, childKey(g.ParentName, g.Name))
	}
	for _, k := range gone {
		if err := w.del(k); err != nil {
			return err
		}
	}
	return nil
}

// AddMember adds a thing to a group.
func (w *wtx) AddMember(group, thing string) (bool, error) {
	if member, err := w.has(memberKey(group, thing)); err != nil || member {
		return false, err
	}
	if err := w.set(memberKey(group, thing), nil); err != nil {
		return false, err
	}
	return true, w.set(thingOfKey(thing, group), nil)
}

// RemoveMember takes a thing out of a group.
func (w *wtx) RemoveMember(group, thing string) (bool, error) {
	if member, err := w.has(memberKey(group, thing)); err != nil || !member {
		return false, err
	}
	if err := w.del(memberKey(group, thing)); err != nil {
		return false, err
	}
	return true, w.del(thingOfKey(thing, group))
}

// InsertTemplate stores a new job template.
func (w *wtx) InsertTemplate(t *store.JobTemplate) (bool, error) {
	if exists, err := w.has(templateKey(t.JobTemplateID)); err != nil || exists {
		return false, err
	}
	return true, w.setJSON(templateKey(t.JobTemplateID), t)
}

// DeleteTemplate deletes a job template.
func (w *wtx) DeleteTemplate(id string) (bool, error) {
	if exists, err := w.has(templateKey(id)); err != nil || !exists {
		return false, err
	}
	return true, w.del(templateKey(id))
}

// SetEventConfig stores the event configuration.
func (w *wtx) SetEventConfig(cfg store.EventConfigurations) error {
	return w.setJSON([]byte(metaEvents), &cfg)
}

// moved reports whether a delta moves any count.
func moved(d *store.ProcessDetails) bool {
	for _, s := range store.Statuses {
		if d.Count(s) != 0 {
			return true
		}
	}
	return false
}
