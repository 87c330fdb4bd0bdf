package badger

import (
	"context"
	"encoding/json"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// Gauges counts, from one read transaction: executions by status (the sum
// of every job's counts), jobs by status, armed timers and the rollout
// backlog. It reads every job's small records and the timer keys, so its
// cost grows with the number of jobs and running timers; metrics call it
// at scrape time and cache it.
func (s *Store) Gauges(ctx context.Context) (*store.Gauges, error) {
	g := &store.Gauges{ExecutionsByStatus: map[store.ExecutionStatus]int64{}, JobsByStatus: map[store.JobStatus]int64{}}
	err := s.view(ctx, func(r *rtx) error {
		var total store.ProcessDetails
		if err := r.each([]byte{prefixCounts}, nil, false, func(_, v []byte) (bool, error) {
			var p store.ProcessDetails
			if err := decodeCounts(v, &p); err != nil {
				return false, err
			}
			for _, st := range store.Statuses {
				total.Add(st, p.Count(st))
			}
			return true, nil
		}); err != nil {
			return err
		}
		for _, st := range store.Statuses {
			g.ExecutionsByStatus[st] = total.Count(st)
		}
		if err := r.each([]byte{prefixJob}, nil, false, func(_, v []byte) (bool, error) {
			var j struct {
				Status store.JobStatus `json:"status"`
			}
			if err := json.Unmarshal(v, &j); err != nil {
				return false, err
			}
			g.JobsByStatus[j.Status]++
			return true, nil
		}); err != nil {
			return err
		}
		if err := r.eachKey([]byte{prefixTimer}, nil, false, func([]byte) (bool, error) {
			g.TimersArmed++
			return true, nil
		}); err != nil {
			return err
		}
		return r.each([]byte{prefixTask}, nil, false, func(_, v []byte) (bool, error) {
			var t engine.Task
			if err := json.Unmarshal(v, &t); err != nil {
				return false, err
			}
			if t.Rollout != nil {
				g.RolloutBacklog += int64(t.Rollout.Total - t.Rollout.Next)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	lsm, vlog := s.db.Size()
	g.SizeBytes = map[string]int64{"lsm": lsm, "vlog": vlog}
	return g, nil
}
