package badger

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
)

func samplePending() store.PendingSet {
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	return store.PendingSet{
		{JobID: "fw-2", ExecutionNumber: 3, Status: store.StatusInProgress, QueuedAt: at, StartedAt: at.Add(time.Second),
			LastUpdatedAt: at.Add(2 * time.Second), VersionNumber: 4, QueueSeq: 17, JobSeq: 9},
		{JobID: "fw-1", ExecutionNumber: 1, Status: store.StatusQueued, QueuedAt: at, LastUpdatedAt: at, VersionNumber: 1, QueueSeq: 1 << 40, JobSeq: 1},
		{JobID: "odd", ExecutionNumber: -1, Status: "SOMETHING", QueuedAt: at},
	}
}

func TestPendingCodecRoundTrip(t *testing.T) {
	for _, set := range []store.PendingSet{samplePending(), {}} {
		got, err := decodePending(appendPending(nil, set))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, set) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, set)
		}
	}
	// A record written as JSON by an earlier version still reads.
	b, _ := json.Marshal(samplePending())
	got, err := decodePending(b)
	if err != nil || len(got) != 3 || !got[0].StartedAt.Equal(samplePending()[0].StartedAt) {
		t.Errorf("JSON record: %+v, %v", got, err)
	}
}

func TestPendingCodecRejectsDamage(t *testing.T) {
	b := appendPending(nil, samplePending())
	for i := range len(b) {
		if _, err := decodePending(b[:i]); err == nil {
			t.Errorf("a record cut to %d of %d bytes decoded", i, len(b))
		}
	}
	if _, err := decodePending(append(b, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

func FuzzDecodePending(f *testing.F) {
	f.Add(appendPending(nil, samplePending()))
	f.Add([]byte{pendingCodecV1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := decodePending(b)
		if err != nil || (len(b) > 0 && b[0] == '[') {
			return
		}
		again, err := decodePending(appendPending(nil, set))
		if err != nil || len(again) != len(set) {
			t.Fatalf("re-encoding a decoded set: %v", err)
		}
	})
}

func sampleExecution() *store.Execution {
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	return &store.Execution{JobID: "fw-2", ThingName: "pump-1", ExecutionNumber: 3, Status: store.StatusInProgress,
		StatusDetails: map[string]string{"step": "download", "progress": "50"}, QueuedAt: at, StartedAt: at.Add(time.Second),
		LastUpdatedAt: at.Add(2 * time.Second), VersionNumber: 4, ForceCanceled: true, RetryAttempt: 2, FailedRetries: 1,
		TimedOutRetries: 1, StepDeadline: at.Add(time.Hour), InProgressDeadline: at.Add(2 * time.Hour), QueueSeq: 1 << 40, JobSeq: 9}
}

func TestExecutionCodecRoundTrip(t *testing.T) {
	namespaced := sampleExecution()
	namespaced.Namespace = "aws-gg-deployment"
	for _, e := range []*store.Execution{sampleExecution(), namespaced, {JobID: "j", ThingName: "t", Status: "SOMETHING"}} {
		var got store.Execution
		if err := decodeExecution(appendExecution(nil, e), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, *e)
		}
	}
	// A record written as JSON by an earlier version still reads.
	b, _ := json.Marshal(sampleExecution())
	var got store.Execution
	if err := decodeExecution(b, &got); err != nil || got.JobID != "fw-2" || !got.StepDeadline.Equal(sampleExecution().StepDeadline) {
		t.Errorf("JSON record: %+v, %v", got, err)
	}
}

func TestExecutionCodecRejectsDamage(t *testing.T) {
	namespaced := sampleExecution()
	namespaced.Namespace = "aws-gg-deployment"
	for _, x := range []*store.Execution{sampleExecution(), namespaced} {
		b := appendExecution(nil, x)
		for i := range len(b) {
			var e store.Execution
			if err := decodeExecution(b[:i], &e); err == nil {
				t.Errorf("a record cut to %d of %d bytes decoded", i, len(b))
			}
		}
	}
}

func FuzzDecodeExecution(f *testing.F) {
	f.Add(appendExecution(nil, sampleExecution()))
	namespaced := sampleExecution()
	namespaced.Namespace = "aws-gg-deployment"
	f.Add(appendExecution(nil, namespaced))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e store.Execution
		if err := decodeExecution(b, &e); err != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		var again store.Execution
		if err := decodeExecution(appendExecution(nil, &e), &again); err != nil || !reflect.DeepEqual(&again, &e) {
			t.Fatalf("re-encoding a decoded execution: %v\n%+v\n%+v", err, e, again)
		}
	})
}

