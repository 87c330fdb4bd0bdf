package dataplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/broker/awsapi/awsapitest"
	"github.com/jobsbroker/jobsbroker/broker/dataplane"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// FuzzDataPlane sends arbitrary requests (method, path, query string and
// body) to the iot-jobs-data handler, built once per fuzz worker the way
// broker.New builds it (dataplane.New behind awsapi.WithRequestID) on a
// real Badger store in a temporary directory. For every request it checks
// (PROTOCOL.md §10):
//
//   - the handler does not panic;
//   - the status is one the iot-jobs-data model declares for the
//     operation the method and path select (UnknownOperationException 404
//     for every other route), and 5xx never happens on a healthy store;
//   - every error carries x-amzn-ErrorType equal to the body's __type, a
//     non-empty message, and an x-amzn-RequestId; the type is the one the
//     model pairs with the status;
//   - a 200 body is a JSON object of the operation's shape, with integer
//     epoch-second timestamps, jobDocument as a string, no clientToken or
//     timestamp, and agrees with the store (the execution described, the
//     pending lists, the state after an update);
//   - a rejected request changed nothing: the fixture things' executions
//     (versions, statuses, details, timers) and pending sets are the same
//     before and after; an accepted one changed exactly what it should.
//
// After an input that changed a fixture thing, the thing is taken out of
// its thing group and put back, which gives it fresh QUEUED executions of
// the two continuous jobs, so that every input starts from equivalent
// state.
func FuzzDataPlane(f *testing.F) {
	fx := newDPFixture(f)
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		fx.run(t, method, path, query, body)
	})
}

// The fixture: two registered things in one thing group, two continuous
// jobs on the group (job-1 with an in-progress timeout), and a finished
// execution of a snapshot job on pump-42.
const (
	dpThing     = "pump-42"
	dpColon     = "a:b" // arrives as a%3Ab
	dpGroup     = "fleet"
	dpJob1      = "job-1"
	dpJob2      = "job-2"
	dpJobOld    = "job-old"
	dpStartUnix = 1717000000
)

var (
	dpThings = []string{dpThing, dpColon}
	dpJobs   = []string{dpJob1, dpJob2, dpJobOld}
	dpDocs   = map[string]string{
		dpJob1:   `{"operation":"install","url":"https://example.invalid/fw.bin"}`,
		dpJob2:   `{"operation":"reboot","delaySeconds":5}`,
		dpJobOld: `{"operation":"old"}`,
	}
)

type dpFixture struct {
	store   *badger.Store
	clock   *clock.Fake
	handler http.Handler
}

