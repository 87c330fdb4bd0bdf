// Package jobshook is the mochi-mqtt hook that serves the AWS IoT Jobs
// device protocol. It consumes the request publishes under
// $aws/things/{thingName}/jobs/ (they are acknowledged but never fanned out
// or retained), runs them against a store.Store, answers the requesting
// client alone on .../accepted or .../rejected, and publishes notify and
// notify-next through the broker whenever a committed change calls for
// them, whichever transport or background task made it. It serves the
// device side of AWS IoT commands too (commands.go).
//
// Add it to a server built with InlineClient enabled:
//
//	server := mqtt.New(&mqtt.Options{InlineClient: true})
//	err := server.AddHook(new(jobshook.Hook), &jobshook.Options{Server: server, Store: st})
package jobshook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/jobshook/faults"
	"github.com/jobsbroker/jobsbroker/jobshook/presign"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/wire"
	"github.com/jobsbroker/jobsbroker/topics"
)

// ErrMissingDependency is returned by Init when Options lacks the server or
// the store.
var ErrMissingDependency = errors.New("jobshook needs Options with a Server (InlineClient enabled) and a Store")

// Options configures the hook.
type Options struct {
	// Server is the broker the hook is added to; it must have InlineClient
	// enabled, since notifications are published through it.
	Server *mqtt.Server `yaml:"-" json:"-"`
	// Store runs the operations.
	Store store.Store `yaml:"-" json:"-"`
	// Commands runs the AWS IoT commands operations; nil means Store, if
	// it keeps commands.
	Commands store.CommandStore `yaml:"-" json:"-"`
	// Send, if set, sends a QoS 1 reply or notification the hook has put
	// in the client's in-flight map; it may hold it back while the client
	// has its MQTT 5 Receive Maximum unacknowledged. nil means writing it
	// at once.
	Send func(cl *mqtt.Client, pk packets.Packet) error `yaml:"-" json:"-"`
	// Clock stamps replies and notifications; nil means the wall clock.
	Clock clock.Clock `yaml:"-" json:"-"`
	// RequestTimeout bounds one request (default 10 s); a request that
	// times out is answered InternalError and was not acknowledged.
	RequestTimeout time.Duration `yaml:"request_timeout" json:"request_timeout"`
	// QueueLength is how many committed changes may wait to be published
	// (default 65,536); a full queue slows commits down rather than losing
	// notifications.
	QueueLength int `yaml:"queue_length" json:"queue_length"`
	// Observer, if set, is told about every request and notification.
	Observer Observer `yaml:"-" json:"-"`
	// Logger, if set, is used instead of the logger mochi gives hooks.
	Logger *slog.Logger `yaml:"-" json:"-"`
	// Region and Account fill the thingArn of job-execution events
	// (defaults us-east-1 and 123456789012).
	Region  string `yaml:"region" json:"region"`
	Account string `yaml:"account" json:"account"`
	// Identity, if set, returns the thing a client is authenticated as,
	// with enforced false when the client's identity is taken on trust. A
	// request for another thing than an enforced identity is rejected
	// InvalidRequest and runs nothing, whatever the access rules let
	// through.
	Identity func(cl *mqtt.Client) (thing string, enforced bool) `yaml:"-" json:"-"`
	// Throttle, if set, is asked once per request with the thing it names;
	// false answers RequestThrottled and runs nothing.
	Throttle func(thing string) bool `yaml:"-" json:"-"`
	// Documents, if set, prepares every job document a device receives
	// (replies and notify-next): it replaces presigned-URL placeholders.
	Documents *presign.Deliverer `yaml:"-" json:"-"`
	// Sessions, if set, keeps the notifications of clients with a
	// persistent session until they acknowledge them: those sent while the
	// client is connected, and those for a client that is away.
	Sessions Keeper `yaml:"-" json:"-"`
	// Faults, if set, makes the hook misbehave on purpose (see
	// jobshook/faults): drop, delay or duplicate replies and
	// notifications, reject requests without running them, disconnect
	// clients after a request ran. While no fault is armed it costs one
	// atomic load per request and per notification.
	Faults *faults.Set `yaml:"-" json:"-"`
}

