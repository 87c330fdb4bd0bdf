package jobsbrokertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/broker/traffic"
	"github.com/jobsbroker/jobsbroker/jobsbrokertest"
	"github.com/jobsbroker/jobsbroker/jobshook/faults"
)

// One job queued for pump-1: what every fault test starts from.
const onePumpJob = `
jobs:
  - jobId: j1
    targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1]
    document: {operation: update}
`

const (
	startNext  = "$aws/things/pump-1/jobs/start-next"
	updateJ1   = "$aws/things/pump-1/jobs/j1/update"
	notifyNext = "$aws/things/pump-1/jobs/notify-next"
	notify     = "$aws/things/pump-1/jobs/notify"
)

// startWith starts a broker with onePumpJob and the fault file, and a
// paho device for pump-1.
func startWith(t *testing.T, faultFile string) (*jobsbrokertest.Broker, *brokertest.Client) {
	t.Helper()
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Preload: onePumpJob, Faults: faultFile})
	return b, brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
}

// faultLines returns the fault lines of a transcript.
func faultLines(lines []traffic.Line) []traffic.Line {
	var out []traffic.Line
	for _, l := range lines {
		if l.Direction == traffic.FaultDirection {
			out = append(out, l)
		}
	}
	return out
}

// expectFault checks that thing's transcript holds exactly one fault
// line, of kind, on topic, and that the metric counts one of kind.
func expectFault(t *testing.T, b *jobsbrokertest.Broker, thing string, kind faults.Kind, topic string) traffic.Line {
	t.Helper()
	fl := faultLines(b.Transcript(thing))
	if len(fl) != 1 {
		t.Fatalf("transcript has %d fault lines, want 1: %+v", len(fl), fl)
	}
	var f faults.Fault
	if err := json.Unmarshal(fl[0].Fault, &f); err != nil || f.Kind != kind || fl[0].Topic != topic {
		t.Errorf("fault line = %s on %s, want kind %s on %s", fl[0].Fault, fl[0].Topic, kind, topic)
	}
	if got := scrapeFired(t, b, kind); got != 1 {
		t.Errorf("jobsbroker_faults_fired_total{kind=%q} = %d, want 1", kind, got)
	}
	return fl[0]
}