func newDPFixture(tb testing.TB) *dpFixture {
	clk := clock.NewFake(time.Unix(dpStartUnix, 0))
	quiet := slog.New(slog.DiscardHandler)
	// NoSync: a crash of the fuzz worker loses nothing worth keeping, and
	// fsync per commit would dominate the time per input.
	st, err := badger.Open(badger.Options{Dir: tb.TempDir(), NoSync: true, Clock: clk, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.CreateThingGroup(ctx, &store.CreateThingGroupInput{Name: dpGroup}); err != nil {
		tb.Fatal(err)
	}
	for _, th := range dpThings {
		if _, err := st.CreateThing(ctx, &store.CreateThingInput{ThingName: th}); err != nil {
			tb.Fatal(err)
		}
		if err := st.AddThingToThingGroup(ctx, &store.MembershipInput{ThingGroupName: dpGroup, ThingName: th}); err != nil {
			tb.Fatal(err)
		}
	}
	sixty := int64(60)
	for _, j := range []store.Job{
		{JobID: dpJob1, TargetSelection: store.Continuous, Targets: []string{"arn:aws:iot:us-east-1:123456789012:thinggroup/" + dpGroup},
			TimeoutConfig: &store.TimeoutConfig{InProgressTimeoutInMinutes: &sixty}},
		{JobID: dpJob2, TargetSelection: store.Continuous, Targets: []string{"arn:aws:iot:us-east-1:123456789012:thinggroup/" + dpGroup}},
		{JobID: dpJobOld, Targets: []string{"arn:aws:iot:us-east-1:123456789012:thing/" + dpThing}},
	} {
		if _, err := st.CreateJob(ctx, &store.CreateJobInput{Job: j, Document: dpDocs[j.JobID]}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := st.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: dpThing, JobID: dpJobOld,
		Status: store.StatusSucceeded, StatusDetails: map[string]string{"result": "ok"}}); err != nil {
		tb.Fatal(err)
	}
	api := dataplane.New(dataplane.Options{Store: st, Clock: clk, Logger: quiet})
	return &dpFixture{store: st, clock: clk, handler: awsapi.WithRequestID(quiet, "data", api)}
}

// dpOp is an operation of the iot-jobs-data model, or "" for a route it
// does not have.
type dpOp string

const (
	opGetPending dpOp = "GetPendingJobExecutions"
	opStartNext  dpOp = "StartNextPendingJobExecution"
	opDescribe   dpOp = "DescribeJobExecution"
	opUpdate     dpOp = "UpdateJobExecution"
	opUnknown    dpOp = ""
	// opStartCommand is StartCommandExecution (COMMANDS.md §2.6).
	opStartCommand dpOp = "StartCommandExecution"
)

// dpStatuses lists the statuses each operation may answer with, from the
// model's error list (PROTOCOL.md §10.3). 503 (ServiceUnavailable) is
// declared everywhere but only happens when the store fails, which it
// does not here, so it is not accepted.
var dpStatuses = map[dpOp][]int{
	opGetPending: {200, 400, 404, 429},
	opStartNext:  {200, 400, 404, 429},
	opDescribe:   {200, 400, 404, 410, 429},
	opUpdate:     {200, 400, 404, 409, 429},
	opUnknown:    {404},
	// No command exists in the fixture: a start is always refused.
	opStartCommand: {400, 404, 409, 413, 429},
}

// dpCommandErrorTypes pairs each error status of StartCommandExecution
// with its exception (the command exceptions, COMMANDS.md §2.0).
var dpCommandErrorTypes = map[int][]string{
	400: {"ValidationException"},
	404: {"ResourceNotFoundException"},
	409: {"ConflictException"},
	413: {"InvalidRequestException", "ValidationException"},
	429: {"ThrottlingException"},
}

// dpErrorTypes pairs each error status with the exception the model gives
// it.
var dpErrorTypes = map[int][]string{
	400: {"InvalidRequestException", "CertificateValidationException"},
	404: {"ResourceNotFoundException"},
	409: {"InvalidStateTransitionException"},
	410: {"TerminalStateException"},
	413: {"InvalidRequestException"},
	429: {"ThrottlingException"},
}

// route is what a request addresses, read independently of the handler:
// the path split on "/" before percent-decoding (so %2F stays inside a
// label), each label decoded, then matched against the model's
// templates. GET routes also serve HEAD, as http.ServeMux does.
type route struct {
	op    dpOp
	thing string
	job   string
}

func dpRoute(method string, u *url.URL) route {
	segs := strings.Split(u.EscapedPath(), "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return route{}
		}
		segs[i] = d
	}
	get := method == http.MethodGet || method == http.MethodHead
	if method == http.MethodPost && len(segs) == 2 && segs[0] == "" && segs[1] == "command-executions" {
		return route{op: opStartCommand}
	}
	if len(segs) < 4 || segs[0] != "" || segs[1] != "things" || segs[2] == "" || segs[3] != "jobs" {
		return route{}
	}
	switch {
	case len(segs) == 4 && get:
		return route{op: opGetPending, thing: segs[2]}
	case len(segs) != 5 || segs[4] == "":
		return route{}
	case get:
		return route{op: opDescribe, thing: segs[2], job: segs[4]}
	case method == http.MethodPost:
		return route{op: opUpdate, thing: segs[2], job: segs[4]}
	case method == http.MethodPut && segs[4] == "$next":
		return route{op: opStartNext, thing: segs[2], job: segs[4]}
	}
	return route{}
}

func (fx *dpFixture) run(t *testing.T, method, path, query string, body []byte) {
	req, ok := awsapitest.RawRequest("data.jobs.local", method, path, query, body)
	if !ok {
		return
	}
	rt := dpRoute(method, req.URL)
	before := storetest.Snapshot(t, fx.store, dpThings, dpJobs)
	rec := httptest.NewRecorder()
	fx.handler.ServeHTTP(rec, req)
	after := storetest.Snapshot(t, fx.store, dpThings, dpJobs)
	res := rec.Result()
	raw, _ := io.ReadAll(res.Body)
	desc := fmt.Sprintf("%s %s body %q -> %d %s", method, req.RequestURI, truncate(body), res.StatusCode, truncate(raw))

	if res.Header.Get("x-amzn-RequestId") == "" {
		t.Errorf("%s: no x-amzn-RequestId", desc)
	}
	allowed := dpStatuses[rt.op]
	if len(body) > awsapi.MaxBodyBytes && (rt.op == opStartNext || rt.op == opUpdate) {
		allowed = append(slices.Clone(allowed), http.StatusRequestEntityTooLarge)
	}
	if !slices.Contains(allowed, res.StatusCode) {
		t.Fatalf("%s: status %d is not one %q may answer with (%v)", desc, res.StatusCode, orUnknown(rt.op), allowed)
	}
	if res.StatusCode != http.StatusOK {
		checkError(t, desc, rt, res, raw)
		if !before.Equal(after) {
			t.Fatalf("%s: a rejected request changed the store:\nbefore %s\nafter  %s", desc, before, after)
		}
		return
	}
	v := decodeObject(t, desc, raw)
	switch rt.op {
	case opGetPending:
		fx.checkPending(t, desc, rt, v, after)
	case opDescribe:
		fx.checkDescribe(t, desc, rt, req, v, after)
	case opStartNext:
		fx.checkStartNext(t, desc, rt, body, v, before, after)
	case opUpdate:
		fx.checkUpdate(t, desc, rt, body, v, before, after)
	}
	if (rt.op == opGetPending || rt.op == opDescribe) && !before.Equal(after) {
		t.Fatalf("%s: a read changed the store:\nbefore %s\nafter  %s", desc, before, after)
	}
	storetest.Requeue(t, fx.store, dpGroup, after, []string{dpJob1, dpJob2})
}

func orUnknown(op dpOp) string {
	if op == opUnknown {
		return "an unknown route"
	}
	return string(op)
}

// checkError checks the rest-json error shape (PROTOCOL.md §10.3).
func checkError(t *testing.T, desc string, rt route, res *http.Response, raw []byte) {
	t.Helper()
	typ := awsapitest.ErrorType(t, desc, res, raw)
	want := dpErrorTypes[res.StatusCode]
	if rt.op == opStartCommand {
		want = dpCommandErrorTypes[res.StatusCode]
	}
	if rt.op == opUnknown || (res.StatusCode == 404 && rt.op == opStartNext && rt.job != "$next") {
		want = []string{"UnknownOperationException"}
	}
	if !slices.Contains(want, typ) {
		t.Fatalf("%s: exception %s does not go with status %d (want one of %v)", desc, typ, res.StatusCode, want)
	}
}

// decodeObject decodes a JSON object keeping numbers as json.Number.
func decodeObject(t *testing.T, desc string, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil || v == nil {
		t.Fatalf("%s: 200 body is not a JSON object: %v", desc, err)
	}
	if dec.More() {
		t.Fatalf("%s: 200 body has data after the object", desc)
	}
	for _, k := range []string{"clientToken", "timestamp"} {
		if _, ok := v[k]; ok {
			t.Fatalf("%s: HTTP replies carry no %s", desc, k)
		}
	}
	return v
}

func onlyKeys(t *testing.T, desc, what string, m map[string]any, allowed ...string) {
	t.Helper()
	for k := range m {
		if !slices.Contains(allowed, k) {
			t.Fatalf("%s: unexpected member %q in %s", desc, k, what)
		}
	}
}

var integer = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// intField returns the integer member k of m; required says whether it
// must be there.
func intField(t *testing.T, desc string, m map[string]any, k string, required bool) (int64, bool) {
	t.Helper()
	v, ok := m[k]
	if !ok {
		if required {
			t.Fatalf("%s: %s missing", desc, k)
		}
		return 0, false
	}
	n, isNum := v.(json.Number)
	if !isNum || !integer.MatchString(n.String()) {
		t.Fatalf("%s: %s = %v is not a JSON integer", desc, k, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%s: %s = %v: %v", desc, k, v, err)
	}
	return i, true
}

// epochField checks an integer epoch-second timestamp: seconds, not
// milliseconds, and no later than the (fake) clock.
func (fx *dpFixture) epochField(t *testing.T, desc string, m map[string]any, k string, required bool) {
	t.Helper()
	v, ok := intField(t, desc, m, k, required)
	if ok && (v < dpStartUnix || v > fx.clock.Now().Unix()) {
		t.Fatalf("%s: %s = %d is not an epoch second between the fixture's creation and now", desc, k, v)
	}
}

func stringField(t *testing.T, desc string, m map[string]any, k string) string {
	t.Helper()
	s, ok := m[k].(string)
	if !ok {
		t.Fatalf("%s: %s = %v is not a string", desc, k, m[k])
	}
	return s
}

// checkSummary checks a JobExecutionSummary (PROTOCOL.md §4.3).
func (fx *dpFixture) checkSummary(t *testing.T, desc string, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: summary %v is not an object", desc, v)
	}
	onlyKeys(t, desc, "a JobExecutionSummary", m, "jobId", "queuedAt", "startedAt", "lastUpdatedAt", "versionNumber", "executionNumber")
	stringField(t, desc, m, "jobId")
	fx.epochField(t, desc, m, "queuedAt", true)
	fx.epochField(t, desc, m, "startedAt", false)
	fx.epochField(t, desc, m, "lastUpdatedAt", true)
	intField(t, desc, m, "versionNumber", true)
	intField(t, desc, m, "executionNumber", true)
	return m
}

// checkExecution checks a data-plane JobExecution (PROTOCOL.md §4.1),
// and that it is the store's current state of that execution.
func (fx *dpFixture) checkExecution(t *testing.T, desc string, v any, thing string, withDoc bool) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: execution %v is not an object", desc, v)
	}
	onlyKeys(t, desc, "a JobExecution", m, "jobId", "thingName", "status", "statusDetails", "queuedAt", "startedAt",
		"lastUpdatedAt", "approximateSecondsBeforeTimedOut", "versionNumber", "executionNumber", "jobDocument")
	job := stringField(t, desc, m, "jobId")
	if got := stringField(t, desc, m, "thingName"); got != thing {
		t.Fatalf("%s: thingName %q, want the path's %q", desc, got, thing)
	}
	status := store.ExecutionStatus(stringField(t, desc, m, "status"))
	if !status.Valid() {
		t.Fatalf("%s: status %q is not an execution status", desc, status)
	}
	if d, ok := m["statusDetails"]; ok {
		checkDetails(t, desc, d)
	}
	fx.epochField(t, desc, m, "queuedAt", true)
	fx.epochField(t, desc, m, "startedAt", false)
	fx.epochField(t, desc, m, "lastUpdatedAt", true)
	if s, ok := intField(t, desc, m, "approximateSecondsBeforeTimedOut", false); ok && (s < 0 || status != store.StatusInProgress) {
		t.Fatalf("%s: approximateSecondsBeforeTimedOut %d on a %s execution", desc, s, status)
	}
	version, _ := intField(t, desc, m, "versionNumber", true)
	number, _ := intField(t, desc, m, "executionNumber", true)
	doc, hasDoc := m["jobDocument"]
	switch {
	case hasDoc != withDoc:
		t.Fatalf("%s: jobDocument present %v, want %v", desc, hasDoc, withDoc)
	case hasDoc:
		s, isString := doc.(string)
		if !isString {
			t.Fatalf("%s: jobDocument is %T; over HTTP it is a JSON string", desc, doc)
		}
		if want, ok := dpDocs[job]; ok && s != want {
			t.Fatalf("%s: jobDocument %q, want %q", desc, s, want)
		}
	}
	e, err := fx.store.DescribeJobExecution(context.Background(), &store.DescribeExecutionInput{ThingName: thing, JobID: job, ExecutionNumber: &number})
	if err != nil {
		t.Fatalf("%s: the store does not have the execution returned: %v", desc, err)
	}
	if e.Execution.Status != status || e.Execution.VersionNumber != version {
		t.Fatalf("%s: returned %s v%d, the store has %s v%d", desc, status, version, e.Execution.Status, e.Execution.VersionNumber)
	}
	return m
}

