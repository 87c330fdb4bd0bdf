package topics

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("a", MaxThingNameLength)
	longJob := strings.Repeat("j", MaxJobIDLength)
	tests := []struct {
		topic string
		want  Topic
		err   error
	}{
		{"$aws/things/pump-42/jobs/get", Topic{Thing: "pump-42", Op: OpGetPending, Kind: KindRequest}, nil},
		{"$aws/things/pump-42/jobs/start-next", Topic{Thing: "pump-42", Op: OpStartNext, Kind: KindRequest}, nil},
		{"$aws/things/pump-42/jobs/fw-1/get", Topic{Thing: "pump-42", JobID: "fw-1", Op: OpDescribe, Kind: KindRequest}, nil},
		{"$aws/things/pump-42/jobs/$next/get", Topic{Thing: "pump-42", JobID: Next, Op: OpDescribe, Kind: KindRequest}, nil},
		{"$aws/things/pump-42/jobs/fw-1/update", Topic{Thing: "pump-42", JobID: "fw-1", Op: OpUpdate, Kind: KindRequest}, nil},
		{"$aws/things/pump-42/jobs/get/accepted", Topic{Thing: "pump-42", Op: OpGetPending, Kind: KindAccepted}, nil},
		{"$aws/things/pump-42/jobs/get/rejected", Topic{Thing: "pump-42", Op: OpGetPending, Kind: KindRejected}, nil},
		{"$aws/things/pump-42/jobs/start-next/accepted", Topic{Thing: "pump-42", Op: OpStartNext, Kind: KindAccepted}, nil},
		{"$aws/things/pump-42/jobs/start-next/rejected", Topic{Thing: "pump-42", Op: OpStartNext, Kind: KindRejected}, nil},
		{"$aws/things/pump-42/jobs/fw-1/get/accepted", Topic{Thing: "pump-42", JobID: "fw-1", Op: OpDescribe, Kind: KindAccepted}, nil},
		{"$aws/things/pump-42/jobs/$next/get/rejected", Topic{Thing: "pump-42", JobID: Next, Op: OpDescribe, Kind: KindRejected}, nil},
		{"$aws/things/pump-42/jobs/fw-1/update/accepted", Topic{Thing: "pump-42", JobID: "fw-1", Op: OpUpdate, Kind: KindAccepted}, nil},
		{"$aws/things/pump-42/jobs/fw-1/update/rejected", Topic{Thing: "pump-42", JobID: "fw-1", Op: OpUpdate, Kind: KindRejected}, nil},
		{"$aws/things/pump-42/jobs/notify", Topic{Thing: "pump-42", Kind: KindNotify}, nil},
		{"$aws/things/pump-42/jobs/notify-next", Topic{Thing: "pump-42", Kind: KindNotifyNext}, nil},
		// Job ids that collide with operation words are still job ids where
		// the level count says so.
		{"$aws/things/t/jobs/start-next/get", Topic{Thing: "t", JobID: "start-next", Op: OpDescribe, Kind: KindRequest}, nil},
		{"$aws/things/t/jobs/get/get", Topic{Thing: "t", JobID: "get", Op: OpDescribe, Kind: KindRequest}, nil},
		{"$aws/things/t/jobs/get/update", Topic{Thing: "t", JobID: "get", Op: OpUpdate, Kind: KindRequest}, nil},
		{"$aws/things/t/jobs/notify/update/accepted", Topic{Thing: "t", JobID: "notify", Op: OpUpdate, Kind: KindAccepted}, nil},
		{"$aws/things/a:b_c-D9/jobs/get", Topic{Thing: "a:b_c-D9", Op: OpGetPending, Kind: KindRequest}, nil},
		{"$aws/things/" + long + "/jobs/" + longJob + "/update", Topic{Thing: long, JobID: longJob, Op: OpUpdate, Kind: KindRequest}, nil},

		// Not ours at all.
		{"aws/things/t/jobs/get", Topic{}, ErrNotJobs},
		{"$aws/things/t/shadow/get", Topic{}, ErrNotJobs},
		{"$aws/things/t", Topic{}, ErrNotJobs},
		{"$aws/things/t/jobsx/get", Topic{}, ErrNotJobs},
		{"$aws/events/job/j/completed", Topic{}, ErrNotJobs},
		{"things/t/jobs/get", Topic{}, ErrNotJobs},
		{"", Topic{}, ErrNotJobs},

		// In the namespace, but no API.
		{"$aws/things/t/jobs", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/list", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/j/delete", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/get/other", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/j/get/other", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/j/other/accepted", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/j/get/accepted/x", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/notify/accepted", Topic{Thing: "t"}, ErrInvalidTopic},
		{"$aws/things/t/jobs/j/update/", Topic{Thing: "t"}, ErrInvalidTopic},

		// Bad identifiers.
		{"$aws/things//jobs/get", Topic{}, ErrInvalidThingName},
		{"$aws/things/bad!name/jobs/get", Topic{Thing: "bad!name"}, ErrInvalidThingName},
		{"$aws/things/" + long + "x/jobs/get", Topic{Thing: long + "x"}, ErrInvalidThingName},
		{"$aws/things/t+/jobs/get", Topic{Thing: "t+"}, ErrInvalidThingName},
		{"$aws/things/t/jobs/$next/update", Topic{Thing: "t", JobID: Next, Op: OpUpdate, Kind: KindRequest}, ErrInvalidJobID},
		{"$aws/things/t/jobs/a:b/get", Topic{Thing: "t", JobID: "a:b", Op: OpDescribe, Kind: KindRequest}, ErrInvalidJobID},
		{"$aws/things/t/jobs/a.b/update", Topic{Thing: "t", JobID: "a.b", Op: OpUpdate, Kind: KindRequest}, ErrInvalidJobID},
		{"$aws/things/t/jobs/" + longJob + "j/get", Topic{Thing: "t", JobID: longJob + "j", Op: OpDescribe, Kind: KindRequest}, ErrInvalidJobID},
		{"$aws/things/t/jobs//get", Topic{Thing: "t", Op: OpDescribe, Kind: KindRequest}, ErrInvalidJobID},
		{"$aws/things/t/jobs/+/update/accepted", Topic{Thing: "t", JobID: "+", Op: OpUpdate, Kind: KindAccepted}, ErrInvalidJobID},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			got, err := Parse(tt.topic)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.topic, err, tt.err)
			}
			if tt.err == nil || !errors.Is(tt.err, ErrInvalidTopic) {
				if got != tt.want {
					t.Fatalf("Parse(%q) = %+v, want %+v", tt.topic, got, tt.want)
				}
			} else if got.Thing != tt.want.Thing {
				t.Fatalf("Parse(%q).Thing = %q, want %q", tt.topic, got.Thing, tt.want.Thing)
			}
		})
	}
}

