package broker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store"
)

// lcDevices connects one MQTT device per thing, each listening to its
// notify-next.
func lcDevices(t *testing.T, b *brokertest.Instance, things ...string) map[string]*brokertest.Client {
	out := map[string]*brokertest.Client{}
	for i, th := range things {
		d := brokertest.Connect(t, b.MQTTAddr(), th, 4+i%2)
		d.Subscribe("$aws/things/"+th+"/jobs/notify-next", 1)
		out[th] = d
	}
	return out
}

// lcNotified counts the devices that have heard of jobID on notify-next.
func lcNotified(t *testing.T, devices map[string]*brokertest.Client, jobID string) int {
	n := 0
	for th, d := range devices {
		for _, m := range d.Received() {
			if m.Topic == "$aws/things/"+th+"/jobs/notify-next" && strings.Contains(string(m.Payload), `"jobId":"`+jobID+`"`) {
				n++
				break
			}
		}
	}
	return n
}

func lcThings(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

func lcARNs(things []string) []string {
	out := make([]string, len(things))
	for i, th := range things {
		out[i] = brokertest.ThingARN(th)
	}
	return out
}

// TestPacedRollout: maximumPerMinute 6 notifies one device every ten
// seconds of (fake) time, and the job reports processingTargets and
// isConcurrent until the rollout is over.
func TestPacedRollout(t *testing.T) {
	b := brokertest.Start(t)
	things := lcThings("paced", 5)
	devices := lcDevices(t, b, things...)
	api := b.IoT()
	ctx := context.Background()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("paced"), Targets: lcARNs(things),
		Document:                   aws.String(`{"op":"x"}`),
		JobExecutionsRolloutConfig: &iottypes.JobExecutionsRolloutConfig{MaximumPerMinute: aws.Int32(6)}}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= len(things); want++ {
		brokertest.Eventually(t, fmt.Sprintf("%d notified", want), func() error {
			if n := lcNotified(t, devices, "paced"); n != want {
				return fmt.Errorf("%d notified", n)
			}
			return nil
		})
		job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("paced")})
		if err != nil {
			t.Fatal(err)
		}
		rolling := want < len(things)
		if aws.ToBool(job.Job.IsConcurrent) != rolling || (len(job.Job.JobProcessDetails.ProcessingTargets) > 0) != rolling {
			t.Fatalf("after %d: isConcurrent %v processingTargets %v", want, aws.ToBool(job.Job.IsConcurrent), job.Job.JobProcessDetails.ProcessingTargets)
		}
		b.Clock.Advance(10 * time.Second)
	}
}

