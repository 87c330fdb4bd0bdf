package controlplane

import (
	"context"
	"net/http"
	"slices"
	"strconv"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
)

// UpdateEventConfigurations and DescribeEventConfigurations: which
// $aws/events messages the broker publishes (PROTOCOL.md §12).

// The event types of the model. The broker publishes JOB and
// JOB_EXECUTION events; the others are always disabled.
const (
	eventJob          = "JOB"
	eventJobExecution = "JOB_EXECUTION"
)

var otherEventTypes = []string{
	"THING", "THING_GROUP", "THING_TYPE", "THING_GROUP_MEMBERSHIP", "THING_GROUP_HIERARCHY",
	"THING_TYPE_ASSOCIATION", "POLICY", "CERTIFICATE", "CA_CERTIFICATE",
}

// updateEventConfigurations enables or disables JOB and JOB_EXECUTION
// events; types left out keep their setting. Other event types of the
// model may be disabled (they are) but not enabled.
func (a *API) updateEventConfigurations(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, updateEventsErrors)
	var req updateEventConfigurationsRequest
	if e := awsapi.DecodeBody(r, &req); e != nil {
		return e
	}
	var job, jobExecution *bool
	for typ, c := range req.EventConfigurations {
		enabled := c.Enabled
		switch {
		case typ == eventJob:
			job = &enabled
		case typ == eventJobExecution:
			jobExecution = &enabled
		case !slices.Contains(otherEventTypes, typ):
			return invalid("eventConfigurations key " + strconv.Quote(typ) + " is not an event type")
		case enabled:
			return invalid("this broker publishes JOB and JOB_EXECUTION events only; " + typ + " events cannot be enabled")
		}
	}
	if err := a.opts.Store.UpdateEventConfigurations(ctx, job, jobExecution); err != nil {
		return err
	}
	awsapi.WriteEmpty(w)
	return nil
}

func (a *API) describeEventConfigurations(ctx context.Context, w http.ResponseWriter, _ *http.Request) (err error) {
	defer restrict(&err, describeEventsErrors)
	c, err := a.opts.Store.DescribeEventConfigurations(ctx)
	if err != nil {
		return err
	}
	out := wireEventConfigurations{
		EventConfigurations: map[string]wireEventConfiguration{
			eventJob:          {Enabled: c.Job},
			eventJobExecution: {Enabled: c.JobExecution},
		},
		CreationDate:     awsapi.Epoch(c.CreatedAt),
		LastModifiedDate: awsapi.Epoch(c.LastModifiedAt),
	}
	for _, t := range otherEventTypes {
		out.EventConfigurations[t] = wireEventConfiguration{}
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}
