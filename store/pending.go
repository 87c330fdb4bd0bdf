package store

import "slices"

// MaxPendingListed is how many pending executions GetPendingJobExecutions and
// the notify message list at most, IN_PROGRESS ones first (AWS job limits).
const MaxPendingListed = 10

// PendingSet is pending executions of one thing in "next" order: every
// IN_PROGRESS execution before every QUEUED one, each group in the order the
// executions were queued.
type PendingSet []PendingExecution

// ComparePending orders pending executions as a thing's queue does:
// IN_PROGRESS first, then by queue order (QueueSeq, unique to an
// execution).
func ComparePending(a, b *PendingExecution) int {
	ai, bi := a.Status == StatusInProgress, b.Status == StatusInProgress
	switch {
	case ai && !bi:
		return -1
	case bi && !ai:
		return 1
	case a.QueueSeq < b.QueueSeq:
		return -1
	case a.QueueSeq > b.QueueSeq:
		return 1
	}
	return 0
}

// Head returns the next execution, or nil when nothing is pending.
func (p PendingSet) Head() *PendingExecution {
	if len(p) == 0 {
		return nil
	}
	return &p[0]
}

// Put returns a new set with e added, or replacing the entry with the same
// job id and execution number, at its place in the order. A terminal e is
// removed instead.
func (p PendingSet) Put(e PendingExecution) PendingSet {
	out := make(PendingSet, 0, len(p)+1)
	for _, x := range p {
		if x.JobID != e.JobID || x.ExecutionNumber != e.ExecutionNumber {
			out = append(out, x)
		}
	}
	if !e.Status.Pending() {
		return out
	}
	i, _ := slices.BinarySearchFunc(out, e, func(a, b PendingExecution) int { return ComparePending(&a, &b) })
	return slices.Insert(out, i, e)
}

// Split returns the first MaxPendingListed entries split into IN_PROGRESS
// and QUEUED lists, as GetPendingJobExecutions and notify list them.
func (p PendingSet) Split() (inProgress, queued []PendingExecution) {
	inProgress, queued = []PendingExecution{}, []PendingExecution{}
	for i, e := range p {
		if i == MaxPendingListed {
			break
		}
		if e.Status == StatusInProgress {
			inProgress = append(inProgress, e)
		} else {
			queued = append(queued, e)
		}
	}
	return inProgress, queued
}
