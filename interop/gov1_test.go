package interop

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"
	awsv1 "github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/iotjobsdataplane"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestGoSDKv1DataPlane plays a device over HTTP with the AWS SDK for Go v1
// iotjobsdataplane client (v1.55.8), and checks the result with the v2
// iot client.
func TestGoSDKv1DataPlane(t *testing.T) {
	p := brokertest.StartProcess(t, t.TempDir())
	ctx := context.Background()
	api := brokertest.IoTClient(p.APIURL())
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{
		JobId: aws.String("v1-job"), Targets: []string{brokertest.ThingARN("v1-dev")},
		Document: aws.String(`{"operation":"update"}`),
	}); err != nil {
		t.Fatal(err)
	}
	sess, err := session.NewSession(&awsv1.Config{
		Region:      awsv1.String("us-east-1"),
		Endpoint:    awsv1.String("http://" + p.JobsAddr),
		Credentials: credentials.NewStaticCredentials("AKIDEXAMPLE", "secret", ""),
		MaxRetries:  awsv1.Int(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	dev := iotjobsdataplane.New(sess)
	thing := awsv1.String("v1-dev")

	pending, err := dev.GetPendingJobExecutions(&iotjobsdataplane.GetPendingJobExecutionsInput{ThingName: thing})
	if err != nil {
		t.Fatal(err)
	}
	if len(pending.QueuedJobs) != 1 || awsv1.StringValue(pending.QueuedJobs[0].JobId) != "v1-job" {
		t.Fatalf("pending = %v", pending)
	}
	next, err := dev.DescribeJobExecution(&iotjobsdataplane.DescribeJobExecutionInput{ThingName: thing, JobId: awsv1.String("$next")})
	if err != nil {
		t.Fatal(err)
	}
	if awsv1.StringValue(next.Execution.JobDocument) != `{"operation":"update"}` {
		t.Fatalf("$next = %v", next)
	}
	started, err := dev.StartNextPendingJobExecution(&iotjobsdataplane.StartNextPendingJobExecutionInput{
		ThingName: thing, StepTimeoutInMinutes: awsv1.Int64(10), StatusDetails: map[string]*string{"step": awsv1.String("download")},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := started.Execution
	if awsv1.StringValue(e.Status) != "IN_PROGRESS" || awsv1.Int64Value(e.VersionNumber) != 2 || awsv1.Int64Value(e.ApproximateSecondsBeforeTimedOut) < 590 {
		t.Fatalf("started = %v", e)
	}
	up, err := dev.UpdateJobExecution(&iotjobsdataplane.UpdateJobExecutionInput{
		ThingName: thing, JobId: awsv1.String("v1-job"), Status: awsv1.String("IN_PROGRESS"),
		StatusDetails: map[string]*string{"progress": awsv1.String("50")}, ExpectedVersion: awsv1.Int64(2),
		IncludeJobExecutionState: awsv1.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if awsv1.Int64Value(up.ExecutionState.VersionNumber) != 3 {
		t.Fatalf("update = %v", up)
	}
	// The rejections, with the SDK's own error codes.
	_, err = dev.UpdateJobExecution(&iotjobsdataplane.UpdateJobExecutionInput{
		ThingName: thing, JobId: awsv1.String("v1-job"), Status: awsv1.String("SUCCEEDED"), ExpectedVersion: awsv1.Int64(2),
	})
	var aerr awserr.Error
	if !errors.As(err, &aerr) || aerr.Code() != iotjobsdataplane.ErrCodeInvalidStateTransitionException {
		t.Fatalf("stale expectedVersion: %v", err)
	}
	_, err = dev.DescribeJobExecution(&iotjobsdataplane.DescribeJobExecutionInput{ThingName: thing, JobId: awsv1.String("no-such-job")})
	if !errors.As(err, &aerr) || aerr.Code() != iotjobsdataplane.ErrCodeResourceNotFoundException {
		t.Fatalf("unknown job: %v", err)
	}
	if _, err := dev.UpdateJobExecution(&iotjobsdataplane.UpdateJobExecutionInput{
		ThingName: thing, JobId: awsv1.String("v1-job"), Status: awsv1.String("SUCCEEDED"),
		StatusDetails: map[string]*string{"progress": awsv1.String("100")},
	}); err != nil {
		t.Fatal(err)
	}
	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("v1-job")})
	if err != nil {
		t.Fatal(err)
	}
	if job.Job.Status != iottypes.JobStatusCompleted || aws.ToInt32(job.Job.JobProcessDetails.NumberOfSucceededThings) != 1 {
		t.Fatalf("job = %+v %+v", job.Job, job.Job.JobProcessDetails)
	}
	ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("v1-job"), ThingName: aws.String("v1-dev")})
	if err != nil || ex.Execution.StatusDetails.DetailsMap["progress"] != "100" {
		t.Fatalf("execution = %+v, %v", ex, err)
	}
}
