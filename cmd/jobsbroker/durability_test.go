package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestDurabilityAcrossSIGKILL runs the broker as a child process, kills it
// with SIGKILL while devices are getting updates acknowledged, and checks
// after each restart that every acknowledged update is there. A step timer
// that expires while the broker is down fires once it is back.
func TestDurabilityAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	ctx := context.Background()
	p := brokertest.StartProcess(t, dir)
	api := brokertest.IoTClient(p.APIURL())
	const devices = 8
	var targets []string
	for i := range devices + 1 {
		targets = append(targets, brokertest.ThingARN(fmt.Sprintf("dev-%d", i)))
	}
	_, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("dur"), Targets: targets, Document: aws.String(`{"op":"x"}`)})
	if err != nil {
		t.Fatal(err)
	}

	// dev-8 starts with a one-minute step timer and then goes quiet.
	timed := brokertest.Connect3(t, p.MQTTAddr, "dev-8")
	timed.MustAccept("$aws/things/dev-8/jobs/start-next", map[string]any{"stepTimeoutInMinutes": 1})
	timed.Close()

	type ackRec struct{ seq, version int }
	acked := make([]ackRec, devices) // last update acknowledged per device
	for round := range 3 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		stop := make(chan struct{})
		for i := range devices {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runDevice(t, p.MQTTAddr, i, round, stop, func(seq, version int) {
					mu.Lock()
					if seq > acked[i].seq {
						acked[i] = ackRec{seq, version}
					}
					mu.Unlock()
				})
			}()
		}
		// Let acknowledgements flow, then pull the plug mid-stream.
		brokertest.Eventually(t, "updates acknowledged", func() error {
			mu.Lock()
			defer mu.Unlock()
			for i, a := range acked {
				if a.seq < round*1000+5 {
					return fmt.Errorf("dev-%d at %d", i, a.seq)
				}
			}
			return nil
		})
		p.Kill()
		close(stop)
		wg.Wait()

		// Come back two minutes later: dev-8's step timer has expired.
		p = brokertest.StartProcess(t, dir, "-debug-clock-offset", strconv.Itoa(2*(round+1))+"m")
		api = brokertest.IoTClient(p.APIURL())
		for i, want := range acked {
			ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("dur"), ThingName: aws.String(fmt.Sprintf("dev-%d", i))})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := strconv.Atoi(ex.Execution.StatusDetails.DetailsMap["seq"])
			version := int(ex.Execution.VersionNumber)
			if got < want.seq || version < want.version {
				t.Fatalf("round %d: dev-%d had seq %d (version %d) acknowledged, the store has seq %d (version %d)",
					round, i, want.seq, want.version, got, version)
			}
			// At most the one update in flight at the kill can have been
			// committed without its reply arriving.
			if got-want.seq > 1 || version-want.version != got-want.seq {
				t.Fatalf("round %d: dev-%d store has seq %d version %d, last acknowledged seq %d version %d",
					round, i, got, version, want.seq, want.version)
			}
		}
		brokertest.Eventually(t, "the step timer fires after the restart", func() error {
			ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("dur"), ThingName: aws.String("dev-8")})
			if err != nil {
				return err
			}
			if ex.Execution.Status != iottypes.JobExecutionStatusTimedOut {
				return fmt.Errorf("dev-8 is %s", ex.Execution.Status)
			}
			if ex.Execution.VersionNumber != 3 {
				return fmt.Errorf("dev-8 version %d, want 3: the timeout fired more than once", ex.Execution.VersionNumber)
			}
			return nil
		})
	}
	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("dur")})
	if err != nil {
		t.Fatal(err)
	}
	if pd := job.Job.JobProcessDetails; aws.ToInt32(pd.NumberOfInProgressThings) != devices || aws.ToInt32(pd.NumberOfTimedOutThings) != 1 {
		t.Fatalf("counts after restarts: %+v", pd)
	}
}

