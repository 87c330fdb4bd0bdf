package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
)

// snapshot reads every job, execution, group and template of a store into
// one comparable value.
func snapshot(t *testing.T, st store.Store) string {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	jobs, err := st.ListJobs(ctx, &store.ListJobsInput{MaxResults: 250})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs.Jobs {
		full, err := st.DescribeJob(ctx, j.JobID)
		if err != nil {
			t.Fatal(err)
		}
		execs, err := st.ListJobExecutionsForJob(ctx, &store.ListExecutionsInput{JobID: j.JobID, MaxResults: 250})
		if err != nil {
			t.Fatal(err)
		}
		doc, err := st.GetJobDocument(ctx, j.JobID, false)
		if err != nil {
			t.Fatal(err)
		}
		out["job/"+j.JobID] = []any{full, execs.Executions, doc}
	}
	groups, err := st.ListThingGroups(ctx, &store.ListThingGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.Groups {
		things, _ := st.ListThingsInThingGroup(ctx, &store.ListThingsInGroupInput{ThingGroupName: g.Name})
		out["group/"+g.Name] = []any{g, things.Names}
	}
	tmpl, err := st.ListJobTemplates(ctx, &store.PageInput{})
	if err != nil {
		t.Fatal(err)
	}
	out["templates"] = tmpl.Templates
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBackupRestore backs a store up online (from the running broker) and
// offline (from its data directory), restores each into an empty data
// directory, and finds the same jobs, executions, groups and templates.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	b := brokertest.Start(t)
	dataDir := b.Config.DataDir
	st := b.Store
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.CreateThing(ctx, &store.CreateThingInput{ThingName: "t1"})
	must(err)
	_, err = st.CreateThingGroup(ctx, &store.CreateThingGroupInput{Name: "g1", Description: "group"})
	must(err)
	must(st.AddThingToThingGroup(ctx, &store.MembershipInput{ThingGroupName: "g1", ThingName: "t1"}))
	_, err = st.CreateJobTemplate(ctx, &store.CreateJobTemplateInput{Template: store.JobTemplate{JobTemplateID: "tp", Description: "d", Document: `{"a":"b"}`}})
	must(err)
	_, err = st.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "j1", Targets: []string{
		"arn:aws:iot:us-east-1:123456789012:thinggroup/g1", brokertest.ThingARN("t2")}}, Document: `{"op":"one"}`})
	must(err)
	_, err = st.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "j2", Targets: []string{brokertest.ThingARN("t2")}}, Document: `{"op":"two"}`})
	must(err)
	_, err = st.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: "t2", StatusDetails: map[string]string{"k": "v"}})
	must(err)
	_, err = st.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t1", JobID: "j1", Status: store.StatusSucceeded})
	must(err)
	before := snapshot(t, st)

	online := filepath.Join(t.TempDir(), "online.backup")
	must(run(ctx, []string{"backup", "-o", online, "-from", b.APIURL()}, env(nil), io.Discard, io.Discard))
	// The data directory is locked while the broker runs.
	if err := run(ctx, []string{"backup", "-o", online + "2", "-data-dir", dataDir}, env(nil), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-from") {
		t.Fatalf("an offline backup of a running broker: %v", err)
	}
	b.Stop(t)
	// A data directory that holds no store is an error, and is not created.
	missing := filepath.Join(t.TempDir(), "typo")
	if err := run(ctx, []string{"backup", "-o", online + "3", "-data-dir", missing}, env(nil), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "no store in "+missing+" (-data-dir)") {
		t.Fatalf("a backup of a directory with no store: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("the backup created %s: %v", missing, err)
	}
	offline := filepath.Join(t.TempDir(), "offline.backup")
	must(run(ctx, []string{"backup", "-o", offline, "-data-dir", dataDir}, env(nil), io.Discard, io.Discard))

	for _, file := range []string{online, offline} {
		dir := t.TempDir()
		must(run(ctx, []string{"restore", "-i", file, "-data-dir", dir}, env(nil), io.Discard, io.Discard))
		if err := run(ctx, []string{"restore", "-i", file, "-data-dir", dir}, env(nil), io.Discard, io.Discard); err == nil ||
			!strings.Contains(err.Error(), "not empty") {
			t.Fatalf("restoring over a store: %v", err)
		}
		restored, err := badger.Open(badger.Options{Dir: filepath.Join(dir, "jobs")})
		must(err)
		after := snapshot(t, restored)
		restored.Close()
		if after != before {
			t.Fatalf("%s restored a different state:\nbefore %s\nafter  %s", filepath.Base(file), before, after)
		}
	}
}

// TestSignedBackup takes an online backup from a broker whose API is HTTPS
// and requires signatures.
func TestSignedBackup(t *testing.T) {
	pki := brokertest.NewPKI(t)
	server := pki.Server("server")
	creds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(creds, []byte("[ops]\naws_access_key_id = AKIABACKUP0000000001\naws_secret_access_key = s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, func(c *broker.Config) {
		c.TLSCert, c.TLSKey, c.ClientCA, c.CredentialsFile = server.Cert, server.Key, pki.CAFile, creds
	})
	out := filepath.Join(t.TempDir(), "signed.backup")
	args := []string{"backup", "-o", out, "-from", b.APIURL(), "-ca", pki.CAFile}
	err := run(context.Background(), args, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("an unsigned backup request: %v, want a 403", err)
	}
	signed := env(map[string]string{"AWS_ACCESS_KEY_ID": "AKIABACKUP0000000001", "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
	if err := run(context.Background(), args, signed, io.Discard, io.Discard); err != nil {
		t.Fatalf("a signed backup: %v", err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Fatalf("backup file: %v, %v", fi, err)
	}
}
