package postgres

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// TestMigrateQueues opens a database at schema version 2 (before queues)
// holding what that version wrote for one thing: a job of namespace ns1
// queued first, then a plain job. Migration 3 must put each execution in
// its queue and give the namespaced one its namespace.
func TestMigrateQueues(t *testing.T) {
	url, schema, exec := schemaAt(t, "0001_init.sql", "0002_sessions.sql")
	ctx := context.Background()
	at := storetest.Epoch
	for _, j := range []struct {
		id, ns string
		seq    uint64
	}{{"n1", "ns1", 1}, {"p1", "", 2}} {
		job := store.Job{JobID: j.id, Seq: j.seq, NamespaceID: j.ns, Status: store.JobInProgress,
			TargetSelection: store.Snapshot, CreatedAt: at, LastUpdatedAt: at}
		rec, _ := json.Marshal(&job)
		exec(`INSERT INTO jobs (job_id, seq, status, target_selection, namespace_id, updated_ns, record, targets, document, n_queued)
			VALUES ($1, $2, 'IN_PROGRESS', 'SNAPSHOT', $3, $4, $5, '["arn:aws:iot:us-east-1:123456789012:thing/t1"]', $6, 1)`,
			j.id, int64(j.seq), j.ns, at.UnixNano(), rec, `{"operation":"`+j.id+`"}`)
		e := store.Execution{JobID: j.id, ThingName: "t1", ExecutionNumber: 1, Status: store.StatusQueued, QueuedAt: at,
			LastUpdatedAt: at, VersionNumber: 1, QueueSeq: j.seq + 2, JobSeq: j.seq}
		rec, _ = json.Marshal(&e)
		exec(`INSERT INTO executions (thing_name, job_id, execution_number, status, record) VALUES ('t1', $1, 1, 'QUEUED', $2)`, j.id, rec)
	}
	exec(`INSERT INTO thing_state (thing_name, rev) VALUES ('t1', 2)`)
	exec("SELECT setval('jobsbroker_seq', 4)")

	s := openNode(t, url, schema, "migrated", clock.NewFake(at), 4)
	var changes []store.Change
	s.SetChangeHandler(func(cs []store.Change) { changes = append(changes, cs...) })
	p, err := s.GetPendingJobExecutions(ctx, "t1")
	if err != nil || len(p.Queued) != 1 || p.Queued[0].JobID != "p1" {
		t.Fatalf("plain pending = %+v, %v; want p1 alone", p, err)
	}
	next, err := s.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "t1", JobID: "$next", Namespace: "ns1"})
	if err != nil || next.Execution == nil || next.Execution.JobID != "n1" || next.Execution.Namespace != "ns1" {
		t.Fatalf("$next in ns1 = %+v, %v; want n1 with its namespace", next, err)
	}
	if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t1", JobID: "n1", Status: store.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Namespace != "ns1" || !changes[0].Notify || !changes[0].NotifyNext || changes[0].Next != nil {
		t.Fatalf("changes after n1 succeeded = %+v, want ns1's queue emptied", changes)
	}
	out, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: "t1"})
	if err != nil || out.Execution == nil || out.Execution.JobID != "p1" {
		t.Fatalf("plain start-next = %+v, %v; want p1", out, err)
	}
}

// schemaAt returns a fresh schema as an older store left it (files, the
// migrations of that version, applied and recorded) and a function that
// runs SQL in it.
func schemaAt(t *testing.T, files ...string) (url, schema string, exec func(sql string, args ...any)) {
	t.Helper()
	url, schema = freshSchema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	exec = func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("SET search_path TO " + pgx.Identifier{schema}.Sanitize())
	exec(`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
	for v, name := range files {
		sql, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		exec(string(sql))
		exec("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", v+1, name)
	}
	return url, schema, exec
}
