package jobshook

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/badger"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/topics"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// epoch is where the fake clock starts; jobs created by a fixture are
// queued at this second.
var epoch = time.Unix(1717000000, 0)

// waitFor bounds every wait for something written by another goroutine.
const waitFor = 5 * time.Second

const thing1 = "thing-1"

// stubStore is a store.Store for tests that never reach the store, or that
// need a store answering with a chosen error. Methods not overridden panic
// on the nil embedded interface, which fails the test loudly.
type stubStore struct {
	store.Store
	mu         sync.Mutex
	handler    store.ChangeHandler
	getPending func(ctx context.Context, thing string) (*store.PendingExecutions, error)
}

func (s *stubStore) SetChangeHandler(h store.ChangeHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

func (s *stubStore) changeHandler() store.ChangeHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handler
}

func (s *stubStore) GetPendingJobExecutions(ctx context.Context, thing string) (*store.PendingExecutions, error) {
	return s.getPending(ctx, thing)
}

// fixture is a hook added to a real server, on a real Badger store, with
// a fake clock.
type fixture struct {
	hook   *Hook
	server *mqtt.Server
	store  *badger.Store
	clock  *clock.Fake
}

func newFixture(t testing.TB, mod ...func(*Options)) *fixture {
	t.Helper()
	clk := clock.NewFake(epoch)
	st, err := badger.Open(badger.Options{Dir: t.TempDir(), Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
	opts := &Options{Server: server, Store: st, Clock: clk}
	for _, m := range mod {
		m(opts)
	}
	h := new(Hook)
	if err := server.AddHook(h, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() }) // stops the hook before the store closes
	return &fixture{hook: h, server: server, store: st, clock: clk}
}

// createJob queues job id with document {"operation":"reboot"} on things.
func (f *fixture) createJob(t *testing.T, id string, things ...string) {
	t.Helper()
	in := &store.CreateJobInput{Job: store.Job{JobID: id}, Document: `{"operation":"reboot"}`}
	for _, th := range things {
		in.Job.Targets = append(in.Job.Targets, "arn:aws:iot:us-east-1:123456789012:thing/"+th)
	}
	job, err := f.store.CreateJob(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateJob %s: %v", id, err)
	}
	if job.IsConcurrent {
		t.Fatalf("job %s is still rolling out", id)
	}
}

// pipeEnd is the device's end of a net.Pipe: it decodes every packet the
// broker writes to the client.
type pipeEnd struct {
	packets chan packets.Packet
	done    chan struct{}
	err     error // why reading stopped; read after packets is closed
}

// newPipeClient returns an MQTT 3.1.1 client whose writes are read back
// by a pipeEnd.
func newPipeClient(t testing.TB, server *mqtt.Server, id string, inline bool) (*mqtt.Client, *pipeEnd) {
	t.Helper()
	return newPipeClientVersion(t, server, id, inline, 4)
}

func newPipeClientVersion(t testing.TB, server *mqtt.Server, id string, inline bool, version byte) (*mqtt.Client, *pipeEnd) {
	t.Helper()
	brokerSide, deviceSide := net.Pipe()
	cl := server.NewClient(brokerSide, "t", id, inline)
	cl.Properties.ProtocolVersion = version
	w := &pipeEnd{packets: make(chan packets.Packet, 64), done: make(chan struct{})}
	go w.read(deviceSide, version)
	t.Cleanup(func() {
		brokerSide.Close()
		deviceSide.Close()
		<-w.done
	})
	return cl, w
}

func (w *pipeEnd) read(conn net.Conn, version byte) {
	defer close(w.done)
	defer close(w.packets)
	r := bufio.NewReader(conn)
	for {
		hb, err := r.ReadByte()
		if err != nil {
			w.err = err
			return
		}
		var pk packets.Packet
		if w.err = pk.FixedHeader.Decode(hb); w.err != nil {
			return
		}
		n, _, err := packets.DecodeLength(r)
		if err != nil {
			w.err = err
			return
		}
		body := make([]byte, n)
		if _, w.err = io.ReadFull(r, body); w.err != nil {
			return
		}
		pk.ProtocolVersion = version
		switch pk.FixedHeader.Type {
		case packets.Publish:
			w.err = pk.PublishDecode(body)
		case packets.Puback:
			w.err = pk.PubackDecode(body)
		}
		if w.err != nil {
			return
		}
		w.packets <- pk
	}
}

// next returns the next packet written to the client.
func (w *pipeEnd) next(t *testing.T) packets.Packet {
	t.Helper()
	select {
	case pk, ok := <-w.packets:
		if !ok {
			t.Fatalf("the connection stopped: %v", w.err)
		}
		return pk
	case <-time.After(waitFor):
		t.Fatal("nothing was written to the client")
	}
	return packets.Packet{}
}

const barrierTopic = "test/barrier"

// nothing checks that nothing was written to the client so far. The pipe
// is synchronous and ordered, so writing a marker and reading it back
// proves that no earlier packet is on its way.
func (w *pipeEnd) nothing(t *testing.T, cl *mqtt.Client) {
	t.Helper()
	if err := cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: barrierTopic}); err != nil {
		t.Fatalf("write barrier: %v", err)
	}
	if pk := w.next(t); pk.TopicName != barrierTopic {
		t.Fatalf("got a packet on %q (payload %s), want nothing", pk.TopicName, pk.Payload)
	}
}

func publish(topic, payload string, qos byte) packets.Packet {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     []byte(payload),
	}
	if qos > 0 {
		pk.PacketID = 7
	}
	return pk
}

// fields decodes a JSON object into its raw members.
func fields(t *testing.T, payload []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatalf("reply %s is not a JSON object: %v", payload, err)
	}
	return m
}

func TestID(t *testing.T) {
	h := new(Hook)
	if got := h.ID(); got != "aws-iot-jobs" {
		t.Errorf("ID() = %q, want aws-iot-jobs", got)
	}
}

