-- Version 3: a thing's queues. A thing's pending executions are read in
-- "next" order (IN_PROGRESS first, then by queue order) from an index, a
-- few at a time, instead of the whole set at once, and each job namespace
-- has a queue of its own: an execution carries its job's namespace
-- (namespace_id, '' for jobs without one). thing_state counts the changes
-- of who is pending (members_rev) for the other nodes' notifications, for
-- the queue of jobs without a namespace; ns_state holds the same two
-- counts for each namespaced queue the thing has had, as
-- {"namespace": [rev, members_rev]}.
ALTER TABLE executions ADD COLUMN queue_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN namespace_id text COLLATE "C" NOT NULL DEFAULT '';
UPDATE executions SET queue_seq = (record->>'queueSeq')::bigint WHERE status IN ('QUEUED', 'IN_PROGRESS');
UPDATE executions e SET namespace_id = j.namespace_id,
        record = jsonb_set(e.record, '{namespace}', to_jsonb(j.namespace_id))
    FROM jobs j WHERE j.job_id = e.job_id AND j.namespace_id <> '';
DROP INDEX executions_pending;
CREATE INDEX executions_queue ON executions (thing_name, namespace_id, (status = 'QUEUED'), queue_seq)
    WHERE status IN ('QUEUED', 'IN_PROGRESS');
ALTER TABLE thing_state ADD COLUMN members_rev bigint NOT NULL DEFAULT 0;
ALTER TABLE thing_state ADD COLUMN ns_state jsonb NOT NULL DEFAULT '{}';
UPDATE thing_state ts SET ns_state = n.state
    FROM (SELECT thing_name, jsonb_object_agg(namespace_id, jsonb_build_array(1, 1)) AS state
          FROM (SELECT DISTINCT thing_name, namespace_id FROM executions
                WHERE namespace_id <> '' AND status IN ('QUEUED', 'IN_PROGRESS')) q
          GROUP BY thing_name) n
    WHERE n.thing_name = ts.thing_name;
