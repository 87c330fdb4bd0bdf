package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
)

// Things is what some things hold in a store: each one's pending
// executions in "next" order, and its latest execution of each of some
// jobs. Fuzz targets take one before and one after a request, to check
// that a rejected request changed nothing and an accepted one changed
// what it should.
type Things struct {
	// Pending holds each thing's pending executions.
	Pending map[string]Pending
	// Latest holds the latest execution by thing + "/" + job id (none for
	// a job the thing has no execution of).
	Latest map[string]*store.Execution

	things, jobs []string
}

// Pending is a thing's pending executions, IN_PROGRESS first.
type Pending []store.PendingExecution

// Jobs lists the job ids, comma-separated.
func (p Pending) Jobs() string {
	ids := make([]string, len(p))
	for i, e := range p {
		ids[i] = e.JobID
	}
	return strings.Join(ids, ",")
}

// Snapshot reads what things hold of jobs in st.
func Snapshot(t testing.TB, st store.Store, things, jobs []string) Things {
	t.Helper()
	ctx := context.Background()
	s := Things{Pending: map[string]Pending{}, Latest: map[string]*store.Execution{}, things: things, jobs: jobs}
	for _, th := range things {
		p, err := st.GetPendingJobExecutions(ctx, th)
		if err != nil {
			t.Fatal(err)
		}
		s.Pending[th] = append(append(Pending{}, p.InProgress...), p.Queued...)
		for _, j := range jobs {
			out, err := st.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: th, JobID: j})
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			s.Latest[th+"/"+j] = out.Execution
		}
	}
	return s
}

// Equal reports whether two snapshots hold the same executions in the
// same states.
func (s Things) Equal(o Things) bool { return s.String() == o.String() }

// String renders every pending set and execution, fields included.
func (s Things) String() string {
	var b strings.Builder
	for _, th := range s.things {
		fmt.Fprintf(&b, "%s pending %+v; ", th, s.Pending[th])
		for _, j := range s.jobs {
			if e, ok := s.Latest[th+"/"+j]; ok {
				fmt.Fprintf(&b, "%s %+v; ", j, *e)
			}
		}
	}
	return b.String()
}

// Requeue gives every thing of s whose executions of the continuous jobs
// on group are no longer fresh (QUEUED, version 1) new ones: leaving the
// group marks the pending ones REMOVED, joining it again queues new ones.
func Requeue(t testing.TB, st store.Store, group string, s Things, continuous []string) {
	t.Helper()
	ctx := context.Background()
	for _, th := range s.things {
		fresh := true
		for _, j := range continuous {
			e := s.Latest[th+"/"+j]
			fresh = fresh && e != nil && e.Status == store.StatusQueued && e.VersionNumber == 1
		}
		if fresh {
			continue
		}
		in := &store.MembershipInput{ThingGroupName: group, ThingName: th}
		if err := st.RemoveThingFromThingGroup(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := st.AddThingToThingGroup(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
}