func TestIDErrorsAreInvalidTopic(t *testing.T) {
	for _, topic := range []string{"$aws/things/b!d/jobs/get", "$aws/things/t/jobs/a.b/get"} {
		_, err := Parse(topic)
		if !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Parse(%q) = %v, want an error matching ErrInvalidTopic", topic, err)
		}
	}
	_, err := Parse("$aws/things/t/jobs/list")
	if errors.Is(err, ErrInvalidThingName) || errors.Is(err, ErrInvalidJobID) {
		t.Errorf("a plain invalid topic must not match the id errors: %v", err)
	}
}

func TestBuildRoundTrip(t *testing.T) {
	tests := []struct {
		op    Operation
		job   string
		topic string
	}{
		{OpGetPending, "", "$aws/things/th/jobs/get"},
		{OpStartNext, "", "$aws/things/th/jobs/start-next"},
		{OpDescribe, "j1", "$aws/things/th/jobs/j1/get"},
		{OpDescribe, Next, "$aws/things/th/jobs/$next/get"},
		{OpUpdate, "j1", "$aws/things/th/jobs/j1/update"},
	}
	for _, tt := range tests {
		req := Request("th", tt.op, tt.job)
		if req != tt.topic {
			t.Errorf("Request(%v, %q) = %q, want %q", tt.op, tt.job, req, tt.topic)
		}
		for _, c := range []struct {
			topic string
			kind  Kind
		}{{req, KindRequest}, {Accepted(req), KindAccepted}, {Rejected(req), KindRejected}} {
			got, err := Parse(c.topic)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.topic, err)
			}
			want := Topic{Thing: "th", Op: tt.op, Kind: c.kind}
			if tt.op == OpDescribe || tt.op == OpUpdate {
				want.JobID = tt.job
			}
			if got != want {
				t.Errorf("Parse(%q) = %+v, want %+v", c.topic, got, want)
			}
		}
	}
	if got := Request("th", OpNone, ""); got != "" {
		t.Errorf("Request(OpNone) = %q, want empty", got)
	}
	if got, err := Parse(Notify("th")); err != nil || got.Kind != KindNotify {
		t.Errorf("Parse(Notify) = %+v, %v", got, err)
	}
	if got, err := Parse(NotifyNext("th")); err != nil || got.Kind != KindNotifyNext {
		t.Errorf("Parse(NotifyNext) = %+v, %v", got, err)
	}
	if got := JobEvent("j", "completed"); got != "$aws/events/job/j/completed" {
		t.Errorf("JobEvent = %q", got)
	}
	if got := JobExecutionEvent("j", "timed_out"); got != "$aws/events/jobExecution/j/timed_out" {
		t.Errorf("JobExecutionEvent = %q", got)
	}
	if got := ThingFilter("th"); got != "$aws/things/th/jobs/#" {
		t.Errorf("ThingFilter = %q", got)
	}
}