// checkDetails checks a statusDetails map against PROTOCOL.md §8.4.
func checkDetails(t *testing.T, desc string, v any) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: statusDetails %v is not an object", desc, v)
	}
	if len(m) > store.MaxStatusDetails {
		t.Fatalf("%s: statusDetails of %d pairs", desc, len(m))
	}
	for k, val := range m {
		s, ok := val.(string)
		if !ok || !validDetail(k, s) {
			t.Fatalf("%s: statusDetails %q: %v breaks the limits of PROTOCOL.md §8.4", desc, k, val)
		}
	}
}

var detailsKey = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)

// validDetail checks a pair as AWS takes it from real agents: the model's
// key pattern, a value of 1-1,024 characters of any kind (line breaks
// included, whatever the model's [^\p{C}]+ says) but U+0000.
func validDetail(k, v string) bool {
	n := utf8.RuneCountInString(v)
	return detailsKey.MatchString(k) && utf8.ValidString(v) && n >= 1 && n <= 1024 && !strings.ContainsRune(v, 0)
}

func (fx *dpFixture) checkPending(t *testing.T, desc string, rt route, v map[string]any, now storetest.Things) {
	t.Helper()
	onlyKeys(t, desc, "GetPendingJobExecutions", v, "inProgressJobs", "queuedJobs")
	var got []string
	for _, k := range []string{"inProgressJobs", "queuedJobs"} {
		list, ok := v[k].([]any)
		if !ok {
			t.Fatalf("%s: %s = %v is not an array", desc, k, v[k])
		}
		for _, s := range list {
			m := fx.checkSummary(t, desc, s)
			got = append(got, m["jobId"].(string))
		}
	}
	if p, ok := now.Pending[rt.thing]; ok && strings.Join(got, ",") != p.Jobs() {
		t.Fatalf("%s: pending %v, the store has %s", desc, got, p.Jobs())
	}
}

