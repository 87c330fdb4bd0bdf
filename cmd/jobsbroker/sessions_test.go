package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
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

// stopBroker stops p with SIGTERM (a clean stop) or SIGKILL.
func stopBroker(t *testing.T, p *brokertest.Process, how string) {
	t.Helper()
	if how == "SIGKILL" {
		p.Kill()
		return
	}
	if code := p.Terminate(20 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d\n%s", code, p.Logs())
	}
}

// metric reads one value from the broker's /metrics ("" for no labels).
func metric(t *testing.T, p *brokertest.Process, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get(p.APIURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", series)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPersistentDeviceAcrossBrokerRestart is the fleet's story: a device
// with a persistent session, subscribed to notify-next, is connected; the
// broker stops (SIGTERM, or SIGKILL) and starts again; the device
// reconnects without subscribing again, finds its session present, hears
// of the job created while it was away, and runs it to SUCCEEDED. A second
// job, created while the device is away before the broker stops, reaches
// it after the restart too.
func TestPersistentDeviceAcrossBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		for _, v := range []int{4, 5} {
			t.Run(fmt.Sprintf("%s/mqtt%d", how, v), func(t *testing.T) {
				dir := t.TempDir()
				ctx := context.Background()
				thing := fmt.Sprintf("pump-%s-%d", strings.ToLower(how), v)
				next := "$aws/things/" + thing + "/jobs/notify-next"
				p := brokertest.StartProcess(t, dir)
				dev, present := brokertest.ConnectPersistent(t, p.MQTTAddr, thing, v)
				if present {
					t.Fatal("a new session is present")
				}
				dev.Subscribe(next, 1)

				// The broker goes down under the connected device.
				stopBroker(t, p, how)
				dev.Close()
				p = brokertest.StartProcess(t, dir)
				api := brokertest.IoTClient(p.APIURL())
				create := func(id string) {
					t.Helper()
					if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String(id),
						Targets: []string{brokertest.ThingARN(thing)}, Document: aws.String(`{"operation":"` + id + `"}`)}); err != nil {
						t.Fatal(err)
					}
				}
				create("fw-1") // while the device is away, after the restart

				dev, present = brokertest.ConnectPersistent(t, p.MQTTAddr, thing, v)
				if !present {
					t.Fatal("CONNACK session present 0 after the restart")
				}
				runJob(t, api, dev, thing, "fw-1")

				// Away again: a job created now is queued for the device, and
				// the queue survives the broker's stop.
				dev.Close()
				brokertest.Eventually(t, "the device has left", func() error {
					if n := metric(t, p, "jobsbroker_sessions", `state="offline"`); n != 1 {
						return fmt.Errorf("%v sessions offline", n)
					}
					return nil
				})
				create("fw-2")
				brokertest.Eventually(t, "the notify-next for fw-2 is stored", func() error {
					if n := metric(t, p, "jobsbroker_session_store_records", `kind="message"`); n != 1 {
						return fmt.Errorf("%v messages stored", n)
					}
					return nil
				})
				stopBroker(t, p, how)
				p = brokertest.StartProcess(t, dir)
				api = brokertest.IoTClient(p.APIURL())
				dev, present = brokertest.ConnectPersistent(t, p.MQTTAddr, thing, v)
				if !present {
					t.Fatal("session present 0 after the second restart")
				}
				runJob(t, api, dev, thing, "fw-2")
			})
		}
	}
}

// runJob waits for the notify-next that names job, then starts it,
// reports progress and success, and checks the execution through the
// control plane. The device subscribed to nothing on this connection: the
// replies reach the requester anyway, as on AWS IoT.
func runJob(t *testing.T, api *iot.Client, dev *brokertest.Client, thing, job string) {
	t.Helper()
	base := "$aws/things/" + thing + "/jobs/"
	m := dev.ExpectContaining(base+"notify-next", `"jobId":"`+job+`"`)
	if m.QoS != 1 {
		t.Errorf("notify-next came at QoS %d", m.QoS)
	}
	started := dev.MustAccept(base+"start-next", map[string]any{"clientToken": "s"})
	exec, _ := started["execution"].(map[string]any)
	if exec["jobId"] != job {
		t.Fatalf("start-next started %v, want %s", exec["jobId"], job)
	}
	dev.MustAccept(base+job+"/update", map[string]any{"status": "IN_PROGRESS", "statusDetails": map[string]string{"progress": "50"}})
	dev.MustAccept(base+job+"/update", map[string]any{"status": "SUCCEEDED"})
	ex, err := api.DescribeJobExecution(context.Background(), &iot.DescribeJobExecutionInput{JobId: aws.String(job), ThingName: aws.String(thing)})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Execution.Status != iottypes.JobExecutionStatusSucceeded {
		t.Fatalf("%s is %s", job, ex.Execution.Status)
	}
	// Exactly once: no second notify-next for the job.
	if again, ok := dev.Wait(300*time.Millisecond, base+"notify-next"); ok && strings.Contains(string(again.Payload), `"jobId":"`+job+`"`) &&
		strings.Contains(string(again.Payload), `"QUEUED"`) {
		t.Fatalf("notify-next for %s came twice: %s", job, again.Payload)
	}
}

