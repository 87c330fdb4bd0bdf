package jobshook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
	"github.com/jobsbroker/jobsbroker/topics"
)

// rejectionCodes are the codes of PROTOCOL.md §7.2.
var rejectionCodes = []string{
	CodeInvalidTopic, CodeInvalidJSON, CodeInvalidRequest, CodeInvalidStateTransition, CodeResourceNotFound,
	CodeVersionMismatch, CodeInternalError, CodeRequestThrottled, CodeTerminalStateReached,
}

// FuzzDecodeRequest runs arbitrary payloads through the decoding of
// decode.go (decodeRequest, then startNextInput, describeInput or
// updateInput as op selects) and compares the outcome with a reference
// reading of PROTOCOL.md §3 and §7.2 written here independently:
//
//   - decodeRequest never panics and always returns a request (the hook
//     reads its clientToken even when it rejects);
//   - an empty (or JSON-whitespace) payload is {}; anything else that is
//     not one valid UTF-8 JSON document is InvalidJson; valid JSON that is
//     not an object, or whose clientToken is not a string of at most 64
//     characters, is InvalidRequest; every rejection has a code of §7.2
//     and a message, and renders as a rejected reply that echoes the
//     token when it is valid and never one it refused;
//   - an accepted request's clientToken is the payload's and has at most
//     64 characters; its fields are the payload's: integers from JSON
//     integers or decimal strings in range, booleans from true/false,
//     status from a string, statusDetails from an object of strings (and
//     anything else is InvalidRequest);
//   - what the store then validates is within the model: a status a
//     device may set, statusDetails within §8.4 as AWS applies it (at most
//     10 pairs, keys of the model's pattern, values of 1-1,024 characters
//     of any kind but U+0000, line breaks included), stepTimeoutInMinutes
//     1-10080 or -1, no negative expectedVersion or executionNumber; and
//     what it refuses becomes InvalidRequest.
func FuzzDecodeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, op byte, payload []byte) {
		req, rej := decodeRequest(payload)
		if req == nil {
			t.Fatalf("decodeRequest(%q) returned no request", payload)
		}
		want := referenceRequest(payload)
		if rej != nil {
			checkCodeAndMessage(t, rej, "decodeRequest")
		}
		if got := codeOf(rej); got != want.code {
			t.Fatalf("decodeRequest(%q) = %q (%v), want %q", payload, got, rej, want.code)
		}
		if !equalToken(req.clientToken, want.token) {
			t.Fatalf("decodeRequest(%q) captured clientToken %v, want %v", payload, str(req.clientToken), str(want.token))
		}
		checkRejectedReply(t, rej, req.clientToken)
		if rej != nil {
			return
		}
		if req.clientToken != nil && utf8.RuneCountInString(*req.clientToken) > MaxClientTokenLength {
			t.Fatalf("decodeRequest(%q) accepted a clientToken of %d characters", payload, utf8.RuneCountInString(*req.clientToken))
		}
		decodeOperation(t, op, req, want.fields, payload)
	})
}

// decodeOperation decodes the request as the operation op selects and
// checks the result against the reference reading of the fields.
func decodeOperation(t *testing.T, op byte, req *request, fields map[string]json.RawMessage, payload []byte) {
	t.Helper()
	const thing, job = "thing-1", "job-1"
	var ok bool
	switch op % 4 {
	case 0: // GetPendingJobExecutions reads nothing but clientToken.
		return
	case 1:
		in, rej := req.startNextInput(thing)
		details, okD := refDetails(fields)
		step, okS := refInt(fields, "stepTimeoutInMinutes")
		ok = okD && okS
		if checkOutcome(t, rej, ok, "startNextInput", payload) {
			if in.ThingName != thing || !equalDetails(in.StatusDetails, details) || !equalInt(in.StepTimeoutInMinutes, step) {
				t.Fatalf("startNextInput(%q) = %+v, want details %v step %v", payload, in, details, str(step))
			}
			checkValidated(t, store.ValidateStartNext(in), in.StatusDetails, in.StepTimeoutInMinutes, "", nil, nil, payload)
		}
	case 2:
		id := job
		if op&4 != 0 {
			id = topics.Next
		}
		in, rej := req.describeInput(thing, id)
		n, okN := refInt(fields, "executionNumber")
		doc, okB := refBool(fields, "includeJobDocument", true)
		ok = okN && okB
		if checkOutcome(t, rej, ok, "describeInput", payload) {
			if in.ThingName != thing || in.JobID != id || !equalInt(in.ExecutionNumber, n) || in.IncludeJobDocument != doc {
				t.Fatalf("describeInput(%q) = %+v, want executionNumber %v includeJobDocument %v", payload, in, str(n), doc)
			}
			if err := store.ValidateDescribe(in, true); err != nil {
				checkStoreRejection(t, err, payload)
			} else if in.ExecutionNumber != nil && *in.ExecutionNumber < 0 {
				t.Fatalf("describe with executionNumber %d passed validation", *in.ExecutionNumber)
			}
		}
	case 3:
		in, withState, rej := req.updateInput(thing, job)
		status, okStatus := refStatus(fields)
		details, okD := refDetails(fields)
		expected, okE := refInt(fields, "expectedVersion")
		n, okN := refInt(fields, "executionNumber")
		step, okS := refInt(fields, "stepTimeoutInMinutes")
		doc, okB := refBool(fields, "includeJobDocument", false)
		state, okState := refBool(fields, "includeJobExecutionState", false)
		ok = okStatus && okD && okE && okN && okS && okB && okState
		if checkOutcome(t, rej, ok, "updateInput", payload) {
			if in.ThingName != thing || in.JobID != job || string(in.Status) != status || !equalDetails(in.StatusDetails, details) ||
				!equalInt(in.ExpectedVersion, expected) || !equalInt(in.ExecutionNumber, n) || !equalInt(in.StepTimeoutInMinutes, step) ||
				in.IncludeJobDocument != doc || withState != state {
				t.Fatalf("updateInput(%q) = %+v (state %v), want status %q details %v expectedVersion %v executionNumber %v step %v document %v state %v",
					payload, in, withState, status, details, str(expected), str(n), str(step), doc, state)
			}
			checkValidated(t, store.ValidateUpdate(in), in.StatusDetails, in.StepTimeoutInMinutes, in.Status, in.ExpectedVersion, in.ExecutionNumber, payload)
		}
	}
}

