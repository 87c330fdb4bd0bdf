package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	awsv1 "github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/service/iotjobsdataplane"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// agentOutput is what the AWS IoT Device Client reports for a handler that
// printed two lines: its stdout with the line breaks.
const agentOutput = "line one\nline two\n"

// describeDetails returns the statusDetails the control plane shows for
// the execution of job on thing.
func describeDetails(t *testing.T, b *brokertest.Instance, thing, job string) (types.JobExecutionStatus, map[string]string) {
	t.Helper()
	out, err := b.IoT().DescribeJobExecution(context.Background(), &iot.DescribeJobExecutionInput{
		JobId: aws.String(job), ThingName: aws.String(thing)})
	if err != nil {
		t.Fatalf("DescribeJobExecution %s/%s: %v", thing, job, err)
	}
	return out.Execution.Status, out.Execution.StatusDetails.DetailsMap
}

// TestStatusDetailsFromAgents: a device reporting its handler's output with
// line breaks succeeds over MQTT and over HTTP, and DescribeJobExecution
// (control plane and device APIs) returns the value unchanged.
func TestStatusDetailsFromAgents(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "echo-1", "agent-mqtt", "agent-http")

	t.Run("mqtt", func(t *testing.T) {
		base := "$aws/things/agent-mqtt/jobs/"
		d := brokertest.Connect3(t, b.MQTTAddr(), "agent-mqtt")
		d.MustAccept(base+"start-next", `{}`)
		d.MustAccept(base+"echo-1/update", map[string]any{
			"status": "SUCCEEDED", "statusDetails": map[string]string{"stdout": agentOutput}, "clientToken": "k2Jd8sLw0Q"})
		got := d.MustAccept(base+"echo-1/get", `{}`)["execution"].(map[string]any)
		if got["status"] != "SUCCEEDED" || got["statusDetails"].(map[string]any)["stdout"] != agentOutput {
			t.Fatalf("MQTT describe = %v", got)
		}
		if status, details := describeDetails(t, b, "agent-mqtt", "echo-1"); status != types.JobExecutionStatusSucceeded || details["stdout"] != agentOutput {
			t.Fatalf("control plane: %s %q, want SUCCEEDED with stdout %q", status, details, agentOutput)
		}
	})
	t.Run("http", func(t *testing.T) {
		dev := jobsV1(t, b, "AKIDEXAMPLE", "secret")
		thing := awsv1.String("agent-http")
		if _, err := dev.StartNextPendingJobExecution(&iotjobsdataplane.StartNextPendingJobExecutionInput{ThingName: thing}); err != nil {
			t.Fatal(err)
		}
		if _, err := dev.UpdateJobExecution(&iotjobsdataplane.UpdateJobExecutionInput{ThingName: thing, JobId: awsv1.String("echo-1"),
			Status: awsv1.String("SUCCEEDED"), StatusDetails: map[string]*string{"stdout": awsv1.String(agentOutput)}}); err != nil {
			t.Fatalf("an update with a line break: %v", err)
		}
		out, err := dev.DescribeJobExecution(&iotjobsdataplane.DescribeJobExecutionInput{ThingName: thing, JobId: awsv1.String("echo-1")})
		if err != nil || awsv1.StringValue(out.Execution.StatusDetails["stdout"]) != agentOutput {
			t.Fatalf("HTTP describe = %v, %v", out, err)
		}
		if status, details := describeDetails(t, b, "agent-http", "echo-1"); status != types.JobExecutionStatusSucceeded || details["stdout"] != agentOutput {
			t.Fatalf("control plane: %s %q, want SUCCEEDED with stdout %q", status, details, agentOutput)
		}
	})
}

