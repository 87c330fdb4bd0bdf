//go:build ignore

// make_schema1 writes schema1.backup, the store TestMigrateSchema1 opens:
// a backup of a data directory written by a build before queue entries
// (schema 1, each thing's pending set one record). It uses only the
// store.Store interface and Backup, so it builds against any version; to
// make the fixture, run it in a checkout of such a build (928f199):
//
//	go run ./store/badger/testdata/make_schema1.go -o store/badger/testdata/schema1.backup
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
	out := flag.String("o", "schema1.backup", "the backup to write")
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
	arn := func(thing string) string { return "arn:aws:iot:us-east-1:123456789012:thing/" + thing }
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	// m1 is pending on both things; m2 and m3 on t1 only; m4 ended.
	for _, j := range []struct {
		id     string
		things []string
	}{{"m1", []string{"t1", "t2"}}, {"m2", []string{"t1"}}, {"m3", []string{"t1"}}, {"m4", []string{"t1", "t2"}}} {
		in := &store.CreateJobInput{Job: store.Job{JobID: j.id}, Document: `{"operation":"` + j.id + `"}`}
		for _, th := range j.things {
			in.Job.Targets = append(in.Job.Targets, arn(th))
		}
		_, err := s.CreateJob(ctx, in)
		must(err)
		clk.Advance(time.Second)
	}
	for _, th := range []string{"t1", "t2"} {
		_, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: th, JobID: "m4", Status: store.StatusSucceeded})
		must(err)
	}
	// m3 goes IN_PROGRESS on t1: it is t1's head.
	_, err = s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t1", JobID: "m3", Status: store.StatusInProgress})
	must(err)
	f, err := os.Create(*out)
	must(err)
	_, err = s.Backup(ctx, f)
	must(err)
	must(f.Close())
	must(s.Close())
}