// Keeper keeps QoS 1 messages for clients with a persistent session
// (broker/sessions implements it).
type Keeper interface {
	// Keep holds pk for cl until cl acknowledges it: in flight when pk
	// carries the packet id it is being sent under, queued when cl is
	// offline. latest says pk makes an older unsent message on its topic
	// pointless. It reports false when cl has no persistent session.
	Keep(cl *mqtt.Client, pk packets.Packet, latest bool) bool
}

// Observer receives a report of every request the hook answers and every
// notification it publishes; the metrics package implements it.
type Observer interface {
	// Request reports an answered request: its operation, the rejection
	// code ("" when accepted) and how long it took.
	Request(op topics.Operation, code string, took time.Duration)
	// Notification reports a notify ("notify"), notify-next
	// ("notify-next") or event ("event") message published to at least
	// one subscriber.
	Notification(kind string)
}

const (
	defaultRequestTimeout = 10 * time.Second
	defaultQueueLength    = 1 << 16
)

// Hook serves the AWS IoT Jobs MQTT API inside a mochi broker.
type Hook struct {
	mqtt.HookBase
	opts       Options
	server     *mqtt.Server
	store      store.Store
	clock      clock.Clock
	changes    chan []store.Change
	stop       chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
	outbox     outbox // notifications waiting for each client
	namespaces namespaceSet
	cmdChanges commandChanges     // execution changes waiting to be published
	cmdStore   store.CommandStore // nil when the store keeps no commands

	inflight atomic.Int64 // requests being served
	draining atomic.Bool  // set by Drain: new requests are refused
}

// ID returns the hook's identifier.
func (h *Hook) ID() string { return "aws-iot-jobs" }

// Provides says the hook handles OnPublish only.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublish}, []byte{b})
}

// Init checks the options, installs the hook as the store's change handler
// and starts publishing notifications.
func (h *Hook) Init(config any) error {
	opts, ok := config.(*Options)
	if !ok && config != nil {
		return mqtt.ErrInvalidConfigType
	}
	if opts == nil || opts.Server == nil || opts.Store == nil || !opts.Server.Options.InlineClient {
		return ErrMissingDependency
	}
	h.opts = *opts
	if h.opts.RequestTimeout <= 0 {
		h.opts.RequestTimeout = defaultRequestTimeout
	}
	if h.opts.QueueLength <= 0 {
		h.opts.QueueLength = defaultQueueLength
	}
	if h.opts.Region == "" {
		h.opts.Region = "us-east-1"
	}
	if h.opts.Account == "" {
		h.opts.Account = "123456789012"
	}
	h.clock = h.opts.Clock
	if h.clock == nil {
		h.clock = clock.Real{}
	}
	if h.opts.Logger != nil {
		h.Log = h.opts.Logger
	}
	if h.Log == nil {
		h.Log = slog.New(slog.DiscardHandler)
	}
	h.server, h.store = h.opts.Server, h.opts.Store
	h.changes = make(chan []store.Change, h.opts.QueueLength)
	h.stop = make(chan struct{})
	h.outbox.queues = map[*mqtt.Client]*clientQueue{}
	h.store.SetChangeHandler(h.enqueue)
	h.wg.Add(1)
	go h.dispatch()
	h.initCommands()
	return nil
}

// Stop ends notification publishing.
func (h *Hook) Stop() error {
	h.once.Do(func() {
		if h.stop != nil {
			close(h.stop)
			h.wg.Wait()
		}
	})
	return nil
}