// TestExponentialRollout: base 6/min, doubling every 2 notified things.
func TestExponentialRollout(t *testing.T) {
	b := brokertest.Start(t)
	things := lcThings("exp", 7)
	devices := lcDevices(t, b, things...)
	if _, err := b.IoT().CreateJob(context.Background(), &iot.CreateJobInput{JobId: aws.String("exp"), Targets: lcARNs(things),
		Document: aws.String(`{"op":"x"}`),
		JobExecutionsRolloutConfig: &iottypes.JobExecutionsRolloutConfig{ExponentialRate: &iottypes.ExponentialRolloutRate{
			BaseRatePerMinute: aws.Int32(6), IncrementFactor: aws.Float64(2),
			RateIncreaseCriteria: &iottypes.RateIncreaseCriteria{NumberOfNotifiedThings: aws.Int32(2)}}}}); err != nil {
		t.Fatal(err)
	}
	// Rates 6, 12, 24, 48 per minute: gaps of 10, 5, 2.5 and 1.25 seconds.
	// The clock moves in quarter seconds, each time only once the store's
	// task loop is asleep again, so the fake times at which executions are
	// queued do not depend on how busy the machine is.
	start := b.Clock.Now()
	ctx := context.Background()
	for {
		job, err := b.Store.DescribeJob(ctx, "exp")
		if err != nil {
			t.Fatal(err)
		}
		if !job.IsConcurrent {
			break
		}
		if b.Clock.Now().Sub(start) > 2*time.Minute {
			t.Fatalf("rollout not over after 2 minutes: %+v", job.ProcessDetails)
		}
		b.Clock.Advance(250 * time.Millisecond)
		brokertest.Eventually(t, "the task loop sleeps again", func() error {
			if b.Clock.Waiters() == 0 {
				if j, err := b.Store.DescribeJob(ctx, "exp"); err == nil && !j.IsConcurrent {
					return nil // the rollout is over: nothing left to wait for
				}
				j, _ := b.Store.DescribeJob(ctx, "exp")
				return fmt.Errorf("the task loop has not re-armed its timer (now %v, job %+v)", b.Clock.Now().Sub(start), j.ProcessDetails)
			}
			return nil
		})
	}
	out, err := b.Store.ListJobExecutionsForJob(ctx, &store.ListExecutionsInput{JobID: "exp", MaxResults: 100})
	if err != nil {
		t.Fatal(err)
	}
	var reached []time.Duration
	for _, e := range out.Executions {
		reached = append(reached, e.QueuedAt.Sub(start))
	}
	slices.Sort(reached)
	if len(reached) != len(things) {
		t.Fatalf("%d executions queued", len(reached))
	}
	// The rate doubles as soon as each second thing is notified: gaps of
	// 10 s, then 5 s twice, 2.5 s twice, 1.25 s.
	want := []time.Duration{0, 10 * time.Second, 15 * time.Second, 20 * time.Second, 22500 * time.Millisecond, 25 * time.Second, 26250 * time.Millisecond}
	for i := range want {
		if d := reached[i] - want[i]; d < -250*time.Millisecond || d > 250*time.Millisecond {
			t.Fatalf("queue times %v, want %v", reached, want)
		}
	}
	brokertest.Eventually(t, "every device notified", func() error {
		if n := lcNotified(t, devices, "exp"); n != len(things) {
			return fmt.Errorf("%d notified", n)
		}
		return nil
	})
}

// TestAbortAtThreshold: three of five things fail; the job is canceled and
// its QUEUED executions with it, which their devices hear.
func TestAbortAtThreshold(t *testing.T) {
	b := brokertest.Start(t)
	things := lcThings("ab", 5)
	devices := lcDevices(t, b, things...)
	ctx := context.Background()
	api := b.IoT()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("risky"), Targets: lcARNs(things), Document: aws.String(`{"op":"x"}`),
		AbortConfig: &iottypes.AbortConfig{CriteriaList: []iottypes.AbortCriteria{{FailureType: iottypes.JobExecutionFailureTypeFailed,
			Action: iottypes.AbortActionCancel, ThresholdPercentage: aws.Float64(50), MinNumberOfExecutedThings: aws.Int32(4)}}}}); err != nil {
		t.Fatal(err)
	}
	for _, th := range things[:3] {
		d := devices[th]
		d.MustAccept("$aws/things/"+th+"/jobs/start-next", `{}`)
		reply := d.MustAccept("$aws/things/"+th+"/jobs/risky/update", `{"status":"FAILED","includeJobExecutionState":true}`)
		if reply["executionState"].(map[string]any)["status"] != "FAILED" {
			t.Fatalf("%s: %v", th, reply)
		}
	}
	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("risky")})
	if err != nil {
		t.Fatal(err)
	}
	if job.Job.Status != iottypes.JobStatusCanceled || !strings.Contains(aws.ToString(job.Job.Comment), "aborted") {
		t.Fatalf("job %s comment %q", job.Job.Status, aws.ToString(job.Job.Comment))
	}
	for _, th := range things[3:] {
		// notify-next: first the job, then nothing.
		brokertest.Eventually(t, th+" hears of the cancel", func() error {
			msgs := filter(devices[th].Received(), "/notify-next")
			if len(msgs) != 2 || strings.Contains(string(msgs[1].Payload), "execution") {
				return fmt.Errorf("%d notify-next", len(msgs))
			}
			return nil
		})
		ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("risky"), ThingName: aws.String(th)})
		if err != nil || ex.Execution.Status != iottypes.JobExecutionStatusCanceled {
			t.Fatalf("%s: %+v %v", th, ex, err)
		}
	}
}

