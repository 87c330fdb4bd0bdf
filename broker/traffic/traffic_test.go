package traffic

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRecentKeepsTheLastMessagesInOrder(t *testing.T) {
	r := New(Options{PerThing: 3})
	for i := range 5 {
		r.Record("pump-1", In, "c1", fmt.Sprintf("$aws/things/pump-1/jobs/%d/get", i), []byte(fmt.Sprint(i)))
	}
	got := r.Recent("pump-1")
	if len(got) != 3 {
		t.Fatalf("kept %d entries, want 3", len(got))
	}
	for i, e := range got {
		if want := fmt.Sprint(i + 2); e.Payload != want || e.Direction != In || e.ClientID != "c1" {
			t.Errorf("entry %d = %+v, want payload %s from c1, in", i, e, want)
		}
	}
	if r.Recent("pump-2") != nil {
		t.Error("a thing with no traffic has entries")
	}
}

func TestPayloadIsCutAndItsSizeKept(t *testing.T) {
	r := New(Options{MaxPayload: 8})
	r.Record("t", Out, "c", "$aws/things/t/jobs/notify", []byte("0123456789abcdef"))
	r.Record("t", Out, "c", "$aws/things/t/jobs/notify", []byte("short"))
	got := r.Recent("t")
	if got[0].Payload != "01234567" || got[0].Size != 16 || !got[0].Truncated() {
		t.Errorf("long payload recorded as %+v", got[0])
	}
	if got[1].Payload != "short" || got[1].Truncated() {
		t.Errorf("short payload recorded as %+v (the buffer is reused)", got[1])
	}
}

func TestRecordIsBoundedByThings(t *testing.T) {
	r := New(Options{Things: 64, PerThing: 2})
	for i := range 10_000 {
		r.Record(fmt.Sprintf("thing-%d", i), In, "c", "$aws/things/x/jobs/get", nil)
	}
	if n := r.Things(); n > 64+shards {
		t.Fatalf("%d things kept, the bound is 64 (per shard, rounded up)", n)
	}
	if r.Recent("thing-9999") == nil {
		t.Error("the most recent thing was evicted")
	}
}

func TestRecentThingsOutliveIdleOnes(t *testing.T) {
	r := New(Options{Things: shards * 4, PerThing: 1})
	r.Record("busy", In, "c", "t", nil)
	for i := range 2000 {
		r.Record(fmt.Sprintf("idle-%d", i), In, "c", "t", nil)
		r.Record("busy", In, "c", "t", nil) // keeps it the most recently used of its shard
	}
	if r.Recent("busy") == nil {
		t.Error("a thing active all along was evicted")
	}
}

func TestEntriesAreStamped(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r := New(Options{Now: func() time.Time { return at }})
	r.Record("t", In, "c", "$aws/things/t/jobs/get", []byte("{}"))
	if got := r.Recent("t")[0].Time; !got.Equal(at) {
		t.Errorf("time %v, want %v", got, at)
	}
}

func TestConcurrentRecordAndRead(t *testing.T) {
	r := New(Options{Things: 32, PerThing: 4})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				thing := fmt.Sprintf("t-%d", (g*7+i)%50)
				r.Record(thing, Out, "c", "$aws/things/"+thing+"/jobs/notify", []byte(strings.Repeat("x", i%300)))
				_ = r.Recent(thing)
			}
		}()
	}
	wg.Wait()
}

func TestJobsThing(t *testing.T) {
	for topic, want := range map[string]string{
		"$aws/things/pump-1/jobs/get":                           "pump-1",
		"$aws/things/pump-1/jobs":                               "pump-1",
		"$aws/things/pump-1/jobs/j1/update/accepted":            "pump-1",
		"$aws/things/pump-1/shadow/update":                      "",
		"$aws/things/pump-1/jobsx":                              "",
		"$aws/things//jobs/get":                                 "",
		"things/pump-1/jobs/get":                                "",
		"$aws/events/job/j1/completed":                          "",
		"$aws/things/" + strings.Repeat("a", 129) + "/jobs/get": "",
	} {
		got, ok := JobsThing(topic)
		if got != want || ok != (want != "") {
			t.Errorf("JobsThing(%q) = %q, %v; want %q", topic, got, ok, want)
		}
	}
}

// BenchmarkRecord is the cost the recorder adds to each jobs message on
// the publishing client's goroutine.
func BenchmarkRecord(b *testing.B) {
	r := New(Options{})
	payload := []byte(`{"status":"IN_PROGRESS","statusDetails":{"progress":"50"},"expectedVersion":2,"clientToken":"abc"}`)
	things := make([]string, 500) // fewer than Options.Things: the steady state, no eviction
	topics := make([]string, len(things))
	for i := range things {
		things[i] = fmt.Sprintf("thing-%06d", i)
		topics[i] = "$aws/things/" + things[i] + "/jobs/job-1/update"
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			thing, _ := JobsThing(topics[i%len(topics)])
			r.Record(thing, In, things[i%len(things)], topics[i%len(topics)], payload)
			i++
		}
	})
}

// BenchmarkRecordChurn records for more things than are kept, so that
// rings are evicted and reused all along (a large fleet).
func BenchmarkRecordChurn(b *testing.B) {
	r := New(Options{})
	payload := []byte(`{"clientToken":"abc"}`)
	topics := make([]string, 100_000)
	for i := range topics {
		topics[i] = fmt.Sprintf("$aws/things/thing-%06d/jobs/start-next", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			topic := topics[i%len(topics)]
			thing, _ := JobsThing(topic)
			r.Record(thing, In, "c", topic, payload)
			i += 7
		}
	})
}

func TestTranscriptKeepsOrderAndItsLimit(t *testing.T) {
	tr, err := NewTranscripts(TranscriptOptions{Lines: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		tr.Record("t", In, "c", "$aws/things/t/jobs/get", []byte(fmt.Sprint(i)))
	}
	tr.RecordFault("t", "c", "$aws/things/t/jobs/get/accepted", map[string]string{"kind": "drop"}, []byte("x"))
	got := tr.Lines("t", 0)
	if len(got) != 3 || got[0].Seq != 4 || got[2].Seq != 6 || got[2].Direction != FaultDirection || string(got[2].Fault) != `{"kind":"drop"}` {
		t.Fatalf("lines = %+v, want seq 4 to 6 ending with the fault", got)
	}
	if after := tr.Lines("t", 5); len(after) != 1 || after[0].Seq != 6 {
		t.Errorf("lines after 5 = %+v", after)
	}
	if tr.Lines("other", 0) != nil || (*Transcripts)(nil).Lines("t", 0) != nil {
		t.Error("lines of a thing with none")
	}
}

func TestTranscriptFileNamesAreSafe(t *testing.T) {
	dir := t.TempDir()
	tr, err := NewTranscripts(TranscriptOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tr.Record("..", In, "c", "x", nil)
	tr.Record("pump:1", In, "c", "x", nil)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "pump:1.jsonl" {
		t.Errorf("files %v, want only pump:1.jsonl", entries)
	}
	if len(tr.Lines("..", 0)) != 1 {
		t.Error("an unsafe name's lines are not kept in memory")
	}
}