func TestProvides(t *testing.T) {
	h := new(Hook)
	tt := []struct {
		desc string
		b    byte
		want bool
	}{
		{desc: "OnPublish", b: mqtt.OnPublish, want: true},
		{desc: "OnConnect", b: mqtt.OnConnect, want: false},
		{desc: "OnConnectAuthenticate", b: mqtt.OnConnectAuthenticate, want: false},
		{desc: "OnACLCheck", b: mqtt.OnACLCheck, want: false},
		{desc: "OnSubscribe", b: mqtt.OnSubscribe, want: false},
		{desc: "OnPublished", b: mqtt.OnPublished, want: false},
		{desc: "OnPacketEncode", b: mqtt.OnPacketEncode, want: false},
		{desc: "OnDisconnect", b: mqtt.OnDisconnect, want: false},
		{desc: "StoredClients", b: mqtt.StoredClients, want: false},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			if got := h.Provides(tc.b); got != tc.want {
				t.Errorf("Provides(%d) = %v, want %v", tc.b, got, tc.want)
			}
		})
	}
}

func TestInitBadConfig(t *testing.T) {
	h := new(Hook)
	h.SetOpts(quiet, nil)
	if err := h.Init(map[string]any{}); !errors.Is(err, mqtt.ErrInvalidConfigType) {
		t.Fatalf("Init(map) = %v, want %v", err, mqtt.ErrInvalidConfigType)
	}
}

func TestInitMissingDependency(t *testing.T) {
	inline := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
	noInline := mqtt.New(&mqtt.Options{Logger: quiet})
	st := new(stubStore)
	tt := []struct {
		desc   string
		config any
	}{
		{desc: "nil options", config: nil},
		{desc: "typed nil options", config: (*Options)(nil)},
		{desc: "no server", config: &Options{Store: st}},
		{desc: "no store", config: &Options{Server: inline}},
		{desc: "nothing", config: &Options{}},
		{desc: "server without inline client", config: &Options{Server: noInline, Store: st}},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			h := new(Hook)
			h.SetOpts(quiet, nil)
			err := h.Init(tc.config)
			t.Cleanup(func() { h.Stop() })
			if !errors.Is(err, ErrMissingDependency) {
				t.Fatalf("Init = %v, want %v", err, ErrMissingDependency)
			}
			if st.changeHandler() != nil {
				t.Fatal("a failed Init installed a change handler")
			}
		})
	}
}

func TestInitUseDefaults(t *testing.T) {
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
	tt := []struct {
		desc        string
		timeout     time.Duration
		queue       int
		wantTimeout time.Duration
		wantQueue   int
	}{
		{desc: "zero values", wantTimeout: 10 * time.Second, wantQueue: 65536},
		{desc: "negative values", timeout: -time.Second, queue: -1, wantTimeout: 10 * time.Second, wantQueue: 65536},
		{desc: "explicit values kept", timeout: 3 * time.Second, queue: 12, wantTimeout: 3 * time.Second, wantQueue: 12},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			st := new(stubStore)
			h := new(Hook)
			h.SetOpts(quiet, nil)
			if err := h.Init(&Options{Server: server, Store: st, RequestTimeout: tc.timeout, QueueLength: tc.queue}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Stop() })
			if h.opts.RequestTimeout != tc.wantTimeout {
				t.Errorf("RequestTimeout = %v, want %v", h.opts.RequestTimeout, tc.wantTimeout)
			}
			if h.opts.QueueLength != tc.wantQueue {
				t.Errorf("QueueLength = %d, want %d", h.opts.QueueLength, tc.wantQueue)
			}
			if cap(h.changes) != tc.wantQueue {
				t.Errorf("change queue holds %d, want %d", cap(h.changes), tc.wantQueue)
			}
			if _, ok := h.clock.(clock.Real); !ok {
				t.Errorf("clock = %T, want clock.Real", h.clock)
			}
			if st.changeHandler() == nil {
				t.Error("Init did not install the change handler")
			}
		})
	}
}

func TestStopIsIdempotent(t *testing.T) {
	h := new(Hook)
	if err := h.Stop(); err != nil { // before Init
		t.Fatalf("Stop before Init = %v", err)
	}
	h = new(Hook)
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
	st := new(stubStore)
	if err := h.Init(&Options{Server: server, Store: st}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := h.Stop(); err != nil {
			t.Fatalf("Stop #%d = %v", i+1, err)
		}
	}
	// After Stop the change handler must not block the store's commit
	// path, even though nobody drains the queue any more.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < cap(h.changes)+1; i++ {
			st.changeHandler()([]store.Change{{ThingName: thing1}})
		}
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("the change handler blocked after Stop")
	}
}

func TestOnPublishPassesThrough(t *testing.T) {
	f := newFixture(t)
	f.createJob(t, "job-1", thing1)
	tt := []struct {
		desc   string
		topic  string
		inline bool
	}{
		{desc: "ordinary topic", topic: "sensors/thing-1/temperature"},
		{desc: "no dollar prefix", topic: "aws/things/thing-1/jobs/get"},
		{desc: "shadow topic", topic: "$aws/things/thing-1/shadow/get"},
		{desc: "things without jobs level", topic: "$aws/things/thing-1"},
		{desc: "event topic", topic: "$aws/events/job/job-1/completed"},
		{desc: "inline client on a request topic", topic: "$aws/things/thing-1/jobs/get", inline: true},
		{desc: "inline client on notify", topic: "$aws/things/thing-1/jobs/notify", inline: true},
		{desc: "inline client on an invalid jobs topic", topic: "$aws/things/thing-1/jobs/bogus", inline: true},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			cl, w := newPipeClient(t, f.server, thing1, tc.inline)
			in := publish(tc.topic, `{"clientToken":"c-1"}`, 1)
			out, err := f.hook.OnPublish(cl, in)
			if err != nil {
				t.Fatalf("OnPublish error = %v, want nil", err)
			}
			if out.TopicName != in.TopicName || string(out.Payload) != string(in.Payload) || out.PacketID != in.PacketID {
				t.Fatalf("OnPublish changed the packet: got %+v", out)
			}
			w.nothing(t, cl)
		})
	}
}

