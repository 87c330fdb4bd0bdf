// Package topics parses and builds the MQTT topic names of the AWS IoT Jobs
// device protocol: the request topics under $aws/things/{thingName}/jobs/,
// their /accepted and /rejected replies, the notify and notify-next streams,
// and the $aws/events/ topics of job and job-execution events.
//
// The package is pure: it imports nothing from the broker, so every rule
// about topic names lives here and is tested here.
package topics

import (
	"errors"
	"strings"
)

// Operation is one of the four device operations of the Jobs protocol.
type Operation uint8

// The device operations, named after their AWS API names.
const (
	OpNone Operation = iota
	// OpGetPending is GetPendingJobExecutions ($aws/things/T/jobs/get).
	OpGetPending
	// OpStartNext is StartNextPendingJobExecution ($aws/things/T/jobs/start-next).
	OpStartNext
	// OpDescribe is DescribeJobExecution ($aws/things/T/jobs/J/get); J may be $next.
	OpDescribe
	// OpUpdate is UpdateJobExecution ($aws/things/T/jobs/J/update).
	OpUpdate
)

var opNames = [...]string{"", "GetPendingJobExecutions", "StartNextPendingJobExecution", "DescribeJobExecution", "UpdateJobExecution"}

// String returns the AWS API name of the operation.
func (o Operation) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "unknown"
}

// Kind says what role a topic plays in the protocol.
type Kind uint8

// The kinds of Jobs topics.
const (
	KindNone Kind = iota
	// KindRequest is a topic a device publishes a request on.
	KindRequest
	// KindAccepted is the reply topic for a successful request.
	KindAccepted
	// KindRejected is the reply topic for a failed request.
	KindRejected
	// KindNotify is $aws/things/T/jobs/notify.
	KindNotify
	// KindNotifyNext is $aws/things/T/jobs/notify-next.
	KindNotifyNext
)

// Next is the job id placeholder that addresses the next pending execution
// in DescribeJobExecution.
const Next = "$next"

const (
	thingsPrefix = "$aws/things/"
	jobsLevel    = "jobs"
	// MaxThingNameLength is the longest thing name AWS IoT accepts.
	MaxThingNameLength = 128
	// MaxJobIDLength is the longest job id AWS IoT accepts.
	MaxJobIDLength = 64
)

// Errors returned by Parse. ErrNotJobs means the topic is outside the Jobs
// namespace and belongs to someone else; the others mean the topic is in the
// namespace but cannot be served, which AWS answers with InvalidTopic.
var (
	// ErrNotJobs is returned for topics outside $aws/things/{thingName}/jobs.
	ErrNotJobs = errors.New("not a jobs topic")
	// ErrInvalidTopic is returned for a topic in the Jobs namespace that maps to no API.
	ErrInvalidTopic = errors.New("topic maps to no jobs API")
	// ErrInvalidThingName is returned when the thing name segment breaks the naming rules.
	ErrInvalidThingName = errors.New("invalid thing name")
	// ErrInvalidJobID is returned when the job id segment breaks the naming rules.
	ErrInvalidJobID = errors.New("invalid job id")
)

// Topic is a parsed Jobs topic.
type Topic struct {
	Thing string    // thing name, as it appears in the topic
	JobID string    // job id for OpDescribe and OpUpdate topics; may be Next for OpDescribe
	Op    Operation // the operation a request or reply topic belongs to; OpNone for notify topics
	Kind  Kind      // request, reply or notification
	// Namespace is the job namespace of a namespaced topic (see
	// NotifyNamespace), "" for the others.
	Namespace string
}

// namespacePrefix begins the namespace segment of namespaced topics.
const namespacePrefix = "namespace-"

// ValidNamespace reports whether s is a legal namespaceId: one or more
// characters from [a-zA-Z0-9_-].
func ValidNamespace(s string) bool { return validID(s, len(s), false) }

// NotifyNamespace returns the notify topic of a job namespace,
// $aws/things/{thing}/jobs/notify-namespace-{namespace}: where AWS IoT
// sends the notify messages about jobs created with that namespaceId.
func NotifyNamespace(thing, namespace string) string {
	return thingsPrefix + thing + "/jobs/notify-" + namespacePrefix + namespace
}