// checkOutcome checks that an operation's decoding rejected exactly when
// the reference says it must; it reports whether it accepted.
func checkOutcome(t *testing.T, rej *rejection, ok bool, what string, payload []byte) bool {
	t.Helper()
	if rej != nil {
		checkCodeAndMessage(t, rej, what)
		if rej.code != CodeInvalidRequest {
			t.Fatalf("%s(%q) rejected with %s; field errors are InvalidRequest", what, payload, rej.code)
		}
	}
	if (rej == nil) != ok {
		t.Fatalf("%s(%q): rejection %v, the reference accepts: %v", what, payload, rej, ok)
	}
	return rej == nil
}

// checkValidated checks the store's verdict on a decoded request: what
// passes is within the model, what does not is an InvalidRequest.
func checkValidated(t *testing.T, err error, details map[string]string, step *int64, status store.ExecutionStatus, expected, n *int64, payload []byte) {
	t.Helper()
	if err != nil {
		checkStoreRejection(t, err, payload)
		return
	}
	if len(details) > store.MaxStatusDetails {
		t.Fatalf("%q: statusDetails of %d pairs passed validation", payload, len(details))
	}
	for k, v := range details {
		if !validDetail(k, v) {
			t.Fatalf("%q: statusDetails %q: %q passed validation beyond PROTOCOL.md §8.4", payload, k, v)
		}
	}
	if step != nil && *step != -1 && (*step < 1 || *step > 10080) {
		t.Fatalf("%q: stepTimeoutInMinutes %d passed validation", payload, *step)
	}
	if status != "" && !slices.Contains([]store.ExecutionStatus{store.StatusInProgress, store.StatusSucceeded, store.StatusFailed, store.StatusRejected}, status) {
		t.Fatalf("%q: status %q passed validation; a device may set IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", payload, status)
	}
	if (expected != nil && *expected < 0) || (n != nil && *n < 0) {
		t.Fatalf("%q: a negative expectedVersion or executionNumber passed validation", payload)
	}
}

func checkStoreRejection(t *testing.T, err error, payload []byte) {
	t.Helper()
	rej := rejectionFor(err)
	if !errors.Is(err, store.ErrInvalidRequest) || rej.code != CodeInvalidRequest || rej.message == "" {
		t.Fatalf("%q: validation failed with %v, answered %s %q; want InvalidRequest", payload, err, rej.code, rej.message)
	}
}

func checkCodeAndMessage(t *testing.T, rej *rejection, what string) {
	t.Helper()
	if !slices.Contains(rejectionCodes, rej.code) || rej.message == "" {
		t.Fatalf("%s: rejection %q %q is not a code of PROTOCOL.md §7.2 with a message", what, rej.code, rej.message)
	}
}

// checkRejectedReply renders the rejection as the hook does and checks
// that the reply carries the code, the message and the token.
func checkRejectedReply(t *testing.T, rej *rejection, token *string) {
	t.Helper()
	if rej == nil {
		return
	}
	now := time.Unix(1717000000, 0)
	var got struct {
		Code        string  `json:"code"`
		Message     string  `json:"message"`
		ClientToken *string `json:"clientToken"`
		Timestamp   int64   `json:"timestamp"`
	}
	if err := json.Unmarshal(rejectedPayload(rej, token, now), &got); err != nil {
		t.Fatalf("rejected reply does not decode: %v", err)
	}
	if got.Code != rej.code || got.Message != rej.message || !equalToken(got.ClientToken, token) || got.Timestamp != now.Unix() {
		t.Fatalf("rejected reply %+v, want code %s message %q token %v", got, rej.code, rej.message, str(token))
	}
}

func codeOf(rej *rejection) string {
	if rej == nil {
		return ""
	}
	return rej.code
}

// reference is what PROTOCOL.md says a payload decodes to: the
// rejection code ("" when accepted), the clientToken to echo, and the
// fields.
type reference struct {
	code   string
	token  *string
	fields map[string]json.RawMessage
}