// TestTimeouts: a step timer times an execution out; a step timer cannot
// push past the job's in-progress timeout; the device then hears notify
// and notify-next, and its update is refused with TIMED_OUT.
func TestTimeouts(t *testing.T) {
	b := brokertest.Start(t)
	devices := lcDevices(t, b, "step", "bound")
	for _, d := range devices {
		d.Subscribe("$aws/things/"+d.ID+"/jobs/notify", 1)
	}
	ctx := context.Background()
	api := b.IoT()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("t1"), Targets: lcARNs([]string{"step", "bound"}),
		Document: aws.String(`{"op":"x"}`), TimeoutConfig: &iottypes.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(10)}}); err != nil {
		t.Fatal(err)
	}
	step := devices["step"]
	got := step.MustAccept("$aws/things/step/jobs/start-next", `{"stepTimeoutInMinutes":2}`)
	if got["execution"].(map[string]any)["approximateSecondsBeforeTimedOut"] != float64(120) {
		t.Fatalf("start-next = %v", got)
	}
	bound := devices["bound"]
	bound.MustAccept("$aws/things/bound/jobs/start-next", `{}`)
	b.Clock.Advance(7 * time.Minute)
	// A 9-minute step at minute 7 still ends at minute 10.
	got = bound.MustAccept("$aws/things/bound/jobs/t1/update", `{"status":"IN_PROGRESS","stepTimeoutInMinutes":9}`)
	got = bound.MustAccept("$aws/things/bound/jobs/t1/get", `{}`)
	if got["execution"].(map[string]any)["approximateSecondsBeforeTimedOut"] != float64(180) {
		t.Fatalf("bounded step = %v", got)
	}
	b.Clock.Advance(3*time.Minute + time.Second)
	for _, th := range []string{"step", "bound"} {
		d := devices[th]
		brokertest.Eventually(t, th+" timed out", func() error {
			n := filter(d.Received(), "/notify")
			if len(n) < 2 || !strings.Contains(string(n[len(n)-1].Payload), `"jobs":{}`) {
				return fmt.Errorf("notify %d", len(n))
			}
			return nil
		})
		reply := d.MustReject("$aws/things/"+th+"/jobs/t1/update", `{"status":"SUCCEEDED","clientToken":"late"}`)
		if reply["code"] != "InvalidStateTransition" || reply["executionState"].(map[string]any)["status"] != "TIMED_OUT" {
			t.Fatalf("%s late update: %v", th, reply)
		}
	}
	job, _ := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("t1")})
	if aws.ToInt32(job.Job.JobProcessDetails.NumberOfTimedOutThings) != 2 || job.Job.Status != iottypes.JobStatusCompleted {
		t.Fatalf("job %+v", job.Job.JobProcessDetails)
	}
}