// NotifyNextNamespace returns the notify-next topic of a job namespace,
// $aws/things/{thing}/jobs/notify-next-namespace-{namespace}.
func NotifyNextNamespace(thing, namespace string) string {
	return thingsPrefix + thing + "/jobs/notify-next-" + namespacePrefix + namespace
}

// RequestNamespace returns the namespaced request topic of OpDescribe or
// OpUpdate, $aws/things/{thing}/jobs/{jobID}/namespace-{namespace}/get (or
// /update), as AWS IoT Greengrass publishes them.
func RequestNamespace(thing string, op Operation, jobID, namespace string) string {
	base := thingsPrefix + thing + "/" + jobsLevel + "/" + jobID + "/" + namespacePrefix + namespace
	switch op {
	case OpDescribe:
		return base + "/get"
	case OpUpdate:
		return base + "/update"
	}
	return ""
}

// namespaced parses the namespace segment of a namespaced topic.
func namespaced(t Topic, segment string) (Topic, bool) {
	ns, ok := strings.CutPrefix(segment, namespacePrefix)
	if !ok || !ValidNamespace(ns) {
		return t, false
	}
	t.Namespace = ns
	return t, true
}

// Parse splits a topic name into its Jobs parts. A topic outside
// $aws/things/{thingName}/jobs returns ErrNotJobs. A topic inside that
// namespace that is not a valid request, reply or notification topic returns
// ErrInvalidTopic, ErrInvalidThingName or ErrInvalidJobID, all three of which
// wrap ErrInvalidTopic so that callers can answer them with one code. On
// those errors Topic.Thing is still set when the thing segment was present.
func Parse(topic string) (Topic, error) {
	rest, ok := strings.CutPrefix(topic, thingsPrefix)
	if !ok {
		return Topic{}, ErrNotJobs
	}
	thing, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return Topic{}, ErrNotJobs
	}
	level, rest, hasMore := strings.Cut(rest, "/")
	if level != jobsLevel {
		return Topic{}, ErrNotJobs
	}
	t := Topic{Thing: thing}
	if !ValidThingName(thing) {
		return t, invalidThing
	}
	if !hasMore {
		return t, ErrInvalidTopic
	}
	parts := splitN(rest)
	switch len(parts) {
	case 1:
		switch parts[0] {
		case "get":
			t.Op, t.Kind = OpGetPending, KindRequest
		case "start-next":
			t.Op, t.Kind = OpStartNext, KindRequest
		case "notify":
			t.Kind = KindNotify
		case "notify-next":
			t.Kind = KindNotifyNext
		default:
			if rest, ok := strings.CutPrefix(parts[0], "notify-next-"); ok {
				if t, ok = namespaced(t, rest); ok {
					t.Kind = KindNotifyNext
					return t, nil
				}
			} else if rest, ok := strings.CutPrefix(parts[0], "notify-"); ok {
				if t, ok = namespaced(t, rest); ok {
					t.Kind = KindNotify
					return t, nil
				}
			}
			return t, ErrInvalidTopic
		}
		return t, nil
	case 2:
		// "{J}/get" and "{J}/update" are requests for job J (J may be "get"
		// or "start-next"); "get/accepted" and friends are replies.
		switch parts[1] {
		case "get":
			return jobRequest(t, parts[0], OpDescribe, KindRequest)
		case "update":
			return jobRequest(t, parts[0], OpUpdate, KindRequest)
		}
		kind := replyKind(parts[1])
		if kind == KindNone {
			return t, ErrInvalidTopic
		}
		switch parts[0] {
		case "get":
			t.Op = OpGetPending
		case "start-next":
			t.Op = OpStartNext
		default:
			return t, ErrInvalidTopic
		}
		t.Kind = kind
		return t, nil
	case 3:
		if nt, ok := namespaced(t, parts[1]); ok {
			// "{J}/namespace-{N}/get" and ".../update", as Greengrass
			// publishes them.
			return namespacedRequest(nt, parts[0], parts[2], KindRequest)
		}
		kind := replyKind(parts[2])
		if kind == KindNone {
			return t, ErrInvalidTopic
		}
		switch parts[1] {
		case "get":
			return jobRequest(t, parts[0], OpDescribe, kind)
		case "update":
			return jobRequest(t, parts[0], OpUpdate, kind)
		}
		return t, ErrInvalidTopic
	case 4:
		nt, ok := namespaced(t, parts[1])
		kind := replyKind(parts[3])
		if !ok || kind == KindNone {
			return t, ErrInvalidTopic
		}
		return namespacedRequest(nt, parts[0], parts[2], kind)
	}
	return t, ErrInvalidTopic
}

