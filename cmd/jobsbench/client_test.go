package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startTestBroker builds and starts a jobsbroker for a test.
func startTestBroker(t *testing.T) *target {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts a jobsbroker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := buildBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := startBroker(ctx, bin, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tg.Close(); err != nil {
			t.Error(err)
		}
	})
	return tg
}

type message struct {
	topic, payload string
	qos            byte
}

// TestClientAgainstJobsbroker runs the client's whole protocol surface
// against a real broker: CONNECT, SUBSCRIBE, a QoS 1 delivery (which the
// client acknowledges), QoS 1 requests and their replies, PINGREQ and
// DISCONNECT.
func TestClientAgainstJobsbroker(t *testing.T) {
	tg := startTestBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	msgs := make(chan message, 16)
	c, err := Dial(ctx, tg.MQTTAddr, ClientOptions{ClientID: "codec-dev", KeepAlive: 30 * time.Second,
		OnMessage: func(_ *Client, m *publish) {
			msgs <- message{string(m.Topic), string(m.Payload), m.QoS}
		}})
	if err != nil {
		t.Fatal(err)
	}
	next := func(topic string) message {
		t.Helper()
		select {
		case m := <-msgs:
			if m.topic != topic {
				t.Fatalf("got a message on %s (%s), want one on %s", m.topic, m.payload, topic)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no message on %s", topic)
		}
		return message{}
	}
	const prefix = "$aws/things/codec-dev/jobs/"
	if err := c.Subscribe(ctx, prefix+"notify-next", 1); err != nil {
		t.Fatal(err)
	}
	api := newAPIClient(tg.APIURL, 1)
	if err := api.createJob(ctx, "codec-job", []string{thingARN("codec-dev")}, benchDocument); err != nil {
		t.Fatal(err)
	}
	if m := next(prefix + "notify-next"); m.qos != 1 || !strings.Contains(m.payload, `"jobId":"codec-job"`) {
		t.Errorf("notify-next at QoS %d: %s", m.qos, m.payload)
	}

	if err := c.Publish(prefix+"start-next", []byte(`{"clientToken":"t1"}`), 1); err != nil {
		t.Fatal(err)
	}
	m := next(prefix + "start-next/accepted")
	if id, ok := jsonString([]byte(m.payload), "jobId"); !ok || string(id) != "codec-job" || !strings.Contains(m.payload, `"clientToken":"t1"`) {
		t.Errorf("start-next accepted: %s", m.payload)
	}
	if err := c.Publish(prefix+"codec-job/update", []byte(`{"status":"SUCCEEDED","clientToken":"t2"}`), 1); err != nil {
		t.Fatal(err)
	}
	next(prefix + "codec-job/update/accepted")
	next(prefix + "notify-next") // nothing pending any more
	if err := c.Publish(prefix+"codec-job/update", []byte(`{"status":"SUCCEEDED","clientToken":"t3"}`), 1); err != nil {
		t.Fatal(err)
	}
	if m := next(prefix + "codec-job/update/rejected"); !strings.Contains(m.payload, "InvalidStateTransition") {
		t.Errorf("second SUCCEEDED: %s", m.payload)
	}

	if err := c.PingIfIdle(0); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("e", 70_000) // a three-byte remaining length
	if err := c.Publish(echoPrefix+"codec-dev", []byte(payload), 1); err != nil {
		t.Fatal(err)
	}
	if m := next(echoPrefix + "codec-dev/reply"); m.payload != payload || m.qos != 1 {
		t.Errorf("echo at QoS %d with %d bytes", m.qos, len(m.payload))
	}
	if err := c.Publish(echoPrefix+"codec-dev", []byte("q0"), 0); err != nil {
		t.Fatal(err)
	}
	if m := next(echoPrefix + "codec-dev/reply"); m.payload != "q0" || m.qos != 0 {
		t.Errorf("QoS 0 echo at QoS %d: %q", m.qos, m.payload)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err after Close: %v", err)
	}
	if err := c.Publish("a/b", nil, 0); err == nil {
		t.Error("publish after Close: no error")
	}
}

func TestDialRefused(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), ClientOptions{ClientID: "x", DialTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}
