-- Version 3: a thing's queue. A thing's pending executions are read in
-- "next" order (IN_PROGRESS first, then by queue order) from an index, a
-- few at a time, instead of the whole set at once; thing_state counts the
-- changes of who is pending (members_rev) for the other nodes'
-- notifications.
ALTER TABLE executions ADD COLUMN queue_seq bigint NOT NULL DEFAULT 0;
UPDATE executions SET queue_seq = (record->>'queueSeq')::bigint WHERE status IN ('QUEUED', 'IN_PROGRESS');
DROP INDEX executions_pending;
CREATE INDEX executions_queue ON executions (thing_name, (status = 'QUEUED'), queue_seq)
    WHERE status IN ('QUEUED', 'IN_PROGRESS');
ALTER TABLE thing_state ADD COLUMN members_rev bigint NOT NULL DEFAULT 0;
