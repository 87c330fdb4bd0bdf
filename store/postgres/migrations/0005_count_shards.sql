-- Version 5: a job's counts without a hot row. An execution's change no
-- longer adds to the counts in its job's row, which every execution of the
-- job would then wait on until the change commits: it adds to a row of
-- its own database session (shard = pg_backend_pid(), which no two
-- sessions share while they run), so that changes of different things of
-- one job never wait on each other. A job's counts are its row's n_*
-- columns plus its rows here, summed when read. updated_ns is when the row
-- last changed (the store's clock, Unix nanoseconds): rows left alone for
-- a while (a session that ended, a job gone quiet) are folded into the
-- job's row by whichever node sweeps first, which also checks the job's
-- completion and abort criteria against the committed counts. The counts
-- already in jobs stay where they are: nothing to move.
CREATE TABLE job_count_shards (
    job_id        text COLLATE "C" NOT NULL,
    shard         integer NOT NULL,
    updated_ns    bigint NOT NULL,
    n_queued      bigint NOT NULL DEFAULT 0,
    n_in_progress bigint NOT NULL DEFAULT 0,
    n_succeeded   bigint NOT NULL DEFAULT 0,
    n_failed      bigint NOT NULL DEFAULT 0,
    n_rejected    bigint NOT NULL DEFAULT 0,
    n_canceled    bigint NOT NULL DEFAULT 0,
    n_removed     bigint NOT NULL DEFAULT 0,
    n_timed_out   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, shard)
) WITH (fillfactor = 50);
