package jobshook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

// AWS IoT commands over MQTT (COMMANDS.md §3). The hook publishes each new
// execution's request on the device's request topic (to every subscriber,
// a persistent session keeping it for an offline device until the
// execution times out), serves the device's status reports on
// .../response[/json|/cbor] and answers them on .../response/accepted or
// .../response/rejected to the reporting client alone, whether or not it
// subscribed, as it answers jobs requests.

// CommandObserver receives reports about commands; an Observer that also
// implements it (the metrics package's does) is told.
type CommandObserver interface {
	// CommandStatus reports an execution reaching status (a new one
	// CREATED, a device update, a timeout).
	CommandStatus(status string)
	// CommandRequestDelivered reports a request published to at least one
	// subscriber (or kept for an offline one).
	CommandRequestDelivered()
	// CommandUpdate reports a device update answered: code is "" when
	// accepted, else the rejection's error code.
	CommandUpdate(code string)
}

// Error codes of rejected command updates (COMMANDS.md §3.4).
const (
	CmdInvalidTopic           = "InvalidTopic"
	CmdInvalidJSON            = "InvalidJson"
	CmdInvalidRequest         = "InvalidRequest"
	CmdInvalidStateTransition = "InvalidStateTransition"
	CmdResourceNotFound       = "ResourceNotFound"
	CmdInternalError          = "InternalError"
	CmdRequestThrottled       = "RequestThrottled"
	CmdTerminalStateReached   = "TerminalStateReached"
)

// commandChanges carries committed execution changes to the command
// dispatcher.
type commandChanges chan []store.CommandChange

// initCommands installs the hook as the store's command handler, when the
// store keeps commands.
func (h *Hook) initCommands() {
	cs := h.opts.Commands
	if cs == nil {
		cs, _ = h.store.(store.CommandStore)
	}
	if cs == nil {
		return
	}
	h.cmdStore = cs
	h.cmdChanges = make(commandChanges, h.opts.QueueLength)
	cs.SetCommandHandler(func(cs []store.CommandChange) {
		select {
		case h.cmdChanges <- cs:
		case <-h.stop:
		}
	})
	h.wg.Add(1)
	go h.dispatchCommands()
}

func (h *Hook) dispatchCommands() {
	defer h.wg.Done()
	for {
		select {
		case batch := <-h.cmdChanges:
			for i := range batch {
				h.publishCommand(&batch[i])
			}
		case <-h.stop:
			return
		}
	}
}

func (h *Hook) commandObserver() CommandObserver {
	o, _ := h.opts.Observer.(CommandObserver)
	return o
}

// commandEventsOn reports whether execution events are published: while
// job-execution events are enabled (AWS IoT has no event configuration
// for commands).
func (h *Hook) commandEventsOn() bool {
	ec, ok := h.cmdStore.(interface {
		EventConfig() store.EventConfigurations
	})
	return ok && ec.EventConfig().JobExecution
}

// publishCommand publishes what a committed execution change calls for.
func (h *Hook) publishCommand(c *store.CommandChange) {
	x := c.Execution
	obs := h.commandObserver()
	if c.StatusChanged && obs != nil {
		obs.CommandStatus(string(x.Status))
	}
	if c.Created && c.Request != nil {
		h.publishRequest(x, c.Request, obs)
	}
	if c.StatusChanged && h.commandEventsOn() {
		topic := topics.CommandExecutionEvent(x.CommandID, string(x.Status))
		if hasSubscribers(h.server, topic) {
			payload, err := encode(commandEvent{
				ExecutionID: x.ExecutionID, Status: string(x.Status), StatusReason: x.StatusReason,
				EventType: "COMMAND_EXECUTION", CommandArn: h.arn("command/" + x.CommandID),
				TargetArn: h.commandTargetArn(x.Target), Timestamp: c.At.UnixMilli(),
			})
			h.send(topic, "event", payload, err)
		}
	}
}

type commandEvent struct {
	ExecutionID  string                     `json:"executionId"`
	Status       string                     `json:"status"`
	StatusReason *store.CommandStatusReason `json:"statusReason,omitempty"`
	EventType    string                     `json:"eventType"`
	CommandArn   string                     `json:"commandArn"`
	TargetArn    string                     `json:"targetArn"`
	Timestamp    int64                      `json:"timestamp"`
}

