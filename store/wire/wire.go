// Package wire holds the JSON shapes of the AWS IoT Jobs device API that
// MQTT (jobshook) and the HTTP data plane (broker/dataplane) share: JobExecution,
// JobExecutionSummary and JobExecutionState. Timestamps are integer epoch
// seconds and optional fields are omitted rather than null. The two
// transports differ only in jobDocument: a JSON object over MQTT, a JSON
// string over HTTP; the caller passes it already encoded.
package wire

import (
	"encoding/json"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// Execution is a JobExecution.
type Execution struct {
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

// Summary is a JobExecutionSummary, as pending lists show it.
type Summary struct {
	JobID           string `json:"jobId"`
	QueuedAt        int64  `json:"queuedAt"`
	StartedAt       int64  `json:"startedAt,omitempty"`
	LastUpdatedAt   int64  `json:"lastUpdatedAt"`
	VersionNumber   int64  `json:"versionNumber"`
	ExecutionNumber int64  `json:"executionNumber"`
}

// State is a JobExecutionState.
type State struct {
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails,omitempty"`
	VersionNumber int64             `json:"versionNumber"`
}

// Seconds is t in integer epoch seconds, or 0 for the zero time.
func Seconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// NewExecution renders e at time now (for approximateSecondsBeforeTimedOut).
// doc is the encoded job document, left out when nil; withThing says
// whether thingName is included (replies carry it, notify-next does not).
func NewExecution(e *store.Execution, doc json.RawMessage, withThing bool, now time.Time) *Execution {
	w := &Execution{
		JobID:           e.JobID,
		Status:          string(e.Status),
		StatusDetails:   e.StatusDetails,
		QueuedAt:        Seconds(e.QueuedAt),
		StartedAt:       Seconds(e.StartedAt),
		LastUpdatedAt:   Seconds(e.LastUpdatedAt),
		VersionNumber:   e.VersionNumber,
		ExecutionNumber: e.ExecutionNumber,
		JobDocument:     doc,
	}
	if withThing {
		w.ThingName = e.ThingName
	}
	if s, ok := e.SecondsBeforeTimedOut(now); ok {
		w.ApproximateSecondsBeforeTimedOut = &s
	}
	return w
}

// Summaries renders a pending list.
func Summaries(list []store.PendingExecution) []Summary {
	out := make([]Summary, len(list))
	for i, p := range list {
		out[i] = Summary{
			JobID:           p.JobID,
			QueuedAt:        Seconds(p.QueuedAt),
			StartedAt:       Seconds(p.StartedAt),
			LastUpdatedAt:   Seconds(p.LastUpdatedAt),
			VersionNumber:   p.VersionNumber,
			ExecutionNumber: p.ExecutionNumber,
		}
	}
	return out
}

// NewState renders an execution state; nil gives nil.
func NewState(s *store.ExecutionState) *State {
	if s == nil {
		return nil
	}
	return &State{Status: string(s.Status), StatusDetails: s.StatusDetails, VersionNumber: s.VersionNumber}
}

// StringDocument encodes a job document as a JSON string, as the HTTP data
// plane sends it.
func StringDocument(doc string) json.RawMessage {
	b, _ := json.Marshal(doc) // a string always encodes
	return b
}
