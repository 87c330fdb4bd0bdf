package jobshook

import (
	"encoding/json"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// The wire shapes of the MQTT Jobs API (PROTOCOL.md §4-§7). Timestamps are
// integer epoch seconds; optional fields are omitted rather than null;
// jobDocument is embedded as a JSON object.

type wireExecution struct {
	JobID                            string            `json:"jobId"`
	ThingName                        string            `json:"thingName,omitempty"`
	Status                           string            `json:"status"`
	StatusDetails                    map[string]string `json:"statusDetails,omitempty"`
	QueuedAt                         int64             `json:"queuedAt"`
	StartedAt                        int64             `json:"startedAt,omitempty"`
	LastUpdatedAt                    int64             `json:"lastUpdatedAt"`
	ApproximateSecondsBeforeTimedOut *int64            `json:"approximateSecondsBeforeTimedOut,omitempty"`
	VersionNumber                    int64             `json:"versionNumber"`
	ExecutionNumber                  int64             `json:"executionNumber"`
	JobDocument                      json.RawMessage   `json:"jobDocument,omitempty"`
}

type wireSummary struct {
	JobID           string `json:"jobId"`
	QueuedAt        int64  `json:"queuedAt"`
	StartedAt       int64  `json:"startedAt,omitempty"`
	LastUpdatedAt   int64  `json:"lastUpdatedAt"`
	VersionNumber   int64  `json:"versionNumber"`
	ExecutionNumber int64  `json:"executionNumber"`
}

type wireState struct {
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails,omitempty"`
	VersionNumber int64             `json:"versionNumber"`
}

type pendingReply struct {
	InProgressJobs []wireSummary `json:"inProgressJobs"`
	QueuedJobs     []wireSummary `json:"queuedJobs"`
	Timestamp      int64         `json:"timestamp"`
	ClientToken    *string       `json:"clientToken,omitempty"`
}

type executionReply struct {
	Execution   *wireExecution `json:"execution,omitempty"`
	Timestamp   int64          `json:"timestamp"`
	ClientToken *string        `json:"clientToken,omitempty"`
}

type updateReply struct {
	ExecutionState *wireState      `json:"executionState,omitempty"`
	JobDocument    json.RawMessage `json:"jobDocument,omitempty"`
	Timestamp      int64           `json:"timestamp"`
	ClientToken    *string         `json:"clientToken,omitempty"`
}

type rejectedReply struct {
	Code           string     `json:"code"`
	Message        string     `json:"message"`
	ClientToken    *string    `json:"clientToken,omitempty"`
	Timestamp      int64      `json:"timestamp"`
	ExecutionState *wireState `json:"executionState,omitempty"`
}

type notifyMessage struct {
	Timestamp int64                    `json:"timestamp"`
	Jobs      map[string][]wireSummary `json:"jobs"`
}

type notifyNextMessage struct {
	Timestamp int64          `json:"timestamp"`
	Execution *wireExecution `json:"execution,omitempty"`
}

func seconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// execution renders an execution. doc is the job document, embedded when
// not empty; thing says whether thingName is included (replies carry it,
// notify-next does not).
func execution(e *store.Execution, doc string, thing bool, now time.Time) *wireExecution {
	w := &wireExecution{
		JobID:           e.JobID,
		Status:          string(e.Status),
		StatusDetails:   e.StatusDetails,
		QueuedAt:        seconds(e.QueuedAt),
		StartedAt:       seconds(e.StartedAt),
		LastUpdatedAt:   seconds(e.LastUpdatedAt),
		VersionNumber:   e.VersionNumber,
		ExecutionNumber: e.ExecutionNumber,
	}
	if thing {
		w.ThingName = e.ThingName
	}
	if s, ok := e.SecondsBeforeTimedOut(now); ok {
		w.ApproximateSecondsBeforeTimedOut = &s
	}
	if doc != "" {
		w.JobDocument = json.RawMessage(doc)
	}
	return w
}

func summaries(list []store.PendingExecution) []wireSummary {
	out := make([]wireSummary, len(list))
	for i, p := range list {
		out[i] = wireSummary{
			JobID:           p.JobID,
			QueuedAt:        seconds(p.QueuedAt),
			StartedAt:       seconds(p.StartedAt),
			LastUpdatedAt:   seconds(p.LastUpdatedAt),
			VersionNumber:   p.VersionNumber,
			ExecutionNumber: p.ExecutionNumber,
		}
	}
	return out
}

func state(s *store.ExecutionState) *wireState {
	if s == nil {
		return nil
	}
	return &wireState{Status: string(s.Status), StatusDetails: s.StatusDetails, VersionNumber: s.VersionNumber}
}

// notifyPayload renders the notify message for a pending set: the first
// ten executions split by status, keys without members left out.
func notifyPayload(set store.PendingSet, now time.Time) ([]byte, error) {
	inProgress, queued := set.Split()
	m := notifyMessage{Timestamp: now.Unix(), Jobs: map[string][]wireSummary{}}
	if len(inProgress) > 0 {
		m.Jobs[string(store.StatusInProgress)] = summaries(inProgress)
	}
	if len(queued) > 0 {
		m.Jobs[string(store.StatusQueued)] = summaries(queued)
	}
	return json.Marshal(m)
}

// notifyNextPayload renders the notify-next message; next is nil when
// nothing is pending.
func notifyNextPayload(next *store.Execution, doc string, now time.Time) ([]byte, error) {
	m := notifyNextMessage{Timestamp: now.Unix()}
	if next != nil {
		m.Execution = execution(next, doc, false, now)
	}
	return json.Marshal(m)
}
