package broker_test

import (
	"context"
	"errors"
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

	create := func(id, namespace string) {
		t.Helper()
		in := &iot.CreateJobInput{JobId: aws.String(id), Targets: []string{brokertest.ThingARN("gg-core-1")},
			Document: aws.String(`{"job":"` + id + `"}`)}
		if namespace != "" {
			in.NamespaceId = aws.String(namespace)
		}
		if _, err := api.CreateJob(ctx, in); err != nil {
			t.Fatalf("CreateJob %s: %v", id, err)
		}
	}
	nextJob := func(m map[string]any) any {
		if e, ok := m["execution"].(map[string]any); ok {
			return e["jobId"]
		}
		return nil
	}
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
	if got := nextJob(agent.Expect(plainNext).JSON(t)); got != "agent-job" {
		t.Fatalf("plain notify-next names %v", got)
	}
	if got := queued(agent.Expect(plainNotify).JSON(t)); len(got) != 1 || got[0] != "agent-job" {
		t.Fatalf("plain notify lists %v", got)
	}

	create("gg-deployment-1", ns)
	next := core.Expect(nsNext).JSON(t)
	if got := nextJob(next); got != "gg-deployment-1" {
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
	if nextJob(described) != "gg-deployment-1" {
		t.Fatalf("$next in the namespace = %v", described)
	}
	plainDescribed := core.MustAccept(base+"$next/get", map[string]any{})
	if nextJob(plainDescribed) != "agent-job" {
		t.Fatalf("plain $next = %v, want the job queued first", plainDescribed)
	}
	core.MustAccept(base+"gg-deployment-1/namespace-"+ns+"/update", map[string]any{"status": "IN_PROGRESS"})
	core.MustAccept(base+"gg-deployment-1/namespace-"+ns+"/update", map[string]any{"status": "SUCCEEDED"})
	if got := queued(core.Expect(nsNotify).JSON(t)); len(got) != 0 {
		t.Fatalf("%s after the deployment succeeded lists %v", nsNotify, got)
	}
	if got := nextJob(core.Expect(nsNext).JSON(t)); got != nil {
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