func TestOnPublishAccepted(t *testing.T) {
	const later = 100 * time.Second // requests run at 1717000100
	tt := []struct {
		desc    string
		noJob   bool
		topic   string
		payload string
		want    string
	}{
		{
			desc:    "get pending",
			topic:   "$aws/things/thing-1/jobs/get",
			payload: `{"clientToken":"c-1"}`,
			want:    `{"inProgressJobs":[],"queuedJobs":[{"jobId":"job-1","queuedAt":1717000000,"lastUpdatedAt":1717000000,"versionNumber":1,"executionNumber":1}],"timestamp":1717000100,"clientToken":"c-1"}`,
		},
		{
			desc:  "get pending with an empty payload",
			topic: "$aws/things/thing-1/jobs/get",
			want:  `{"inProgressJobs":[],"queuedJobs":[{"jobId":"job-1","queuedAt":1717000000,"lastUpdatedAt":1717000000,"versionNumber":1,"executionNumber":1}],"timestamp":1717000100}`,
		},
		{
			desc:    "get pending with nothing pending",
			noJob:   true,
			topic:   "$aws/things/thing-1/jobs/get",
			payload: `{}`,
			want:    `{"inProgressJobs":[],"queuedJobs":[],"timestamp":1717000100}`,
		},
		{
			desc:    "get pending with an empty clientToken echoed",
			noJob:   true,
			topic:   "$aws/things/thing-1/jobs/get",
			payload: `{"clientToken":""}`,
			want:    `{"inProgressJobs":[],"queuedJobs":[],"timestamp":1717000100,"clientToken":""}`,
		},
		{
			desc:    "start-next",
			topic:   "$aws/things/thing-1/jobs/start-next",
			payload: `{"statusDetails":{"step":"download"},"clientToken":"c-2"}`,
			want:    `{"execution":{"jobId":"job-1","thingName":"thing-1","status":"IN_PROGRESS","statusDetails":{"step":"download"},"queuedAt":1717000000,"startedAt":1717000100,"lastUpdatedAt":1717000100,"versionNumber":2,"executionNumber":1,"jobDocument":{"operation":"reboot"}},"timestamp":1717000100,"clientToken":"c-2"}`,
		},
		{
			desc:    "start-next with a step timeout as a numeric string",
			topic:   "$aws/things/thing-1/jobs/start-next",
			payload: `{"stepTimeoutInMinutes":"30"}`,
			want:    `{"execution":{"jobId":"job-1","thingName":"thing-1","status":"IN_PROGRESS","queuedAt":1717000000,"startedAt":1717000100,"lastUpdatedAt":1717000100,"approximateSecondsBeforeTimedOut":1800,"versionNumber":2,"executionNumber":1,"jobDocument":{"operation":"reboot"}},"timestamp":1717000100}`,
		},
		{
			desc:    "start-next with nothing pending",
			noJob:   true,
			topic:   "$aws/things/thing-1/jobs/start-next",
			payload: `{"clientToken":"c-3"}`,
			want:    `{"timestamp":1717000100,"clientToken":"c-3"}`,
		},
		{
			desc:    "describe $next keeps $next in the reply topic",
			topic:   "$aws/things/thing-1/jobs/$next/get",
			payload: `{"clientToken":"c-4"}`,
			want:    `{"execution":{"jobId":"job-1","thingName":"thing-1","status":"QUEUED","queuedAt":1717000000,"lastUpdatedAt":1717000000,"versionNumber":1,"executionNumber":1,"jobDocument":{"operation":"reboot"}},"timestamp":1717000100,"clientToken":"c-4"}`,
		},
		{
			desc:    "describe $next with nothing pending",
			noJob:   true,
			topic:   "$aws/things/thing-1/jobs/$next/get",
			payload: `{"clientToken":"c-5"}`,
			want:    `{"timestamp":1717000100,"clientToken":"c-5"}`,
		},
		{
			desc:    "describe without the document",
			topic:   "$aws/things/thing-1/jobs/job-1/get",
			payload: `{"includeJobDocument":false,"executionNumber":"1","clientToken":"c-6"}`,
			want:    `{"execution":{"jobId":"job-1","thingName":"thing-1","status":"QUEUED","queuedAt":1717000000,"lastUpdatedAt":1717000000,"versionNumber":1,"executionNumber":1},"timestamp":1717000100,"clientToken":"c-6"}`,
		},
		{
			desc:    "update with no include flags",
			topic:   "$aws/things/thing-1/jobs/job-1/update",
			payload: `{"status":"IN_PROGRESS","expectedVersion":"1","clientToken":"c-7"}`,
			want:    `{"timestamp":1717000100,"clientToken":"c-7"}`,
		},
		{
			desc:    "update with state and document",
			topic:   "$aws/things/thing-1/jobs/job-1/update",
			payload: `{"status":"IN_PROGRESS","statusDetails":{"progress":"40"},"expectedVersion":1,"includeJobExecutionState":true,"includeJobDocument":true,"clientToken":"c-8"}`,
			want:    `{"executionState":{"status":"IN_PROGRESS","statusDetails":{"progress":"40"},"versionNumber":2},"jobDocument":{"operation":"reboot"},"timestamp":1717000100,"clientToken":"c-8"}`,
		},
		{
			desc:    "update ignores unknown fields",
			topic:   "$aws/things/thing-1/jobs/job-1/update",
			payload: `{"status":"SUCCEEDED","jobId":"job-1","thingName":"thing-1","timestamp":5,"clientToken":"c-9"}`,
			want:    `{"timestamp":1717000100,"clientToken":"c-9"}`,
		},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			if !tc.noJob {
				f.createJob(t, "job-1", thing1)
			}
			f.clock.Advance(later)
			cl, w := newPipeClient(t, f.server, thing1, false)
			_, err := f.hook.OnPublish(cl, publish(tc.topic, tc.payload, 0))
			if !errors.Is(err, packets.CodeSuccessIgnore) {
				t.Fatalf("OnPublish error = %v, want %v", err, packets.CodeSuccessIgnore)
			}
			pk := w.next(t)
			if want := tc.topic + "/accepted"; pk.TopicName != want {
				t.Fatalf("reply on %q (payload %s), want %q", pk.TopicName, pk.Payload, want)
			}
			if string(pk.Payload) != tc.want {
				t.Errorf("reply payload\n got %s\nwant %s", pk.Payload, tc.want)
			}
			w.nothing(t, cl)
		})
	}
}