// manyDetails returns a statusDetails object of n pairs as JSON.
func manyDetails(n int) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"%x":"v"`, i)
	}
	sb.WriteByte('}')
	return sb.String()
}

// TestStatusDetailsLimits: the ten-pair limit holds wherever statusDetails
// enter (MQTT update and start-next, the HTTP data plane,
// CancelJobExecution), answered with AWS's code; a refused request
// changes nothing and its answer does not repeat what was refused.
func TestStatusDetailsLimits(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "big", "dev-1", "dev-2")
	ctx := context.Background()
	base := "$aws/things/dev-1/jobs/"
	d := brokertest.Connect3(t, b.MQTTAddr(), "dev-1")
	d.MustAccept(base+"start-next", `{}`)

	huge := manyDetails(10001) // about 107 KB, within the 128 KB packet limit
	for _, tc := range []struct{ topic, payload string }{
		{base + "big/update", `{"status":"IN_PROGRESS","statusDetails":` + huge + `,"clientToken":"c-1"}`},
		{base + "big/update", `{"status":"IN_PROGRESS","statusDetails":` + manyDetails(11) + `,"clientToken":"c-1"}`},
		{"$aws/things/dev-2/jobs/start-next", `{"statusDetails":` + huge + `,"clientToken":"c-1"}`},
	} {
		m, ok := d.Request(tc.topic, tc.payload)
		if ok {
			t.Fatalf("%s with %d bytes accepted", tc.topic, len(tc.payload))
		}
		if rej := m.JSON(t); rej["code"] != "InvalidRequest" || rej["clientToken"] != "c-1" || len(m.Payload) > 1024 {
			t.Fatalf("%s: rejected with %d bytes: %.300s", tc.topic, len(m.Payload), m.Payload)
		}
	}

	// Over HTTP, up to the 1 MiB body limit.
	for _, n := range []int{11, 10001, 70000} {
		body := `{"status":"IN_PROGRESS","statusDetails":` + manyDetails(n) + `}`
		code, h, v := dpCall(t, b, "POST", "/things/dev-1/jobs/big", body)
		msg, _ := v["message"].(string)
		if code != http.StatusBadRequest || h.Get("x-amzn-ErrorType") != "InvalidRequestException" || len(msg) > 512 {
			t.Fatalf("HTTP update with %d pairs: %d %s %.300s", n, code, h.Get("x-amzn-ErrorType"), msg)
		}
	}
	dpError(t, b, "PUT", "/things/dev-2/jobs/$next", `{"statusDetails":`+manyDetails(11)+`}`, http.StatusBadRequest, "InvalidRequestException")

	// CancelJobExecution, through the SDK.
	eleven := map[string]string{}
	for i := range 11 {
		eleven[fmt.Sprint("k", i)] = "v"
	}
	_, err := b.IoT().CancelJobExecution(ctx, &iot.CancelJobExecutionInput{JobId: aws.String("big"), ThingName: aws.String("dev-2"),
		StatusDetails: eleven})
	cpSDKError[*types.InvalidRequestException](t, err, http.StatusBadRequest)

	// Nothing changed: dev-1 is IN_PROGRESS at version 2 without details,
	// dev-2 still QUEUED.
	for thing, want := range map[string]string{"dev-1": "IN_PROGRESS/2", "dev-2": "QUEUED/1"} {
		out, err := b.IoT().DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("big"), ThingName: aws.String(thing)})
		if err != nil {
			t.Fatal(err)
		}
		e := out.Execution
		if got := fmt.Sprintf("%s/%d", e.Status, e.VersionNumber); got != want || len(e.StatusDetails.DetailsMap) != 0 {
			t.Fatalf("%s after refused statusDetails: %s %v, want %s", thing, got, e.StatusDetails.DetailsMap, want)
		}
	}
}

// TestRefusedValuesNotEchoed: a 100 KB clientToken is refused
// InvalidRequest in a small reply that does not carry it, and a 100 KB
// status is not quoted back whole, over MQTT or HTTP.
func TestRefusedValuesNotEchoed(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "j", "dev-1")
	d := brokertest.Connect5(t, b.MQTTAddr(), "dev-1")
	big := strings.Repeat("t", 100<<10)
	token, _ := json.Marshal(map[string]string{"clientToken": big})
	status, _ := json.Marshal(map[string]string{"status": big, "clientToken": "c-1"})
	for _, tc := range []struct {
		topic   string
		payload []byte
	}{
		{"$aws/things/dev-1/jobs/get", token},
		{"$aws/things/dev-1/jobs/no-such-op/x", token},
		{"$aws/things/dev-1/jobs/j/update", status},
	} {
		m, ok := d.Request(tc.topic, tc.payload)
		if ok {
			t.Fatalf("%s: %d bytes accepted", tc.topic, len(tc.payload))
		}
		rej := m.JSON(t)
		if rej["code"] != "InvalidRequest" && rej["code"] != "InvalidTopic" || len(m.Payload) > 1024 || strings.Contains(string(m.Payload), big) {
			t.Fatalf("%s: rejected with %d bytes: %.200s", tc.topic, len(m.Payload), m.Payload)
		}
		if tok, echoed := rej["clientToken"]; bytes.Equal(tc.payload, token) && echoed {
			t.Fatalf("%s: the refused clientToken was echoed (%d bytes)", tc.topic, len(tok.(string)))
		}
	}
	code, _, v := dpCall(t, b, "POST", "/things/dev-1/jobs/j", string(status))
	if msg, _ := v["message"].(string); code != http.StatusBadRequest || len(msg) > 1024 {
		t.Fatalf("HTTP update with a 100 KB status: %d, message of %d bytes", code, len(msg))
	}
}