func namespacedRequest(t Topic, job, op string, kind Kind) (Topic, error) {
	switch op {
	case "get":
		return jobRequest(t, job, OpDescribe, kind)
	case "update":
		return jobRequest(t, job, OpUpdate, kind)
	}
	return t, ErrInvalidTopic
}

var (
	invalidThing = &invalidSegment{ErrInvalidThingName}
	invalidJob   = &invalidSegment{ErrInvalidJobID}
)

// invalidSegment is an id error that also matches ErrInvalidTopic.
type invalidSegment struct{ err error }

func (e *invalidSegment) Error() string { return e.err.Error() }

func (e *invalidSegment) Is(target error) bool {
	return target == e.err || target == ErrInvalidTopic
}

func jobRequest(t Topic, job string, op Operation, kind Kind) (Topic, error) {
	t.JobID, t.Op, t.Kind = job, op, kind
	if job == Next && op == OpDescribe {
		return t, nil
	}
	if !ValidJobID(job) {
		return t, invalidJob
	}
	return t, nil
}

func replyKind(s string) Kind {
	switch s {
	case "accepted":
		return KindAccepted
	case "rejected":
		return KindRejected
	}
	return KindNone
}

// splitN splits the levels after "jobs/" into at most four parts without
// allocating more than the returned slice; a fourth part means "too many".
func splitN(s string) []string {
	parts := make([]string, 0, 4)
	for len(parts) < 3 {
		head, tail, ok := strings.Cut(s, "/")
		parts = append(parts, head)
		if !ok {
			return parts
		}
		s = tail
	}
	return append(parts, s)
}

// ValidThingName reports whether s is a legal AWS IoT thing name:
// 1 to 128 characters from [a-zA-Z0-9:_-].
func ValidThingName(s string) bool {
	return validID(s, MaxThingNameLength, true)
}

// ValidJobID reports whether s is a legal job id: 1 to 64 characters from
// [a-zA-Z0-9_-].
func ValidJobID(s string) bool {
	return validID(s, MaxJobIDLength, false)
}

func validID(s string, max int, colon bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == ':' && colon:
		default:
			return false
		}
	}
	return true
}

// Request returns the request topic of op for thing. jobID is used by
// OpDescribe (where it may be Next) and OpUpdate and ignored otherwise.
func Request(thing string, op Operation, jobID string) string {
	base := thingsPrefix + thing + "/" + jobsLevel + "/"
	switch op {
	case OpGetPending:
		return base + "get"
	case OpStartNext:
		return base + "start-next"
	case OpDescribe:
		return base + jobID + "/get"
	case OpUpdate:
		return base + jobID + "/update"
	}
	return ""
}

// Accepted returns the /accepted reply topic for a request topic. The request
// segment is kept literally, so a $next describe is answered on
// .../jobs/$next/get/accepted.
func Accepted(requestTopic string) string { return requestTopic + "/accepted" }

// Rejected returns the /rejected reply topic for a request topic.
func Rejected(requestTopic string) string { return requestTopic + "/rejected" }

// Notify returns $aws/things/{thing}/jobs/notify.
func Notify(thing string) string { return thingsPrefix + thing + "/jobs/notify" }

// NotifyNext returns $aws/things/{thing}/jobs/notify-next.
func NotifyNext(thing string) string { return thingsPrefix + thing + "/jobs/notify-next" }

// JobEvent returns the topic of a job event: $aws/events/job/{jobID}/{operation},
// where operation is completed, canceled, deleted, cancellation_in_progress or
// deletion_in_progress.
func JobEvent(jobID, operation string) string {
	return "$aws/events/job/" + jobID + "/" + operation
}

// JobExecutionEvent returns the topic of a job-execution event:
// $aws/events/jobExecution/{jobID}/{operation}, where operation is succeeded,
// failed, rejected, canceled, timed_out, removed or deleted.
func JobExecutionEvent(jobID, operation string) string {
	return "$aws/events/jobExecution/" + jobID + "/" + operation
}

// ThingFilter returns the filter that matches every Jobs topic of a thing,
// $aws/things/{thing}/jobs/#.
func ThingFilter(thing string) string { return thingsPrefix + thing + "/jobs/#" }
