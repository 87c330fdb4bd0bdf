package faults_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/jobshook"
	"github.com/jobsbroker/jobsbroker/jobshook/faults"
	"github.com/jobsbroker/jobsbroker/topics"
)

// TestRejectionCodesAreJobshooks: the codes a fault may answer are the
// ones the hook answers.
func TestRejectionCodesAreJobshooks(t *testing.T) {
	if !slices.Equal(faults.RejectionCodes, jobshook.RejectionCodes) {
		t.Errorf("faults.RejectionCodes = %v, jobshook.RejectionCodes = %v", faults.RejectionCodes, jobshook.RejectionCodes)
	}
}

func TestParseNamesTheLine(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"faults:\n  - kind: drop\n    topic: notify\n    delay: 2s\n", "line 4: faults[0]: delay: only a delay fault takes a delay"},
		{"faults:\n  - kind: reject\n    code: Nope\n", `line 3: faults[0]: code: "Nope" must be one of`},
		{"faults:\n  - kind: delay\n    delay: soon\n", `line 3: faults[0]: delay: "soon"`},
		{"faults:\n  - kind: drop\n    opertion: update\n", `line 3: faults[0]: opertion: unknown key`},
		{"seed: -1\n", "line 1: seed"},
		{"fault: []\n", `line 1: unknown key "fault"`},
		{"faults:\n  - {kind: drop, operation: update, topic: notify}\n", "line 2: faults[0]: topic: a fault acts on replies to an operation or on notifications"},
		{"faults:\n  - {kind: reject, code: InternalError, probability: 2}\n", "line 2: faults[0]: probability: 2 must be between 0 and 1"},
	} {
		_, err := faults.Parse([]byte(c.text), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), "fault file f.yaml: "+c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
	p, err := faults.Parse([]byte(`{"seed": 5, "faults": [{"kind": "delay", "operation": "UpdateJobExecution", "delay": "150ms"}]}`), "f.json")
	if err != nil || p.Seed != 5 || p.Faults[0].Operation != "update" || time.Duration(p.Faults[0].Delay) != 150*time.Millisecond {
		t.Fatalf("JSON file: %+v, %v", p, err)
	}
}

// TestSkipCountAndScope: a fault skips, fires its count, then is spent and
// disarms the set; other things and operations are not touched.
func TestSkipCountAndScope(t *testing.T) {
	s := faults.New()
	if s.Armed() {
		t.Fatal("an empty set is armed")
	}
	if err := s.Add(faults.Fault{Kind: faults.Disconnect, Thing: "t1", Operation: "update", Skip: 1, Count: 2}); err != nil {
		t.Fatal(err)
	}
	var fired []bool
	for range 5 {
		if s.Request("t2", "c", topics.OpUpdate) != nil || s.Request("t1", "c", topics.OpStartNext) != nil {
			t.Fatal("a fault fired out of scope")
		}
		fired = append(fired, s.Request("t1", "c", topics.OpUpdate) != nil)
	}
	if !slices.Equal(fired, []bool{false, true, true, false, false}) {
		t.Errorf("fired %v, want skip 1 then 2", fired)
	}
	if s.Armed() {
		t.Error("a spent set is still armed")
	}
}

// TestSeedDrivesDraws: the same seed draws the same, another seed not.
func TestSeedDrivesDraws(t *testing.T) {
	draws := func(seed uint64) []bool {
		s := faults.New()
		s.Replace(faults.Plan{Seed: seed, Faults: []faults.Fault{{Kind: faults.Drop, Topic: "notify", Probability: 0.5}}})
		var out []bool
		for range 64 {
			out = append(out, s.Notification("t", topics.KindNotify) != nil)
		}
		return out
	}
	if !slices.Equal(draws(1), draws(1)) {
		t.Error("seed 1 drew differently twice")
	}
	if slices.Equal(draws(1), draws(2)) {
		t.Error("seeds 1 and 2 drew the same")
	}
}

// BenchmarkUnarmed is what jobshook pays per request with no fault armed.
func BenchmarkUnarmed(b *testing.B) {
	s := faults.New()
	for b.Loop() {
		if s.Armed() {
			s.Request("t", "c", topics.OpUpdate)
		}
	}
}