// referenceRequest reads a payload the way §3 and §7.2 describe. The
// only whitespace JSON has is space, tab, CR and LF (RFC 8259 §2).
func referenceRequest(payload []byte) reference {
	p := bytes.Trim(payload, " \t\r\n")
	if len(p) == 0 {
		return reference{}
	}
	if !utf8.Valid(p) || !json.Valid(p) {
		return reference{code: CodeInvalidJSON}
	}
	var fields map[string]json.RawMessage
	if p[0] != '{' || json.Unmarshal(p, &fields) != nil {
		return reference{code: CodeInvalidRequest}
	}
	raw, ok := fields["clientToken"]
	if !ok || string(raw) == "null" {
		return reference{fields: fields}
	}
	var token string
	if raw[0] != '"' || json.Unmarshal(raw, &token) != nil {
		return reference{code: CodeInvalidRequest, fields: fields}
	}
	if utf8.RuneCountInString(token) > MaxClientTokenLength {
		return reference{code: CodeInvalidRequest}
	}
	return reference{token: &token, fields: fields}
}

var (
	jsonInteger   = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	decimalString = regexp.MustCompile(`^[+-]?[0-9]+$`)
)

// refInt reads an integer field: a JSON integer, or a string of decimal
// digits (§3.7), within int64. ok is false for anything else.
func refInt(fields map[string]json.RawMessage, k string) (v *int64, ok bool) {
	raw, present := fields[k]
	if !present || string(raw) == "null" {
		return nil, true
	}
	text := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &text) != nil || !decimalString.MatchString(text) {
			return nil, false
		}
	} else if !jsonInteger.MatchString(text) {
		return nil, false
	}
	n, isInt := new(big.Int).SetString(strings.TrimPrefix(text, "+"), 10)
	if !isInt || !n.IsInt64() {
		return nil, false
	}
	i := n.Int64()
	return &i, true
}

func refBool(fields map[string]json.RawMessage, k string, def bool) (bool, bool) {
	raw, present := fields[k]
	switch {
	case !present || string(raw) == "null":
		return def, true
	case string(raw) == "true":
		return true, true
	case string(raw) == "false":
		return false, true
	}
	return def, false
}

func refStatus(fields map[string]json.RawMessage) (string, bool) {
	raw, present := fields["status"]
	var s string
	if !present || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// refDetails reads statusDetails: an object whose values are strings
// (null values read as "", which validation then refuses).
func refDetails(fields map[string]json.RawMessage) (map[string]string, bool) {
	raw, present := fields["statusDetails"]
	if !present || string(raw) == "null" {
		return nil, true
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		switch {
		case string(v) == "null":
		case v[0] == '"' && json.Unmarshal(v, &s) == nil:
		default:
			return nil, false
		}
		out[k] = s
	}
	return out, true
}

var detailsKey = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)

// validDetail checks a statusDetails pair against PROTOCOL.md §8.4 as AWS
// applies it to real agents: key 1-128 of [a-zA-Z0-9:_-], value 1-1024
// characters of any kind (line breaks and tabs included) but U+0000. The
// model's value pattern [^\p{C}]+ is not what the service enforces.
func validDetail(k, v string) bool {
	n := utf8.RuneCountInString(v)
	return detailsKey.MatchString(k) && utf8.ValidString(v) && n >= 1 && n <= 1024 && !strings.ContainsRune(v, 0)
}

func equalDetails(a, b map[string]string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func equalInt(a, b *int64) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

func equalToken(a, b *string) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func str[T any](p *T) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%v", *p)
}

// FuzzHookRequest publishes arbitrary topics and payloads, at QoS 0-2,
// through mochi's own publish path (Server.InjectPacket, as a connected
// device's packets arrive) into a broker with the hook on a real Badger
// store, built once per fuzz worker. The last argument's low bits are the
// QoS (mod 3); bit 2 makes the client's identity (thing-1) enforced and
// bit 3 makes the rate limiter refuse everything, the two checks
// broker.New gives the hook. It checks each answer:
//
//   - nothing panics; mochi refuses what its packet validation refuses,
//     and then nothing is written;
//   - a topic outside $aws/things/+/jobs passes through untouched; a
//     publish on a reply or notify topic is dropped unanswered; a request
//     is answered exactly once, to the publisher, on its topic plus
//     /accepted or /rejected, at the request's QoS capped at 1, with a
//     packet id of its own; a QoS 1 request is acknowledged;
//   - a rejection has a code of §7.2, a message, the clock's timestamp,
//     the clientToken echoed, and executionState only for
//     InvalidStateTransition and VersionMismatch; a malformed topic is
//     InvalidTopic;
//   - an accepted reply has the operation's shape (§5): integer
//     epoch-second timestamps, jobDocument as an object, the clientToken
//     echoed (at most 64 characters), and agrees with the store;
//   - a request for another thing than an enforced identity is
//     InvalidRequest, a throttled one RequestThrottled (once the payload
//     decodes), and neither is ever served;
//   - a rejected request, and every read, changed nothing in the store; an
//     accepted update moved the execution to the status sent, one version
//     up; start-next started the next QUEUED execution.
//
// After an input that changed a fixture thing, the thing leaves its
// thing group and joins it again, which gives it fresh QUEUED executions
// of the two continuous jobs.
func FuzzHookRequest(f *testing.F) {
	hf := newHookFuzzer(f)
	f.Fuzz(func(t *testing.T, topic string, payload []byte, flags byte) {
		hf.run(t, topic, payload, flags)
	})
}

const (
	hfThing2 = "a:b"
	hfGroup  = "fleet"
	hfOld    = "job-old"
)

