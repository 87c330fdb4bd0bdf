package broker_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store"
)

// TestRejectionMatrix sends every kind of bad request and checks the exact
// code, the echoed clientToken and that nothing changed.
func TestRejectionMatrix(t *testing.T) {
	for _, version := range []int{4, 5} {
		t.Run("mqtt"+jsonNumber(version), func(t *testing.T) {
			testRejectionMatrix(t, version)
		})
	}
}

func testRejectionMatrix(t *testing.T, version int) {
	b := brokertest.Start(t)
	ctx := context.Background()
	createJob(t, b, "j1", "dev")
	createJob(t, b, "done", "dev")
	d := brokertest.Connect(t, b.MQTTAddr(), "dev", version)
	base := "$aws/things/dev/jobs/"
	d.MustAccept(base+"done/update", map[string]any{"status": "SUCCEEDED"})
	d.MustAccept(base+"j1/update", map[string]any{"status": "IN_PROGRESS", "statusDetails": map[string]string{"keep": "me"}})
	before, err := b.Store.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "dev", JobID: "j1"})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 1025)
	cases := []struct {
		name    string
		topic   string
		payload string
		code    string
		token   bool // whether the clientToken "tok" must be echoed
		state   bool // whether executionState must be attached
	}{
		{"not JSON", "j1/update", `{"status":`, "InvalidJson", false, false},
		{"embedded-C stray brace", "j1/update", `}`, "InvalidJson", false, false},
		{"not UTF-8", "j1/update", "{\"status\":\"\xff\"}", "InvalidJson", false, false},
		{"JSON array", "j1/update", `[1,2]`, "InvalidRequest", false, false},
		{"missing status", "j1/update", `{"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"status SUCCESS", "j1/update", `{"status":"SUCCESS","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"status QUEUED", "j1/update", `{"status":"QUEUED","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"status CANCELED", "j1/update", `{"status":"CANCELED","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"status TIMED_OUT", "j1/update", `{"status":"TIMED_OUT","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"status REMOVED", "j1/update", `{"status":"REMOVED","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"status number", "j1/update", `{"status":3,"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"details not strings", "j1/update", `{"status":"IN_PROGRESS","statusDetails":{"a":1},"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"details a string", "j1/update", `{"status":"IN_PROGRESS","statusDetails":"{\"a\":\"b\"}","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"details value too long", "j1/update", `{"status":"IN_PROGRESS","statusDetails":{"a":"` + long + `"},"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"details empty value", "j1/update", `{"status":"IN_PROGRESS","statusDetails":{"a":""},"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"details bad key", "j1/update", `{"status":"IN_PROGRESS","statusDetails":{"a b":"c"},"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"step timeout 0", "j1/update", `{"status":"IN_PROGRESS","stepTimeoutInMinutes":0,"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"step timeout too long", "j1/update", `{"status":"IN_PROGRESS","stepTimeoutInMinutes":10081,"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"step timeout text", "j1/update", `{"status":"IN_PROGRESS","stepTimeoutInMinutes":"soon","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"expectedVersion text", "j1/update", `{"status":"IN_PROGRESS","expectedVersion":"two","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"expectedVersion fraction", "j1/update", `{"status":"IN_PROGRESS","expectedVersion":2.5,"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"include flag not bool", "j1/update", `{"status":"IN_PROGRESS","includeJobDocument":"yes","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"clientToken too long", "j1/update", `{"status":"IN_PROGRESS","clientToken":"` + strings.Repeat("t", 65) + `"}`, "InvalidRequest", false, false},
		{"clientToken not a string", "j1/update", `{"status":"IN_PROGRESS","clientToken":7}`, "InvalidRequest", false, false},
		{"stale expectedVersion", "j1/update", `{"status":"SUCCEEDED","expectedVersion":1,"clientToken":"tok"}`, "VersionMismatch", true, true},
		{"stale expectedVersion as string", "j1/update", `{"status":"SUCCEEDED","expectedVersion":"1","clientToken":"tok"}`, "VersionMismatch", true, true},
		{"update after terminal", "done/update", `{"status":"IN_PROGRESS","clientToken":"tok"}`, "InvalidStateTransition", true, true},
		{"duplicate final update", "done/update", `{"status":"SUCCEEDED","clientToken":"tok"}`, "InvalidStateTransition", true, true},
		{"unknown job", "nope/update", `{"status":"SUCCEEDED","clientToken":"tok"}`, "ResourceNotFound", true, false},
		{"unknown execution number", "j1/update", `{"status":"SUCCEEDED","executionNumber":9,"clientToken":"tok"}`, "ResourceNotFound", true, false},
		{"unknown job describe", "nope/get", `{"clientToken":"tok"}`, "ResourceNotFound", true, false},
		{"describe number text", "j1/get", `{"executionNumber":"first","clientToken":"tok"}`, "InvalidRequest", true, false},
		{"start-next bad step", "start-next", `{"stepTimeoutInMinutes":-2,"clientToken":"tok"}`, "InvalidRequest", true, false},
		{"bad job id in topic", "bad.id/update", `{"status":"SUCCEEDED","clientToken":"tok"}`, "InvalidTopic", true, false},
		{"$next cannot be updated", "$next/update", `{"status":"SUCCEEDED","clientToken":"tok"}`, "InvalidTopic", true, false},
		{"no such API", "j1/delete", `{"clientToken":"tok"}`, "InvalidTopic", true, false},
		{"no such API at the top", "list", `{"clientToken":"tok"}`, "InvalidTopic", true, false},
	}
	for _, c := range cases {
		topic := base + c.topic
		reply := d.MustReject(topic, c.payload)
		if reply["code"] != c.code {
			t.Errorf("%s: code %v, want %s (%v)", c.name, reply["code"], c.code, reply)
			continue
		}
		if msg, _ := reply["message"].(string); msg == "" {
			t.Errorf("%s: no message", c.name)
		}
		if _, ok := reply["timestamp"].(float64); !ok {
			t.Errorf("%s: no integer timestamp", c.name)
		}
		token, hasToken := reply["clientToken"]
		if c.token && token != "tok" {
			t.Errorf("%s: clientToken %v not echoed", c.name, token)
		}
		if !c.token && hasToken && c.code == "InvalidJson" {
			t.Errorf("%s: clientToken %v cannot be known", c.name, token)
		}
		state, hasState := reply["executionState"].(map[string]any)
		if c.state != hasState {
			t.Errorf("%s: executionState %v, want present=%v", c.name, reply["executionState"], c.state)
		}
		if c.code == "VersionMismatch" && (state["versionNumber"] != float64(before.Execution.VersionNumber) || state["status"] != "IN_PROGRESS") {
			t.Errorf("%s: executionState %v is not the current state", c.name, state)
		}
		if c.code == "InvalidStateTransition" && state["status"] != "SUCCEEDED" {
			t.Errorf("%s: executionState %v", c.name, state)
		}
	}

	// A bad thing name is answered on the topic as published.
	bad := "$aws/things/bad!thing/jobs/get"
	if reply := d.MustReject(bad, `{"clientToken":"tok"}`); reply["code"] != "InvalidTopic" || reply["clientToken"] != "tok" {
		t.Errorf("bad thing name: %v", reply)
	}

	after, err := b.Store.DescribeJobExecution(ctx, &store.DescribeExecutionInput{ThingName: "dev", JobID: "j1"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after.Execution, before.Execution) {
		t.Fatalf("rejected requests changed the execution:\nbefore %+v\nafter  %+v", before.Execution, after.Execution)
	}
	job, err := b.Store.DescribeJob(ctx, "j1")
	if err != nil || job.ProcessDetails.InProgress != 1 || job.Status != store.JobInProgress {
		t.Fatalf("job after rejections = %+v, %v", job, err)
	}
}
