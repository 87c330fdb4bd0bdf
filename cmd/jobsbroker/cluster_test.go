package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestCluster runs two broker processes on one PostgreSQL database (issue
// 8): a device on node A hears of a job created through node B's API
// within a second; its updates through A are visible through B; A is
// killed, the device reconnects to B and finishes the job; and a step
// timer armed through A fires exactly once after A is gone.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three broker processes on PostgreSQL")
	}
	url := brokertest.PostgresURL(t)
	node := func(name string, extra ...string) *brokertest.Process {
		return brokertest.StartProcess(t, t.TempDir(), append([]string{"-store", "postgres", "-store-url", url, "-node-id", name}, extra...)...)
	}
	a, b := node("a"), node("b")
	ctx := context.Background()
	apiB := brokertest.IoTClient(b.APIURL())

	dev := brokertest.Connect3(t, a.MQTTAddr, "pump-1")
	dev.Subscribe("$aws/things/pump-1/jobs/notify-next", 1)
	timerDev := brokertest.Connect3(t, a.MQTTAddr, "timer-1")

	if _, err := apiB.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("fw"), Document: aws.String(`{"operation":"flash"}`),
		Targets: []string{brokertest.ThingARN("pump-1"), brokertest.ThingARN("timer-1")},
		JobExecutionsRetryConfig: &iottypes.JobExecutionsRetryConfig{CriteriaList: []iottypes.RetryCriteria{
			{FailureType: iottypes.RetryableFailureTypeTimedOut, NumberOfRetries: aws.Int32(1)}}},
	}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	// Milliseconds in practice (logged below); the bound only catches a
	// notification that never comes, since CI runs this on loaded cores.
	m, ok := dev.Wait(10*time.Second, "$aws/things/pump-1/jobs/notify-next")
	if !ok {
		t.Fatalf("no notify-next on node A within 10 s of CreateJob on node B")
	}
	t.Logf("notify-next reached node A %v after CreateJob returned on node B", time.Since(created))
	if e, _ := m.JSON(t)["execution"].(map[string]any); e == nil || e["jobId"] != "fw" {
		t.Fatalf("notify-next = %s", m.Payload)
	}

	// Updates through A are visible through B.
	base := "$aws/things/pump-1/jobs/"
	dev.MustAccept(base+"start-next", map[string]any{"clientToken": "s"})
	dev.MustAccept(base+"fw/update", map[string]any{"status": "IN_PROGRESS", "expectedVersion": 2, "statusDetails": map[string]string{"step": "flash"}})
	ex, err := apiB.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("fw"), ThingName: aws.String("pump-1")})
	if err != nil || ex.Execution.VersionNumber != 3 || ex.Execution.StatusDetails.DetailsMap["step"] != "flash" {
		t.Fatalf("node B sees %+v, %v", ex.Execution, err)
	}

	// A step timer armed through A.
	timerDev.MustAccept("$aws/things/timer-1/jobs/start-next", map[string]any{"stepTimeoutInMinutes": 1})

	// A dies; the device takes its session to B and finishes the job.
	a.Kill()
	dev2 := brokertest.Connect3(t, b.MQTTAddr, "pump-1")
	done := dev2.MustAccept(base+"fw/update", map[string]any{"status": "SUCCEEDED", "expectedVersion": 3, "includeJobExecutionState": true})
	if st, _ := done["executionState"].(map[string]any); st["status"] != "SUCCEEDED" {
		t.Fatalf("update through B = %v", done)
	}

	// A third node, its clock two minutes ahead, finds the timer due and
	// fires it: once, so the retry config gives exactly one new execution.
	c := node("c", "-debug-clock-offset", "2m")
	apiC := brokertest.IoTClient(c.APIURL())
	brokertest.Eventually(t, "timer-1 times out", func() error {
		out, err := apiC.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("timer-1")})
		if err != nil {
			return err
		}
		var got []string
		for _, s := range out.ExecutionSummaries {
			got = append(got, fmt.Sprintf("#%d %s", aws.ToInt64(s.JobExecutionSummary.ExecutionNumber), s.JobExecutionSummary.Status))
		}
		if fmt.Sprint(got) != "[#2 QUEUED #1 TIMED_OUT]" && fmt.Sprint(got) != "[#1 TIMED_OUT #2 QUEUED]" {
			return fmt.Errorf("executions %v", got)
		}
		return nil
	})
	job, err := apiC.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("fw")})
	if err != nil {
		t.Fatal(err)
	}
	if pd := job.Job.JobProcessDetails; aws.ToInt32(pd.NumberOfSucceededThings) != 1 || aws.ToInt32(pd.NumberOfQueuedThings) != 1 ||
		aws.ToInt32(pd.NumberOfTimedOutThings) != 0 || aws.ToInt32(pd.NumberOfInProgressThings) != 0 {
		t.Fatalf("job counts %+v", pd)
	}
}

