package broker_test

import (
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestPayloadConventions checks the payload rules of PROTOCOL.md §3 and
// §15 on the wire, with requests shaped like real clients send them.
func TestPayloadConventions(t *testing.T) {
	b := brokertest.Start(t)
	d := brokertest.Connect(t, b.MQTTAddr(), "dev", 4)
	base := "$aws/things/dev/jobs/"

	// Nothing pending: both lists present and empty; no execution key.
	got := d.MustAccept(base+"get", `{"clientToken":"c1"}`)
	if l, ok := got["inProgressJobs"].([]any); !ok || len(l) != 0 {
		t.Fatalf("inProgressJobs = %v", got)
	}
	if l, ok := got["queuedJobs"].([]any); !ok || len(l) != 0 {
		t.Fatalf("queuedJobs = %v", got)
	}
	for _, topic := range []string{"start-next", "$next/get"} {
		got = d.MustAccept(base+topic, `{"clientToken":"c2"}`)
		if _, ok := got["execution"]; ok || got["clientToken"] != "c2" || len(got) != 2 {
			t.Fatalf("%s with nothing pending = %v, want only timestamp and clientToken", topic, got)
		}
	}
	// An empty payload is read as {} and no clientToken comes back.
	if got = d.MustAccept(base+"get", ``); got["clientToken"] != nil {
		t.Fatalf("empty payload: %v", got)
	}

	createJob(t, b, "j1", "dev")
	b.Clock.Advance(90e9)
	got = d.MustAccept(base+"get", `{}`)
	q := got["queuedJobs"].([]any)[0].(map[string]any)
	if q["jobId"] != "j1" || q["queuedAt"] != float64(brokertest.Epoch.Unix()) || q["versionNumber"] != float64(1) || q["executionNumber"] != float64(1) {
		t.Fatalf("summary = %v", q)
	}
	if _, ok := q["status"]; ok {
		t.Fatalf("summaries carry no status: %v", q)
	}
	if got["timestamp"] != float64(brokertest.Epoch.Unix()+90) {
		t.Fatalf("timestamp = %v", got["timestamp"])
	}

	// Describe includes the document by default, as an object.
	got = d.MustAccept(base+"j1/get", `{"clientToken":"d"}`)
	e := got["execution"].(map[string]any)
	if doc, ok := e["jobDocument"].(map[string]any); !ok || doc["operation"] != "j1" {
		t.Fatalf("describe jobDocument = %v", e["jobDocument"])
	}
	if e["thingName"] != "dev" {
		t.Fatalf("describe thingName = %v", e["thingName"])
	}
	for _, k := range []string{"startedAt", "statusDetails", "approximateSecondsBeforeTimedOut"} {
		if _, ok := e[k]; ok {
			t.Fatalf("a QUEUED execution without a timer has no %s: %v", k, e)
		}
	}
	got = d.MustAccept(base+"j1/get", `{"includeJobDocument":false}`)
	if _, ok := got["execution"].(map[string]any)["jobDocument"]; ok {
		t.Fatalf("includeJobDocument false still sent the document: %v", got)
	}

	// The legacy v2 SDK adds thingName and jobId to the body; the FreeRTOS
	// library sends expectedVersion as a string.
	got = d.MustAccept(base+"j1/update", `{"thingName":"dev","jobId":"j1","status":"IN_PROGRESS","expectedVersion":"1","stepTimeoutInMinutes":"5","includeJobExecutionState":true,"includeJobDocument":true}`)
	st := got["executionState"].(map[string]any)
	if st["versionNumber"] != float64(2) || st["status"] != "IN_PROGRESS" {
		t.Fatalf("executionState = %v", st)
	}
	if doc, ok := got["jobDocument"].(map[string]any); !ok || doc["operation"] != "j1" {
		t.Fatalf("update jobDocument = %v", got["jobDocument"])
	}
	got = d.MustAccept(base+"j1/get", `{"executionNumber":"1"}`)
	e = got["execution"].(map[string]any)
	if e["approximateSecondsBeforeTimedOut"] != float64(300) || e["startedAt"] != float64(brokertest.Epoch.Unix()+90) {
		t.Fatalf("started execution = %v", e)
	}
	// Minimal update reply: only timestamp (and the token when sent).
	got = d.MustAccept(base+"j1/update", `{"status":"IN_PROGRESS","statusDetails":{"stdout":"hello from device client"}}`)
	if len(got) != 1 {
		t.Fatalf("minimal update reply = %v", got)
	}
	got = d.MustAccept(base+"j1/get", `{}`)
	if sd := got["execution"].(map[string]any)["statusDetails"].(map[string]any); sd["stdout"] != "hello from device client" {
		t.Fatalf("statusDetails = %v", sd)
	}
	// AWS IoT Device Client reports command output with its line break,
	// which AWS accepts whatever the model's value pattern says.
	d.MustAccept(base+"j1/update", `{"status":"IN_PROGRESS","statusDetails":{"stdout":"hello from device client\n"}}`)
	got = d.MustAccept(base+"j1/get", `{}`)
	if sd := got["execution"].(map[string]any)["statusDetails"].(map[string]any); sd["stdout"] != "hello from device client\n" {
		t.Fatalf("statusDetails with a line break = %q", sd)
	}
}
