package topics

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every topic it accepts
// round-trips through the builders, and that it only ever returns its own
// errors.
func FuzzParse(f *testing.F) {
	for _, op := range []Operation{OpGetPending, OpStartNext, OpDescribe, OpUpdate} {
		for _, job := range []string{"job-1", Next, "get", "start-next"} {
			req := Request("thing-1", op, job)
			f.Add(req)
			f.Add(Accepted(req))
			f.Add(Rejected(req))
		}
	}
	f.Add(Notify("thing-1"))
	f.Add(NotifyNext("thing-1"))
	f.Add("$aws/things/a:b/jobs/get")
	f.Add("$aws/things/t/jobs/$next/update")
	f.Add("$aws/things/t/jobs")
	f.Add("aws/things/t/jobs/get")
	f.Fuzz(func(t *testing.T, topic string) {
		got, err := Parse(topic)
		if err != nil {
			if !errors.Is(err, ErrNotJobs) && !errors.Is(err, ErrInvalidTopic) {
				t.Fatalf("Parse(%q) returned a foreign error %v", topic, err)
			}
			return
		}
		if !ValidThingName(got.Thing) {
			t.Fatalf("Parse(%q) accepted thing %q", topic, got.Thing)
		}
		var rebuilt string
		switch got.Kind {
		case KindNotify:
			rebuilt = Notify(got.Thing)
		case KindNotifyNext:
			rebuilt = NotifyNext(got.Thing)
		case KindRequest:
			rebuilt = Request(got.Thing, got.Op, got.JobID)
		case KindAccepted:
			rebuilt = Accepted(Request(got.Thing, got.Op, got.JobID))
		case KindRejected:
			rebuilt = Rejected(Request(got.Thing, got.Op, got.JobID))
		default:
			t.Fatalf("Parse(%q) returned kind %v without error", topic, got.Kind)
		}
		if rebuilt != topic {
			t.Fatalf("Parse(%q) = %+v rebuilds as %q", topic, got, rebuilt)
		}
		if got.JobID != "" && got.JobID != Next && !ValidJobID(got.JobID) {
			t.Fatalf("Parse(%q) accepted job id %q", topic, got.JobID)
		}
		if got.JobID == Next && got.Op != OpDescribe {
			t.Fatalf("Parse(%q) accepted $next for %v", topic, got.Op)
		}
		if strings.Contains(got.Thing, "/") || strings.Contains(got.JobID, "/") {
			t.Fatalf("Parse(%q) let a separator into an id: %+v", topic, got)
		}
	})
}
