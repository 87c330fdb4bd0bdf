package badger

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
)

// restoreFixture restores testdata/name into a new directory and returns
// it.
func restoreFixture(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(t.TempDir(), "jobs")
	if err := Restore(dir, f); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestMigrateSchema1 opens a store written by a build that kept each
// thing's pending set as one record (testdata/schema1.backup, made by
// testdata/make_schema1.go): its queues must read as they were, in
// order, operations must go on from them, and no old record may remain.
func TestMigrateSchema1(t *testing.T) {
	dir := restoreFixture(t, "schema1.backup")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *Store {
		t.Helper()
		s, err := Open(Options{Dir: dir, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	ctx := context.Background()
	pending := func(thing string) (inProgress, queued []string) {
		t.Helper()
		p, err := s.GetPendingJobExecutions(ctx, thing)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.InProgress {
			inProgress = append(inProgress, e.JobID)
		}
		for _, e := range p.Queued {
			queued = append(queued, e.JobID)
		}
		return inProgress, queued
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s = %q, want %q", what, got, want)
		}
	}
	ip, q := pending("t1")
	check("t1 in progress", ip, []string{"m3"})
	check("t1 queued", q, []string{"m1", "m2"})
	ip, q = pending("t2")
	check("t2 in progress", ip, nil)
	check("t2 queued", q, []string{"m1"})

	var changes []store.Change
	s.SetChangeHandler(func(cs []store.Change) { changes = append(changes, cs...) })
	if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t1", JobID: "m3", Status: store.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !changes[0].Notify || !changes[0].NotifyNext || changes[0].Next == nil || changes[0].Next.JobID != "m1" {
		t.Fatalf("changes after the head succeeded = %+v, want notify and notify-next of m1", changes)
	}
	out, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: "t1"})
	if err != nil || out.Execution == nil || out.Execution.JobID != "m1" {
		t.Fatalf("start-next after the migration = %+v, %v", out, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened, the directory is at the new schema and holds no pending
	// set of the old one.
	s = open()
	defer s.Close()
	ip, q = pending("t1")
	check("t1 in progress after reopening", ip, []string{"m1"})
	check("t1 queued after reopening", q, []string{"m2"})
	if v, err := s.schema(); err != nil || v != schemaVersion {
		t.Fatalf("schema = %q, %v", v, err)
	}
	err = s.db.View(func(txn *badgerdb.Txn) error {
		return iterate(txn, []byte{prefixThing}, nil, false, false, func(k, _ []byte) (bool, error) {
			t.Errorf("schema-1 record %q left", k)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateSchema1Namespaces opens a store written by a build with
// persistent sessions and job namespaces but before queue entries
// (testdata/schema1-sessions.backup, made by
// testdata/make_schema1_sessions.go): the namespaced jobs' executions
// land in their namespace's queue and know their namespace, the plain
// queue holds the plain job only, and the messages queued for a client
// whose ID is the thing's name are still its own.
func TestMigrateSchema1Namespaces(t *testing.T) {
	dir := restoreFixture(t, "schema1-sessions.backup")
	s, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	p, err := s.GetPendingJobExecutions(ctx, "t1")
	if err != nil || len(p.InProgress) != 0 || len(p.Queued) != 1 || p.Queued[0].JobID != "p1" {
		t.Fatalf("plain pending = %+v, %v; want p1 alone", p, err)
	}
	next, err := s.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "t1", JobID: "$next", Namespace: "ns1"})
	if err != nil || next.Execution == nil || next.Execution.JobID != "n2" || next.Execution.Namespace != "ns1" {
		t.Fatalf("$next in ns1 = %+v, %v; want n2, IN_PROGRESS", next, err)
	}
	n1, err := s.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "t1", JobID: "n1"})
	if err != nil || n1.Execution.Namespace != "ns1" {
		t.Fatalf("n1 = %+v, %v; want its namespace", n1, err)
	}

	var changes []store.Change
	s.SetChangeHandler(func(cs []store.Change) { changes = append(changes, cs...) })
	if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t1", JobID: "n2", Status: store.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Namespace != "ns1" || !changes[0].NotifyNext || changes[0].Next == nil || changes[0].Next.JobID != "n1" {
		t.Fatalf("changes after n2 succeeded = %+v, want ns1's notify-next of n1", changes)
	}
	out, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: "t1"})
	if err != nil || out.Execution == nil || out.Execution.JobID != "p1" {
		t.Fatalf("plain start-next = %+v, %v; want p1", out, err)
	}

	msgs, err := s.QueuedMessages(ctx, "t1")
	if err != nil || len(msgs) != 2 || string(msgs[0].Data) != "first" || string(msgs[1].Data) != "second" {
		t.Fatalf("t1's queued messages = %+v, %v", msgs, err)
	}
}