func TestOnPublishRejected(t *testing.T) {
	long := strings.Repeat("t", 65)
	tt := []struct {
		desc      string
		setup     func(t *testing.T, f *fixture)
		topic     string
		payload   string
		code      string
		token     *string // nil: no clientToken in the reply
		wantState string  // "" : no executionState in the reply
	}{
		{
			desc:    "not JSON",
			topic:   "$aws/things/thing-1/jobs/get",
			payload: `{"clientToken":"c-1"`,
			code:    CodeInvalidJSON,
		},
		{
			desc:    "embedded-C lone brace",
			topic:   "$aws/things/thing-1/jobs/job-1/get",
			payload: `}`,
			code:    CodeInvalidJSON,
		},
		{
			desc:    "JSON array",
			topic:   "$aws/things/thing-1/jobs/get",
			payload: `[{"clientToken":"c-1"}]`,
			code:    CodeInvalidRequest,
		},
		{
			desc:    "clientToken too long is refused and not echoed",
			topic:   "$aws/things/thing-1/jobs/get",
			payload: `{"clientToken":"` + long + `"}`,
			code:    CodeInvalidRequest,
		},
		{
			desc:    "update without status",
			topic:   "$aws/things/thing-1/jobs/job-1/update",
			payload: `{"clientToken":"c-2"}`,
			code:    CodeInvalidRequest,
			token:   ptr("c-2"),
		},
		{
			desc:    "update with status SUCCESS",
			topic:   "$aws/things/thing-1/jobs/job-1/update",
			payload: `{"status":"SUCCESS","clientToken":"c-3"}`,
			code:    CodeInvalidRequest,
			token:   ptr("c-3"),
		},
		{
			desc:    "update with status QUEUED",
			topic:   "$aws/things/thing-1/jobs/job-1/update",
			payload: `{"status":"QUEUED","clientToken":"c-4"}`,
			code:    CodeInvalidRequest,
			token:   ptr("c-4"),
		},
		{
			desc:    "update with a non-numeric expectedVersion",
			topic:   "$aws/things/thing-1/jobs/job-1/update",
			payload: `{"status":"IN_PROGRESS","expectedVersion":"one","clientToken":"c-5"}`,
			code:    CodeInvalidRequest,
			token:   ptr("c-5"),
		},
		{
			desc:    "start-next with a non-string statusDetails value",
			topic:   "$aws/things/thing-1/jobs/start-next",
			payload: `{"statusDetails":{"progress":40},"clientToken":"c-6"}`,
			code:    CodeInvalidRequest,
			token:   ptr("c-6"),
		},
		{
			desc:    "start-next with a step timeout out of range",
			topic:   "$aws/things/thing-1/jobs/start-next",
			payload: `{"stepTimeoutInMinutes":0,"clientToken":"c-7"}`,
			code:    CodeInvalidRequest,
			token:   ptr("c-7"),
		},
		{
			desc:    "describe of an unknown job",
			topic:   "$aws/things/thing-1/jobs/job-2/get",
			payload: `{"clientToken":"c-8"}`,
			code:    CodeResourceNotFound,
			token:   ptr("c-8"),
		},
		{
			desc:    "describe of an unknown execution number",
			topic:   "$aws/things/thing-1/jobs/job-1/get",
			payload: `{"executionNumber":"9","clientToken":"c-9"}`,
			code:    CodeResourceNotFound,
			token:   ptr("c-9"),
		},
		{
			desc:      "update with a stale expectedVersion",
			topic:     "$aws/things/thing-1/jobs/job-1/update",
			payload:   `{"status":"IN_PROGRESS","expectedVersion":"5","clientToken":"c-10"}`,
			code:      CodeVersionMismatch,
			token:     ptr("c-10"),
			wantState: `{"status":"QUEUED","versionNumber":1}`,
		},
		{
			desc: "update of a terminal execution",
			setup: func(t *testing.T, f *fixture) {
				_, err := f.store.UpdateJobExecution(context.Background(), &store.UpdateExecutionInput{
					ThingName: thing1, JobID: "job-1", Status: store.StatusSucceeded,
					StatusDetails: map[string]string{"progress": "100"},
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			topic:     "$aws/things/thing-1/jobs/job-1/update",
			payload:   `{"status":"IN_PROGRESS","clientToken":"c-11"}`,
			code:      CodeInvalidStateTransition,
			token:     ptr("c-11"),
			wantState: `{"status":"SUCCEEDED","statusDetails":{"progress":"100"},"versionNumber":2}`,
		},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			f.createJob(t, "job-1", thing1)
			if tc.setup != nil {
				tc.setup(t, f)
			}
			f.clock.Advance(time.Second)
			cl, w := newPipeClient(t, f.server, thing1, false)
			_, err := f.hook.OnPublish(cl, publish(tc.topic, tc.payload, 0))
			if !errors.Is(err, packets.CodeSuccessIgnore) {
				t.Fatalf("OnPublish error = %v, want %v", err, packets.CodeSuccessIgnore)
			}
			pk := w.next(t)
			if want := tc.topic + "/rejected"; pk.TopicName != want {
				t.Fatalf("reply on %q (payload %s), want %q", pk.TopicName, pk.Payload, want)
			}
			checkRejected(t, pk.Payload, tc.code, tc.token, tc.wantState, epoch.Unix()+1)
			w.nothing(t, cl)
		})
	}
}

// checkRejected checks a rejected payload: its code, a message, the echoed
// token, the timestamp and executionState (wantState "" means absent).
func checkRejected(t *testing.T, payload []byte, code string, token *string, wantState string, now int64) {
	t.Helper()
	m := fields(t, payload)
	var got struct {
		Code        string  `json:"code"`
		Message     string  `json:"message"`
		ClientToken *string `json:"clientToken"`
		Timestamp   int64   `json:"timestamp"`
	}
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatalf("rejected payload %s: %v", payload, err)
	}
	if got.Code != code {
		t.Errorf("code = %q, want %q (payload %s)", got.Code, code, payload)
	}
	if got.Message == "" {
		t.Errorf("no message in %s", payload)
	}
	switch {
	case token == nil && got.ClientToken != nil:
		t.Errorf("clientToken %q echoed, want none", *got.ClientToken)
	case token != nil && got.ClientToken == nil:
		t.Errorf("clientToken not echoed, want %q", *token)
	case token != nil && *got.ClientToken != *token:
		t.Errorf("clientToken = %q, want %q", *got.ClientToken, *token)
	}
	if got.Timestamp != now {
		t.Errorf("timestamp = %d, want %d", got.Timestamp, now)
	}
	state, ok := m["executionState"]
	switch {
	case wantState == "" && ok:
		t.Errorf("executionState %s present, want none", state)
	case wantState != "" && string(state) != wantState:
		t.Errorf("executionState = %s, want %s", state, wantState)
	}
	for k := range m {
		switch k {
		case "code", "message", "clientToken", "timestamp", "executionState":
		default:
			t.Errorf("unexpected key %q in %s", k, payload)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestOnPublishReplyAndNotifyTopicsDropped(t *testing.T) {
	f := newFixture(t)
	f.createJob(t, "job-1", thing1)
	tt := []struct {
		desc  string
		topic string
	}{
		{desc: "get accepted", topic: "$aws/things/thing-1/jobs/get/accepted"},
		{desc: "get rejected", topic: "$aws/things/thing-1/jobs/get/rejected"},
		{desc: "start-next accepted", topic: "$aws/things/thing-1/jobs/start-next/accepted"},
		{desc: "start-next rejected", topic: "$aws/things/thing-1/jobs/start-next/rejected"},
		{desc: "describe accepted", topic: "$aws/things/thing-1/jobs/job-1/get/accepted"},
		{desc: "describe $next rejected", topic: "$aws/things/thing-1/jobs/$next/get/rejected"},
		{desc: "update accepted", topic: "$aws/things/thing-1/jobs/job-1/update/accepted"},
		{desc: "update rejected", topic: "$aws/things/thing-1/jobs/job-1/update/rejected"},
		{desc: "notify", topic: "$aws/things/thing-1/jobs/notify"},
		{desc: "notify-next", topic: "$aws/things/thing-1/jobs/notify-next"},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			cl, w := newPipeClient(t, f.server, thing1, false)
			// A body that would be a valid request must not be served either.
			_, err := f.hook.OnPublish(cl, publish(tc.topic, `{"status":"SUCCEEDED","clientToken":"c-1"}`, 1))
			if !errors.Is(err, packets.CodeSuccessIgnore) {
				t.Fatalf("OnPublish error = %v, want %v", err, packets.CodeSuccessIgnore)
			}
			w.nothing(t, cl)
		})
	}
	out, err := f.store.DescribeJobExecution(context.Background(), &store.DescribeExecutionInput{ThingName: thing1, JobID: "job-1"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Execution.Status != store.StatusQueued || out.Execution.VersionNumber != 1 {
		t.Errorf("a dropped publish changed the execution: %s v%d", out.Execution.Status, out.Execution.VersionNumber)
	}
}

func TestOnPublishInvalidTopic(t *testing.T) {
	f := newFixture(t)
	f.clock.Advance(time.Second)
	tt := []struct {
		desc    string
		topic   string
		payload string
		token   *string
	}{
		{desc: "unknown operation", topic: "$aws/things/thing-1/jobs/bogus", payload: `{"clientToken":"c-1"}`, token: ptr("c-1")},
		{desc: "bare jobs level", topic: "$aws/things/thing-1/jobs", payload: `{"clientToken":"c-2"}`, token: ptr("c-2")},
		{desc: "trailing slash", topic: "$aws/things/thing-1/jobs/get/", payload: `{"clientToken":"c-3"}`, token: ptr("c-3")},
		{desc: "update of $next", topic: "$aws/things/thing-1/jobs/$next/update", payload: `{"status":"SUCCEEDED","clientToken":"c-4"}`, token: ptr("c-4")},
		{desc: "unknown reply word", topic: "$aws/things/thing-1/jobs/get/bogus", payload: `{"clientToken":"c-5"}`, token: ptr("c-5")},
		{desc: "too many levels", topic: "$aws/things/thing-1/jobs/job-1/get/accepted/more", payload: `{"clientToken":"c-6"}`, token: ptr("c-6")},
		{desc: "bad thing name", topic: "$aws/things/thing.1/jobs/get", payload: `{"clientToken":"c-7"}`, token: ptr("c-7")},
		{desc: "thing name too long", topic: "$aws/things/" + strings.Repeat("a", 129) + "/jobs/get", payload: `{"clientToken":"c-8"}`, token: ptr("c-8")},
		{desc: "bad job id", topic: "$aws/things/thing-1/jobs/job:1/get", payload: `{"clientToken":"c-9"}`, token: ptr("c-9")},
		{desc: "job id too long", topic: "$aws/things/thing-1/jobs/" + strings.Repeat("j", 65) + "/update", payload: `{"clientToken":"c-10"}`, token: ptr("c-10")},
		{desc: "invalid JSON body: no token to echo", topic: "$aws/things/thing-1/jobs/bogus", payload: `{"clientToken":`},
		{desc: "empty body", topic: "$aws/things/thing-1/jobs/bogus"},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			cl, w := newPipeClient(t, f.server, thing1, false)
			_, err := f.hook.OnPublish(cl, publish(tc.topic, tc.payload, 0))
			if !errors.Is(err, packets.CodeSuccessIgnore) {
				t.Fatalf("OnPublish error = %v, want %v", err, packets.CodeSuccessIgnore)
			}
			pk := w.next(t)
			if want := tc.topic + "/rejected"; pk.TopicName != want {
				t.Fatalf("reply on %q (payload %s), want %q", pk.TopicName, pk.Payload, want)
			}
			checkRejected(t, pk.Payload, CodeInvalidTopic, tc.token, "", epoch.Unix()+1)
			w.nothing(t, cl)
		})
	}
}

func TestOnPublishStoreErrors(t *testing.T) {
	tt := []struct {
		desc    string
		timeout time.Duration
		err     error
		code    string
	}{
		{desc: "throttled", err: store.Errorf(store.ErrThrottled, "slow down"), code: CodeRequestThrottled},
		{desc: "unavailable", err: store.Unavailable("commit", io.ErrShortWrite), code: CodeInternalError},
		{desc: "timeout", timeout: 20 * time.Millisecond, code: CodeInternalError},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			st := &stubStore{getPending: func(ctx context.Context, _ string) (*store.PendingExecutions, error) {
				if tc.err != nil {
					return nil, tc.err
				}
				<-ctx.Done() // a store that never answers in time
				return nil, ctx.Err()
			}}
			server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
			clk := clock.NewFake(epoch)
			h := new(Hook)
			if err := server.AddHook(h, &Options{Server: server, Store: st, Clock: clk, RequestTimeout: tc.timeout}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { server.Close() })
			cl, w := newPipeClient(t, server, thing1, false)
			_, err := h.OnPublish(cl, publish("$aws/things/thing-1/jobs/get", `{"clientToken":"c-1"}`, 0))
			if !errors.Is(err, packets.CodeSuccessIgnore) {
				t.Fatalf("OnPublish error = %v, want %v", err, packets.CodeSuccessIgnore)
			}
			pk := w.next(t)
			if pk.TopicName != "$aws/things/thing-1/jobs/get/rejected" {
				t.Fatalf("reply on %q, want .../get/rejected", pk.TopicName)
			}
			checkRejected(t, pk.Payload, tc.code, ptr("c-1"), "", epoch.Unix())
			if strings.Contains(string(pk.Payload), io.ErrShortWrite.Error()) {
				t.Errorf("the reply leaks the internal cause: %s", pk.Payload)
			}
		})
	}
}