// TestClusterNodeKilled runs three broker processes on one PostgreSQL
// database and one NATS server. A device with a persistent session and a
// clean client are subscribed on node A; a publisher on node C has ten
// QoS 1 messages acknowledged, which the device takes without
// acknowledging; another device's persistent session on A, its device
// away, is owed one. A gets SIGKILL. Both clients reconnect to node B: the
// device's session is present, every acknowledged message comes again,
// and what C publishes next reaches both, each message once. The session
// of the device that is away is taken over by another node, and when the
// device comes back it gets what it was owed and what was published for
// it after, once.
func TestClusterNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three broker processes on PostgreSQL")
	}
	a, b, c := natsCluster(t)
	away := brokertest.DialRaw(t, a.MQTTAddr, brokertest.RawOptions{ID: "away"})
	away.Subscribe("cmd/away", 1, 0)
	away.Disconnect()
	dev := brokertest.DialRaw(t, a.MQTTAddr, brokertest.RawOptions{ID: "dev"})
	dev.Subscribe("cmd/dev", 1, 0)
	watcher := brokertest.Connect3(t, a.MQTTAddr, "watcher")
	watcher.Subscribe("cmd/dev", 1)
	pub := brokertest.Connect3(t, c.MQTTAddr, "pub")
	for i := range 10 {
		pub.Publish("cmd/dev", fmt.Sprintf("m%02d", i), 1)
	}
	for range 10 {
		dev.ExpectPublish() // in flight, never acknowledged
	}
	pub.Publish("cmd/away", "a0", 1) // queued on A

	a.Kill()
	dev = brokertest.DialRaw(t, b.MQTTAddr, brokertest.RawOptions{ID: "dev"})
	if !dev.SessionPresent {
		t.Fatal("node B did not resume the session node A held")
	}
	watcher = brokertest.Connect3(t, b.MQTTAddr, "watcher")
	watcher.Subscribe("cmd/dev", 1)
	for i := 10; i < 20; i++ {
		pub.Publish("cmd/dev", fmt.Sprintf("m%02d", i), 1)
	}
	got := map[string]int{}
	for len(got) < 20 {
		pk := dev.ExpectPublish()
		dev.Ack(pk.PacketID)
		got[string(pk.Payload)]++
	}
	for p, n := range got {
		if n != 1 {
			t.Errorf("the device got %s %d times", p, n)
		}
	}
	if pk, ok := dev.NextPublish(500 * time.Millisecond); ok {
		t.Errorf("the device got %s once more", pk.Payload)
	}
	for i := 10; i < 20; i++ {
		watcher.Expect("cmd/dev")
	}

	// The device that was away has a node again: B or C took its session
	// over when A fell silent, and what is published for it meanwhile is
	// kept for it.
	brokertest.Eventually(t, "a node adopts the session of the device that is away", func() error {
		if n := metric(t, b, "jobsbroker_sessions", `state="offline"`) + metric(t, c, "jobsbroker_sessions", `state="offline"`); n != 1 {
			return fmt.Errorf("%v offline sessions on B and C", n)
		}
		return nil
	})
	for i := 1; i <= 5; i++ {
		pub.Publish("cmd/away", fmt.Sprintf("a%d", i), 1)
	}
	away = brokertest.DialRaw(t, c.MQTTAddr, brokertest.RawOptions{ID: "away"})
	if !away.SessionPresent {
		t.Fatal("the device that was away has no session")
	}
	var owed []string
	for len(owed) < 6 {
		pk := away.ExpectPublish()
		away.Ack(pk.PacketID)
		owed = append(owed, string(pk.Payload))
	}
	if fmt.Sprint(owed) != "[a0 a1 a2 a3 a4 a5]" {
		t.Errorf("the device that was away got %v", owed)
	}
	if pk, ok := away.NextPublish(500 * time.Millisecond); ok {
		t.Errorf("the device that was away got %s once more", pk.Payload)
	}
}

