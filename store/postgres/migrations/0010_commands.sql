-- AWS IoT commands (store.CommandStore). record is the store.Command or
-- store.CommandExecution as JSON; the other columns are what the indexes
-- need: an execution by command and by target in creation order (seq),
-- its timer (deadline_ns, Unix nanoseconds, NULL once it cannot fire) and
-- the StartCommandExecution client token that created it; node and
-- created_ns (Unix nanoseconds) let the other nodes of a cluster find the
-- executions another node started, to send their requests to the devices
-- connected to them.
--
-- Numbered 0010 rather than 0004 so that migrations added meanwhile on
-- other branches keep their numbers.
CREATE TABLE commands (
    command_id text COLLATE "C" PRIMARY KEY,
    record     jsonb NOT NULL
);

CREATE TABLE command_executions (
    execution_id text COLLATE "C" PRIMARY KEY,
    seq          bigint NOT NULL,
    command_id   text COLLATE "C" NOT NULL,
    target_kind  text COLLATE "C" NOT NULL,
    target_id    text COLLATE "C" NOT NULL,
    deadline_ns  bigint,
    client_token text COLLATE "C" UNIQUE,
    node         text NOT NULL DEFAULT '',
    created_ns   bigint NOT NULL DEFAULT 0,
    record       jsonb NOT NULL
);
CREATE INDEX command_executions_command ON command_executions (command_id, seq);
CREATE INDEX command_executions_target ON command_executions (target_kind, target_id, seq);
CREATE INDEX command_executions_deadline ON command_executions (deadline_ns) WHERE deadline_ns IS NOT NULL;
CREATE INDEX command_executions_created ON command_executions (created_ns);