var (
	hfThings = []string{thing1, hfThing2}
	hfJobs   = []string{"job-1", "job-2", hfOld}
	hfDocs   = map[string]string{
		"job-1": `{"operation":"install","url":"https://example.invalid/fw.bin"}`,
		"job-2": `{"operation":"reboot","delaySeconds":5}`,
		hfOld:   `{"operation":"old"}`,
	}
)

type hookFuzzer struct {
	*fixture
	cl       *mqtt.Client
	conn     net.Conn // the broker's end of the client's pipe
	w        *pipeEnd
	seen     atomic.Int64
	enforce  atomic.Bool // Identity enforces the client's thing (thing-1)
	throttle atomic.Bool // Throttle refuses every request
}

// newHookFuzzer builds what newFixture builds, for a testing.F: the hook
// in a mochi server (with the broker's capabilities and auth hook) on a
// Badger store in a temporary directory, a fake clock, and thing-1
// connected through a net.Pipe.
func newHookFuzzer(tb testing.TB) *hookFuzzer {
	clk := clock.NewFake(epoch)
	// NoSync: fsync per commit would dominate the time per input.
	st, err := badger.Open(badger.Options{Dir: tb.TempDir(), NoSync: true, Clock: clk, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1 // as broker.New: AWS IoT has no QoS 2
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet, Capabilities: caps})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		tb.Fatal(err)
	}
	h := new(Hook)
	hf := &hookFuzzer{fixture: &fixture{hook: h, server: server, store: st, clock: clk}}
	// As broker.New passes its auth's Identity and its rate limiter.
	err = server.AddHook(h, &Options{Server: server, Store: st, Clock: clk,
		Identity: func(cl *mqtt.Client) (string, bool) { return cl.ID, hf.enforce.Load() },
		Throttle: func(string) bool { return !hf.throttle.Load() },
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { server.Close() })

	ctx := context.Background()
	if _, err := st.CreateThingGroup(ctx, &store.CreateThingGroupInput{Name: hfGroup}); err != nil {
		tb.Fatal(err)
	}
	for _, th := range hfThings {
		if _, err := st.CreateThing(ctx, &store.CreateThingInput{ThingName: th}); err != nil {
			tb.Fatal(err)
		}
		if err := st.AddThingToThingGroup(ctx, &store.MembershipInput{ThingGroupName: hfGroup, ThingName: th}); err != nil {
			tb.Fatal(err)
		}
	}
	sixty := int64(60)
	group := []string{"arn:aws:iot:us-east-1:123456789012:thinggroup/" + hfGroup}
	for _, j := range []store.Job{
		{JobID: "job-1", TargetSelection: store.Continuous, Targets: group, TimeoutConfig: &store.TimeoutConfig{InProgressTimeoutInMinutes: &sixty}},
		{JobID: "job-2", TargetSelection: store.Continuous, Targets: group},
		{JobID: hfOld, Targets: []string{"arn:aws:iot:us-east-1:123456789012:thing/" + thing1}},
	} {
		if _, err := st.CreateJob(ctx, &store.CreateJobInput{Job: j, Document: hfDocs[j.JobID]}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := st.UpdateJobExecution(ctx, &store.UpdateExecutionInput{ThingName: thing1, JobID: hfOld,
		Status: store.StatusSucceeded, StatusDetails: map[string]string{"result": "ok"}}); err != nil {
		tb.Fatal(err)
	}

	// thing-1 connects (MQTT 3.1.1), as connect in hook_test.go does.
	brokerSide, deviceSide := net.Pipe()
	cl := server.NewClient(brokerSide, "t", thing1, false)
	cl.Properties.ProtocolVersion = 4
	cl.State.Inflight.ResetReceiveQuota(int32(server.Options.Capabilities.ReceiveMaximum))
	cl.State.Inflight.ResetSendQuota(int32(server.Options.Capabilities.ReceiveMaximum))
	w := &pipeEnd{packets: make(chan packets.Packet, 64), done: make(chan struct{})}
	go w.read(deviceSide, 4)
	server.Clients.Add(cl)
	go cl.WriteLoop()
	tb.Cleanup(func() {
		cl.Stop(nil)
		brokerSide.Close()
		deviceSide.Close()
		<-w.done
	})
	hf.cl, hf.conn, hf.w = cl, brokerSide, w
	return hf
}

// onTheWire says whether a PUBLISH with this topic can be decoded from
// the wire at all: mochi's decoder refuses topics that are not valid
// UTF-8, contain U+0000 or are longer than 65,535 bytes, so such a topic
// never reaches InjectPacket's caller in a real broker.
func onTheWire(topic string) bool {
	return len(topic) <= 65535 && utf8.ValidString(topic) && !strings.ContainsRune(topic, 0)
}

// mochiAccepts says whether mochi hands a decoded PUBLISH with this topic
// to the hooks: a topic, no wildcards, not $SYS or $share.
func mochiAccepts(topic string) bool {
	return topic != "" && mqtt.IsValidFilter(topic, true) && !strings.ContainsAny(topic, "+#")
}

// next returns the next packet the client received, or fails.
func (hf *hookFuzzer) next(t *testing.T, desc string) packets.Packet {
	t.Helper()
	select {
	case pk, ok := <-hf.w.packets:
		if !ok {
			t.Fatalf("%s: the connection stopped: %v", desc, hf.w.err)
		}
		return pk
	case <-time.After(waitFor):
		t.Fatalf("%s: nothing was written to the client", desc)
	}
	return packets.Packet{}
}

// drain reads what was written for one request, up to a barrier: the
// reply (if any) and the PUBACK (if any).
func (hf *hookFuzzer) drain(t *testing.T, desc string) (replies []packets.Packet, acks []packets.Packet) {
	t.Helper()
	barrier := fmt.Sprintf("%s/%d", barrierTopic, hf.seen.Add(1))
	if err := hf.cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: barrier}); err != nil {
		t.Fatalf("%s: write barrier: %v", desc, err)
	}
	for {
		pk := hf.next(t, desc)
		switch {
		case pk.FixedHeader.Type == packets.Publish && pk.TopicName == barrier:
			return replies, acks
		case pk.FixedHeader.Type == packets.Publish:
			replies = append(replies, pk)
		case pk.FixedHeader.Type == packets.Puback:
			acks = append(acks, pk)
		default:
			t.Fatalf("%s: unexpected packet type %d", desc, pk.FixedHeader.Type)
		}
	}
}

