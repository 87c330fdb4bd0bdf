package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestNamespacedJobs plays an AWS IoT Greengrass core beside a plain jobs
// agent on one thing. A job created with namespaceId is announced on
// notify-namespace-{ns} and notify-next-namespace-{ns} only; the plain
// topics carry the plain job only; the core describes $next and updates its
// job on the namespaced request topics Greengrass uses, and hears its
// namespace's queue empty without the plain agent hearing a thing.
func TestNamespacedJobs(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	api := b.IoT()
	const ns = "aws-gg-deployment"
	base := "$aws/things/gg-core-1/jobs/"
	plainNotify, plainNext := base+"notify", base+"notify-next"
	nsNotify, nsNext := base+"notify-namespace-"+ns, base+"notify-next-namespace-"+ns

	agent := brokertest.Connect5(t, b.MQTTAddr(), "gg-core-1-agent")
	agent.Subscribe(plainNotify, 1)
	agent.Subscribe(plainNext, 1)
	core := brokertest.Connect3(t, b.MQTTAddr(), "gg-core-1")
	core.Subscribe(nsNotify, 1)
	core.Subscribe(nsNext, 1)

	create := func(id, namespace string) { createInNamespace(t, api, "gg-core-1", id, namespace) }
	queued := func(m map[string]any) []any {
		jobs, _ := m["jobs"].(map[string]any)
		var ids []any
		for _, status := range []string{"IN_PROGRESS", "QUEUED"} {
			list, _ := jobs[status].([]any)
			for _, e := range list {
				ids = append(ids, e.(map[string]any)["jobId"])
			}
		}
		return ids
	}

	create("agent-job", "")
	if got := executionJob(agent.Expect(plainNext).JSON(t)); got != "agent-job" {
		t.Fatalf("plain notify-next names %v", got)
	}
	if got := queued(agent.Expect(plainNotify).JSON(t)); len(got) != 1 || got[0] != "agent-job" {
		t.Fatalf("plain notify lists %v", got)
	}

	create("gg-deployment-1", ns)
	next := core.Expect(nsNext).JSON(t)
	if got := executionJob(next); got != "gg-deployment-1" {
		t.Fatalf("%s names %v, want the namespaced job", nsNext, got)
	}
	if doc := next["execution"].(map[string]any)["jobDocument"].(map[string]any); doc["job"] != "gg-deployment-1" {
		t.Fatalf("%s carries document %v", nsNext, doc)
	}
	if got := queued(core.Expect(nsNotify).JSON(t)); len(got) != 1 || got[0] != "gg-deployment-1" {
		t.Fatalf("%s lists %v, want the namespaced job alone", nsNotify, got)
	}

	// Greengrass's own request topics.
	described := core.MustAccept(base+"$next/namespace-"+ns+"/get", map[string]any{"includeJobDocument": true})
	if executionJob(described) != "gg-deployment-1" {
		t.Fatalf("$next in the namespace = %v", described)
	}
	plainDescribed := core.MustAccept(base+"$next/get", map[string]any{})
	if executionJob(plainDescribed) != "agent-job" {
		t.Fatalf("plain $next = %v, want the job queued first", plainDescribed)
	}
	core.MustAccept(base+"gg-deployment-1/namespace-"+ns+"/update", map[string]any{"status": "IN_PROGRESS"})
	core.MustAccept(base+"gg-deployment-1/namespace-"+ns+"/update", map[string]any{"status": "SUCCEEDED"})
	if got := queued(core.Expect(nsNotify).JSON(t)); len(got) != 0 {
		t.Fatalf("%s after the deployment succeeded lists %v", nsNotify, got)
	}
	if got := executionJob(core.Expect(nsNext).JSON(t)); got != nil {
		t.Fatalf("%s after the deployment succeeded names %v", nsNext, got)
	}
	empty := core.MustAccept(base+"$next/namespace-"+ns+"/get", map[string]any{})
	if _, ok := empty["execution"]; ok {
		t.Fatalf("$next in an empty namespace = %v", empty)
	}

	// The plain agent heard nothing about the namespaced job.
	if m, ok := agent.Wait(300*time.Millisecond, plainNext); ok {
		t.Fatalf("plain notify-next for a namespaced job: %s", m.Payload)
	}
	if m, ok := agent.Wait(10*time.Millisecond, plainNotify); ok {
		t.Fatalf("plain notify for a namespaced job: %s", m.Payload)
	}
	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("gg-deployment-1")})
	if err != nil || aws.ToString(job.Job.NamespaceId) != ns {
		t.Fatalf("DescribeJob = %+v, %v; want namespaceId %s", job, err, ns)
	}
	list, err := api.ListJobs(ctx, &iot.ListJobsInput{NamespaceId: aws.String(ns)})
	if err != nil || len(list.Jobs) != 1 || aws.ToString(list.Jobs[0].JobId) != "gg-deployment-1" {
		t.Fatalf("ListJobs(namespaceId) = %+v, %v", list, err)
	}
}