func (fx *dpFixture) checkDescribe(t *testing.T, desc string, rt route, req *http.Request, v map[string]any, now storetest.Things) {
	t.Helper()
	onlyKeys(t, desc, "DescribeJobExecution", v, "execution")
	e, ok := v["execution"]
	if !ok {
		if rt.job != "$next" {
			t.Fatalf("%s: a describe of %s answered without an execution", desc, rt.job)
		}
		if p, ok := now.Pending[rt.thing]; ok && len(p) > 0 {
			t.Fatalf("%s: $next is empty but the store has %s pending", desc, p.Jobs())
		}
		return
	}
	withDoc := true
	if q := req.URL.Query().Get("includeJobDocument"); q != "" {
		withDoc, _ = strconv.ParseBool(q) // anything else was rejected
	}
	m := fx.checkExecution(t, desc, e, rt.thing, withDoc)
	job := m["jobId"].(string)
	switch {
	case rt.job == "$next":
		if p, ok := now.Pending[rt.thing]; ok && (len(p) == 0 || p[0].JobID != job) {
			t.Fatalf("%s: $next is %s, the store's next is %s", desc, job, p.Jobs())
		}
	case job != rt.job:
		t.Fatalf("%s: asked for job %s, got %s", desc, rt.job, job)
	}
}

