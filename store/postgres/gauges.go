package postgres

import (
	"context"
	"strings"

	"github.com/jobsbroker/jobsbroker/store"
)

// Gauges counts, in one statement: executions by status (the sum of every
// job's counts, its row's and its shards'), jobs by status, armed timers
// and the rollout backlog. Its cost grows with the number of jobs and running timers; metrics call it
// at scrape time and cache it. The on-disk sizes are the database's.
func (s *Store) Gauges(ctx context.Context) (*store.Gauges, error) {
	g := &store.Gauges{ExecutionsByStatus: map[store.ExecutionStatus]int64{}, JobsByStatus: map[store.JobStatus]int64{}}
	var p store.ProcessDetails
	var byStatus map[string]int64
	var dbBytes int64
	cols := strings.Join(countCols, ", ")
	err := s.pool.QueryRow(ctx, `SELECT
			coalesce(sum(n_queued), 0)::bigint, coalesce(sum(n_in_progress), 0)::bigint, coalesce(sum(n_succeeded), 0)::bigint,
			coalesce(sum(n_failed), 0)::bigint, coalesce(sum(n_rejected), 0)::bigint, coalesce(sum(n_canceled), 0)::bigint,
			coalesce(sum(n_removed), 0)::bigint, coalesce(sum(n_timed_out), 0)::bigint,
			(SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM (SELECT status, count(*) AS n FROM jobs GROUP BY status) s),
			(SELECT count(*) FROM executions WHERE deadline_ns IS NOT NULL),
			(SELECT coalesce(sum((task->'rollout'->>'total')::bigint - (task->'rollout'->>'next')::bigint), 0)::bigint
				FROM jobs WHERE task ? 'rollout'),
			pg_database_size(current_database())
		FROM (SELECT `+cols+` FROM jobs UNION ALL SELECT `+cols+` FROM job_count_shards) c`).Scan(&p.Queued, &p.InProgress, &p.Succeeded, &p.Failed, &p.Rejected, &p.Canceled, &p.Removed, &p.TimedOut,
		&byStatus, &g.TimersArmed, &g.RolloutBacklog, &dbBytes)
	if err != nil {
		return nil, s.mapErr("gauges", err)
	}
	g.SizeBytes = map[string]int64{"database": dbBytes}
	for _, st := range store.Statuses {
		g.ExecutionsByStatus[st] = p.Count(st)
	}
	for st, n := range byStatus {
		g.JobsByStatus[store.JobStatus(st)] = n
	}
	return g, nil
}