// TestClusterNodeKilledWhilePublishing is issue 20's promise for the
// seconds after a node dies: two devices with persistent sessions are
// subscribed on node A, A gets SIGKILL, and publishers on nodes B and C
// take turns publishing at QoS 1 from that moment until another node has
// taken the sessions over, and a little after. Every publish must be acknowledged.
// One device comes back on node C while the publishes go on, the other
// after they ended: each must get every acknowledged message (QoS 1 allows
// a message twice; the copies are counted and logged).
func TestClusterNodeKilledWhilePublishing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three broker processes on PostgreSQL")
	}
	a, b, c := natsCluster(t)
	early := brokertest.DialRaw(t, a.MQTTAddr, brokertest.RawOptions{ID: "early"})
	early.Subscribe("cmd/fleet", 1, 0)
	late := brokertest.DialRaw(t, a.MQTTAddr, brokertest.RawOptions{ID: "late", Version: 5, Expiry: 3600})
	late.Subscribe("cmd/fleet", 1, 0)
	pubs := []*brokertest.RawClient{
		brokertest.DialRaw(t, b.MQTTAddr, brokertest.RawOptions{ID: "pub-b", Version: 5, Clean: true}),
		brokertest.DialRaw(t, c.MQTTAddr, brokertest.RawOptions{ID: "pub-c", Version: 5, Clean: true}),
	}

	a.Kill()
	var acked []string
	publish := func() {
		p := fmt.Sprintf("m%03d", len(acked))
		code, err := pubs[len(acked)%2].TryPublish("cmd/fleet", []byte(p), 1, false)
		if err != nil || code >= 0x80 {
			t.Fatalf("publish %s: reason code %#x, %v", p, code, err)
		}
		acked = append(acked, p)
	}
	// Through the window in which nobody holds A's sessions: until the
	// early device is back on C, B or C holds the late one's session (its
	// client away), and the nodes have noticed A's silence (three
	// seconds), then a few more.
	killed := time.Now()
	adopted := func() bool {
		return metric(t, b, "jobsbroker_sessions", `state="offline"`)+metric(t, c, "jobsbroker_sessions", `state="offline"`) >= 1
	}
	deadline := killed.Add(30 * time.Second)
	for len(acked) < 20 || time.Since(killed) < 4*time.Second || !adopted() {
		if time.Now().After(deadline) {
			t.Fatalf("A's sessions were not taken over within 30 s (%d publishes)", len(acked))
		}
		publish()
		if len(acked) == 10 {
			early = brokertest.DialRaw(t, c.MQTTAddr, brokertest.RawOptions{ID: "early"})
			if !early.SessionPresent {
				t.Fatal("node C did not resume the session of the device that came back early")
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 10 {
		publish()
	}
	if n := metric(t, b, "jobsbroker_cluster_publishes_rescued_total", "") + metric(t, c, "jobsbroker_cluster_publishes_rescued_total", ""); n == 0 {
		t.Error("no publish was rescued: the test did not publish while A's sessions had no node")
	}
	late = brokertest.DialRaw(t, c.MQTTAddr, brokertest.RawOptions{ID: "late", Version: 5, Expiry: 3600})
	if !late.SessionPresent {
		t.Fatal("node C did not resume the session of the device that came back late")
	}
	for _, dev := range []struct {
		name string
		cl   *brokertest.RawClient
	}{{"early", early}, {"late", late}} {
		got := map[string]int{}
		dups := 0
		for len(got) < len(acked) {
			pk, ok := dev.cl.NextPublish(10 * time.Second)
			if !ok {
				var missing []string
				for _, p := range acked {
					if got[p] == 0 {
						missing = append(missing, p)
					}
				}
				t.Fatalf("the %s device lost %d of %d acknowledged messages: %v", dev.name, len(missing), len(acked), missing)
			}
			dev.cl.Ack(pk.PacketID)
			if got[string(pk.Payload)]++; got[string(pk.Payload)] > 1 {
				dups++
			}
		}
		for {
			pk, ok := dev.cl.NextPublish(500 * time.Millisecond)
			if !ok {
				break
			}
			dev.cl.Ack(pk.PacketID)
			got[string(pk.Payload)]++
			dups++
		}
		t.Logf("the %s device got all %d acknowledged messages, %d of them twice or more", dev.name, len(acked), dups)
	}
}

// natsCluster runs three broker processes, a, b and c, on one PostgreSQL
// database and one NATS server.
func natsCluster(t *testing.T) (a, b, c *brokertest.Process) {
	url := brokertest.PostgresURL(t)
	natsURL := brokertest.NATS(t).ClientURL()
	node := func(name string) *brokertest.Process {
		return brokertest.StartProcess(t, t.TempDir(), "-store", "postgres", "-store-url", url, "-node-id", name,
			"-cluster-nats-url", natsURL)
	}
	return node("a"), node("b"), node("c")
}