// TestRetry: a FAILED execution gets a new attempt with the next
// executionNumber, which the device hears on notify-next and runs.
func TestRetry(t *testing.T) {
	b := brokertest.Start(t)
	d := lcDevices(t, b, "r1")["r1"]
	ctx := context.Background()
	api := b.IoT()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("again"), Targets: lcARNs([]string{"r1"}), Document: aws.String(`{"op":"x"}`),
		JobExecutionsRetryConfig: &iottypes.JobExecutionsRetryConfig{CriteriaList: []iottypes.RetryCriteria{
			{FailureType: iottypes.RetryableFailureTypeFailed, NumberOfRetries: aws.Int32(1)}}}}); err != nil {
		t.Fatal(err)
	}
	d.Expect("$aws/things/r1/jobs/notify-next")
	d.MustAccept("$aws/things/r1/jobs/start-next", `{}`)
	d.MustAccept("$aws/things/r1/jobs/again/update", `{"status":"FAILED"}`)
	next := d.Expect("$aws/things/r1/jobs/notify-next").JSON(t)["execution"].(map[string]any)
	if next["executionNumber"] != float64(2) || next["status"] != "QUEUED" || next["versionNumber"] != float64(1) {
		t.Fatalf("retry notify-next = %v", next)
	}
	started := d.MustAccept("$aws/things/r1/jobs/start-next", `{}`)["execution"].(map[string]any)
	if started["executionNumber"] != float64(2) {
		t.Fatalf("start-next = %v", started)
	}
	d.MustAccept("$aws/things/r1/jobs/again/update", `{"status":"SUCCEEDED","executionNumber":2}`)
	list, err := api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("again")})
	if err != nil || len(list.ExecutionSummaries) != 2 {
		t.Fatalf("executions = %+v, %v", list, err)
	}
	last := list.ExecutionSummaries[1].JobExecutionSummary
	if aws.ToInt64(last.ExecutionNumber) != 2 || aws.ToInt32(last.RetryAttempt) != 1 || last.Status != iottypes.JobExecutionStatusSucceeded {
		t.Fatalf("second attempt = %+v", last)
	}
	job, _ := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("again")})
	if job.Job.Status != iottypes.JobStatusCompleted || aws.ToInt32(job.Job.JobProcessDetails.NumberOfSucceededThings) != 1 ||
		aws.ToInt32(job.Job.JobProcessDetails.NumberOfFailedThings) != 0 {
		t.Fatalf("job = %s %+v", job.Job.Status, job.Job.JobProcessDetails)
	}
}

// TestScheduledJobWaitsForItsWindow: SCHEDULED until its start time, then
// rolled out only inside its maintenance window.
func TestScheduledJobWaitsForItsWindow(t *testing.T) {
	b := brokertest.Start(t)
	devices := lcDevices(t, b, "s1", "s2")
	ctx := context.Background()
	api := b.IoT()
	start := b.Clock.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04") // 13:00
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("window"), Targets: lcARNs([]string{"s1", "s2"}),
		Document: aws.String(`{"op":"x"}`), SchedulingConfig: &iottypes.SchedulingConfig{StartTime: aws.String(start),
			MaintenanceWindows: []iottypes.MaintenanceWindow{{StartTime: aws.String("cron(0 14 * * ? *)"), DurationInMinutes: aws.Int32(30)}}}}); err != nil {
		t.Fatal(err)
	}
	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("window")})
	if err != nil || job.Job.Status != iottypes.JobStatusScheduled {
		t.Fatalf("job = %+v, %v", job, err)
	}
	if r := job.Job.ScheduledJobRollouts; len(r) != 7 || aws.ToString(r[0].StartTime) != "2026-05-01T14:00" {
		t.Fatalf("scheduledJobRollouts = %+v", r)
	}
	b.Clock.Advance(time.Hour) // 13:00: started, but outside the window
	brokertest.Eventually(t, "started", func() error {
		job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("window")})
		if err != nil || job.Job.Status != iottypes.JobStatusInProgress {
			return fmt.Errorf("%+v %v", job, err)
		}
		return nil
	})
	if n := lcNotified(t, devices, "window"); n != 0 {
		t.Fatalf("%d devices notified before the window", n)
	}
	b.Clock.Advance(time.Hour) // 14:00: the window opens
	brokertest.Eventually(t, "rolled out in the window", func() error {
		if n := lcNotified(t, devices, "window"); n != 2 {
			return fmt.Errorf("%d notified", n)
		}
		return nil
	})
}