func (h *Hook) arn(resource string) string {
	return "arn:aws:iot:" + h.opts.Region + ":" + h.opts.Account + ":" + resource
}

func (h *Hook) commandTargetArn(t store.CommandTarget) string {
	if t.Kind == store.CommandTargetClient {
		return h.arn("client/" + t.ID)
	}
	return h.arn("thing/" + t.ID)
}

// CommandRequestExpiry is the Unix second (of the wall clock, which
// mochi and the session store expire messages by) that a request message
// is kept through, for an execution whose deadline is remaining after
// now: the last whole second that ends by the deadline, so that a
// persistent session never delivers a request after its execution timed
// out. ok is false once the deadline has passed, when nothing is sent.
//
// A connected device is sent the request while ok holds, even when the
// expiry is already behind now (a deadline within the next second): mochi
// announces the expiry left, less what has passed of the current second,
// and never less than 1, so a 10-second execution goes out with a message
// expiry of 9, as AWS IoT sends it, and a 1-second one with 1.
func CommandRequestExpiry(now time.Time, remaining time.Duration) (expiry int64, ok bool) {
	if remaining <= 0 {
		return 0, false
	}
	return now.Add(remaining).Unix() - 1, true
}

// publishRequest publishes a new execution's request at QoS 1, with the
// MQTT 5 content type and a message expiry counting down the execution's
// timeout; a persistent session keeps it for an offline device until
// then.
func (h *Hook) publishRequest(x *store.CommandExecution, req *store.CommandRequest, obs CommandObserver) {
	expiry, ok := CommandRequestExpiry(time.Now(), req.Expires.Sub(h.clock.Now()))
	if !ok {
		return // timed out before it could be sent
	}
	topic := topics.CommandRequestTopic(x.Target.Kind, x.Target.ID, x.ExecutionID, req.Format)
	n := h.fanOutWith(topic, req.Payload, func(pk *packets.Packet) {
		pk.Properties.ContentType = req.ContentType
		pk.Expiry = expiry
	})
	if n > 0 && obs != nil {
		obs.CommandRequestDelivered()
	}
	if h.Log.Enabled(context.Background(), slog.LevelDebug) {
		h.Log.Debug("command request", "execution", x.ExecutionID, "topic", topic, "subscribers", n)
	}
}

// onCommandPublish serves a publish under $aws/commands/. Status reports
// are served; a topic that maps to no commands API is answered
// InvalidTopic on the topic + "/rejected", as a jobs request is; anything
// else a device publishes there (a request, a reply) is dropped, never
// forwarded.
func (h *Hook) onCommandPublish(cl *mqtt.Client, pk packets.Packet) {
	t, err := topics.ParseCommand(pk.TopicName)
	if err != nil {
		h.answer(cl, pk, topics.Rejected(pk.TopicName), invalidCommandTopicReply(pk.TopicName))
		if obs := h.commandObserver(); obs != nil {
			obs.CommandUpdate(CmdInvalidTopic)
		}
		return
	}
	if t.Kind != topics.CommandResponse {
		h.Log.Debug("dropped a device publish on a commands topic", "client", cl.ID, "topic", pk.TopicName)
		return
	}
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	code, msg, accepted := h.runCommandUpdate(cl, pk, t)
	var payload []byte
	if code == "" {
		payload = commandReply(t.Format, map[string]string{"executionId": t.ExecutionID})
	} else {
		payload = commandReply(t.Format, map[string]string{"error": code, "errorMessage": clip(msg, maxErrorMessage), "executionId": t.ExecutionID})
	}
	h.answer(cl, pk, topics.CommandReplyTopic(t, accepted), payload)
	if obs := h.commandObserver(); obs != nil {
		obs.CommandUpdate(code)
	}
	if code == CmdInternalError {
		h.Log.Warn("command update failed", "client", cl.ID, "execution", t.ExecutionID, "error", msg)
	}
}

// invalidCommandTopicReply is the InvalidTopic rejection of a publish on
// topic, a commands topic that maps to no API. It names the execution
// when the topic's execution level holds a valid id, and repeats nothing
// else of the topic.
func invalidCommandTopicReply(topic string) []byte {
	v := map[string]string{"error": CmdInvalidTopic}
	msg := "the topic maps to no commands API; a device reports on $aws/commands/{things|clients}/{id}/executions/{executionId}/response/json (or /response/cbor)"
	// $aws/commands/{type}/{id}/executions/{executionId}/...
	if parts := strings.SplitN(strings.TrimPrefix(topic, topics.CommandsPrefix), "/", 5); len(parts) >= 4 && parts[2] == "executions" {
		if topics.ValidCommandExecutionID(parts[3]) {
			v["executionId"] = parts[3]
		} else {
			msg = "the execution id in the topic must be 1-64 characters from [a-zA-Z0-9_-]"
		}
	}
	v["errorMessage"] = msg
	return commandReply("json", v)
}