func (fx *dpFixture) checkStartNext(t *testing.T, desc string, rt route, body []byte, v map[string]any, before, after storetest.Things) {
	t.Helper()
	onlyKeys(t, desc, "StartNextPendingJobExecution", v, "execution")
	p, fixture := before.Pending[rt.thing]
	e, ok := v["execution"]
	if !ok {
		if fixture && len(p) > 0 {
			t.Fatalf("%s: start-next started nothing while %s were pending", desc, p.Jobs())
		}
		return
	}
	m := fx.checkExecution(t, desc, e, rt.thing, true)
	if m["status"] != string(store.StatusInProgress) {
		t.Fatalf("%s: start-next answered a %v execution", desc, m["status"])
	}
	if !fixture {
		return
	}
	job := m["jobId"].(string)
	if len(p) == 0 || p[0].JobID != job {
		t.Fatalf("%s: started %s, the store's next was %s", desc, job, p.Jobs())
	}
	was, now := before.Latest[rt.thing+"/"+job], after.Latest[rt.thing+"/"+job]
	wantDetails := was.StatusDetails
	var details map[string]string
	if memberwise(t, desc, body).get(t, "statusDetails", &details) {
		wantDetails = details
	}
	if len(details) > store.MaxStatusDetails {
		t.Fatalf("%s: statusDetails of %d pairs accepted", desc, len(details))
	}
	for k, val := range details {
		if !validDetail(k, val) {
			t.Fatalf("%s: statusDetails %q: %q accepted beyond the limits of PROTOCOL.md §8.4", desc, k, val)
		}
	}
	switch {
	case was.Status == store.StatusQueued && (now.VersionNumber != was.VersionNumber+1 || now.Status != store.StatusInProgress):
		t.Fatalf("%s: starting a QUEUED execution left %s v%d (was v%d)", desc, now.Status, now.VersionNumber, was.VersionNumber)
	case was.Status == store.StatusQueued && !equalDetails(now.StatusDetails, wantDetails):
		t.Fatalf("%s: start-next stored statusDetails %v, want %v", desc, now.StatusDetails, wantDetails)
	case was.Status == store.StatusInProgress && !sameExecution(was, now):
		t.Fatalf("%s: start-next changed the execution already IN_PROGRESS:\n%+v\n%+v", desc, was, now)
	}
}