func (hf *hookFuzzer) run(t *testing.T, topic string, payload []byte, flags byte) {
	qos := (flags & 3) % 3
	enforce, throttle := flags&4 != 0, flags&8 != 0
	hf.enforce.Store(enforce)
	hf.throttle.Store(throttle)
	const requestID = 7
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: payload}
	if qos > 0 {
		pk.PacketID = requestID
	}
	if !onTheWire(topic) {
		return
	}
	desc := fmt.Sprintf("QoS %d publish on %q payload %q (identity enforced %v, throttled %v)", qos, topic, truncate(payload), enforce, throttle)
	// No write to the device may block for long, whatever goes wrong.
	if err := hf.conn.SetWriteDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	before := storetest.Snapshot(t, hf.store, hfThings, hfJobs)
	err := hf.server.InjectPacket(hf.cl, pk)
	replies, acks := hf.drain(t, desc)
	after := storetest.Snapshot(t, hf.store, hfThings, hfJobs)

	if !mochiAccepts(topic) {
		if len(replies) > 0 {
			t.Fatalf("%s: mochi refuses this publish, yet %q was answered", desc, replies[0].TopicName)
		}
		if !before.Equal(after) {
			t.Fatalf("%s: a refused publish changed the store", desc)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: InjectPacket: %v", desc, err)
	}
	wantAcks := 0
	if qos > 0 {
		wantAcks = 1
	}
	if len(acks) != wantAcks || (wantAcks == 1 && acks[0].PacketID != requestID) {
		t.Fatalf("%s: %d acknowledgements %+v, want %d for packet %d", desc, len(acks), acks, wantAcks, requestID)
	}
	parsed, perr := topics.Parse(topic)
	isRequest := perr == nil && parsed.Kind == topics.KindRequest
	if errors.Is(perr, topics.ErrNotJobs) || (perr == nil && !isRequest) {
		// Other topics pass through (no subscriber here), and publishes
		// on reply and notify topics are dropped: nothing is answered.
		if len(replies) > 0 {
			t.Fatalf("%s: answered on %q; nothing should be", desc, replies[0].TopicName)
		}
		if !before.Equal(after) {
			t.Fatalf("%s: a publish that is not a request changed the store", desc)
		}
		return
	}
	if len(replies) != 1 {
		t.Fatalf("%s: %d replies, want exactly one", desc, len(replies))
	}
	reply := replies[0]
	hf.checkDelivery(t, desc, reply, qos, requestID)
	ref := referenceRequest(payload)
	switch reply.TopicName {
	case topics.Rejected(topic):
		code := hf.checkRejected(t, desc, reply.Payload, ref)
		foreign := enforce && parsed.Thing != thing1
		switch {
		case perr != nil && code != CodeInvalidTopic:
			t.Fatalf("%s: a malformed jobs topic rejected with %s, want InvalidTopic", desc, code)
		case perr == nil && ref.code != "" && code != ref.code:
			t.Fatalf("%s: rejected with %s, want the payload's %s", desc, code, ref.code)
		case perr == nil && ref.code == "" && foreign && code != CodeInvalidRequest:
			t.Fatalf("%s: a request for another thing rejected with %s, want InvalidRequest", desc, code)
		case perr == nil && ref.code == "" && !foreign && throttle && code != CodeRequestThrottled:
			t.Fatalf("%s: a throttled request rejected with %s, want RequestThrottled", desc, code)
		case code == CodeRequestThrottled && !throttle:
			t.Fatalf("%s: RequestThrottled while the rate limiter allows everything", desc)
		}
		if !before.Equal(after) {
			t.Fatalf("%s: a rejected request changed the store:\nbefore %s\nafter  %s", desc, before, after)
		}
		return
	case topics.Accepted(topic):
		switch {
		case perr != nil || ref.code != "":
			t.Fatalf("%s: accepted, but the topic (%v) or payload (%s) is invalid", desc, perr, ref.code)
		case enforce && parsed.Thing != thing1:
			t.Fatalf("%s: %s was served for thing %s", desc, thing1, parsed.Thing)
		case throttle:
			t.Fatalf("%s: accepted although the rate limiter refuses everything", desc)
		}
	default:
		t.Fatalf("%s: reply on %q, want %q or %q", desc, reply.TopicName, topics.Accepted(topic), topics.Rejected(topic))
	}
	hf.checkAccepted(t, desc, parsed, reply.Payload, ref, before, after)
	storetest.Requeue(t, hf.store, hfGroup, after, []string{"job-1", "job-2"})
}