func TestReplyQoS(t *testing.T) {
	tt := []struct {
		desc   string
		subQoS *byte // the requester's subscription to the reply topic, if any
		reqQoS byte
		want   byte
	}{
		{desc: "unsubscribed at QoS 0", reqQoS: 0, want: 0},
		{desc: "unsubscribed at QoS 1", reqQoS: 1, want: 1},
		{desc: "unsubscribed at QoS 2 is capped at 1", reqQoS: 2, want: 1},
		{desc: "subscription QoS 0 wins over request QoS 1", subQoS: ptr[byte](0), reqQoS: 1, want: 0},
		{desc: "subscription QoS 1 wins over request QoS 0", subQoS: ptr[byte](1), reqQoS: 0, want: 1},
		{desc: "subscription QoS 2 is capped at 1", subQoS: ptr[byte](2), reqQoS: 0, want: 1},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			cl, w := newPipeClient(t, f.server, thing1, false)
			if tc.subQoS != nil {
				f.server.Topics.Subscribe(cl.ID, packets.Subscription{Filter: "$aws/things/thing-1/jobs/get/+", Qos: *tc.subQoS})
			}
			_, err := f.hook.OnPublish(cl, publish("$aws/things/thing-1/jobs/get", `{}`, tc.reqQoS))
			if !errors.Is(err, packets.CodeSuccessIgnore) {
				t.Fatalf("OnPublish error = %v, want %v", err, packets.CodeSuccessIgnore)
			}
			pk := w.next(t)
			if pk.TopicName != "$aws/things/thing-1/jobs/get/accepted" {
				t.Fatalf("reply on %q", pk.TopicName)
			}
			if pk.FixedHeader.Qos != tc.want {
				t.Fatalf("reply QoS = %d, want %d", pk.FixedHeader.Qos, tc.want)
			}
			inflight, ok := cl.State.Inflight.Get(pk.PacketID)
			switch {
			case tc.want == 0 && cl.State.Inflight.Len() != 0:
				t.Errorf("a QoS 0 reply left %d packets in flight", cl.State.Inflight.Len())
			case tc.want == 1 && pk.PacketID == 0:
				t.Error("a QoS 1 reply has no packet id")
			case tc.want == 1 && (!ok || inflight.TopicName != pk.TopicName):
				t.Errorf("the QoS 1 reply %d is not tracked in flight", pk.PacketID)
			}
		})
	}
}

