package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// A job's counts without a hot row.
//
// An execution's change moves its job's counts. Were they added to the
// job's row, every change of every thing of the job would wait for the row
// until the one before it committed, and a job's operations would run one
// at a time however many nodes serve them. Instead a transaction that only
// moves counts adds them to its database session's shard of the job's
// counts (job_count_shards, keyed by pg_backend_pid(), which no two
// running sessions share), under the job's guard taken shared (tx.go):
// such transactions never wait on each other. A job's counts are its row's
// plus its shards', summed in one statement when read, so DescribeJob is
// exact as of its snapshot.
//
// Completion and abort criteria need counts that no running transaction
// is about to change. A transaction that moved a job's counts under the
// shared guard therefore does not decide them (engine.LateChecker): after
// its COMMIT, in the same round trip, it reads the job's committed counts,
// and when they call for a check (engine.ChecksDue) it runs one, in a
// transaction that takes the guard exclusively before reading the counts
// (checkJob), before the operation returns. Of transactions that commit
// concurrently, the last one's read sees all of them, so a check that is
// due is never missed; the exclusive guard and the job's revision make the
// checks that run act once: a job becomes COMPLETED once, an abort cancels
// it once.
//
// A node may die between a commit and its check. Shards nobody changed for
// a poll interval are folded into their job's row by the next node to sweep
// (sweepCounts), in a check transaction, so that a job left with a check
// due is checked then; the shards of sessions that ended go the same way.

// checkJobs runs the checks of jobs that a committed transaction put off
// (CheckLater) and its committed counts call for. The transaction has
// committed whatever happens here: a failure is logged, and the job is
// checked again when its shards are swept.
func (s *Store) checkJobs(ctx context.Context, due []string) {
	if len(due) == 0 || s.skipChecks.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, id := range due {
		if err := s.checkJob(ctx, id, 0); err != nil {
			s.log.Warn("job check failed; the count sweep checks again", "op", "job check", "job", id, "error", err)
		}
	}
}

// checkJob checks a job's abort criteria and completion in a transaction
// that takes the job's guard exclusively before reading the job and its
// counts: it waits for the transactions that moved them to commit, and
// those that have yet to move them wait for it (and start again if it
// changed the job). With foldBefore set, it first folds the shards last
// changed before then (Unix nanoseconds) into the job's row.
func (s *Store) checkJob(ctx context.Context, id string, foldBefore int64) error {
	return s.update(ctx, "job check", func(w *wtx) error {
		w.guard(id, guardExclusive)
		if foldBefore > 0 {
			w.queue(foldShards, id, foldBefore)
		}
		return s.CheckJob(w, id)
	})
}

// sweepBatch bounds the jobs one sweep folds before looking again.
const sweepBatch = 256

// sweepCounts folds the shards nobody changed since before cutoff into
// their jobs' rows, checking each job, and reports how many jobs it swept.
func (s *Store) sweepCounts(ctx context.Context, cutoff time.Time) (int, error) {
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT job_id FROM job_count_shards WHERE updated_ns < $1 LIMIT $2",
		cutoff.UnixNano(), sweepBatch)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := s.checkJob(ctx, id, cutoff.UnixNano()); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// countLoop sweeps the count shards every poll interval: those left alone
// for a poll interval are folded into their jobs.
func (s *Store) countLoop() {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	var fails failures
	for {
		n, err := s.sweepCounts(ctx, s.clock.Now().Add(-s.opts.PollInterval))
		var retry time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			retry = fails.fail(s.log, slog.LevelError, "sweep job counts", "count sweep", err)
		} else {
			fails.ok()
			if n == sweepBatch {
				continue
			}
		}
		if s.sleep(time.Time{}, nil, retry) == wokeClosing {
			return
		}
	}
}