// TestContinuousJobFollowsGroups: a device added to a target group later
// hears of the job; one that leaves gets REMOVED.
func TestContinuousJobFollowsGroups(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	for _, th := range []string{"c1", "c2"} {
		if _, err := b.Store.CreateThing(ctx, &store.CreateThingInput{ThingName: th}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Store.CreateThingGroup(ctx, &store.CreateThingGroupInput{Name: "site"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Store.AddThingToThingGroup(ctx, &store.MembershipInput{ThingGroupName: "site", ThingName: "c1"}); err != nil {
		t.Fatal(err)
	}
	devices := lcDevices(t, b, "c1", "c2")
	api := b.IoT()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("always"), TargetSelection: iottypes.TargetSelectionContinuous,
		Targets:  []string{"arn:aws:iot:us-east-1:123456789012:thinggroup/site"},
		Document: aws.String(`{"op":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	devices["c1"].Expect("$aws/things/c1/jobs/notify-next")
	if err := b.Store.AddThingToThingGroup(ctx, &store.MembershipInput{ThingGroupName: "site", ThingName: "c2"}); err != nil {
		t.Fatal(err)
	}
	if e := devices["c2"].Expect("$aws/things/c2/jobs/notify-next").JSON(t)["execution"].(map[string]any); e["jobId"] != "always" {
		t.Fatalf("c2 notify-next = %v", e)
	}
	if err := b.Store.RemoveThingFromThingGroup(ctx, &store.MembershipInput{ThingGroupName: "site", ThingName: "c2"}); err != nil {
		t.Fatal(err)
	}
	if n := devices["c2"].Expect("$aws/things/c2/jobs/notify-next").JSON(t); n["execution"] != nil {
		t.Fatalf("after leaving: %v", n)
	}
	reply := devices["c2"].MustReject("$aws/things/c2/jobs/always/update", `{"status":"SUCCEEDED"}`)
	if reply["executionState"].(map[string]any)["status"] != "REMOVED" {
		t.Fatalf("update after leaving = %v", reply)
	}
	job, _ := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("always")})
	if job.Job.Status != iottypes.JobStatusInProgress || aws.ToInt32(job.Job.JobProcessDetails.NumberOfRemovedThings) != 1 ||
		aws.ToInt32(job.Job.JobProcessDetails.NumberOfQueuedThings) != 1 {
		t.Fatalf("job = %s %+v", job.Job.Status, job.Job.JobProcessDetails)
	}
}

// TestEventMessages: with events switched on, an operator subscribed to
// $aws/events/# hears every job and job-execution transition.
func TestEventMessages(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) { c.Events = true })
	ops := brokertest.Connect(t, b.MQTTAddr(), "operator", 5)
	ops.Subscribe("$aws/events/#", 1)
	devices := lcDevices(t, b, "e1", "e2", "e3", "e4", "e5")
	ctx := context.Background()
	if _, err := b.Store.CreateThing(ctx, &store.CreateThingInput{ThingName: "e5"}); err != nil {
		t.Fatal(err)
	}
	api := b.IoT()
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("ev"), Targets: lcARNs([]string{"e1", "e2", "e3", "e4", "e5"}),
		Document: aws.String(`{"op":"x"}`), TimeoutConfig: &iottypes.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(1)}}); err != nil {
		t.Fatal(err)
	}
	devices["e1"].MustAccept("$aws/things/e1/jobs/ev/update", `{"status":"SUCCEEDED","statusDetails":{"r":"ok"}}`)
	devices["e2"].MustAccept("$aws/things/e2/jobs/ev/update", `{"status":"REJECTED"}`)
	devices["e4"].MustAccept("$aws/things/e4/jobs/ev/update", `{"status":"FAILED"}`)
	if err := b.Store.DeleteThing(ctx, &store.DeleteThingInput{ThingName: "e5"}); err != nil {
		t.Fatal(err)
	}
	devices["e3"].MustAccept("$aws/things/e3/jobs/start-next", `{}`)
	b.Clock.Advance(61 * time.Second)
	// The timeout is committed by the store's timer loop; the changes below
	// must come after it for the events' order to be the one wanted.
	brokertest.Eventually(t, "ev completed by the timeout", func() error {
		j, err := b.Store.DescribeJob(ctx, "ev")
		if err != nil {
			return err
		}
		if j.Status != store.JobCompleted {
			return fmt.Errorf("job ev is %s", j.Status)
		}
		return nil
	})
	want := []string{
		"jobExecution/ev/succeeded SUCCEEDED e1", "jobExecution/ev/rejected REJECTED e2", "jobExecution/ev/failed FAILED e4",
		"jobExecution/ev/removed REMOVED e5", "jobExecution/ev/timed_out TIMED_OUT e3", "job/ev/completed COMPLETED",
	}
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("gone"), Targets: lcARNs([]string{"e1"}), Document: aws.String(`{"op":"y"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("gone"), Comment: aws.String("no")}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("gone")}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "job/gone/cancellation_in_progress CANCELLATION_IN_PROGRESS", "jobExecution/gone/canceled CANCELED e1",
		"job/gone/canceled CANCELED", "job/gone/deletion_in_progress DELETION_IN_PROGRESS", "jobExecution/gone/deleted DELETED e1",
		"job/gone/deleted DELETED")
	var got []string
	brokertest.Eventually(t, "events", func() error {
		got = nil
		for _, m := range ops.Received() {
			v := m.JSON(t)
			s := strings.TrimPrefix(m.Topic, "$aws/events/") + " " + v["status"].(string)
			if arn, ok := v["thingArn"].(string); ok {
				s += " " + strings.TrimPrefix(arn, "arn:aws:iot:us-east-1:123456789012:thing/")
			}
			if v["eventId"] == "" || v["timestamp"] == nil {
				return fmt.Errorf("event without id or timestamp: %s", m.Payload)
			}
			got = append(got, s)
		}
		if len(got) < len(want) {
			return fmt.Errorf("%d of %d: %q", len(got), len(want), got)
		}
		return nil
	})
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	completed := filter(ops.Received(), "/completed")[0].JSON(t)
	pd := completed["jobProcessDetails"].(map[string]any)
	if pd["numberOfSucceededThings"] != float64(1) || pd["numberOfRejectedThings"] != float64(1) || pd["numberOfFailedThings"] != float64(1) ||
		pd["numberOfRemovedThings"] != float64(1) || completed["completedAt"] == nil {
		t.Fatalf("completed event = %v", completed)
	}
	// Switched off through the API, nothing more is published.
	if _, err := api.UpdateEventConfigurations(ctx, &iot.UpdateEventConfigurationsInput{EventConfigurations: map[string]iottypes.Configuration{
		"JOB": {Enabled: false}, "JOB_EXECUTION": {Enabled: false}}}); err != nil {
		t.Fatal(err)
	}
	before := len(ops.Received())
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("quiet"), Targets: lcARNs([]string{"e1"}), Document: aws.String(`{"op":"z"}`)}); err != nil {
		t.Fatal(err)
	}
	devices["e1"].MustAccept("$aws/things/e1/jobs/quiet/update", `{"status":"SUCCEEDED"}`)
	// A notification published after those changes is the barrier: had an
	// event been published, it would have arrived before.
	ops.Subscribe("$aws/things/e1/jobs/notify", 1)
	createJob(t, b, "barrier", "e1")
	// Only a notify that lists the barrier job is the barrier: the notify
	// of an earlier change may still be on its way.
	ops.ExpectContaining("$aws/things/e1/jobs/notify", `"barrier"`)
	if n := len(filter(ops.Received(), "/succeeded", "/completed")); n != len(filter(ops.Received()[:before], "/succeeded", "/completed")) {
		t.Fatalf("events published after being switched off")
	}
}