// TestReplyGoesToRequesterOnly checks that a reply is written to the
// requester and never published through the broker, where other
// subscribers to the reply topic would receive it.
func TestReplyGoesToRequesterOnly(t *testing.T) {
	f := newFixture(t)
	seen := make(chan string, 16)
	err := f.server.Subscribe("$aws/things/+/jobs/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		seen <- pk.TopicName
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, w := newPipeClient(t, f.server, thing1, false)
	for _, topic := range []string{"$aws/things/thing-1/jobs/get", "$aws/things/thing-1/jobs/bogus"} {
		if _, err := f.hook.OnPublish(cl, publish(topic, `{}`, 1)); !errors.Is(err, packets.CodeSuccessIgnore) {
			t.Fatalf("OnPublish(%s) error = %v", topic, err)
		}
		if pk := w.next(t); !strings.HasPrefix(pk.TopicName, topic+"/") {
			t.Fatalf("reply on %q, want a reply to %q", pk.TopicName, topic)
		}
	}
	w.nothing(t, cl)
	select {
	case topic := <-seen: // inline handlers run synchronously inside Publish
		t.Fatalf("a reply was published through the broker on %q", topic)
	default:
	}
}

type recordingObserver struct {
	mu       sync.Mutex
	requests []string
	notified chan string
}

func (o *recordingObserver) Request(op topics.Operation, code string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, op.String()+":"+code)
}