// scrapeFired reads jobsbroker_faults_fired_total{kind} from /metrics.
func scrapeFired(t *testing.T, b *jobsbrokertest.Broker, kind faults.Kind) int {
	t.Helper()
	resp, err := http.Get(b.APIURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^jobsbroker_faults_fired_total\{kind="` + regexp.QuoteMeta(string(kind)) + `"\} (\d+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no jobsbroker_faults_fired_total for kind %s", kind)
	}
	var n int
	fmt.Sscan(string(m[1]), &n)
	return n
}

func status(t *testing.T, b *jobsbrokertest.Broker, want string) *jobsbrokertest.Execution {
	t.Helper()
	e, err := b.Wait(context.Background(), "pump-1", "j1", want, 5*time.Second)
	if err != nil {
		t.Fatalf("wait for %s: %v (execution %+v)", want, err, e)
	}
	return e
}

func TestFaultReject(t *testing.T) {
	b, dev := startWith(t, `
faults:
  - {kind: reject, thing: pump-1, operation: update, code: VersionMismatch, count: 1}
`)
	dev.MustAccept(startNext, map[string]any{})
	rej := dev.MustReject(updateJ1, map[string]any{"status": "SUCCEEDED", "clientToken": "t1"})
	if rej["code"] != "VersionMismatch" || rej["clientToken"] != "t1" {
		t.Errorf("rejection = %v, want VersionMismatch echoing the client token", rej)
	}
	if e := status(t, b, "IN_PROGRESS"); e.VersionNumber != 2 {
		t.Errorf("the rejected update ran: version %d, want 2", e.VersionNumber)
	}
	expectFault(t, b, "pump-1", faults.Reject, updateJ1+"/rejected")
	dev.MustAccept(updateJ1, map[string]any{"status": "SUCCEEDED"}) // count 1: spent
	status(t, b, "SUCCEEDED")
}

func TestFaultDropReply(t *testing.T) {
	b, dev := startWith(t, `
faults:
  - {kind: drop, operation: update, count: 1}
`)
	dev.MustAccept(startNext, map[string]any{})
	dev.Publish(updateJ1, map[string]any{"status": "SUCCEEDED"}, 1)
	status(t, b, "SUCCEEDED") // it ran
	if m, ok := dev.Wait(300*time.Millisecond, updateJ1+"/accepted"); ok {
		t.Errorf("the dropped reply arrived: %s", m.Payload)
	}
	expectFault(t, b, "pump-1", faults.Drop, updateJ1+"/accepted")
}

func TestFaultDuplicateReply(t *testing.T) {
	b, dev := startWith(t, `
faults:
  - {kind: duplicate, operation: start-next}
`)
	first := dev.MustAccept(startNext, map[string]any{"clientToken": "once"})
	second, ok := dev.Wait(5*time.Second, startNext+"/accepted")
	if !ok {
		t.Fatal("the reply was not sent twice")
	}
	if second.JSON(t)["clientToken"] != first["clientToken"] {
		t.Errorf("the second reply differs: %s", second.Payload)
	}
	expectFault(t, b, "pump-1", faults.Duplicate, startNext+"/accepted")
}

func TestFaultDelayReply(t *testing.T) {
	b, dev := startWith(t, `
faults:
  - {kind: delay, operation: start-next, delay: 400ms}
`)
	start := time.Now()
	dev.Publish(startNext, map[string]any{}, 1) // the PUBACK is not delayed
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("the PUBACK took %v", took)
	}
	dev.Expect(startNext + "/accepted")
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("the reply came after %v, want at least 400ms", took)
	}
	expectFault(t, b, "pump-1", faults.Delay, startNext+"/accepted")
}

func TestFaultDisconnect(t *testing.T) {
	b, dev := startWith(t, `
faults:
  - {kind: disconnect, operation: update, skip: 1, count: 1}
`)
	dev.MustAccept(startNext, map[string]any{})
	dev.MustAccept(updateJ1, map[string]any{"status": "IN_PROGRESS", "statusDetails": map[string]string{"step": "1"}}) // skipped
	if err := dev.TryPublish(updateJ1, `{"status":"SUCCEEDED"}`, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for dev.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("the client is still connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	status(t, b, "SUCCEEDED") // committed, never told
	if m, ok := dev.Wait(100*time.Millisecond, updateJ1+"/accepted"); ok {
		t.Errorf("the reply reached the device: %s", m.Payload)
	}
	line := expectFault(t, b, "pump-1", faults.Disconnect, updateJ1+"/accepted")
	if !strings.Contains(line.Payload, `"timestamp"`) {
		t.Errorf("the fault line does not keep the withheld reply: %q", line.Payload)
	}
}

func TestFaultRefuseConnect(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Faults: `
faults:
  - {kind: refuse-connect, thing: pump-1, count: 1, code: NotAuthorized}
  - {kind: refuse-connect, thing: pump-1, count: 1}
`})
	dial := brokertest.Dial{URL: b.MQTTURL(), ID: "pump-1"}
	if _, err := brokertest.TryConnect(t, dial); err == nil || !strings.Contains(strings.ToLower(err.Error()), "not authorized") {
		t.Errorf("first CONNECT: %v, want refused not authorized", err)
	}
	if _, err := brokertest.TryConnect(t, dial); err == nil {
		t.Error("second CONNECT was accepted")
	}
	if _, err := brokertest.TryConnect(t, dial); err != nil {
		t.Errorf("third CONNECT: %v", err)
	}
	if _, err := brokertest.TryConnect(t, brokertest.Dial{URL: b.MQTTURL(), ID: "pump-2"}); err != nil {
		t.Errorf("another client was refused: %v", err)
	}
	if n := len(faultLines(b.Transcript("pump-1"))); n != 2 {
		t.Errorf("transcript has %d fault lines, want 2", n)
	}
	if got := scrapeFired(t, b, faults.RefuseConnect); got != 2 {
		t.Errorf("refuse-connect fired %d times, want 2", got)
	}
}