// runDevice starts its execution (round 0) and reports progress until
// stop, calling ack for every accepted update. Errors after the broker is
// killed are expected and end the loop.
func runDevice(t *testing.T, addr string, i, round int, stop <-chan struct{}, ack func(seq, version int)) {
	thing := fmt.Sprintf("dev-%d", i)
	replies := make(chan paho3.Message, 1)
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(thing).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) { replies <- m })
	c := paho3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Errorf("%s connect: %v", thing, tok.Error())
		return
	}
	defer c.Disconnect(0)
	base := "$aws/things/" + thing + "/jobs/"
	request := func(topic, payload string) (paho3.Message, bool) {
		tok := c.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return nil, false
		}
		select {
		case m := <-replies:
			return m, true
		case <-stop:
			return nil, false
		case <-time.After(5 * time.Second):
			return nil, false
		}
	}
	if round == 0 {
		if m, ok := request(base+"start-next", `{}`); !ok || m.Topic() != base+"start-next/accepted" {
			t.Errorf("%s start-next failed", thing)
			return
		}
	}
	for seq := round*1000 + 1; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		m, ok := request(base+"dur/update", `{"status":"IN_PROGRESS","includeJobExecutionState":true,"statusDetails":{"seq":"`+strconv.Itoa(seq)+`"}}`)
		if !ok {
			return
		}
		var reply struct {
			ExecutionState struct{ VersionNumber int } `json:"executionState"`
		}
		if m.Topic() == base+"dur/update/rejected" && strings.Contains(string(m.Payload()), `"code":"InternalError"`) {
			return // the broker is shutting down; the update was not acknowledged
		}
		if m.Topic() != base+"dur/update/accepted" || json.Unmarshal(m.Payload(), &reply) != nil {
			t.Errorf("%s update %d: %s %s", thing, seq, m.Topic(), m.Payload())
			return
		}
		ack(seq, reply.ExecutionState.VersionNumber)
	}
}

// TestRestartMidRollout kills the broker with SIGKILL in the middle of a
// paced rollout, with step timers running, and restarts it later: the
// rollout goes on at its rate (no burst for the time it was down) and
// every timer fires exactly once.
func TestRestartMidRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	ctx := context.Background()
	p := brokertest.StartProcess(t, dir)
	api := brokertest.IoTClient(p.APIURL())
	var paced []string
	for i := range 12 {
		paced = append(paced, brokertest.ThingARN(fmt.Sprintf("paced-%02d", i)))
	}
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("paced"), Targets: paced, Document: aws.String(`{"op":"x"}`),
		JobExecutionsRolloutConfig: &iottypes.JobExecutionsRolloutConfig{MaximumPerMinute: aws.Int32(60)}}); err != nil {
		t.Fatal(err)
	}
	timed := []string{"timed-1", "timed-2", "timed-3"}
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("timed"), Targets: []string{
		brokertest.ThingARN(timed[0]), brokertest.ThingARN(timed[1]), brokertest.ThingARN(timed[2])}, Document: aws.String(`{"op":"y"}`)}); err != nil {
		t.Fatal(err)
	}
	for i, th := range timed {
		d := brokertest.Connect3(t, p.MQTTAddr, th)
		d.MustAccept("$aws/things/"+th+"/jobs/start-next", map[string]any{"stepTimeoutInMinutes": i + 1})
		d.Close()
	}
	queued := func(api *iot.Client) int32 {
		job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("paced")})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToInt32(job.Job.JobProcessDetails.NumberOfQueuedThings)
	}
	brokertest.Eventually(t, "rollout under way", func() error {
		if n := queued(api); n < 3 {
			return fmt.Errorf("%d queued", n)
		}
		return nil
	})
	p.Kill()

	// Four minutes later by the broker's clock: every step timer is due.
	p = brokertest.StartProcess(t, dir, "-debug-clock-offset", "4m")
	restarted := time.Now()
	api = brokertest.IoTClient(p.APIURL())
	atRestart := queued(api)
	if atRestart > 6 {
		t.Fatalf("%d queued right after the restart: the rollout burst instead of keeping its rate", atRestart)
	}
	brokertest.Eventually(t, "timers fired", func() error {
		for _, th := range timed {
			ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("timed"), ThingName: aws.String(th)})
			if err != nil {
				return err
			}
			if ex.Execution.Status != iottypes.JobExecutionStatusTimedOut {
				return fmt.Errorf("%s is %s", th, ex.Execution.Status)
			}
			if ex.Execution.VersionNumber != 3 {
				return fmt.Errorf("%s version %d: its timer fired more than once", th, ex.Execution.VersionNumber)
			}
		}
		return nil
	})
	var finished time.Duration
	pollFor(t, 60*time.Second, "rollout finished", func() error {
		if n := queued(api); n < 12 {
			return fmt.Errorf("%d queued", n)
		}
		finished = time.Since(restarted)
		return nil
	})
	// One thing a second: what was left takes about that many seconds.
	if left := 12 - int(atRestart); finished < time.Duration(left-2)*time.Second {
		t.Fatalf("%d things rolled out in %v after the restart, faster than 60 a minute", left, finished)
	}
	job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("timed")})
	if err != nil || aws.ToInt32(job.Job.JobProcessDetails.NumberOfTimedOutThings) != 3 || job.Job.Status != iottypes.JobStatusCompleted {
		t.Fatalf("timed job = %+v, %v", job, err)
	}
}