func (o *recordingObserver) Notification(kind string) { o.notified <- kind }

func TestObserverSeesRequests(t *testing.T) {
	obs := &recordingObserver{notified: make(chan string, 16)}
	f := newFixture(t, func(o *Options) { o.Observer = obs })
	cl, w := newPipeClient(t, f.server, thing1, false)
	for _, topic := range []string{
		"$aws/things/thing-1/jobs/get",
		"$aws/things/thing-1/jobs/job-9/get",
		"$aws/things/thing-1/jobs/bogus",
		"$aws/things/thing-1/jobs/notify", // dropped, not a request
		"elsewhere/topic",                 // not ours
	} {
		f.hook.OnPublish(cl, publish(topic, `{}`, 0))
	}
	for range 3 { // the two requests and the invalid topic are answered
		w.next(t)
	}
	w.nothing(t, cl)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"GetPendingJobExecutions:", "DescribeJobExecution:ResourceNotFound", ":InvalidTopic"}
	if strings.Join(obs.requests, " ") != strings.Join(want, " ") {
		t.Errorf("observed %q, want %q", obs.requests, want)
	}
}

// TestNotificationsPublished checks that a committed change reaches the
// broker as notify and notify-next, through the change handler Init
// installed.
func TestNotificationsPublished(t *testing.T) {
	obs := &recordingObserver{notified: make(chan string, 16)}
	f := newFixture(t, func(o *Options) { o.Observer = obs })
	got := make(chan packets.Packet, 16)
	for i, topic := range []string{topics.Notify(thing1), topics.NotifyNext(thing1)} {
		err := f.server.Subscribe(topic, i+1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) { got <- pk })
		if err != nil {
			t.Fatal(err)
		}
	}
	f.createJob(t, "job-1", thing1)
	want := map[string]string{
		topics.Notify(thing1):     `{"timestamp":1717000000,"jobs":{"QUEUED":[{"jobId":"job-1","queuedAt":1717000000,"lastUpdatedAt":1717000000,"versionNumber":1,"executionNumber":1}]}}`,
		topics.NotifyNext(thing1): `{"timestamp":1717000000,"execution":{"jobId":"job-1","status":"QUEUED","queuedAt":1717000000,"lastUpdatedAt":1717000000,"versionNumber":1,"executionNumber":1,"jobDocument":{"operation":"reboot"}}}`,
	}
	for range want {
		select {
		case pk := <-got:
			w, ok := want[pk.TopicName]
			if !ok {
				t.Fatalf("unexpected notification on %q", pk.TopicName)
			}
			if string(pk.Payload) != w {
				t.Errorf("%s payload\n got %s\nwant %s", pk.TopicName, pk.Payload, w)
			}
			delete(want, pk.TopicName)
		case <-time.After(waitFor):
			t.Fatalf("no notification on %v", want)
		}
	}
	kinds := map[string]bool{}
	for range 2 {
		select {
		case k := <-obs.notified:
			kinds[k] = true
		case <-time.After(waitFor):
			t.Fatal("the observer was not told about both notifications")
		}
	}
	if !kinds["notify"] || !kinds["notify-next"] {
		t.Errorf("observer saw %v, want notify and notify-next", kinds)
	}
}

// connect prepares a pipe client the way mochi's ParseConnect does for a
// device connecting with the given Receive Maximum (0: none, as in MQTT
// 3.1.1), and adds it to the server so that broker publishes reach it.
func connect(t *testing.T, f *fixture, version byte, receiveMaximum uint16) (*mqtt.Client, *pipeEnd) {
	t.Helper()
	cl, w := newPipeClientVersion(t, f.server, thing1, false, version)
	cl.Properties.Props.ReceiveMaximum = receiveMaximum
	cl.State.Inflight.ResetReceiveQuota(int32(f.server.Options.Capabilities.ReceiveMaximum))
	cl.State.Inflight.ResetSendQuota(int32(receiveMaximum))
	f.server.Clients.Add(cl)
	go cl.WriteLoop()
	t.Cleanup(func() { cl.Stop(nil) })
	return cl, w
}

// sendRequest sends a QoS 1 request through mochi's own publish path, as a
// connected device's would arrive, and returns the reply; it also checks
// that the request itself was acknowledged.
func sendRequest(t *testing.T, f *fixture, cl *mqtt.Client, w *pipeEnd, id uint16, topic string) packets.Packet {
	t.Helper()
	pk := publish(topic, `{}`, 1)
	pk.PacketID = id
	if err := f.server.InjectPacket(cl, pk); err != nil {
		t.Fatal(err)
	}
	var reply packets.Packet
	acked := false
	for range 2 {
		switch got := w.next(t); got.FixedHeader.Type {
		case packets.Publish:
			reply = got
		case packets.Puback:
			if got.PacketID != id {
				t.Fatalf("PUBACK for packet %d, want %d", got.PacketID, id)
			}
			acked = true
		default:
			t.Fatalf("unexpected packet type %d", got.FixedHeader.Type)
		}
	}
	if !acked || reply.TopicName != topic+"/accepted" || reply.FixedHeader.Qos != 1 {
		t.Fatalf("request %d: acked %v, reply on %q at QoS %d", id, acked, reply.TopicName, reply.FixedHeader.Qos)
	}
	return reply
}

