package engine

import (
	"slices"

	"github.com/jobsbroker/jobsbroker/store"
)

// QueueWindow is how many entries of a thing's queue a backend reads at a
// time: a little more than the MaxPendingListed a notification lists and
// the head, so that a device working through its queue reads it once
// every few jobs.
const QueueWindow = 16

// Entries returns an execution's queue entry before and after a change
// from old (nil: new) to cur (nil: deleted), and whether there is one
// (the execution is pending).
func Entries(old, cur *store.Execution) (before, after store.PendingExecution, was, is bool) {
	if was = old != nil && old.Status.Pending(); was {
		before = old.Summary()
	}
	if is = cur != nil && cur.Status.Pending(); is {
		after = cur.Summary()
	}
	return before, after, was, is
}

// PutEntries is Put with the results of Entries.
func (v *QueueView) PutEntries(before, after *store.PendingExecution, was, is bool) {
	if !was {
		before = nil
	}
	if !is {
		after = nil
	}
	v.Put(before, after)
}

// QueueView is the first entries of one thing's queue, kept in step with
// the writes of a transaction, so that the head and the first
// MaxPendingListed entries cost no read while the thing is busy. Every
// entry whose key sorts at or before the view's bound is in it; when the
// view is complete, it is the whole queue.
//
// A view is not safe for concurrent use. Backends that keep views across
// transactions copy one (Clone) before a transaction changes it.
type QueueView struct {
	entries  []store.PendingExecution
	bound    store.PendingExecution // the last entry read; meaningful when !complete
	complete bool
	// beyond is set once a write landed past the bound: the entries past
	// it are no longer those stored before the transaction began.
	beyond bool
}

// NewQueueView returns the view of a queue whose first entries are
// entries, read from its head: complete when they are all of it.
func NewQueueView(entries []store.PendingExecution, complete bool) *QueueView {
	v := &QueueView{entries: slices.Clone(entries), complete: complete}
	if len(entries) > 0 {
		v.bound = entries[len(entries)-1]
	}
	return v
}

// Clone returns an independent copy.
func (v *QueueView) Clone() *QueueView {
	c := *v
	c.entries = slices.Clone(v.entries)
	return &c
}

// Beyond reports whether a write landed past the view's bound, so that
// what is stored past it before the transaction is not what the
// transaction sees.
func (v *QueueView) Beyond() bool { return v.beyond }

// Committed forgets Beyond once the transaction that set it committed.
func (v *QueueView) Committed() { v.beyond = false }

// Size is about how many bytes the view holds, for caches.
func (v *QueueView) Size() int { return 64 + len(v.entries)*160 }

func (v *QueueView) covers(e *store.PendingExecution) bool {
	return v.complete || store.ComparePending(e, &v.bound) <= 0
}

func (v *QueueView) index(jobID string, n int64) int {
	for i := range v.entries {
		if v.entries[i].JobID == jobID && v.entries[i].ExecutionNumber == n {
			return i
		}
	}
	return -1
}

// Find returns the execution number of the view's entry of job.
func (v *QueueView) Find(job string) (int64, bool) {
	for i := range v.entries {
		if v.entries[i].JobID == job {
			return v.entries[i].ExecutionNumber, true
		}
	}
	return 0, false
}

// Put records that an execution's queue entry went from old (nil when it
// was not pending) to cur (nil when it is not pending any more).
func (v *QueueView) Put(old, cur *store.PendingExecution) {
	if old != nil {
		if i := v.index(old.JobID, old.ExecutionNumber); i >= 0 {
			v.entries = slices.Delete(v.entries, i, i+1)
		} else if !v.covers(old) {
			v.beyond = true
		}
	}
	if cur == nil {
		return
	}
	if !v.covers(cur) {
		v.beyond = true
		return
	}
	v.entries = slices.Insert(v.entries, v.search(cur), *cur)
	if !v.complete && len(v.entries) > 2*QueueWindow {
		// Keep the view small: what falls off its end is read again when
		// needed, from the transaction's own state (it may have written
		// some of it).
		v.entries = slices.Clip(v.entries[:QueueWindow])
		v.bound = v.entries[len(v.entries)-1]
		v.beyond = true
	}
}

// search returns the position of the first entry that does not sort
// before e.
func (v *QueueView) search(e *store.PendingExecution) int {
	lo, hi := 0, len(v.entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if store.ComparePending(&v.entries[m], e) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Read returns up to limit entries after after (from the head when nil),
// extending the view with more(bound, n), which must return the n
// entries that follow bound as the transaction sees them, when the view
// holds too few. The result is the caller's.
func (v *QueueView) Read(after *store.PendingExecution, limit int,
	more func(bound *store.PendingExecution, n int) ([]store.PendingExecution, error)) ([]store.PendingExecution, error) {
	for {
		start := 0
		if after != nil {
			start = v.search(after)
			if start < len(v.entries) && v.entries[start].JobID == after.JobID && v.entries[start].ExecutionNumber == after.ExecutionNumber {
				start++
			}
		}
		if v.complete || len(v.entries)-start >= limit {
			end := min(len(v.entries), start+limit)
			return slices.Clone(v.entries[start:end]), nil
		}
		var bound *store.PendingExecution
		if len(v.entries) > 0 || v.bound.JobID != "" {
			b := v.bound
			bound = &b
		}
		n := max(QueueWindow, limit-(len(v.entries)-start))
		got, err := more(bound, n)
		if err != nil {
			return nil, err
		}
		v.entries = append(v.entries, got...)
		v.complete = len(got) < n
		if len(got) > 0 {
			v.bound = got[len(got)-1]
		}
	}
}
