package broker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// dpCall sends one request to the iot-jobs-data API and decodes the reply.
func dpCall(t *testing.T, b *brokertest.Instance, method, path, body string) (int, http.Header, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.JobsURL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %s", method, path, raw)
	}
	if resp.Header.Get("x-amzn-RequestId") == "" {
		t.Fatalf("%s %s: no x-amzn-RequestId", method, path)
	}
	return resp.StatusCode, resp.Header, v
}

// dpError checks an error response: status, the type in both places, a
// message.
func dpError(t *testing.T, b *brokertest.Instance, method, path, body string, status int, typ string) {
	t.Helper()
	code, h, v := dpCall(t, b, method, path, body)
	if code != status || h.Get("x-amzn-ErrorType") != typ || v["__type"] != typ {
		t.Fatalf("%s %s %s: got %d %q %v, want %d %s", method, path, body, code, h.Get("x-amzn-ErrorType"), v, status, typ)
	}
	if msg, _ := v["message"].(string); msg == "" {
		t.Fatalf("%s %s: error without a message: %v", method, path, v)
	}
}

func dpOK(t *testing.T, b *brokertest.Instance, method, path, body string) map[string]any {
	t.Helper()
	code, _, v := dpCall(t, b, method, path, body)
	if code != http.StatusOK {
		t.Fatalf("%s %s %s: %d %v", method, path, body, code, v)
	}
	return v
}

// TestDataPlane covers every operation, query parameter and error of the
// iot-jobs-data model over a real listener.
func TestDataPlane(t *testing.T) {
	b := brokertest.Start(t)
	epoch := float64(brokertest.Epoch.Unix())

	// Nothing pending.
	v := dpOK(t, b, "GET", "/things/pump-1/jobs", "")
	if len(v["inProgressJobs"].([]any)) != 0 || len(v["queuedJobs"].([]any)) != 0 {
		t.Fatalf("empty pending = %v", v)
	}
	if v = dpOK(t, b, "PUT", "/things/pump-1/jobs/$next", ""); len(v) != 0 {
		t.Fatalf("start-next with nothing pending = %v, want {}", v)
	}
	if v = dpOK(t, b, "GET", "/things/pump-1/jobs/%24next", ""); len(v) != 0 {
		t.Fatalf("$next with nothing pending = %v, want {}", v)
	}

	createJob(t, b, "fw-1", "pump-1", "a:b")
	createJob(t, b, "fw-2", "pump-1")
	b.Clock.Advance(30e9)

	v = dpOK(t, b, "GET", "/things/pump-1/jobs", "")
	q := v["queuedJobs"].([]any)
	if len(q) != 2 || q[0].(map[string]any)["jobId"] != "fw-1" || q[0].(map[string]any)["queuedAt"] != epoch {
		t.Fatalf("pending = %v", v)
	}
	if _, ok := v["timestamp"]; ok {
		t.Fatalf("HTTP replies carry no timestamp: %v", v)
	}

	// Describe: default includes the document, as a string.
	e := dpOK(t, b, "GET", "/things/pump-1/jobs/fw-1", "")["execution"].(map[string]any)
	if e["jobDocument"] != `{"operation":"fw-1"}` || e["thingName"] != "pump-1" || e["status"] != "QUEUED" {
		t.Fatalf("describe = %v", e)
	}
	e = dpOK(t, b, "GET", "/things/pump-1/jobs/fw-1?includeJobDocument=false&executionNumber=1", "")["execution"].(map[string]any)
	if _, ok := e["jobDocument"]; ok {
		t.Fatalf("includeJobDocument=false: %v", e)
	}
	// A thing name with a colon arrives percent-encoded.
	if e = dpOK(t, b, "GET", "/things/a%3Ab/jobs/fw-1", "")["execution"].(map[string]any); e["thingName"] != "a:b" {
		t.Fatalf("a:b = %v", e)
	}
	// The namespaceId parameter some API pages show is accepted and ignored.
	dpOK(t, b, "GET", "/things/pump-1/jobs/fw-1?namespaceId=x", "")

	// StartNext with details and a step timer; jobDocument is a string.
	e = dpOK(t, b, "PUT", "/things/pump-1/jobs/$next", `{"statusDetails":{"step":"download"},"stepTimeoutInMinutes":30}`)["execution"].(map[string]any)
	if e["jobId"] != "fw-1" || e["status"] != "IN_PROGRESS" || e["versionNumber"] != float64(2) ||
		e["approximateSecondsBeforeTimedOut"] != float64(1800) || e["startedAt"] != epoch+30 ||
		e["jobDocument"] != `{"operation":"fw-1"}` || e["statusDetails"].(map[string]any)["step"] != "download" {
		t.Fatalf("start-next = %v", e)
	}
	if e = dpOK(t, b, "GET", "/things/pump-1/jobs/$next", "")["execution"].(map[string]any); e["jobId"] != "fw-1" {
		t.Fatalf("$next = %v", e)
	}

	// Update: bare, then with both includes.
	if v = dpOK(t, b, "POST", "/things/pump-1/jobs/fw-1", `{"status":"IN_PROGRESS","statusDetails":{"progress":"50"},"expectedVersion":2}`); len(v) != 0 {
		t.Fatalf("bare update = %v, want {}", v)
	}
	v = dpOK(t, b, "POST", "/things/pump-1/jobs/fw-1", `{"status":"SUCCEEDED","executionNumber":1,"includeJobExecutionState":true,"includeJobDocument":true,"stepTimeoutInMinutes":-1}`)
	st := v["executionState"].(map[string]any)
	if st["status"] != "SUCCEEDED" || st["versionNumber"] != float64(4) || st["statusDetails"].(map[string]any)["progress"] != "50" || v["jobDocument"] != `{"operation":"fw-1"}` {
		t.Fatalf("update = %v", v)
	}

	// Errors of the model.
	dpError(t, b, "GET", "/things/bad!name/jobs", "", 400, "InvalidRequestException")
	dpError(t, b, "GET", "/things/pump-1/jobs/nope", "", 404, "ResourceNotFoundException")
	dpError(t, b, "GET", "/things/pump-1/jobs/fw-1?executionNumber=7", "", 404, "ResourceNotFoundException")
	dpError(t, b, "GET", "/things/pump-1/jobs/fw-1?executionNumber=first", "", 400, "InvalidRequestException")
	dpError(t, b, "GET", "/things/pump-1/jobs/fw-1?includeJobDocument=maybe", "", 400, "InvalidRequestException")
	dpError(t, b, "GET", "/things/pump-1/jobs/bad.id", "", 400, "InvalidRequestException")
	dpError(t, b, "PUT", "/things/pump-1/jobs/$next", `{"stepTimeoutInMinutes":0}`, 400, "InvalidRequestException")
	dpError(t, b, "PUT", "/things/pump-1/jobs/$next", `{"statusDetails":{"a":1}}`, 400, "InvalidRequestException")
	dpError(t, b, "PUT", "/things/pump-1/jobs/$next", `{"statusDetails":`, 400, "InvalidRequestException")
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-2", `{}`, 400, "InvalidRequestException")
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-2", `{"status":"DONE"}`, 400, "InvalidRequestException")
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-2", `{"status":"QUEUED"}`, 400, "InvalidRequestException")
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-2", `{"status":"IN_PROGRESS","expectedVersion":"1"}`, 400, "InvalidRequestException")
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-2", `{"status":"IN_PROGRESS","statusDetails":{"k":"`+strings.Repeat("v", 1025)+`"}}`, 400, "InvalidRequestException")
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-2", `not json`, 400, "InvalidRequestException")
	dpError(t, b, "POST", "/things/pump-1/jobs/nope", `{"status":"SUCCEEDED"}`, 404, "ResourceNotFoundException")
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-2", `{"status":"SUCCEEDED","expectedVersion":5}`, 409, "InvalidStateTransitionException")
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-1", `{"status":"SUCCEEDED"}`, 409, "InvalidStateTransitionException")
	dpError(t, b, "POST", "/things/pump-1/jobs/$next", `{"status":"SUCCEEDED"}`, 400, "InvalidRequestException")
	dpError(t, b, "PUT", "/things/pump-1/jobs/fw-2", `{}`, 404, "UnknownOperationException")
	dpError(t, b, "DELETE", "/things/pump-1/jobs/fw-2", ``, 404, "UnknownOperationException")

	// A store that cannot serve answers ServiceUnavailableException.
	if err := b.Store.Close(); err != nil {
		t.Fatal(err)
	}
	dpError(t, b, "POST", "/things/pump-1/jobs/fw-2", `{"status":"SUCCEEDED"}`, 503, "ServiceUnavailableException")
	dpError(t, b, "GET", "/things/pump-1/jobs", ``, 503, "ServiceUnavailableException")
}