// createJob creates job id for pump-1 through the AWS SDK.
func createJob(t *testing.T, b *jobsbrokertest.Broker, id string) {
	t.Helper()
	_, err := iot.NewFromConfig(b.AWSConfig()).CreateJob(context.Background(), &iot.CreateJobInput{
		JobId: aws.String(id), Targets: []string{jobsbrokertest.ThingARN("pump-1")}, Document: aws.String(`{"op":"x"}`)})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFaultDropNotifyNext(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Faults: `
faults:
  - {kind: drop, topic: notify-next, count: 1}
`})
	dev := brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
	dev.Subscribe(notifyNext, 1)
	dev.Subscribe(notify, 1)
	createJob(t, b, "j1")
	dev.Expect(notify) // notify is not dropped
	if m, ok := dev.Wait(300*time.Millisecond, notifyNext); ok {
		t.Errorf("the dropped notify-next arrived: %s", m.Payload)
	}
	line := expectFault(t, b, "pump-1", faults.Drop, notifyNext)
	if !strings.Contains(line.Payload, `"j1"`) {
		t.Errorf("the fault line does not keep the dropped message: %q", line.Payload)
	}
	createJob(t, b, "j2") // spent: j1 is still next, so no notify-next; notify comes
	dev.ExpectContaining(notify, "j2")
}

func TestFaultDuplicateNotify(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Faults: `
faults:
  - {kind: duplicate, thing: pump-1, topic: notify}
`})
	dev := brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
	dev.Subscribe(notify, 1)
	createJob(t, b, "j1")
	dev.Expect(notify)
	dev.Expect(notify)
	expectFault(t, b, "pump-1", faults.Duplicate, notify)
}

func TestFaultDelayNotifyNext(t *testing.T) {
	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Faults: `
faults:
  - {kind: delay, topic: notify-next, delay: 400ms}
`})
	dev := brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
	dev.Subscribe(notifyNext, 1)
	dev.Subscribe(notify, 1)
	start := time.Now()
	createJob(t, b, "j1")
	dev.Expect(notify)
	dev.Expect(notifyNext)
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("notify-next came after %v, want at least 400ms", took)
	}
	expectFault(t, b, "pump-1", faults.Delay, notifyNext)
}

// seededRun runs a device that retries rejected updates against faults
// that reject half of them at random, and returns its transcript with
// what differs from run to run (times, timestamps) taken out.
func seededRun(t *testing.T, seed int) []string {
	b, dev := startWith(t, fmt.Sprintf(`
seed: %d
faults:
  - {kind: reject, operation: update, code: InternalError, probability: 0.5}
`, seed))
	dev.MustAccept(startNext, map[string]any{})
	for i := range 12 {
		details := map[string]any{"status": "IN_PROGRESS", "statusDetails": map[string]string{"step": fmt.Sprint(i)}}
		dev.Request(updateJ1, details)
	}
	stamp := regexp.MustCompile(`"(timestamp|lastUpdatedAt|startedAt|queuedAt)":\d+`)
	var out []string
	for _, l := range b.Transcript("pump-1") {
		out = append(out, fmt.Sprintf("%d %s %s %s %s", l.Seq, l.Direction, l.Topic, l.Fault, stamp.ReplaceAllString(l.Payload, `"$1":0`)))
	}
	return out
}

func TestSameSeedSameTranscript(t *testing.T) {
	a, b := seededRun(t, 7), seededRun(t, 7)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("two runs with seed 7 differ:\n%s\n---\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	if !strings.Contains(strings.Join(a, "\n"), "fault") {
		t.Error("seed 7 fired no fault in 12 updates")
	}
	if c := seededRun(t, 8); strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Error("seeds 7 and 8 gave the same transcript: the seed does not drive the draws")
	}
}
