-- The jobsbroker store schema, version 1. Names are compared bytewise
-- (COLLATE "C") so that lists page in the same order as the Badger store.

-- Sequence numbers: job creations (jobs.seq) and queued executions
-- (queueSeq), which order a thing's pending executions.
CREATE SEQUENCE jobsbroker_seq;

-- Store-wide settings (the event configuration).
CREATE TABLE meta (
    key   text COLLATE "C" PRIMARY KEY,
    value jsonb NOT NULL
);

-- Jobs. record is the store.Job without targets or counts; status, seq
-- and the fields device operations need are columns too. rev moves
-- whenever the record, the status or the background task is replaced by
-- anyone but the task's own step, so that a transaction that decided on
-- an older version can tell and start again. The counts are the
-- job's process details; task is its unfinished background work
-- (schedule, rollout, settling a cancel or delete), due at task_wake
-- (Unix nanoseconds).
CREATE TABLE jobs (
    job_id           text COLLATE "C" PRIMARY KEY,
    seq              bigint NOT NULL UNIQUE,
    status           text NOT NULL,
    target_selection text NOT NULL,
    namespace_id     text COLLATE "C" NOT NULL DEFAULT '',
    force_canceled   boolean NOT NULL DEFAULT false,
    updated_ns       bigint NOT NULL,
    rev              bigint NOT NULL DEFAULT 1,
    record           jsonb NOT NULL,
    targets          jsonb NOT NULL,
    document         text NOT NULL,
    document_before  text,
    n_queued         bigint NOT NULL DEFAULT 0,
    n_in_progress    bigint NOT NULL DEFAULT 0,
    n_succeeded      bigint NOT NULL DEFAULT 0,
    n_failed         bigint NOT NULL DEFAULT 0,
    n_rejected       bigint NOT NULL DEFAULT 0,
    n_canceled       bigint NOT NULL DEFAULT 0,
    n_removed        bigint NOT NULL DEFAULT 0,
    n_timed_out      bigint NOT NULL DEFAULT 0,
    task             jsonb,
    task_wake        bigint
);
CREATE INDEX jobs_task_wake ON jobs (task_wake) WHERE task IS NOT NULL;

-- The things a job's rollout still has to visit, in order.
CREATE TABLE rollout_targets (
    job_id     text COLLATE "C" NOT NULL,
    pos        integer NOT NULL,
    thing_name text COLLATE "C" NOT NULL,
    PRIMARY KEY (job_id, pos)
);

-- Jobs that target a thing group.
CREATE TABLE group_jobs (
    group_name text COLLATE "C" NOT NULL,
    job_id     text COLLATE "C" NOT NULL,
    PRIMARY KEY (group_name, job_id)
);

-- One row per thing that has ever had an execution: the row every
-- operation on the thing locks (SELECT ... FOR UPDATE), and rev, which
-- moves whenever the thing's pending set changes.
CREATE TABLE thing_state (
    thing_name text COLLATE "C" PRIMARY KEY,
    rev        bigint NOT NULL DEFAULT 0
);

-- Job executions. record is the store.Execution; deadline_ns is its
-- timeout (Unix nanoseconds) while a timer runs.
CREATE TABLE executions (
    thing_name       text COLLATE "C" NOT NULL,
    job_id           text COLLATE "C" NOT NULL,
    execution_number bigint NOT NULL,
    status           text NOT NULL,
    deadline_ns      bigint,
    record           jsonb NOT NULL,
    PRIMARY KEY (thing_name, job_id, execution_number)
);
CREATE INDEX executions_by_job ON executions (job_id, thing_name, execution_number);
CREATE INDEX executions_pending ON executions (thing_name) WHERE status IN ('QUEUED', 'IN_PROGRESS');
CREATE INDEX executions_pending_by_job ON executions (job_id, thing_name) WHERE status IN ('QUEUED', 'IN_PROGRESS');
CREATE INDEX executions_deadline ON executions (deadline_ns) WHERE deadline_ns IS NOT NULL;

-- The thing registry and static thing groups.
CREATE TABLE things (
    thing_name text COLLATE "C" PRIMARY KEY,
    record     jsonb NOT NULL
);
CREATE TABLE thing_groups (
    group_name  text COLLATE "C" PRIMARY KEY,
    parent_name text COLLATE "C",
    record      jsonb NOT NULL
);
CREATE INDEX thing_groups_parent ON thing_groups (parent_name);
CREATE TABLE group_members (
    group_name text COLLATE "C" NOT NULL,
    thing_name text COLLATE "C" NOT NULL,
    PRIMARY KEY (group_name, thing_name)
);
CREATE INDEX group_members_thing ON group_members (thing_name, group_name);

-- Job templates.
CREATE TABLE job_templates (
    template_id text COLLATE "C" PRIMARY KEY,
    record      jsonb NOT NULL
);