func TestOperationString(t *testing.T) {
	if OpUpdate.String() != "UpdateJobExecution" || OpGetPending.String() != "GetPendingJobExecutions" {
		t.Fatalf("unexpected names %q %q", OpUpdate, OpGetPending)
	}
	if Operation(99).String() != "unknown" {
		t.Fatalf("out of range operation should be unknown")
	}
}

func TestValidIDs(t *testing.T) {
	if !ValidThingName("a:b") || ValidJobID("a:b") {
		t.Fatal("colon is legal in thing names only")
	}
	if ValidThingName("") || ValidJobID("") {
		t.Fatal("empty ids are illegal")
	}
	if ValidJobID(Next) {
		t.Fatal("$next is not a job id")
	}
}

func BenchmarkParse(b *testing.B) {
	topic := "$aws/things/pump-42/jobs/fw-2024-05/update"
	for b.Loop() {
		if _, err := Parse(topic); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseNamespaced(t *testing.T) {
	const base = "$aws/things/gg-core/jobs/"
	for topic, want := range map[string]Topic{
		base + "notify-namespace-aws-gg-deployment":                {Thing: "gg-core", Kind: KindNotify, Namespace: "aws-gg-deployment"},
		base + "notify-next-namespace-aws-gg-deployment":           {Thing: "gg-core", Kind: KindNotifyNext, Namespace: "aws-gg-deployment"},
		base + "$next/namespace-aws-gg-deployment/get":             {Thing: "gg-core", JobID: Next, Op: OpDescribe, Kind: KindRequest, Namespace: "aws-gg-deployment"},
		base + "job-1/namespace-aws-gg-deployment/update":          {Thing: "gg-core", JobID: "job-1", Op: OpUpdate, Kind: KindRequest, Namespace: "aws-gg-deployment"},
		base + "$next/namespace-aws-gg-deployment/get/accepted":    {Thing: "gg-core", JobID: Next, Op: OpDescribe, Kind: KindAccepted, Namespace: "aws-gg-deployment"},
		base + "job-1/namespace-aws-gg-deployment/update/rejected": {Thing: "gg-core", JobID: "job-1", Op: OpUpdate, Kind: KindRejected, Namespace: "aws-gg-deployment"},
		base + "namespace-x/get":                                   {Thing: "gg-core", JobID: "namespace-x", Op: OpDescribe, Kind: KindRequest},
		base + "notify-namespace-x/get":                            {Thing: "gg-core", JobID: "notify-namespace-x", Op: OpDescribe, Kind: KindRequest},
	} {
		got, err := Parse(topic)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", topic, got, err, want)
		}
	}
	for _, bad := range []string{
		base + "notify-namespace-", base + "notify-namespace-a.b", base + "$next/namespace-gg/start-next",
		base + "$next/namespace-/get", base + "$next/namespace-gg/update", base + "j/namespace-gg/get/accepted/x",
		base + "j/namespace-gg/get/other",
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Parse(%q) = %v, want ErrInvalidTopic", bad, err)
		}
	}
	if got := NotifyNamespace("t", "ns"); got != "$aws/things/t/jobs/notify-namespace-ns" {
		t.Errorf("NotifyNamespace = %s", got)
	}
	if got := NotifyNextNamespace("t", "ns"); got != "$aws/things/t/jobs/notify-next-namespace-ns" {
		t.Errorf("NotifyNextNamespace = %s", got)
	}
	if got := RequestNamespace("t", OpUpdate, "j", "ns"); got != "$aws/things/t/jobs/j/namespace-ns/update" {
		t.Errorf("RequestNamespace = %s", got)
	}
}