// TestAcknowledgedMessagesSurviveSIGKILL publishes retained messages and
// QoS 1 messages for an offline persistent session, kills the broker
// mid-stream, and checks after each restart that everything acknowledged
// is there: each topic's retained message is the last one acknowledged
// (or one in flight at the kill), and the session gets every acknowledged
// message, in order.
func TestAcknowledgedMessagesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	p := brokertest.StartProcess(t, dir)
	sink := brokertest.DialRaw(t, p.MQTTAddr, brokertest.RawOptions{ID: "sink"})
	sink.Subscribe("data/#", 1, 0)
	sink.Disconnect()

	const topics = 4
	seq := 0
	lastRetained := make([]int, topics) // per topic, the last acknowledged
	for round := range 3 {
		var mu sync.Mutex
		var acked []int // queued messages acknowledged, in order
		stop := make(chan struct{})
		done := make(chan struct{})
		pub := paho3.NewClient(paho3.NewClientOptions().AddBroker("tcp://" + p.MQTTAddr).SetClientID("pub").
			SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publisher: %v", tok.Error())
		}
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				seq++
				n := seq
				retained := pub.Publish(fmt.Sprintf("state/%d", n%topics), 1, true, strconv.Itoa(n))
				queued := pub.Publish("data/x", 1, false, strconv.Itoa(n))
				if !retained.WaitTimeout(5*time.Second) || retained.Error() != nil ||
					!queued.WaitTimeout(5*time.Second) || queued.Error() != nil {
					return // the broker is gone
				}
				mu.Lock()
				lastRetained[n%topics] = n
				acked = append(acked, n)
				mu.Unlock()
			}
		}()
		brokertest.Eventually(t, "publishes acknowledged", func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(acked) < 50 {
				return fmt.Errorf("%d acknowledged", len(acked))
			}
			return nil
		})
		p.Kill()
		close(stop)
		<-done
		pub.Disconnect(0)

		p = brokertest.StartProcess(t, dir)
		// Retained: a fresh subscriber gets each topic's message.
		probe := brokertest.DialRaw(t, p.MQTTAddr, brokertest.RawOptions{ID: fmt.Sprintf("probe-%d", round), Clean: true})
		probe.Subscribe("state/#", 1, 0)
		got := map[string]int{}
		for range topics {
			pk := probe.ExpectPublish()
			got[pk.TopicName], _ = strconv.Atoi(string(pk.Payload))
		}
		probe.Disconnect()
		mu.Lock()
		for i, want := range lastRetained {
			topic := fmt.Sprintf("state/%d", i)
			if g := got[topic]; g < want || g > want+topics {
				t.Fatalf("round %d: %s holds %d after SIGKILL, %d was the last acknowledged", round, topic, g, want)
			}
		}
		// Queued: the session gets every acknowledged message, in order;
		// one in flight at the kill may come too.
		sink = brokertest.DialRaw(t, p.MQTTAddr, brokertest.RawOptions{ID: "sink"})
		if !sink.SessionPresent {
			t.Fatalf("round %d: the sink's session is gone", round)
		}
		var delivered []int
		for len(delivered) < len(acked) {
			pk := sink.ExpectPublish()
			sink.Ack(pk.PacketID)
			n, _ := strconv.Atoi(string(pk.Payload))
			if len(delivered) > 0 && n <= delivered[len(delivered)-1] {
				t.Fatalf("round %d: message %d after %d", round, n, delivered[len(delivered)-1])
			}
			delivered = append(delivered, n)
		}
		for i, n := range acked {
			if delivered[i] != n {
				t.Fatalf("round %d: delivered %v..., acknowledged %v...", round, delivered[:i+1], acked[:i+1])
			}
		}
		mu.Unlock()
		// Drain a message in flight at the kill, if any, then leave.
		if pk, ok := sink.NextPublish(300 * time.Millisecond); ok {
			sink.Ack(pk.PacketID)
		}
		sink.Disconnect()
	}
}