// pollFor polls cond until it holds, failing the test after d.
func pollFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSIGTERMUnderLoad stops the broker with SIGTERM while devices are
// getting updates acknowledged: /readyz turns unready before the broker
// stops serving, the process exits cleanly, and after a restart every
// acknowledged update is there.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	ctx := context.Background()
	// The devices update as fast as they can: lift the per-thing rate.
	p := brokertest.StartProcess(t, dir, "-shutdown-delay", "500ms", "-request-rate", "-1")
	api := brokertest.IoTClient(p.APIURL())
	const devices = 6
	var targets []string
	for i := range devices {
		targets = append(targets, brokertest.ThingARN(fmt.Sprintf("dev-%d", i)))
	}
	if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("dur"), Targets: targets, Document: aws.String(`{"op":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	type ackRec struct{ seq, version int }
	acked := make([]ackRec, devices)
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runDevice(t, p.MQTTAddr, i, 0, stop, func(seq, version int) {
				mu.Lock()
				acked[i] = ackRec{seq, version}
				mu.Unlock()
			})
		}()
	}
	brokertest.Eventually(t, "load running", func() error {
		mu.Lock()
		defer mu.Unlock()
		for i, a := range acked {
			if a.seq < 5 {
				return fmt.Errorf("dev-%d at %d", i, a.seq)
			}
		}
		return nil
	})
	// Watch /readyz from now on: it must answer 503 before it stops
	// answering at all.
	readiness := make(chan []int, 1)
	watching := make(chan struct{})
	go func() {
		var seen []int
		defer close(watching)
		for {
			resp, err := http.Get(p.APIURL() + "/readyz")
			if err != nil {
				readiness <- seen
				return
			}
			resp.Body.Close()
			if len(seen) == 0 || seen[len(seen)-1] != resp.StatusCode {
				seen = append(seen, resp.StatusCode)
				if len(seen) == 1 {
					watching <- struct{}{}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	<-watching // the first answer is in
	if code := p.Terminate(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, p.Logs())
	}
	close(stop)
	wg.Wait()
	if seen := <-readiness; len(seen) < 2 || seen[0] != http.StatusOK || seen[len(seen)-1] != http.StatusServiceUnavailable {
		t.Fatalf("/readyz answered %v before the broker stopped; want 200 then 503", seen)
	}
	p = brokertest.StartProcess(t, dir)
	api = brokertest.IoTClient(p.APIURL())
	for i, want := range acked {
		ex, err := api.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("dur"), ThingName: aws.String(fmt.Sprintf("dev-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := strconv.Atoi(ex.Execution.StatusDetails.DetailsMap["seq"])
		if got < want.seq || int(ex.Execution.VersionNumber) < want.version {
			t.Fatalf("dev-%d: seq %d (version %d) was acknowledged, the store has seq %d (version %d)",
				i, want.seq, want.version, got, ex.Execution.VersionNumber)
		}
	}
}
