package badger_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// storeWithJob writes a store holding job "j" for thing "t" and closes
// it, returning its directory.
func storeWithJob(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := badger.Open(badger.Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := &store.CreateJobInput{Job: store.Job{JobID: "j", Targets: []string{storetest.ThingARN("t")}}, Document: `{}`}
	if _, err := s.CreateJob(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLowDiskRefusesWrites: below MinFreeBytes of free space, writes are
// refused with ServiceUnavailable and change nothing, while reads and Ping
// go on.
func TestLowDiskRefusesWrites(t *testing.T) {
	dir := storeWithJob(t)
	ctx := context.Background()

	// No filesystem has an exabyte free: the disk is "low".
	s, err := badger.Open(badger.Options{Dir: dir, Logger: quiet, MinFreeBytes: 1 << 60})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: "t"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a write on a full disk: %v, want ErrUnavailable", err)
	}
	out, err := s.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "t", JobID: "j"})
	if err != nil || out.Execution.Status != store.StatusQueued {
		t.Fatalf("read on a full disk: %+v, %v (the refused write must change nothing)", out, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping on a full disk: %v", err)
	}
	// A request rejected without writing is answered as usual.
	_, err = s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "nope", Status: store.StatusSucceeded})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an update of an unknown job on a full disk: %v, want ErrNotFound", err)
	}
}

// TestEmptyMemtableFileIsRemoved: Badger refuses a directory holding the
// empty memtable file a failed rotation leaves behind; Open removes it.
func TestEmptyMemtableFileIsRemoved(t *testing.T) {
	dir := storeWithJob(t)
	ctx := context.Background()
	if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := badger.Open(badger.Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatalf("open with an empty memtable file: %v", err)
	}
	defer s.Close()
	if _, err := s.DescribeJob(ctx, "j"); err != nil {
		t.Fatal(err)
	}
}