func sampleCounts() store.ProcessDetails {
	return store.ProcessDetails{Queued: 100000, InProgress: 3, Succeeded: 1 << 40, Failed: 1, TimedOut: 2, Rejected: 4, Removed: 5, Canceled: 6}
}

func TestCountsCodecRoundTrip(t *testing.T) {
	for _, p := range []store.ProcessDetails{sampleCounts(), {}, {Queued: -1}} {
		var got store.ProcessDetails
		if err := decodeCounts(appendCounts(nil, &p), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip: got %+v, want %+v", got, p)
		}
	}
	// A record written as JSON by an earlier version still reads, and
	// nothing of what the destination held before survives.
	b, _ := json.Marshal(sampleCounts())
	got := store.ProcessDetails{Queued: 7}
	if err := decodeCounts(b, &got); err != nil || !reflect.DeepEqual(got, sampleCounts()) {
		t.Errorf("JSON record: %+v, %v", got, err)
	}
	if err := decodeCounts([]byte(`{"succeeded":2}`), &got); err != nil || !reflect.DeepEqual(got, store.ProcessDetails{Succeeded: 2}) {
		t.Errorf("JSON record with one count: %+v, %v", got, err)
	}
}

func TestCountsCodecRejectsDamage(t *testing.T) {
	p := sampleCounts()
	b := appendCounts(nil, &p)
	for i := range len(b) {
		var got store.ProcessDetails
		if err := decodeCounts(b[:i], &got); err == nil {
			t.Errorf("a record cut to %d of %d bytes decoded", i, len(b))
		}
	}
	if err := decodeCounts(append(b, 0), &p); err == nil {
		t.Error("trailing byte accepted")
	}
	if err := decodeCounts([]byte{countsCodecV1 + 1, 0, 0, 0, 0, 0, 0, 0, 0}, &p); err == nil {
		t.Error("unknown version accepted")
	}
}

func FuzzDecodeCounts(f *testing.F) {
	p := sampleCounts()
	f.Add(appendCounts(nil, &p))
	f.Add([]byte(`{"queued":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got store.ProcessDetails
		if err := decodeCounts(b, &got); err != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		var again store.ProcessDetails
		if err := decodeCounts(appendCounts(nil, &got), &again); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoding decoded counts: %v\n%+v\n%+v", err, got, again)
		}
	})
}

// TestCountsWrittenAsJSON opens a store whose job counts an earlier
// version wrote as JSON: they read (DescribeJob, the gauges), device
// operations move them on, and the next write leaves them binary.
func TestCountsWrittenAsJSON(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	s, err := Open(Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	targets := []string{"arn:aws:iot:us-east-1:123456789012:thing/t1", "arn:aws:iot:us-east-1:123456789012:thing/t2"}
	if _, err := s.CreateJob(ctx, &store.CreateJobInput{Job: store.Job{JobID: "j", Targets: targets}, Document: `{}`}); err != nil {
		t.Fatal(err)
	}
	// Rewrite the counts as the JSON encoder of earlier versions did
	// (one thing already done, which the executions do not say: the
	// counts must come from this record), then start again.
	old, err := json.Marshal(store.ProcessDetails{Queued: 2, Succeeded: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(txn *badgerdb.Txn) error { return txn.Set(countsKey("j"), old) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(Options{Dir: dir, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	counts := func() store.ProcessDetails {
		t.Helper()
		j, err := s.DescribeJob(ctx, "j")
		if err != nil {
			t.Fatal(err)
		}
		p := j.ProcessDetails
		p.ProcessingTargets = nil
		return p
	}
	if got, want := counts(), (store.ProcessDetails{Queued: 2, Succeeded: 5}); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts read from JSON = %+v, want %+v", got, want)
	}
	g, err := s.Gauges(ctx)
	if err != nil || g.ExecutionsByStatus[store.StatusSucceeded] != 5 {
		t.Fatalf("gauges from JSON counts: %+v, %v", g, err)
	}
	if _, err := s.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: "t1", JobID: "j", Status: store.StatusInProgress}); err != nil {
		t.Fatal(err)
	}
	if got, want := counts(), (store.ProcessDetails{Queued: 1, InProgress: 1, Succeeded: 5}); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts after an update = %+v, want %+v", got, want)
	}
	var raw []byte
	if err := s.db.View(func(txn *badgerdb.Txn) error {
		item, err := txn.Get(countsKey("j"))
		if err == nil {
			raw, err = item.ValueCopy(nil)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || raw[0] != countsCodecV1 {
		t.Fatalf("counts after a write: %q, want the binary form", raw)
	}
}