// TestMixedTransports is a device that starts its job over HTTP and hears
// about the next one over MQTT: one store, one semantics.
func TestMixedTransports(t *testing.T) {
	b := brokertest.Start(t)
	d := brokertest.Connect(t, b.MQTTAddr(), "dev", 5)
	d.Subscribe("$aws/things/dev/jobs/notify-next", 1)
	d.Subscribe("$aws/things/dev/jobs/notify", 1)
	createJob(t, b, "first", "dev")
	createJob(t, b, "second", "dev")
	if n := d.Expect("$aws/things/dev/jobs/notify-next").JSON(t); n["execution"].(map[string]any)["jobId"] != "first" {
		t.Fatalf("notify-next = %v", n)
	}
	e := dpOK(t, b, "PUT", "/things/dev/jobs/$next", `{}`)["execution"].(map[string]any)
	if e["jobId"] != "first" {
		t.Fatalf("HTTP start-next = %v", e)
	}
	// MQTT sees what HTTP did.
	got := d.MustAccept("$aws/things/dev/jobs/first/get", map[string]any{})
	if got["execution"].(map[string]any)["status"] != "IN_PROGRESS" {
		t.Fatalf("MQTT describe = %v", got)
	}
	dpOK(t, b, "POST", "/things/dev/jobs/first", `{"status":"SUCCEEDED"}`)
	next := d.Expect("$aws/things/dev/jobs/notify-next").JSON(t)
	if next["execution"].(map[string]any)["jobId"] != "second" {
		t.Fatalf("notify-next after the HTTP update = %v", next)
	}
	// The first notify was for the create of "first"; then "second"; then
	// the HTTP update.
	d.Expect("$aws/things/dev/jobs/notify")
	d.Expect("$aws/things/dev/jobs/notify")
	if n := d.Expect("$aws/things/dev/jobs/notify").JSON(t); len(n["jobs"].(map[string]any)["QUEUED"].([]any)) != 1 {
		t.Fatalf("notify after the HTTP update = %v", n)
	}
	// And the other way round: MQTT start-next, HTTP describe.
	d.MustAccept("$aws/things/dev/jobs/start-next", map[string]any{})
	if e := dpOK(t, b, "GET", "/things/dev/jobs/second", "")["execution"].(map[string]any); e["status"] != "IN_PROGRESS" {
		t.Fatalf("HTTP describe after MQTT start-next = %v", e)
	}
}
