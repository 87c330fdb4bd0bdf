package jobshook

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/wire"
)

// The MQTT replies and notifications (PROTOCOL.md §5-§7), built from the
// shapes in package wire. jobDocument is embedded as a JSON object.

// encode renders an MQTT payload. Unlike json.Marshal it leaves <, > and &
// as they are: a job document is embedded byte for byte as it was stored,
// so that store.MaxDocumentBytes bounds its share of the message (HTML
// escaping would make each of those characters six bytes).
func encode(v any) ([]byte, error) {
	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer encodeBuffers.Put(buf)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})), nil
}

var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

type pendingReply struct {
	InProgressJobs []wire.Summary `json:"inProgressJobs"`
	QueuedJobs     []wire.Summary `json:"queuedJobs"`
	Timestamp      int64          `json:"timestamp"`
	ClientToken    *string        `json:"clientToken,omitempty"`
}

type executionReply struct {
	Execution   *wire.Execution `json:"execution,omitempty"`
	Timestamp   int64           `json:"timestamp"`
	ClientToken *string         `json:"clientToken,omitempty"`
}

type updateReply struct {
	ExecutionState *wire.State     `json:"executionState,omitempty"`
	JobDocument    json.RawMessage `json:"jobDocument,omitempty"`
	Timestamp      int64           `json:"timestamp"`
	ClientToken    *string         `json:"clientToken,omitempty"`
}

type rejectedReply struct {
	Code           string      `json:"code"`
	Message        string      `json:"message"`
	ClientToken    *string     `json:"clientToken,omitempty"`
	Timestamp      int64       `json:"timestamp"`
	ExecutionState *wire.State `json:"executionState,omitempty"`
}

type notifyMessage struct {
	Timestamp int64                     `json:"timestamp"`
	Jobs      map[string][]wire.Summary `json:"jobs"`
}

type notifyNextMessage struct {
	Timestamp int64           `json:"timestamp"`
	Execution *wire.Execution `json:"execution,omitempty"`
}

// execution renders an execution for MQTT; doc, when not empty, is
// embedded as an object.
func execution(e *store.Execution, doc string, thing bool, now time.Time) *wire.Execution {
	var raw json.RawMessage
	if doc != "" {
		raw = json.RawMessage(doc)
	}
	return wire.NewExecution(e, raw, thing, now)
}

func summaries(list []store.PendingExecution) []wire.Summary { return wire.Summaries(list) }

// notifyPayload renders the notify message for a pending set: the first
// ten executions split by status, keys without members left out.
func notifyPayload(set store.PendingSet, now time.Time) ([]byte, error) {
	inProgress, queued := set.Split()
	m := notifyMessage{Timestamp: now.Unix(), Jobs: map[string][]wire.Summary{}}
	if len(inProgress) > 0 {
		m.Jobs[string(store.StatusInProgress)] = summaries(inProgress)
	}
	if len(queued) > 0 {
		m.Jobs[string(store.StatusQueued)] = summaries(queued)
	}
	return encode(m)
}

// notifyNextPayload renders the notify-next message; next is nil when
// nothing is pending.
func notifyNextPayload(next *store.Execution, doc string, now time.Time) ([]byte, error) {
	m := notifyNextMessage{Timestamp: now.Unix()}
	if next != nil {
		m.Execution = execution(next, doc, false, now)
	}
	return encode(m)
}