// maxErrorMessage bounds a rejection's errorMessage.
const maxErrorMessage = 1024

func commandReply(format string, v map[string]string) []byte {
	if format == "cbor" {
		b, _ := cbor.Marshal(v)
		return b
	}
	b, _ := json.Marshal(v)
	return b
}

func (h *Hook) runCommandUpdate(cl *mqtt.Client, pk packets.Packet, t topics.CommandTopic) (code, msg string, accepted bool) {
	cs := h.cmdStore
	if cs == nil {
		return CmdInternalError, "this broker does not keep commands", false
	}
	in, code, msg := decodeCommandUpdate(pk.Payload, t.Format)
	if code != "" {
		return code, msg, false
	}
	if h.opts.Identity != nil {
		id, enforced := h.opts.Identity(cl)
		switch {
		case enforced && t.DeviceType == topics.CommandThings && id != t.DeviceID:
			return CmdInvalidRequest, fmt.Sprintf("this connection is thing %s and may not act for thing %s", id, t.DeviceID), false
		case enforced && t.DeviceType == topics.CommandClients && cl.ID != t.DeviceID:
			return CmdInvalidRequest, fmt.Sprintf("this connection is client %s and may not act for client %s", cl.ID, t.DeviceID), false
		}
	}
	if h.opts.Throttle != nil && !h.opts.Throttle(t.DeviceID) {
		return CmdRequestThrottled, "device " + t.DeviceID + " sends requests faster than its rate limit; retry later", false
	}
	if h.draining.Load() {
		return CmdInternalError, "the broker is shutting down; retry on another connection", false
	}
	in.ExecutionID = t.ExecutionID
	in.Target = store.CommandTarget{Kind: t.DeviceType, ID: t.DeviceID}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.RequestTimeout)
	defer cancel()
	_, err := cs.UpdateCommandExecution(ctx, in)
	if err == nil {
		return "", "", true
	}
	return commandErrorCode(err), err.Error(), false
}

func commandErrorCode(err error) string {
	switch {
	case errors.Is(err, store.ErrInvalidRequest):
		return CmdInvalidRequest
	case errors.Is(err, store.ErrNotFound):
		return CmdResourceNotFound
	case errors.Is(err, store.ErrTerminalState):
		return CmdTerminalStateReached
	case errors.Is(err, store.ErrInvalidStateTransition):
		return CmdInvalidStateTransition
	case errors.Is(err, store.ErrThrottled):
		return CmdRequestThrottled
	}
	return CmdInternalError
}

