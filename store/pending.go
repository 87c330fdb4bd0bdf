package store

import "slices"

// MaxPendingListed is how many pending executions GetPendingJobExecutions and
// the notify message list at most, IN_PROGRESS ones first (AWS job limits).
const MaxPendingListed = 10

// PendingSet is the pending executions of one thing in "next" order: every
// IN_PROGRESS execution before every QUEUED one, each group in the order the
// executions were queued.
type PendingSet []PendingExecution

// pendingLess orders pending executions: IN_PROGRESS first, then by queue order.
func pendingLess(a, b *PendingExecution) int {
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

// Index returns the position of the execution, or -1.
func (p PendingSet) Index(jobID string, executionNumber int64) int {
	for i := range p {
		if p[i].JobID == jobID && p[i].ExecutionNumber == executionNumber {
			return i
		}
	}
	return -1
}

// Put returns a new set with e added, or replacing the entry with the same
// job id and execution number, at its place in the order. A terminal e is
// removed instead.
func (p PendingSet) Put(e PendingExecution) PendingSet {
	out := p.Remove(e.JobID, e.ExecutionNumber)
	if !e.Status.Pending() {
		return out
	}
	i, _ := slices.BinarySearchFunc(out, e, func(a, b PendingExecution) int { return pendingLess(&a, &b) })
	return slices.Insert(out, i, e)
}

// Remove returns a new set without the execution.
func (p PendingSet) Remove(jobID string, executionNumber int64) PendingSet {
	out := make(PendingSet, 0, len(p)+1)
	for _, e := range p {
		if e.JobID != jobID || e.ExecutionNumber != executionNumber {
			out = append(out, e)
		}
	}
	return out
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

// SameMembers reports whether both sets hold the same executions, whatever
// their statuses and details.
func SameMembers(a, b PendingSet) bool {
	if len(a) != len(b) {
		return false
	}
	for _, e := range a {
		if b.Index(e.JobID, e.ExecutionNumber) < 0 {
			return false
		}
	}
	return true
}

// SameHead reports whether both sets have the same next execution.
func SameHead(a, b PendingSet) bool {
	ha, hb := a.Head(), b.Head()
	if ha == nil || hb == nil {
		return ha == nil && hb == nil
	}
	return ha.JobID == hb.JobID && ha.ExecutionNumber == hb.ExecutionNumber
}

// Same reports whether p and q hold the same executions in the same
// states, as a device would see them (a change worth a notification).
func (p PendingSet) Same(q PendingSet) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		x, y := &p[i], &q[i]
		if x.JobID != y.JobID || x.ExecutionNumber != y.ExecutionNumber || x.Status != y.Status ||
			x.VersionNumber != y.VersionNumber || !x.LastUpdatedAt.Equal(y.LastUpdatedAt) ||
			!x.StartedAt.Equal(y.StartedAt) {
			return false
		}
	}
	return true
}
