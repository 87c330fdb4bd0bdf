package jobshook

import (
	"strings"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Event messages ($aws/events/..., PROTOCOL.md §12). As in AWS's examples,
// timestamp is in epoch seconds and the job's createdAt, lastUpdatedAt and
// completedAt in epoch milliseconds.

type jobEventMessage struct {
	EventType         string               `json:"eventType"`
	EventID           string               `json:"eventId"`
	Timestamp         int64                `json:"timestamp"`
	Operation         string               `json:"operation"`
	JobID             string               `json:"jobId"`
	Status            string               `json:"status"`
	TargetSelection   string               `json:"targetSelection,omitempty"`
	Targets           []string             `json:"targets,omitempty"`
	Description       string               `json:"description,omitempty"`
	Comment           string               `json:"comment,omitempty"`
	CompletedAt       int64                `json:"completedAt,omitempty"`
	CreatedAt         int64                `json:"createdAt,omitempty"`
	LastUpdatedAt     int64                `json:"lastUpdatedAt,omitempty"`
	JobProcessDetails *eventProcessDetails `json:"jobProcessDetails,omitempty"`
}

type eventProcessDetails struct {
	NumberOfCanceledThings  int64 `json:"numberOfCanceledThings"`
	NumberOfRejectedThings  int64 `json:"numberOfRejectedThings"`
	NumberOfFailedThings    int64 `json:"numberOfFailedThings"`
	NumberOfRemovedThings   int64 `json:"numberOfRemovedThings"`
	NumberOfSucceededThings int64 `json:"numberOfSucceededThings"`
}

type executionEventMessage struct {
	EventType     string            `json:"eventType"`
	EventID       string            `json:"eventId"`
	Timestamp     int64             `json:"timestamp"`
	Operation     string            `json:"operation"`
	JobID         string            `json:"jobId"`
	ThingArn      string            `json:"thingArn"`
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails,omitempty"`
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// eventMessage renders an event; it returns its topic and payload.
func (h *Hook) eventMessage(ev *store.Event) (string, []byte, error) {
	if ev.Kind == store.EventJobExecution {
		e := ev.Execution
		status := string(e.Status)
		if ev.Operation == "deleted" {
			status = "DELETED"
		}
		b, err := encode(executionEventMessage{
			EventType: "JOB_EXECUTION", EventID: ev.ID, Timestamp: ev.At.Unix(), Operation: ev.Operation,
			JobID: e.JobID, ThingArn: h.thingArn(e.ThingName), Status: status, StatusDetails: e.StatusDetails,
		})
		return topics.JobExecutionEvent(e.JobID, ev.Operation), b, err
	}
	j := ev.Job
	m := jobEventMessage{
		EventType: "JOB", EventID: ev.ID, Timestamp: ev.At.Unix(), Operation: ev.Operation, JobID: j.JobID,
		Status: strings.ToUpper(ev.Operation), TargetSelection: string(j.TargetSelection), Targets: j.Targets,
		Description: j.Description, CreatedAt: millis(j.CreatedAt), LastUpdatedAt: millis(j.LastUpdatedAt),
	}
	if ev.Operation == "completed" {
		p := j.ProcessDetails
		m.CompletedAt = millis(j.CompletedAt)
		m.JobProcessDetails = &eventProcessDetails{
			NumberOfCanceledThings: p.Canceled, NumberOfRejectedThings: p.Rejected, NumberOfFailedThings: p.Failed,
			NumberOfRemovedThings: p.Removed, NumberOfSucceededThings: p.Succeeded,
		}
	} else {
		m.Comment = j.Comment
	}
	b, err := encode(m)
	return topics.JobEvent(j.JobID, ev.Operation), b, err
}

func (h *Hook) thingArn(thing string) string {
	return "arn:aws:iot:" + h.opts.Region + ":" + h.opts.Account + ":thing/" + thing
}
