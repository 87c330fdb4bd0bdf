package broker_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestDeviceFlow is the whole path of issue 2: a job created with the AWS
// SDK for Go v2 for three things; each device (two on MQTT 3.1.1, one on
// MQTT 5) hears notify-next, starts, reports progress and succeeds; the
// job ends COMPLETED with exact counts.
func TestDeviceFlow(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	api := b.IoT()

	things := []string{"pump-1", "pump-2", "pump-3"}
	devices := make([]*brokertest.Client, len(things))
	for i, th := range things {
		version := 4
		if i == 2 {
			version = 5
		}
		devices[i] = brokertest.Connect(t, b.MQTTAddr(), th, version)
		devices[i].Subscribe("$aws/things/"+th+"/jobs/notify-next", 1)
	}

	out, err := api.CreateJob(ctx, &iot.CreateJobInput{
		JobId:       aws.String("fw-2-1"),
		Targets:     []string{brokertest.ThingARN("pump-1"), brokertest.ThingARN("pump-2"), brokertest.ThingARN("pump-3")},
		Document:    aws.String(`{"operation":"install","url":"https://example.invalid/fw.bin"}`),
		Description: aws.String("Pump firmware 2.1"),
	})
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	if aws.ToString(out.JobArn) != "arn:aws:iot:us-east-1:123456789012:job/fw-2-1" || aws.ToString(out.Description) != "Pump firmware 2.1" {
		t.Fatalf("CreateJob output = %+v", out)
	}

	for i, d := range devices {
		th := things[i]
		next := d.Expect("$aws/things/" + th + "/jobs/notify-next").JSON(t)
		exec := next["execution"].(map[string]any)
		if exec["jobId"] != "fw-2-1" || exec["status"] != "QUEUED" {
			t.Fatalf("%s notify-next = %v", th, next)
		}
		if doc, ok := exec["jobDocument"].(map[string]any); !ok || doc["operation"] != "install" {
			t.Fatalf("%s: jobDocument must be an object: %v", th, exec["jobDocument"])
		}

		base := "$aws/things/" + th + "/jobs/"
		started := d.MustAccept(base+"start-next", map[string]any{"clientToken": "start-" + th, "statusDetails": map[string]string{"step": "download"}})
		if started["clientToken"] != "start-"+th {
			t.Fatalf("clientToken not echoed: %v", started)
		}
		se := started["execution"].(map[string]any)
		if se["status"] != "IN_PROGRESS" || se["thingName"] != th || se["versionNumber"] != float64(2) {
			t.Fatalf("%s start-next = %v", th, started)
		}
		for p := 25; p <= 75; p += 25 {
			version := float64(1 + p/25) // 2 before the first update
			reply := d.MustAccept(base+"fw-2-1/update", map[string]any{
				"status": "IN_PROGRESS", "statusDetails": map[string]string{"progress": fmt.Sprint(p)},
				"expectedVersion": version, "includeJobExecutionState": true, "clientToken": "p",
			})
			state := reply["executionState"].(map[string]any)
			if state["versionNumber"] != version+1 || state["statusDetails"].(map[string]any)["progress"] != fmt.Sprint(p) {
				t.Fatalf("%s progress %d: %v", th, p, reply)
			}
		}
		done := d.MustAccept(base+"fw-2-1/update", map[string]any{"status": "SUCCEEDED", "statusDetails": map[string]string{"progress": "100"}})
		if _, ok := done["executionState"]; ok {
			t.Fatalf("executionState sent without being asked for: %v", done)
		}
		if empty := d.Expect(base + "notify-next").JSON(t); empty["execution"] != nil {
			t.Fatalf("%s: notify-next after success = %v, want no execution", th, empty)
		}

		// The control plane sees the device's execution.
		ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("fw-2-1"), ThingName: aws.String(th)})
		if err != nil {
			t.Fatalf("DescribeJobExecution: %v", err)
		}
		if ex.Execution.Status != iottypes.JobExecutionStatusSucceeded || ex.Execution.VersionNumber != 6 ||
			ex.Execution.StatusDetails.DetailsMap["progress"] != "100" || aws.ToString(ex.Execution.ThingArn) != brokertest.ThingARN(th) {
			t.Fatalf("%s execution = %+v", th, ex.Execution)
		}
	}

	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("fw-2-1")})
	if err != nil {
		t.Fatalf("DescribeJob: %v", err)
	}
	pd := job.Job.JobProcessDetails
	if job.Job.Status != iottypes.JobStatusCompleted || aws.ToInt32(pd.NumberOfSucceededThings) != 3 ||
		aws.ToInt32(pd.NumberOfQueuedThings) != 0 || aws.ToInt32(pd.NumberOfInProgressThings) != 0 || job.Job.CompletedAt == nil {
		t.Fatalf("job = %+v, details %+v", job.Job, pd)
	}
	if !job.Job.CreatedAt.Equal(brokertest.Epoch) {
		t.Fatalf("createdAt = %v", job.Job.CreatedAt)
	}
}