// OnPublish serves Jobs requests and lets every other publish through.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // our own notifications, or the embedding program's
	}
	if strings.HasPrefix(pk.TopicName, topics.CommandsPrefix) {
		h.onCommandPublish(cl, pk)
		return pk, packets.CodeSuccessIgnore
	}
	t, err := topics.Parse(pk.TopicName)
	if errors.Is(err, topics.ErrNotJobs) {
		return pk, nil
	}
	if err != nil {
		req, _ := decodeRequest(pk.Payload)
		h.answer(cl, pk, topics.Rejected(pk.TopicName), rejectedPayload(&rejection{
			code: CodeInvalidTopic, message: invalidTopicMessage(err),
		}, req.clientToken, h.clock.Now()))
		h.observe(topics.OpNone, CodeInvalidTopic, 0)
		return pk, packets.CodeSuccessIgnore
	}
	if t.Kind != topics.KindRequest {
		// Replies and notifications come from the broker alone; a device
		// publishing one is dropped, never forwarded.
		h.Log.Debug("dropped a device publish on a jobs reply topic", "client", cl.ID, "topic", pk.TopicName)
		return pk, packets.CodeSuccessIgnore
	}
	h.serve(cl, pk, t)
	return pk, packets.CodeSuccessIgnore
}

func invalidTopicMessage(err error) string {
	switch {
	case errors.Is(err, topics.ErrInvalidThingName):
		return "the thing name in the topic must be 1-128 characters from [a-zA-Z0-9:_-]"
	case errors.Is(err, topics.ErrInvalidJobID):
		return "the job id in the topic must be 1-64 characters from [a-zA-Z0-9_-]"
	}
	return "the topic maps to no jobs API"
}

