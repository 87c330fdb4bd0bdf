//go:build ignore

// make_schema1_sessions writes schema1-sessions.backup, the store
// TestMigrateSchema1Namespaces opens: a backup of a data directory written
// by a build with persistent sessions and job namespaces but before queue
// entries (65e26e1): thing t1 has a plain job and two jobs of namespace
// ns1 pending (the second IN_PROGRESS), and a persistent session whose
// client ID is t1 has two messages queued (keys Q<client>0<seq>). To make
// the fixture, run it in a checkout of that build:
//
//	go run ./store/badger/testdata/make_schema1_sessions.go -o store/badger/testdata/schema1-sessions.backup
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

func main() {
	out := flag.String("o", "schema1-sessions.backup", "the backup to write")
	flag.Parse()
	dir, err := os.MkdirTemp("", "schema1")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	clk := clock.NewFake(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	s, err := badger.Open(badger.Options{Dir: dir, Clock: clk})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	for _, j := range []struct{ id, ns string }{{"n1", "ns1"}, {"p1", ""}, {"n2", "ns1"}} {
		_, err := s.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: j.id, NamespaceID: j.ns,
			Targets: []string{"arn:aws:iot:us-east-1:123456789012:thing/t1"}}, Document: `{"operation":"` + j.id + `"}`})
		must(err)
		clk.Advance(time.Second)
	}
	_, err = s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t1", JobID: "n2", Status: store.StatusInProgress})
	must(err)
	must(s.WriteSessions(ctx, []store.SessionOp{
		{Kind: store.PutSession, Session: &store.Session{ClientID: "t1", ProtocolVersion: 4, ExpiryInterval: 3600}},
		{Kind: store.PutMessage, ClientID: "t1", Message: &store.QueuedMessage{Seq: 1, Data: []byte("first")}},
		{Kind: store.PutMessage, ClientID: "t1", Message: &store.QueuedMessage{Seq: 2, Data: []byte("second")}},
	}))
	f, err := os.Create(*out)
	must(err)
	_, err = s.Backup(ctx, f)
	must(err)
	must(f.Close())
	must(s.Close())
}