// checkDelivery checks the reply's QoS and packet id, and acknowledges a
// QoS 1 reply as the device would.
func (hf *hookFuzzer) checkDelivery(t *testing.T, desc string, reply packets.Packet, qos byte, requestID uint16) {
	t.Helper()
	if want := min(qos, 1); reply.FixedHeader.Qos != want {
		t.Fatalf("%s: reply at QoS %d, want %d", desc, reply.FixedHeader.Qos, want)
	}
	if reply.FixedHeader.Qos == 0 {
		return
	}
	if reply.PacketID == 0 || reply.PacketID == requestID {
		t.Fatalf("%s: QoS 1 reply with packet id %d (the request's is %d)", desc, reply.PacketID, requestID)
	}
	if _, ok := hf.cl.State.Inflight.Get(reply.PacketID); !ok {
		t.Fatalf("%s: QoS 1 reply %d is not in flight", desc, reply.PacketID)
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: reply.PacketID}
	if err := hf.server.InjectPacket(hf.cl, ack); err != nil {
		t.Fatalf("%s: PUBACK: %v", desc, err)
	}
}

// checkRejected checks a rejected reply (§7.1) and returns its code.
func (hf *hookFuzzer) checkRejected(t *testing.T, desc string, payload []byte, ref reference) string {
	t.Helper()
	m := decodeReply(t, desc, payload)
	var r struct {
		Code        string  `json:"code"`
		Message     string  `json:"message"`
		ClientToken *string `json:"clientToken"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		t.Fatalf("%s: rejected reply %s: %v", desc, payload, err)
	}
	if !slices.Contains(rejectionCodes, r.Code) || r.Message == "" {
		t.Fatalf("%s: rejected with %q %q, not a code of §7.2 with a message", desc, r.Code, r.Message)
	}
	if r.Code == CodeInternalError {
		t.Fatalf("%s: InternalError on a healthy store", desc)
	}
	if !equalToken(r.ClientToken, ref.token) {
		t.Fatalf("%s: rejected reply echoes clientToken %v, want %v", desc, str(r.ClientToken), str(ref.token))
	}
	hf.checkTimestamp(t, desc, m, "timestamp", true)
	state, hasState := m["executionState"]
	if hasState != (r.Code == CodeInvalidStateTransition || r.Code == CodeVersionMismatch) {
		t.Fatalf("%s: %s with executionState present %v", desc, r.Code, hasState)
	}
	if hasState {
		checkState(t, desc, state)
	}
	for k := range m {
		if !slices.Contains([]string{"code", "message", "clientToken", "timestamp", "executionState"}, k) {
			t.Fatalf("%s: unexpected member %q in a rejected reply", desc, k)
		}
	}
	return r.Code
}

// checkAccepted checks an accepted reply against its operation's shape
// (§5) and the store.
func (hf *hookFuzzer) checkAccepted(t *testing.T, desc string, parsed topics.Topic, payload []byte, ref reference, before, after storetest.Things) {
	t.Helper()
	m := decodeReply(t, desc, payload)
	hf.checkTimestamp(t, desc, m, "timestamp", true)
	var token *string
	if raw, ok := m["clientToken"]; ok {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			t.Fatalf("%s: clientToken %s is not a string", desc, raw)
		}
		token = &s
	}
	if !equalToken(token, ref.token) || (token != nil && utf8.RuneCountInString(*token) > MaxClientTokenLength) {
		t.Fatalf("%s: accepted reply echoes clientToken %v, want %v (at most 64 characters)", desc, str(token), str(ref.token))
	}
	_, fixture := before.Pending[parsed.Thing]
	switch parsed.Op {
	case topics.OpGetPending:
		onlyMembers(t, desc, m, "inProgressJobs", "queuedJobs", "timestamp", "clientToken")
		var ids []string
		for _, k := range []string{"inProgressJobs", "queuedJobs"} {
			var list []json.RawMessage
			if err := json.Unmarshal(m[k], &list); err != nil || list == nil {
				t.Fatalf("%s: %s = %s is not an array", desc, k, m[k])
			}
			for _, s := range list {
				ids = append(ids, hf.checkSummary(t, desc, s))
			}
		}
		if fixture && strings.Join(ids, ",") != before.Pending[parsed.Thing].Jobs() {
			t.Fatalf("%s: pending %v, the store has %s", desc, ids, before.Pending[parsed.Thing].Jobs())
		}
	case topics.OpStartNext, topics.OpDescribe:
		onlyMembers(t, desc, m, "execution", "timestamp", "clientToken")
		raw, ok := m["execution"]
		next := parsed.Op == topics.OpStartNext || parsed.JobID == topics.Next
		if !ok {
			if !next {
				t.Fatalf("%s: a describe of %s answered without an execution", desc, parsed.JobID)
			}
			if fixture && len(before.Pending[parsed.Thing]) > 0 {
				t.Fatalf("%s: no execution while %s are pending", desc, before.Pending[parsed.Thing].Jobs())
			}
			break
		}
		withDoc := true
		if parsed.Op == topics.OpDescribe {
			withDoc, _ = refBool(ref.fields, "includeJobDocument", true)
		}
		e := hf.checkExecution(t, desc, raw, parsed.Thing, withDoc)
		switch {
		case next && fixture && (len(before.Pending[parsed.Thing]) == 0 || before.Pending[parsed.Thing][0].JobID != e.JobID):
			t.Fatalf("%s: answered %s, the store's next was %s", desc, e.JobID, before.Pending[parsed.Thing].Jobs())
		case !next && e.JobID != parsed.JobID:
			t.Fatalf("%s: asked for %s, got %s", desc, parsed.JobID, e.JobID)
		case parsed.Op == topics.OpStartNext && e.Status != string(store.StatusInProgress):
			t.Fatalf("%s: start-next answered a %s execution", desc, e.Status)
		}
		if parsed.Op == topics.OpStartNext && fixture {
			was, now := before.Latest[parsed.Thing+"/"+e.JobID], after.Latest[parsed.Thing+"/"+e.JobID]
			details, _ := refDetails(ref.fields)
			want := was.StatusDetails
			if details != nil {
				want = details
			}
			switch {
			case was.Status == store.StatusQueued && (now.Status != store.StatusInProgress || now.VersionNumber != was.VersionNumber+1 || !equalDetails(nilIfEmpty(now.StatusDetails), nilIfEmpty(want))):
				t.Fatalf("%s: starting a QUEUED execution left %s v%d %v (was v%d)", desc, now.Status, now.VersionNumber, now.StatusDetails, was.VersionNumber)
			case was.Status == store.StatusInProgress && fmt.Sprintf("%+v", *was) != fmt.Sprintf("%+v", *now):
				t.Fatalf("%s: start-next changed an execution already IN_PROGRESS", desc)
			}
		}
	case topics.OpUpdate:
		onlyMembers(t, desc, m, "executionState", "jobDocument", "timestamp", "clientToken")
		status, _ := refStatus(ref.fields)
		withState, _ := refBool(ref.fields, "includeJobExecutionState", false)
		withDoc, _ := refBool(ref.fields, "includeJobDocument", false)
		state, hasState := m["executionState"]
		doc, hasDoc := m["jobDocument"]
		if hasState != withState || hasDoc != withDoc {
			t.Fatalf("%s: executionState %v jobDocument %v, asked for %v and %v", desc, hasState, hasDoc, withState, withDoc)
		}
		if hasState {
			if s := checkState(t, desc, state); s.Status != status {
				t.Fatalf("%s: executionState.status %s, the update sent %s", desc, s.Status, status)
			}
		}
		if hasDoc {
			checkDocument(t, desc, doc, parsed.JobID)
		}
		was, ok := before.Latest[parsed.Thing+"/"+parsed.JobID]
		n, _ := refInt(ref.fields, "executionNumber")
		if !ok || (n != nil && *n != was.ExecutionNumber) {
			break
		}
		now := after.Latest[parsed.Thing+"/"+parsed.JobID]
		details, _ := refDetails(ref.fields)
		want := was.StatusDetails
		if details != nil {
			want = details
		}
		if string(now.Status) != status || now.VersionNumber != was.VersionNumber+1 || !equalDetails(nilIfEmpty(now.StatusDetails), nilIfEmpty(want)) {
			t.Fatalf("%s: the update left %s v%d %v (was %s v%d)", desc, now.Status, now.VersionNumber, now.StatusDetails, was.Status, was.VersionNumber)
		}
	}
	if parsed.Op == topics.OpGetPending || parsed.Op == topics.OpDescribe {
		if !before.Equal(after) {
			t.Fatalf("%s: a read changed the store:\nbefore %s\nafter  %s", desc, before, after)
		}
	}
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func decodeReply(t *testing.T, desc string, payload []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil || m == nil {
		t.Fatalf("%s: reply %s is not a JSON object: %v", desc, payload, err)
	}
	return m
}

func onlyMembers(t *testing.T, desc string, m map[string]json.RawMessage, allowed ...string) {
	t.Helper()
	for k := range m {
		if !slices.Contains(allowed, k) {
			t.Fatalf("%s: unexpected member %q", desc, k)
		}
	}
}

// integerMember returns member k as an integer: a JSON integer, never a
// float or a string (§15.2).
func integerMember(t *testing.T, desc string, m map[string]json.RawMessage, k string, required bool) (int64, bool) {
	t.Helper()
	raw, ok := m[k]
	if !ok {
		if required {
			t.Fatalf("%s: %s missing", desc, k)
		}
		return 0, false
	}
	var n json.Number
	if !jsonInteger.Match(raw) || json.Unmarshal(raw, &n) != nil {
		t.Fatalf("%s: %s = %s is not a JSON integer", desc, k, raw)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%s: %s = %s: %v", desc, k, raw, err)
	}
	return i, true
}

// checkTimestamp checks an epoch-second timestamp: seconds, not
// milliseconds, no later than the (fake) clock.
func (hf *hookFuzzer) checkTimestamp(t *testing.T, desc string, m map[string]json.RawMessage, k string, required bool) {
	t.Helper()
	if v, ok := integerMember(t, desc, m, k, required); ok && (v < epoch.Unix() || v > hf.clock.Now().Unix()) {
		t.Fatalf("%s: %s = %d is not an epoch second between the fixture's creation and now", desc, k, v)
	}
}

func (hf *hookFuzzer) checkSummary(t *testing.T, desc string, raw json.RawMessage) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		t.Fatalf("%s: summary %s is not an object", desc, raw)
	}
	onlyMembers(t, desc, m, "jobId", "queuedAt", "startedAt", "lastUpdatedAt", "versionNumber", "executionNumber")
	var id string
	if json.Unmarshal(m["jobId"], &id) != nil || id == "" {
		t.Fatalf("%s: summary without a jobId: %s", desc, raw)
	}
	hf.checkTimestamp(t, desc, m, "queuedAt", true)
	hf.checkTimestamp(t, desc, m, "startedAt", false)
	hf.checkTimestamp(t, desc, m, "lastUpdatedAt", true)
	integerMember(t, desc, m, "versionNumber", true)
	integerMember(t, desc, m, "executionNumber", true)
	return id
}

type wireState struct {
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails"`
	VersionNumber int64             `json:"versionNumber"`
}

func checkState(t *testing.T, desc string, raw json.RawMessage) wireState {
	t.Helper()
	var m map[string]json.RawMessage
	var s wireState
	if json.Unmarshal(raw, &m) != nil || json.Unmarshal(raw, &s) != nil {
		t.Fatalf("%s: executionState %s does not decode", desc, raw)
	}
	onlyMembers(t, desc, m, "status", "statusDetails", "versionNumber")
	integerMember(t, desc, m, "versionNumber", true)
	if !store.ExecutionStatus(s.Status).Valid() {
		t.Fatalf("%s: executionState.status %q", desc, s.Status)
	}
	return s
}

// checkDocument checks a jobDocument: over MQTT an object (§3.4), the
// job's document.
func checkDocument(t *testing.T, desc string, raw json.RawMessage, job string) {
	t.Helper()
	var doc map[string]any
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &doc) != nil {
		t.Fatalf("%s: jobDocument %s is not a JSON object", desc, raw)
	}
	if want, ok := hfDocs[job]; ok && string(raw) != want {
		t.Fatalf("%s: jobDocument %s, want %s", desc, raw, want)
	}
}

