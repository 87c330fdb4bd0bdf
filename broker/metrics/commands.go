package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobsbroker/jobsbroker/jobshook"
	"github.com/jobsbroker/jobsbroker/store"
)

// commandMetrics are the jobsbroker_command_* metrics, fed by the MQTT
// hook (jobshook.CommandObserver). No label holds a thing, a client or a
// command.
type commandMetrics struct {
	executions *prometheus.CounterVec
	delivered  prometheus.Counter
	updates    *prometheus.CounterVec
}

var _ jobshook.CommandObserver = (*Metrics)(nil)

// commandUpdateResults are the results of a device's update: accepted, or
// the rejection's code.
var commandUpdateResults = []string{"accepted", jobshook.CmdInvalidTopic, jobshook.CmdInvalidJSON, jobshook.CmdInvalidRequest,
	jobshook.CmdInvalidStateTransition, jobshook.CmdResourceNotFound, jobshook.CmdInternalError,
	jobshook.CmdRequestThrottled, jobshook.CmdTerminalStateReached}

func newCommandMetrics(reg prometheus.Registerer) *commandMetrics {
	c := &commandMetrics{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "command_executions_total",
			Help: "Command executions reaching a status (CREATED when started, a device's report, TIMED_OUT by the timer), by status.",
		}, []string{"status"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "command_requests_delivered_total",
			Help: "Command requests published to at least one subscriber, or kept for an offline persistent session.",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "command_updates_total",
			Help: "Device publishes on commands topics answered (status reports, and topics answered InvalidTopic), by result (accepted or the rejection's error code).",
		}, []string{"result"}),
	}
	for _, s := range store.CommandStatuses {
		c.executions.WithLabelValues(string(s))
	}
	for _, r := range commandUpdateResults {
		c.updates.WithLabelValues(r)
	}
	reg.MustRegister(c.executions, c.delivered, c.updates)
	return c
}

// CommandStatus counts an execution reaching a status.
func (m *Metrics) CommandStatus(status string) { m.cmd.executions.WithLabelValues(status).Inc() }

// CommandRequestDelivered counts a delivered request.
func (m *Metrics) CommandRequestDelivered() { m.cmd.delivered.Inc() }

// CommandUpdate counts an answered device update.
func (m *Metrics) CommandUpdate(code string) {
	if code == "" {
		code = "accepted"
	}
	m.cmd.updates.WithLabelValues(code).Inc()
}