func (fx *dpFixture) checkUpdate(t *testing.T, desc string, rt route, body []byte, v map[string]any, before, after storetest.Things) {
	t.Helper()
	onlyKeys(t, desc, "UpdateJobExecution", v, "executionState", "jobDocument")
	req := memberwise(t, desc, body)
	var status string
	var details map[string]string
	var number *int64
	var withState, withDoc bool
	req.get(t, "status", &status)
	req.get(t, "statusDetails", &details)
	req.get(t, "executionNumber", &number)
	req.get(t, "includeJobExecutionState", &withState)
	req.get(t, "includeJobDocument", &withDoc)
	if !store.ExecutionStatus(status).DeviceSettable() {
		t.Fatalf("%s: status %q accepted; a device may set IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", desc, status)
	}
	if len(details) > store.MaxStatusDetails {
		t.Fatalf("%s: statusDetails of %d pairs accepted", desc, len(details))
	}
	for k, val := range details {
		if !validDetail(k, val) {
			t.Fatalf("%s: statusDetails %q: %q accepted beyond the limits of PROTOCOL.md §8.4", desc, k, val)
		}
	}
	state, hasState := v["executionState"]
	if hasState != withState {
		t.Fatalf("%s: executionState present %v, includeJobExecutionState %v", desc, hasState, withState)
	}
	doc, hasDoc := v["jobDocument"]
	if hasDoc != withDoc {
		t.Fatalf("%s: jobDocument present %v, includeJobDocument %v", desc, hasDoc, withDoc)
	}
	if hasDoc {
		s, ok := doc.(string)
		if !ok {
			t.Fatalf("%s: jobDocument is %T; over HTTP it is a JSON string", desc, doc)
		}
		if want, ok := dpDocs[rt.job]; ok && s != want {
			t.Fatalf("%s: jobDocument %q, want %q", desc, s, want)
		}
	}
	var version int64
	if hasState {
		m, ok := state.(map[string]any)
		if !ok {
			t.Fatalf("%s: executionState %v is not an object", desc, state)
		}
		onlyKeys(t, desc, "executionState", m, "status", "statusDetails", "versionNumber")
		if got := stringField(t, desc, m, "status"); got != status {
			t.Fatalf("%s: executionState.status %q, the update set %q", desc, got, status)
		}
		if d, ok := m["statusDetails"]; ok {
			checkDetails(t, desc, d)
		}
		version, _ = intField(t, desc, m, "versionNumber", true)
	}
	key := rt.thing + "/" + rt.job
	was, fixture := before.Latest[key]
	if !fixture || (number != nil && *number != was.ExecutionNumber) {
		return
	}
	now := after.Latest[key]
	if now.VersionNumber != was.VersionNumber+1 || string(now.Status) != status {
		t.Fatalf("%s: the update left %s v%d (was %s v%d)", desc, now.Status, now.VersionNumber, was.Status, was.VersionNumber)
	}
	wantDetails := was.StatusDetails
	if details != nil {
		wantDetails = details
	}
	if !equalDetails(now.StatusDetails, wantDetails) {
		t.Fatalf("%s: statusDetails %v stored, want %v", desc, now.StatusDetails, wantDetails)
	}
	if hasState && version != now.VersionNumber {
		t.Fatalf("%s: executionState.versionNumber %d, the store has %d", desc, version, now.VersionNumber)
	}
}

// members is a request body read the way AWS's JSON protocol reads it:
// member names match exactly (encoding/json's struct decoding would also
// take "Status" or "STATUS" for status), unknown members are ignored, and
// null is the same as absent.
type members map[string]json.RawMessage

func memberwise(t *testing.T, desc string, body []byte) members {
	t.Helper()
	if b := bytes.TrimSpace(body); len(b) == 0 || string(b) == "null" {
		return members{}
	}
	var m members
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		t.Fatalf("%s: an accepted request body is not a JSON object: %v", desc, err)
	}
	return m
}

// get decodes member k into v, if present and not null; a value of the
// wrong type fails the test, since the request was accepted.
func (m members) get(t *testing.T, k string, v any) bool {
	t.Helper()
	raw, ok := m[k]
	if !ok || string(raw) == "null" {
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("an accepted request has %s = %s: %v", k, raw, err)
	}
	return true
}

func equalDetails(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sameExecution(a, b *store.Execution) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
