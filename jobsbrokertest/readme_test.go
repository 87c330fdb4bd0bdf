package jobsbrokertest_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/jobsbroker/jobsbroker/jobsbrokertest"
)

// TestFirmwareUpdate is the README's Go recipe, byte for byte (see
// TestREADMEGoRecipe): a test of device code that must finish its job
// although the broker drops its notify-next.
func TestFirmwareUpdate(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{
		Preload: "jobs:\n  - {jobId: fw-2, targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1], document: {}}\n",
		Faults:  "faults:\n  - {kind: drop, topic: notify-next, count: 1}\n",
	})
	runDevice(t, b.MQTTURL(), "pump-1") // the code under test: it must start the job without notify-next
	if _, err := b.Wait(t.Context(), "pump-1", "fw-2", "SUCCEEDED", 30*time.Second); err != nil {
		t.Fatalf("%v; the device saw %+v", err, b.Transcript("pump-1"))
	}
	job, err := iot.NewFromConfig(b.AWSConfig()).DescribeJob(t.Context(), &iot.DescribeJobInput{JobId: aws.String("fw-2")})
	if err != nil || job.Job.Status != types.JobStatusCompleted {
		t.Errorf("DescribeJob: %v, %v", job, err)
	}
}

// runDevice stands for the device code under test in the README's recipe:
// on connecting it asks for its next job with start-next (rather than
// waiting for a notify-next that may never come), and reports SUCCEEDED.
func runDevice(t *testing.T, url, thing string) {
	t.Helper()
	device := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(thing))
	if tok := device.Connect(); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer device.Disconnect(0)
	prefix := "$aws/things/" + thing + "/jobs/"
	started := make(chan []byte, 1)
	if tok := device.Subscribe(prefix+"start-next/accepted", 1, func(_ mqtt.Client, m mqtt.Message) {
		started <- m.Payload()
	}); tok.Wait() && tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	device.Publish(prefix+"start-next", 1, false, `{}`).Wait()
	var reply []byte
	select {
	case reply = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no start-next/accepted within 10 s")
	}
	job := between(string(reply), `"jobId":"`, `"`)
	if job == "" {
		t.Fatalf("start-next/accepted without a job: %s", reply)
	}
	device.Publish(prefix+job+"/update", 1, false, `{"status":"SUCCEEDED"}`).Wait()
}

// between returns the text of s after the first from and before the next
// to, or "".
func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}

// TestREADMEGoRecipe keeps the README's Go recipe compiled and run: its
// block must appear in this file exactly as the README shows it.
func TestREADMEGoRecipe(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(readme, []byte("```go\nfunc TestFirmwareUpdate("))
	if !ok {
		t.Fatal("README.md has no ```go block that starts with func TestFirmwareUpdate(")
	}
	block, _, ok := bytes.Cut(rest, []byte("\n```\n"))
	if !ok {
		t.Fatal("the README's TestFirmwareUpdate block has no closing fence")
	}
	block = append([]byte("func TestFirmwareUpdate("), block...)
	self, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(self, block) {
		t.Errorf("the README's TestFirmwareUpdate differs from the one in readme_test.go; keep them the same:\n%s", block)
	}
}
