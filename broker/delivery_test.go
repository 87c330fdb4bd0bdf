package broker_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestRepliesArePrivate shows that a client subscribed with wildcards to
// another thing's and to its own reply topics never receives a reply to
// someone else's request, while notifications still reach it.
func TestRepliesArePrivate(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "j1", "a")
	a := brokertest.Connect(t, b.MQTTAddr(), "a", 4)
	spy := brokertest.Connect(t, b.MQTTAddr(), "spy", 5)
	for _, f := range []string{
		"#", "$aws/#", "$aws/things/+/jobs/#", "$aws/things/a/jobs/#", "$aws/things/a/jobs/+/update/+",
		"$aws/things/a/jobs/get/accepted", "$aws/things/+/jobs/start-next/+", "$aws/things/spy/jobs/#",
	} {
		spy.Subscribe(f, 1)
	}
	// The requester also holds overlapping subscriptions to its replies.
	a.Subscribe("$aws/things/a/jobs/#", 1)
	a.Subscribe("$aws/things/a/jobs/+/update/accepted", 0)

	base := "$aws/things/a/jobs/"
	a.MustAccept(base+"get", map[string]any{"clientToken": "1"})
	a.MustAccept(base+"start-next", map[string]any{"clientToken": "2"})
	a.MustAccept(base+"j1/get", map[string]any{"clientToken": "3"})
	a.MustAccept(base+"$next/get", map[string]any{"clientToken": "4"})
	a.MustAccept(base+"j1/update", map[string]any{"status": "IN_PROGRESS", "clientToken": "5"})
	a.MustReject(base+"j1/update", map[string]any{"status": "IN_PROGRESS", "expectedVersion": 1, "clientToken": "6"})
	a.MustReject(base+"bogus", map[string]any{"clientToken": "7"})
	// The spy may ask about its own thing; that reply is its own.
	spy.MustAccept("$aws/things/spy/jobs/get", map[string]any{})

	// Notifications are ordinary broker messages: the spy, subscribed to
	// a's topics, gets them, and they arrive after anything sent before.
	createJob(t, b, "barrier", "a")
	spy.ExpectContaining(base+"notify", `"barrier"`)
	for _, m := range spy.Received() {
		if strings.HasSuffix(m.Topic, "/accepted") || strings.HasSuffix(m.Topic, "/rejected") {
			t.Fatalf("the spy received a reply: %s %s", m.Topic, m.Payload)
		}
		if strings.HasSuffix(m.Topic, "/get") || strings.HasSuffix(m.Topic, "/update") || strings.HasSuffix(m.Topic, "/start-next") {
			t.Fatalf("a request was fanned out: %s", m.Topic)
		}
	}
	// The requester got exactly one copy of each reply, even though two of
	// its subscriptions match the update replies; requests are not echoed.
	a.ExpectContaining(base+"notify", `"barrier"`)
	for _, m := range a.Received() {
		if strings.Contains(m.Topic, "/accepted") || strings.Contains(m.Topic, "/rejected") {
			t.Fatalf("a duplicate reply reached the requester: %s %s", m.Topic, m.Payload)
		}
		if strings.HasSuffix(m.Topic, "/get") || strings.HasSuffix(m.Topic, "/update") {
			t.Fatalf("the request was echoed back: %s", m.Topic)
		}
	}
}

