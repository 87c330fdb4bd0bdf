package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
)

// TestQueueView checks the view against a full queue under random
// changes: whatever it holds, Read must return what the queue holds, and
// it must read more only through its more function, which serves the
// queue as it stands (a transaction's own writes included).
func TestQueueView(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var queue store.PendingSet // the truth
		var seq uint64
		add := func() store.PendingExecution {
			seq++
			p := store.PendingExecution{JobID: fmt.Sprintf("j%d", seq), ExecutionNumber: 1, Status: store.StatusQueued, QueueSeq: seq}
			queue = queue.Put(p)
			return p
		}
		for range rng.IntN(60) {
			add()
		}
		first := queue[:min(len(queue), QueueWindow)]
		v := NewQueueView(first, len(first) < QueueWindow)
		more := func(bound *store.PendingExecution, n int) ([]store.PendingExecution, error) {
			i := 0
			if bound != nil {
				for i < len(queue) && store.ComparePending(&queue[i], bound) <= 0 {
					i++
				}
			}
			return slices.Clone(queue[i:min(len(queue), i+n)]), nil
		}
		for step := range 100 {
			switch op := rng.IntN(4); {
			case op == 0 || len(queue) == 0:
				p := add()
				v.Put(nil, &p)
			case op == 1:
				old := queue[rng.IntN(len(queue))]
				queue = queue.Put(store.PendingExecution{JobID: old.JobID, ExecutionNumber: old.ExecutionNumber, Status: store.StatusSucceeded})
				v.Put(&old, nil)
			default:
				old := queue[rng.IntN(len(queue))]
				cur := old
				cur.Status, cur.VersionNumber = store.StatusInProgress, old.VersionNumber+1
				queue = queue.Put(cur)
				v.Put(&old, &cur)
			}
			limit := 1 + rng.IntN(store.MaxPendingListed+3)
			var after *store.PendingExecution
			want := queue
			if len(queue) > 0 && rng.IntN(3) == 0 {
				i := rng.IntN(len(queue))
				after, want = &queue[i], queue[i+1:]
			}
			want = want[:min(len(want), limit)]
			got, err := v.Read(after, limit, more)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d step %d: Read(%v, %d) = %v, want %v", round, step, after, limit, got, want)
			}
		}
	}
}