// Drain stops serving new requests (they are answered InternalError, which
// clients retry) and waits until the requests in flight have been answered,
// or ctx ends.
func (h *Hook) Drain(ctx context.Context) error {
	h.draining.Store(true)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for h.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain jobs requests: %d still in flight: %w", h.inflight.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// serve runs one request and answers it.
func (h *Hook) serve(cl *mqtt.Client, pk packets.Packet, t topics.Topic) {
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	start := time.Now()
	req, rej := decodeRequest(pk.Payload)
	if rej == nil && h.opts.Identity != nil {
		if id, enforced := h.opts.Identity(cl); enforced && id != t.Thing {
			rej = invalid(fmt.Sprintf("this connection is thing %s and may not act for thing %s", id, t.Thing))
		}
	}
	if rej == nil && h.opts.Throttle != nil && !h.opts.Throttle(t.Thing) {
		rej = &rejection{code: CodeRequestThrottled, message: "thing " + t.Thing + " sends requests faster than its rate limit; retry later"}
	}
	if rej == nil && h.draining.Load() {
		rej = &rejection{code: CodeInternalError, message: "the broker is shutting down; retry on another connection"}
	}
	var fault *faults.Fault
	if rej == nil && h.opts.Faults.Armed() {
		if fault = h.opts.Faults.Request(t.Thing, cl.ID, t.Op); fault != nil && fault.Kind == faults.Reject {
			rej = &rejection{code: fault.Code, message: fault.RejectMessage()}
		}
	}
	var payload []byte
	if rej == nil {
		// Notifications this request causes wait until its reply is out.
		replied := make(chan struct{})
		defer close(replied)
		ctx, cancel := context.WithTimeout(store.WithNotifyAfter(context.Background(), replied), h.opts.RequestTimeout)
		payload, rej = h.run(ctx, req, t)
		cancel()
	}
	code := ""
	if rej != nil {
		code = rej.code
		payload = rejectedPayload(rej, req.clientToken, h.clock.Now())
		h.reply(cl, pk, t.Thing, topics.Rejected(pk.TopicName), payload, fault)
		if rej.code == CodeInternalError && (fault == nil || fault.Kind != faults.Reject) {
			h.Log.Warn("jobs request failed", "client", cl.ID, "thing", t.Thing, "op", t.Op.String(), "error", rej.message)
		}
	} else {
		h.reply(cl, pk, t.Thing, topics.Accepted(pk.TopicName), payload, fault)
	}
	took := time.Since(start)
	h.observe(t.Op, code, took)
	if h.Log.Enabled(context.Background(), slog.LevelDebug) {
		h.Log.Debug("jobs request", "client", cl.ID, "thing", t.Thing, "job", t.JobID, "op", t.Op.String(), "code", code, "duration", took)
	}
}

func (h *Hook) observe(op topics.Operation, code string, took time.Duration) {
	if h.opts.Observer != nil {
		h.opts.Observer.Request(op, code, took)
	}
}

// run executes the operation and renders the accepted payload.
func (h *Hook) run(ctx context.Context, req *request, t topics.Topic) ([]byte, *rejection) {
	token := req.clientToken
	switch t.Op {
	case topics.OpGetPending:
		out, err := h.store.GetPendingJobExecutions(ctx, t.Thing)
		if err != nil {
			return nil, rejectionFor(err)
		}
		return marshal(pendingReply{
			InProgressJobs: summaries(out.InProgress),
			QueuedJobs:     summaries(out.Queued),
			Timestamp:      h.clock.Now().Unix(),
			ClientToken:    token,
		})
	case topics.OpStartNext:
		in, rej := req.startNextInput(t.Thing)
		if rej != nil {
			return nil, rej
		}
		out, err := h.store.StartNextPendingJobExecution(ctx, in)
		if err != nil {
			return nil, rejectionFor(err)
		}
		return h.executionReply(ctx, out, token)
	case topics.OpDescribe:
		in, rej := req.describeInput(t.Thing, t.JobID)
		if rej != nil {
			return nil, rej
		}
		in.Namespace = t.Namespace
		out, err := h.store.DescribeJobExecution(ctx, in)
		if err != nil {
			return nil, rejectionFor(err)
		}
		return h.executionReply(ctx, out, token)
	case topics.OpUpdate:
		in, withState, rej := req.updateInput(t.Thing, t.JobID)
		if rej != nil {
			return nil, rej
		}
		out, err := h.store.UpdateJobExecution(ctx, in)
		if err != nil {
			return nil, rejectionFor(err)
		}
		reply := updateReply{Timestamp: h.clock.Now().Unix(), ClientToken: token}
		if withState {
			reply.ExecutionState = wire.NewState(out.Execution.State())
		}
		if in.IncludeJobDocument && out.Document != "" {
			reply.JobDocument = []byte(h.document(ctx, out.Execution, out.Document))
		}
		return marshal(reply)
	}
	return nil, &rejection{code: CodeInvalidTopic, message: "the topic maps to no jobs API"}
}

func (h *Hook) executionReply(ctx context.Context, out *store.ExecutionOutput, token *string) ([]byte, *rejection) {
	doc := h.document(ctx, out.Execution, out.Document)
	now := h.clock.Now()
	reply := executionReply{Timestamp: now.Unix(), ClientToken: token}
	if out.Execution != nil {
		reply.Execution = execution(out.Execution, doc, true, now)
	}
	return marshal(reply)
}

// document returns an execution's job document as the device receives it
// (see Options.Documents).
func (h *Hook) document(ctx context.Context, e *store.Execution, doc string) string {
	if e == nil {
		return doc
	}
	return h.opts.Documents.Document(ctx, e.JobID, e.JobSeq, doc)
}

func marshal(v any) ([]byte, *rejection) {
	b, err := encode(v)
	if err != nil {
		return nil, &rejection{code: CodeInternalError, message: "the reply could not be encoded"}
	}
	return b, nil
}

// maxMessageBytes bounds the message of a rejection: messages quote what a
// request named (a status, a key), and a rejected value is never echoed
// back whole.
const maxMessageBytes = 512

func rejectedPayload(rej *rejection, token *string, now time.Time) []byte {
	msg := clip(rej.message, maxMessageBytes)
	b, err := encode(rejectedReply{
		Code:           rej.code,
		Message:        msg,
		ClientToken:    token,
		Timestamp:      now.Unix(),
		ExecutionState: wire.NewState(rej.state),
	})
	if err != nil {
		// Only a broken statusDetails map could fail; answer without it.
		b, _ = encode(rejectedReply{Code: rej.code, Message: msg, ClientToken: token, Timestamp: now.Unix()})
	}
	return b
}

// clip shortens s to at most max bytes, cut at a character boundary and
// marked with "...".
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max-len("...")], "") + "..."
}