// TestReplyDelivery checks who gets replies at which QoS: an unsubscribed
// requester (as seqsense's Go client and the OTA agent are) gets it at the
// request's QoS; a subscribed one at its subscription's QoS.
func TestReplyDelivery(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "j1", "dev")
	for _, version := range []int{4, 5} {
		d := brokertest.Connect(t, b.MQTTAddr(), "dev", version)
		base := "$aws/things/dev/jobs/"

		d.Publish(base+"get", `{}`, 1)
		if m := d.Expect(base + "get/accepted"); m.QoS != 1 {
			t.Errorf("MQTT %d: unsubscribed reply to a QoS 1 request has QoS %d", version, m.QoS)
		}
		d.Publish(base+"get", `{}`, 0)
		if m := d.Expect(base + "get/accepted"); m.QoS != 0 {
			t.Errorf("MQTT %d: unsubscribed reply to a QoS 0 request has QoS %d", version, m.QoS)
		}
		d.Subscribe(base+"$next/get/+", 0)
		d.Publish(base+"$next/get", `{}`, 1)
		m := d.Expect(base + "$next/get/accepted")
		if m.QoS != 0 {
			t.Errorf("MQTT %d: reply on a QoS 0 subscription has QoS %d", version, m.QoS)
		}
		if e := m.JSON(t)["execution"].(map[string]any); e["jobId"] != "j1" {
			t.Errorf("$next describe: %s", m.Payload)
		}
		d.Unsubscribe(base + "$next/get/+")
		// The MQTT 5 request-response pattern: subscribe, ask, unsubscribe.
		d.Subscribe(base+"j1/get/+", 1)
		if reply := d.MustAccept(base+"j1/get", map[string]any{"clientToken": "x"}); reply["clientToken"] != "x" {
			t.Errorf("reply %v", reply)
		}
		d.Unsubscribe(base + "j1/get/+")
		d.Close()
	}
}

// TestReplyBeforeNotifications checks that a device hears the reply to its
// request before the notifications the request caused, over MQTT and over
// HTTP.
func TestReplyBeforeNotifications(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "first", "dev")
	createJob(t, b, "second", "dev")
	d := brokertest.Connect(t, b.MQTTAddr(), "dev", 4)
	base := "$aws/things/dev/jobs/"
	d.Subscribe(base+"notify", 1)
	d.Subscribe(base+"notify-next", 1)
	for range 20 {
		d.Publish(base+"get", `{}`, 1) // traffic that notifies nobody
	}
	d.Publish(base+"first/update", `{"status":"SUCCEEDED"}`, 1)
	var order []string
	brokertest.Eventually(t, "reply and notifications", func() error {
		order = nil
		for _, m := range d.Received() {
			// Replies to the gets are not part of the order, nor are
			// notifications of the jobs' creation, which the dispatcher
			// may deliver after the subscriptions: those still list
			// "first" as pending.
			stale := !strings.HasSuffix(m.Topic, "/accepted") && strings.Contains(string(m.Payload), `"first"`)
			if stale || strings.HasSuffix(m.Topic, "get/accepted") {
				continue
			}
			order = append(order, m.Topic[len(base):])
		}
		if len(order) < 3 {
			return fmt.Errorf("%v", order)
		}
		return nil
	})
	if strings.Join(order, " ") != "first/update/accepted notify notify-next" {
		t.Fatalf("order = %v", order)
	}
	d.Messages()
	// The same over HTTP: the response is written before notify goes out.
	dpOK(t, b, "POST", "/things/dev/jobs/second", `{"status":"SUCCEEDED"}`)
	d.Expect(base + "notify-next")
	d.Expect(base + "notify")
}

// TestEchoPrefix: with EchoPrefix set, a publish under it is answered to
// its publisher alone and consumed (jobsbench's baseline).
func TestEchoPrefix(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) { c.EchoPrefix = "bench/" })
	d := brokertest.Connect(t, b.MQTTAddr(), "e1", 4)
	spy := brokertest.Connect(t, b.MQTTAddr(), "spy", 5)
	spy.Subscribe("bench/#", 1)
	spy.Subscribe("other/#", 1)
	d.Publish("bench/42", "ping", 1)
	if m := d.Expect("bench/42/reply"); string(m.Payload) != "ping" {
		t.Fatalf("echo = %q", m.Payload)
	}
	d.Publish("other/topic", "x", 1) // not under the prefix: an ordinary publish
	spy.Expect("other/topic")
	if n := len(spy.Received()); n != 0 {
		t.Fatalf("the spy saw %d echo messages", n)
	}
}