// decodeCommandUpdate decodes a device's status report (JSON, or CBOR
// when format is "cbor"); it returns the rejection code and message when
// the report cannot be served. It reads a report as strictly as a jobs
// request: bytes that are not one UTF-8 JSON value (or one CBOR data
// item) are InvalidJson, and member names are exact, so that a wrong-case
// one is an unknown member and ignored, as the members the Java SDK adds
// (deviceType, deviceId, executionId) are. A report that decodes is
// checked (store.ValidateCommandUpdate) before its execution is looked up.
func decodeCommandUpdate(payload []byte, format string) (*store.UpdateCommandExecutionInput, string, string) {
	if format == "cbor" {
		j, err := cborToJSON(payload)
		if err != nil {
			return nil, CmdInvalidJSON, "the payload is not valid CBOR: " + err.Error()
		}
		payload = j
	} else if !utf8.Valid(payload) || !json.Valid(payload) {
		return nil, CmdInvalidJSON, "the payload is not valid JSON"
	}
	fields, ok := jsonObject(payload)
	if !ok {
		return nil, CmdInvalidRequest, "the payload must be a JSON object"
	}
	in := &store.UpdateCommandExecutionInput{}
	raw, ok := fields["status"]
	if !ok {
		return nil, CmdInvalidRequest, "status is required"
	}
	var status string
	if json.Unmarshal(raw, &status) != nil {
		return nil, CmdInvalidRequest, "status must be a string"
	}
	in.Status = store.CommandStatus(status)
	if raw, ok := fields["statusReason"]; ok {
		r, ok := jsonObject(raw)
		if !ok {
			return nil, CmdInvalidRequest, "statusReason must be an object"
		}
		code, ok := r["reasonCode"]
		if !ok {
			return nil, CmdInvalidRequest, "statusReason.reasonCode is required"
		}
		in.StatusReason = &store.CommandStatusReason{}
		if json.Unmarshal(code, &in.StatusReason.ReasonCode) != nil {
			return nil, CmdInvalidRequest, "statusReason.reasonCode must be a string"
		}
		if desc, ok := r["reasonDescription"]; ok && json.Unmarshal(desc, &in.StatusReason.ReasonDescription) != nil {
			return nil, CmdInvalidRequest, "statusReason.reasonDescription must be a string"
		}
	}
	if raw, ok := fields["result"]; ok {
		entries, ok := jsonObject(raw)
		if !ok {
			return nil, CmdInvalidRequest, "result must be an object"
		}
		in.Result = make(map[string]store.CommandResult, len(entries))
		for name, e := range entries {
			v, ok := jsonObject(e)
			if !ok {
				return nil, CmdInvalidRequest, "result " + name + " must be an object"
			}
			r, msg := decodeResult(name, v)
			if msg != "" {
				return nil, CmdInvalidRequest, msg
			}
			in.Result[name] = r
		}
	}
	if err := store.ValidateCommandUpdate(in); err != nil {
		return nil, CmdInvalidRequest, err.Error()
	}
	return in, "", ""
}

// jsonObject returns the members of a valid JSON value that is an object,
// with exact names; a member whose value is null is left out, as absent.
func jsonObject(raw []byte) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	for k, v := range m {
		if isNull(v) {
			delete(m, k)
		}
	}
	return m, true
}

// decodeResult decodes one result value: exactly one of the lower-case
// members s, b, bin. bin is base64, or (as the Java SDK sends it) an
// array of byte values.
func decodeResult(name string, v map[string]json.RawMessage) (store.CommandResult, string) {
	var r store.CommandResult
	if len(v) != 1 {
		return r, "result " + name + " must set exactly one of s, b, bin"
	}
	for k, raw := range v {
		switch k {
		case "s":
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return r, "result " + name + ": s must be a string"
			}
			r.S = &s
		case "b":
			var b bool
			if json.Unmarshal(raw, &b) != nil {
				return r, "result " + name + ": b must be a boolean"
			}
			r.B = &b
		case "bin":
			var s string
			if json.Unmarshal(raw, &s) == nil {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return r, "result " + name + ": bin must be base64"
				}
				r.BIN = b
				break
			}
			var nums []int
			if json.Unmarshal(raw, &nums) != nil {
				return r, "result " + name + ": bin must be base64 or an array of bytes"
			}
			r.BIN = make([]byte, len(nums))
			for i, n := range nums {
				if n < -128 || n > 255 {
					return r, "result " + name + ": bin holds a value that is not a byte"
				}
				r.BIN[i] = byte(n)
			}
		default:
			return r, "result " + name + ": " + k + " is not one of s, b, bin (lower case)"
		}
	}
	return r, ""
}

// cborToJSON re-encodes a CBOR status report as JSON: maps with text
// keys, byte strings as base64.
func cborToJSON(b []byte) ([]byte, error) {
	var v any
	dm, _ := cbor.DecOptions{MaxNestedLevels: 16, DefaultMapType: nil}.DecMode()
	if err := dm.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	var conv func(any) (any, error)
	conv = func(v any) (any, error) {
		switch t := v.(type) {
		case map[any]any:
			m := make(map[string]any, len(t))
			for k, e := range t {
				ks, ok := k.(string)
				if !ok {
					return nil, fmt.Errorf("a map key is not text")
				}
				c, err := conv(e)
				if err != nil {
					return nil, err
				}
				m[ks] = c
			}
			return m, nil
		case []any:
			out := make([]any, len(t))
			for i, e := range t {
				c, err := conv(e)
				if err != nil {
					return nil, err
				}
				out[i] = c
			}
			return out, nil
		case []byte:
			return base64.StdEncoding.EncodeToString(t), nil
		}
		return v, nil
	}
	c, err := conv(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(c)
}