type replyExecution struct {
	JobID  string `json:"jobId"`
	Status string `json:"status"`
}

// checkExecution checks a JobExecution (§4.1) and that it is the store's
// current state of that execution.
func (hf *hookFuzzer) checkExecution(t *testing.T, desc string, raw json.RawMessage, thing string, withDoc bool) replyExecution {
	t.Helper()
	var m map[string]json.RawMessage
	var e replyExecution
	if json.Unmarshal(raw, &m) != nil || json.Unmarshal(raw, &e) != nil || m == nil {
		t.Fatalf("%s: execution %s does not decode", desc, raw)
	}
	onlyMembers(t, desc, m, "jobId", "thingName", "status", "statusDetails", "queuedAt", "startedAt", "lastUpdatedAt",
		"approximateSecondsBeforeTimedOut", "versionNumber", "executionNumber", "jobDocument")
	var name string
	if json.Unmarshal(m["thingName"], &name) != nil || name != thing {
		t.Fatalf("%s: thingName %s, want %q", desc, m["thingName"], thing)
	}
	if !store.ExecutionStatus(e.Status).Valid() {
		t.Fatalf("%s: status %q", desc, e.Status)
	}
	if d, ok := m["statusDetails"]; ok {
		var details map[string]string
		if json.Unmarshal(d, &details) != nil {
			t.Fatalf("%s: statusDetails %s is not an object of strings", desc, d)
		}
		if len(details) > store.MaxStatusDetails {
			t.Fatalf("%s: statusDetails of %d pairs", desc, len(details))
		}
		for k, v := range details {
			if !validDetail(k, v) {
				t.Fatalf("%s: statusDetails %q: %q beyond PROTOCOL.md §8.4", desc, k, v)
			}
		}
	}
	hf.checkTimestamp(t, desc, m, "queuedAt", true)
	hf.checkTimestamp(t, desc, m, "startedAt", false)
	hf.checkTimestamp(t, desc, m, "lastUpdatedAt", true)
	if s, ok := integerMember(t, desc, m, "approximateSecondsBeforeTimedOut", false); ok && (s < 0 || e.Status != string(store.StatusInProgress)) {
		t.Fatalf("%s: approximateSecondsBeforeTimedOut %d on a %s execution", desc, s, e.Status)
	}
	version, _ := integerMember(t, desc, m, "versionNumber", true)
	number, _ := integerMember(t, desc, m, "executionNumber", true)
	doc, hasDoc := m["jobDocument"]
	if hasDoc != withDoc {
		t.Fatalf("%s: jobDocument present %v, want %v", desc, hasDoc, withDoc)
	}
	if hasDoc {
		checkDocument(t, desc, doc, e.JobID)
	}
	out, err := hf.store.DescribeJobExecution(context.Background(), &store.DescribeExecutionInput{ThingName: thing, JobID: e.JobID, ExecutionNumber: &number})
	if err != nil {
		t.Fatalf("%s: the store does not have the execution answered: %v", desc, err)
	}
	if string(out.Execution.Status) != e.Status || out.Execution.VersionNumber != version {
		t.Fatalf("%s: answered %s v%d, the store has %s v%d", desc, e.Status, version, out.Execution.Status, out.Execution.VersionNumber)
	}
	return e
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