// createInNamespace creates job id for thing, in namespace ns when it is
// not "".
func createInNamespace(t *testing.T, api *iot.Client, thing, id, ns string) {
	t.Helper()
	in := &iot.CreateJobInput{JobId: aws.String(id), Targets: []string{brokertest.ThingARN(thing)},
		Document: aws.String(`{"job":"` + id + `"}`)}
	if ns != "" {
		in.NamespaceId = aws.String(ns)
	}
	if _, err := api.CreateJob(context.Background(), in); err != nil {
		t.Fatalf("CreateJob %s: %v", id, err)
	}
}

// executionJob returns the jobId of a reply's or notification's
// execution, nil when it has none.
func executionJob(m map[string]any) any {
	if e, ok := m["execution"].(map[string]any); ok {
		return e["jobId"]
	}
	return nil
}

// TestNamespaceIDRefused checks that a namespaceId that could not be a
// topic level is refused.
func TestNamespaceIDRefused(t *testing.T) {
	api := brokertest.Start(t).IoT()
	for _, ns := range []string{"a/b", "gg+", "#", "name space", string(make([]byte, 65))} {
		_, err := api.CreateJob(context.Background(), &iot.CreateJobInput{JobId: aws.String("j"), NamespaceId: aws.String(ns),
			Targets: []string{brokertest.ThingARN("t")}, Document: aws.String(`{}`)})
		var ire *iottypes.InvalidRequestException
		if !errors.As(err, &ire) {
			t.Errorf("CreateJob with namespaceId %q = %v, want InvalidRequestException", ns, err)
		}
	}
}

// TestNamespacedQueues checks, end to end, that each job namespace is a
// queue of its own on a thing. A namespace's $next is its next execution
// however many plain jobs are queued ahead of it; the plain get,
// start-next and $next never hand a device a namespaced job; and when a
// namespace's second job is started by id while another namespace's job is
// IN_PROGRESS, the namespace's notify-next names it.
func TestNamespacedQueues(t *testing.T) {
	b := brokertest.Start(t)
	api := b.IoT()
	const thing, ns = "gg-core-2", "aws-gg-deployment"
	base := "$aws/things/" + thing + "/jobs/"
	create := func(id, namespace string) { createInNamespace(t, api, thing, id, namespace) }
	core := brokertest.Connect3(t, b.MQTTAddr(), thing)
	core.Subscribe(base+"notify-next-namespace-"+ns, 1)

	create("o1", "other")
	create("d1", ns)
	create("d2", ns)
	for i := 1; i <= 11; i++ {
		create(fmt.Sprintf("p%02d", i), "")
	}
	create("d3", ns)
	if got := executionJob(core.Expect(base + "notify-next-namespace-" + ns).JSON(t)); got != "d1" {
		t.Fatalf("notify-next-namespace-%s names %v, want d1", ns, got)
	}

	// The plain API sees the plain jobs only.
	agent := brokertest.Connect5(t, b.MQTTAddr(), thing+"-agent")
	pending := agent.MustAccept(base+"get", map[string]any{})
	queued, _ := pending["queuedJobs"].([]any)
	if len(queued) != 10 || queued[0].(map[string]any)["jobId"] != "p01" || queued[9].(map[string]any)["jobId"] != "p10" {
		t.Fatalf("plain get lists %v, want p01..p10", queued)
	}
	if got := executionJob(agent.MustAccept(base+"$next/get", map[string]any{})); got != "p01" {
		t.Fatalf("plain $next = %v, want p01", got)
	}
	if got := executionJob(agent.MustAccept(base+"start-next", map[string]any{})); got != "p01" {
		t.Fatalf("plain start-next = %v, want p01", got)
	}

	// The other namespace's job, the oldest, is IN_PROGRESS; then d2, not
	// the namespace's head, is started by id: the thing's first execution
	// stays o1, but the namespace's next is d2.
	core.MustAccept(base+"o1/namespace-other/update", map[string]any{"status": "IN_PROGRESS"})
	core.MustAccept(base+"d2/namespace-"+ns+"/update", map[string]any{"status": "IN_PROGRESS"})
	if got := executionJob(core.Expect(base + "notify-next-namespace-" + ns).JSON(t)); got != "d2" {
		t.Fatalf("notify-next-namespace-%s after d2 started names %v, want d2", ns, got)
	}
	if got := executionJob(core.MustAccept(base+"$next/namespace-"+ns+"/get", map[string]any{})); got != "d2" {
		t.Fatalf("$next in the namespace = %v, want d2", got)
	}
	core.MustAccept(base+"d2/namespace-"+ns+"/update", map[string]any{"status": "SUCCEEDED"})
	core.MustAccept(base+"d1/namespace-"+ns+"/update", map[string]any{"status": "SUCCEEDED"})
	// d3 was queued behind eleven plain jobs and the other namespace's.
	if got := executionJob(core.MustAccept(base+"$next/namespace-"+ns+"/get", map[string]any{"includeJobDocument": true})); got != "d3" {
		t.Fatalf("$next in the namespace = %v, want d3", got)
	}
}
