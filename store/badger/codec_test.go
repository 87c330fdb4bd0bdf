package badger

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

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