// TestQoS1RepliesThroughServer runs QoS 1 requests through mochi's
// publish path with the device numbering its packet ids from 1, as MQTT
// clients do, while the broker numbers its own from 1 too. A QoS 1 reply
// must stay in flight until the device acknowledges it (deliver.go: "so
// that the client's PUBACK completes it and a resumed session gets it
// again"), and replies must not use up the device's Receive Maximum: the
// notifications of §6 must still reach it.
func TestQoS1RepliesThroughServer(t *testing.T) {
	const get = "$aws/things/thing-1/jobs/get"
	t.Run("reply stays in flight until the device acknowledges it", func(t *testing.T) {
		for _, version := range []byte{4, 5} {
			f := newFixture(t)
			if err := f.server.AddHook(new(auth.AllowHook), nil); err != nil {
				t.Fatal(err)
			}
			cl, w := connect(t, f, version, 0)
			for id := uint16(1); id <= 3; id++ {
				reply := sendRequest(t, f, cl, w, id, get)
				if _, ok := cl.State.Inflight.Get(reply.PacketID); !ok {
					t.Fatalf("MQTT %d: reply %d to request %d is not in flight before the device acknowledged it", version, reply.PacketID, id)
				}
				ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: reply.PacketID}
				if err := f.server.InjectPacket(cl, ack); err != nil {
					t.Fatal(err)
				}
				if _, ok := cl.State.Inflight.Get(reply.PacketID); ok {
					t.Fatalf("MQTT %d: reply %d still in flight after the device acknowledged it", version, reply.PacketID)
				}
			}
		}
	})
	t.Run("notifications still flow after more replies than Receive Maximum", func(t *testing.T) {
		f := newFixture(t)
		if err := f.server.AddHook(new(auth.AllowHook), nil); err != nil {
			t.Fatal(err)
		}
		const receiveMaximum = 2
		cl, w := connect(t, f, 5, receiveMaximum)
		f.server.Topics.Subscribe(cl.ID, packets.Subscription{Filter: topics.NotifyNext(thing1), Qos: 1})
		for id := uint16(1); id <= receiveMaximum+1; id++ {
			reply := sendRequest(t, f, cl, w, id, get)
			// The device acknowledges every reply at once.
			ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: reply.PacketID}
			if err := f.server.InjectPacket(cl, ack); err != nil {
				t.Fatal(err)
			}
		}
		f.createJob(t, "job-1", thing1)
		if pk := w.next(t); pk.TopicName != topics.NotifyNext(thing1) {
			t.Fatalf("got %q, want notify-next", pk.TopicName)
		}
	})
}

// TestOnPublishOtherThing checks STYLE.md lessons 2 and 3: the
// authenticated client (here cl.ID, as identity mtls makes it) is the
// publisher, and OnPublish rejects a request whose thing name differs from
// it, whatever the access hooks allowed (mochi ORs ACL results).
func TestOnPublishOtherThing(t *testing.T) {
	const other = "thing-2"
	tt := []struct {
		desc    string
		topic   string
		payload string
	}{
		{desc: "get pending", topic: "$aws/things/thing-2/jobs/get", payload: `{"clientToken":"c-1"}`},
		{desc: "start-next", topic: "$aws/things/thing-2/jobs/start-next", payload: `{"clientToken":"c-2"}`},
		{desc: "describe", topic: "$aws/things/thing-2/jobs/job-1/get", payload: `{"clientToken":"c-3"}`},
		{desc: "update", topic: "$aws/things/thing-2/jobs/job-1/update", payload: `{"status":"REJECTED","clientToken":"c-4"}`},
	}
	f := newFixture(t, func(o *Options) {
		o.Identity = func(cl *mqtt.Client) (string, bool) { return cl.ID, true }
	})
	f.createJob(t, "job-1", other)
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			cl, w := newPipeClient(t, f.server, thing1, false)
			_, err := f.hook.OnPublish(cl, publish(tc.topic, tc.payload, 0))
			if !errors.Is(err, packets.CodeSuccessIgnore) {
				t.Fatalf("OnPublish error = %v, want %v", err, packets.CodeSuccessIgnore)
			}
			pk := w.next(t)
			if want := tc.topic + "/rejected"; pk.TopicName != want {
				t.Fatalf("reply on %q (payload %s), want %q", pk.TopicName, pk.Payload, want)
			}
			var got struct {
				Code string `json:"code"`
			}
			if err := json.Unmarshal(pk.Payload, &got); err != nil || (got.Code != CodeInvalidRequest && got.Code != CodeInvalidTopic) {
				t.Errorf("rejected %s, want InvalidRequest or InvalidTopic", pk.Payload)
			}
		})
	}
	out, err := f.store.DescribeJobExecution(context.Background(), &store.DescribeExecutionInput{ThingName: other, JobID: "job-1"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Execution.Status != store.StatusQueued || out.Execution.VersionNumber != 1 {
		t.Errorf("thing-1 changed thing-2's execution: %s v%d", out.Execution.Status, out.Execution.VersionNumber)
	}
}

// TestThrottle answers requests over the thing's rate RequestThrottled,
// without running them, and leaves other things alone.
func TestThrottle(t *testing.T) {
	allowed := map[string]int{thing1: 1}
	f := newFixture(t, func(o *Options) {
		o.Throttle = func(thing string) bool {
			if allowed[thing] > 0 {
				allowed[thing]--
				return true
			}
			return thing != thing1
		}
	})
	f.createJob(t, "job-1", thing1)
	cl, w := newPipeClient(t, f.server, thing1, false)
	start := topics.Request(thing1, topics.OpStartNext, "")
	f.hook.OnPublish(cl, publish(start, `{"clientToken":"c-1"}`, 0))
	if pk := w.next(t); pk.TopicName != topics.Accepted(start) {
		t.Fatalf("first request: reply on %q (%s)", pk.TopicName, pk.Payload)
	}
	update := topics.Request(thing1, topics.OpUpdate, "job-1")
	f.hook.OnPublish(cl, publish(update, `{"status":"SUCCEEDED","clientToken":"c-2"}`, 0))
	pk := w.next(t)
	var got struct{ Code, ClientToken string }
	if err := json.Unmarshal(pk.Payload, &got); err != nil || pk.TopicName != topics.Rejected(update) ||
		got.Code != CodeRequestThrottled || got.ClientToken != "c-2" {
		t.Fatalf("throttled request: reply on %q: %s", pk.TopicName, pk.Payload)
	}
	out, err := f.store.DescribeJobExecution(context.Background(), &store.DescribeExecutionInput{ThingName: thing1, JobID: "job-1"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Execution.Status != store.StatusInProgress {
		t.Errorf("a throttled update ran: status %s", out.Execution.Status)
	}
}
