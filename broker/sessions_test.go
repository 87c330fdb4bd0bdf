package broker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store"
)

// restart stops b and starts a broker on the same data directory (and
// clock); the new one listens on new ports.
func restart(t *testing.T, b *brokertest.Instance) *brokertest.Instance {
	t.Helper()
	b.Stop(t)
	return brokertest.StartWith(t, b.Config, b.Clock)
}

// persistent connects a raw client with a persistent session: clean
// session off (3.1.1), or clean start off with a one-hour expiry (5).
func persistent(t *testing.T, addr, id string, version byte) *brokertest.RawClient {
	t.Helper()
	return brokertest.DialRaw(t, addr, brokertest.RawOptions{ID: id, Version: version, Expiry: 3600})
}

// usage returns what the broker's store holds for sessions.
func usage(t *testing.T, b *brokertest.Instance) *store.SessionUsage {
	t.Helper()
	u, err := b.Store.(store.SessionStore).SessionUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func payloads(pks []packets.Packet) []string {
	out := make([]string, len(pks))
	for i, pk := range pks {
		out[i] = string(pk.Payload)
	}
	return out
}

// receive takes n publishes, acknowledging each.
func receive(t *testing.T, c *brokertest.RawClient, n int) []packets.Packet {
	t.Helper()
	var out []packets.Packet
	for range n {
		pk := c.ExpectPublish()
		if pk.FixedHeader.Qos > 0 {
			c.Ack(pk.PacketID)
		}
		out = append(out, pk)
	}
	return out
}

// TestPersistentSessionAcrossRestart: a device with a persistent session
// subscribes and goes away; QoS 1 messages published while it is away,
// before and after the broker restarts, reach it in order when it comes
// back without subscribing again, and its session is present.
func TestPersistentSessionAcrossRestart(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("mqtt%d", v), func(t *testing.T) {
			b := brokertest.Start(t)
			dev := persistent(t, b.MQTTAddr(), "dev", v)
			if dev.SessionPresent {
				t.Fatal("a new session is present")
			}
			if code := dev.Subscribe("things/dev/cmd", 1, 0); code != 1 {
				t.Fatalf("SUBACK %#x", code)
			}
			dev.Disconnect()
			// Publish only once the broker has seen the device go: a
			// message written to it before that is in flight, and comes
			// back with DUP, as it should.
			brokertest.Eventually(t, "the device is offline", func() error {
				if n := value(t, scrape(t, b), "jobsbroker_sessions", "state=offline"); n != 1 {
					return fmt.Errorf("%v sessions offline", n)
				}
				return nil
			})

			pub := brokertest.Connect(t, b.MQTTAddr(), "pub", int(v))
			for i := 1; i <= 3; i++ {
				pub.Publish("things/dev/cmd", fmt.Sprintf("m%d", i), 1)
			}
			pub.Close()
			b = restart(t, b)
			pub = brokertest.Connect(t, b.MQTTAddr(), "pub", int(v))
			pub.Publish("things/dev/cmd", "qos0", 0) // not kept: AWS IoT keeps QoS 1 only
			pub.Publish("things/dev/cmd", "m4", 1)   // acknowledged after qos0 was handled
			// mochi acknowledges a publish before it hands it to the
			// subscribers: wait until m4 is queued, or it may reach the
			// device as a live message ahead of the stored ones (as on AWS
			// IoT, stored messages go along with current traffic).
			brokertest.Eventually(t, "m4 is queued", func() error {
				if n := value(t, scrape(t, b), "jobsbroker_session_queued_messages"); n != 4 {
					return fmt.Errorf("%v messages queued", n)
				}
				return nil
			})
			dev = persistent(t, b.MQTTAddr(), "dev", v)
			if !dev.SessionPresent {
				t.Fatal("CONNACK session present 0 after the restart")
			}
			got := receive(t, dev, 4)
			if p := payloads(got); !slices.Equal(p, []string{"m1", "m2", "m3", "m4"}) {
				t.Fatalf("queued messages = %v, want m1..m4 in order", p)
			}
			for _, pk := range got {
				if pk.FixedHeader.Qos != 1 || pk.FixedHeader.Dup || pk.TopicName != "things/dev/cmd" {
					t.Errorf("queued message %s: qos %d dup %v topic %s", pk.Payload, pk.FixedHeader.Qos, pk.FixedHeader.Dup, pk.TopicName)
				}
			}
			// The restored subscription is in force for live messages.
			pub.Publish("things/dev/cmd", "m5", 1)
			if p := payloads(receive(t, dev, 1)); p[0] != "m5" {
				t.Fatalf("live message = %v", p)
			}
			if pk, ok := dev.NextPublish(200 * time.Millisecond); ok {
				t.Fatalf("unexpected message %q", pk.Payload)
			}
			dev.Disconnect()
			brokertest.Eventually(t, "acknowledged messages leave the store", func() error {
				if u := usage(t, b); u.Messages != 0 || u.Sessions != 1 || u.Subscriptions != 1 {
					return fmt.Errorf("store holds %+v", u)
				}
				return nil
			})

			// Nothing is owed after a second restart.
			b = restart(t, b)
			dev = persistent(t, b.MQTTAddr(), "dev", v)
			if !dev.SessionPresent {
				t.Fatal("session not present after the second restart")
			}
			if pk, ok := dev.NextPublish(300 * time.Millisecond); ok {
				t.Fatalf("redelivered %q, acknowledged before the restart", pk.Payload)
			}
		})
	}
}

// TestInFlightResentWithDUP: a message sent and not acknowledged when the
// client left is resent with DUP and its packet id when it returns, also
// across a restart.
func TestInFlightResentWithDUP(t *testing.T) {
	b := brokertest.Start(t)
	dev := persistent(t, b.MQTTAddr(), "dev", 4)
	dev.Subscribe("a/b", 1, 0)
	pub := brokertest.Connect3(t, b.MQTTAddr(), "pub")
	pub.Publish("a/b", "first", 1)
	pub.Publish("a/b", "second", 1)
	first := dev.ExpectPublish() // not acknowledged
	second := dev.ExpectPublish()
	dev.Ack(second.PacketID)
	if first.FixedHeader.Dup {
		t.Fatal("first delivery has DUP set")
	}
	brokertest.Eventually(t, "the broker has the PUBACK", func() error {
		if n := value(t, scrape(t, b), "jobsbroker_session_queued_messages"); n != 1 {
			return fmt.Errorf("%v messages owed", n)
		}
		return nil
	})
	dev.Drop()
	b = restart(t, b)
	dev = persistent(t, b.MQTTAddr(), "dev", 4)
	again := dev.ExpectPublish()
	if string(again.Payload) != "first" || !again.FixedHeader.Dup || again.PacketID != first.PacketID {
		t.Fatalf("resent %q dup %v id %d, want %q with DUP and id %d", again.Payload, again.FixedHeader.Dup, again.PacketID,
			first.Payload, first.PacketID)
	}
	dev.Ack(again.PacketID)
	if pk, ok := dev.NextPublish(300 * time.Millisecond); ok {
		t.Fatalf("unexpected %q (id %d dup %v; first %d, second %d): the second message was acknowledged", pk.Payload, pk.PacketID, pk.FixedHeader.Dup, first.PacketID, second.PacketID)
	}
}

// TestCleanStartEndsSession: connecting with clean session (start) ends
// the stored session and frees what it held.
func TestCleanStartEndsSession(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("mqtt%d", v), func(t *testing.T) {
			b := brokertest.Start(t)
			empty := usage(t, b)
			dev := persistent(t, b.MQTTAddr(), "dev", v)
			dev.Subscribe("a/b", 1, 0)
			dev.Disconnect()
			pub := brokertest.Connect3(t, b.MQTTAddr(), "pub")
			pub.Publish("a/b", "x", 1)
			clean := brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "dev", Version: v, Clean: true})
			if clean.SessionPresent {
				t.Fatal("clean start got session present")
			}
			if pk, ok := clean.NextPublish(300 * time.Millisecond); ok {
				t.Fatalf("a clean session got %q from the session it ended", pk.Payload)
			}
			pub.Publish("a/b", "y", 1)
			if pk, ok := clean.NextPublish(300 * time.Millisecond); ok {
				t.Fatalf("a clean session got %q on the ended session's subscription", pk.Payload)
			}
			clean.Disconnect()
			brokertest.Eventually(t, "the ended session leaves the store", func() error {
				if u := usage(t, b); u.Sessions != 0 || u.Messages != 0 || u.Subscriptions != 0 || u.Bytes != empty.Bytes {
					return fmt.Errorf("store holds %+v", u)
				}
				return nil
			})
			b = restart(t, b)
			if dev := persistent(t, b.MQTTAddr(), "dev", v); dev.SessionPresent {
				t.Fatal("the ended session came back after a restart")
			}
		})
	}
}

// TestSessionExpiry: a session whose client stays away past its expiry
// ends, with its queued messages: the store goes back to what it held
// before. MQTT 5 clients get their own shorter interval, and a longer one
// is capped to the broker's.
func TestSessionExpiry(t *testing.T) {
	b := brokertest.Start(t)
	empty := usage(t, b)
	v3 := persistent(t, b.MQTTAddr(), "v3", 4)
	v3.Subscribe("a/b", 1, 0)
	v3.Disconnect()
	short := brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "short", Version: 5, Expiry: 60})
	short.Subscribe("a/b", 1, 0)
	short.Disconnect()
	long := brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "long", Version: 5, Expiry: 7200})
	if got := long.Connack.Properties.SessionExpiryInterval; !long.Connack.Properties.SessionExpiryIntervalFlag || got != 3600 {
		t.Errorf("CONNACK session expiry interval %d (flag %v), want the broker's maximum, 3600",
			got, long.Connack.Properties.SessionExpiryIntervalFlag)
	}
	long.Subscribe("a/b", 1, 0)
	long.Disconnect()
	pub := brokertest.Connect3(t, b.MQTTAddr(), "pub")
	for i := range 20 {
		pub.Publish("a/b", strings.Repeat("x", 1000)+fmt.Sprint(i), 1)
	}
	awaitOffline(t, b, 3)
	full := usage(t, b)
	if full.Messages != 60 || full.Sessions != 3 {
		t.Fatalf("store holds %+v, want 3 sessions with 20 messages each", full)
	}

	b.Clock.Advance(61 * time.Second)
	brokertest.Eventually(t, "the MQTT 5 session with a 60 s interval expires", func() error {
		if u := usage(t, b); u.Sessions != 2 || u.Messages != 40 {
			return fmt.Errorf("store holds %+v", u)
		}
		return nil
	})
	b.Clock.Advance(time.Hour)
	brokertest.Eventually(t, "the other sessions expire after an hour", func() error {
		if u := usage(t, b); u.Sessions != 0 || u.Messages != 0 || u.Subscriptions != 0 || u.Bytes != empty.Bytes {
			return fmt.Errorf("store holds %+v, held %+v before any session", u, empty)
		}
		return nil
	})
	fam := scrape(t, b)
	if n := value(t, fam, "jobsbroker_sessions_expired_total"); n != 3 {
		t.Errorf("jobsbroker_sessions_expired_total = %v, want 3", n)
	}
	if n := value(t, fam, "jobsbroker_session_queued_messages"); n != 0 {
		t.Errorf("jobsbroker_session_queued_messages = %v after expiry", n)
	}
	for _, id := range []string{"v3", "long"} {
		c := persistent(t, b.MQTTAddr(), id, 4)
		if c.SessionPresent {
			t.Errorf("%s: session present after it expired", id)
		}
		pub.Publish("a/b", "after", 1)
		if pk, ok := c.NextPublish(300 * time.Millisecond); ok {
			t.Errorf("%s: the expired session's subscription still delivers %q", id, pk.Payload)
		}
		c.Disconnect()
	}
}

// TestSessionExpiryAcrossRestart: a session expires at its deadline even
// when the broker restarted in between, and one that expired while the
// broker was down is gone when it starts.
func TestSessionExpiryAcrossRestart(t *testing.T) {
	b := brokertest.Start(t)
	for i, id := range []string{"early", "late"} {
		c := persistent(t, b.MQTTAddr(), id, 4)
		c.Subscribe("a/b", 1, 0)
		c.Disconnect()
		awaitOffline(t, b, i+1)
		b.Clock.Advance(30 * time.Minute)
	}
	// early left an hour ago, late half an hour ago.
	b.Stop(t)
	b.Clock.Advance(time.Minute) // early is past its hour while the broker is down
	b = brokertest.StartWith(t, b.Config, b.Clock)
	if u := usage(t, b); u.Sessions != 1 {
		t.Fatalf("after the restart the store holds %+v, want late's session only", u)
	}
	b.Clock.Advance(30 * time.Minute)
	brokertest.Eventually(t, "late expires an hour after it left, not after the restart", func() error {
		if u := usage(t, b); u.Sessions != 0 {
			return fmt.Errorf("store holds %+v", u)
		}
		return nil
	})
}

// awaitOffline waits until n persistent sessions are offline: the broker
// has seen their clients leave.
func awaitOffline(t *testing.T, b *brokertest.Instance, n int) {
	t.Helper()
	brokertest.Eventually(t, "clients have left", func() error {
		if off := value(t, scrape(t, b), "jobsbroker_sessions", "state=offline"); off != float64(n) {
			return fmt.Errorf("%v sessions offline, want %d", off, n)
		}
		return nil
	})
}

// TestQueueLimit: beyond max_queued_messages the oldest messages are
// dropped and counted.
func TestQueueLimit(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) { c.MaxQueuedMessages = 3 })
	dev := persistent(t, b.MQTTAddr(), "dev", 4)
	dev.Subscribe("a/b", 1, 0)
	dev.Disconnect()
	pub := brokertest.Connect3(t, b.MQTTAddr(), "pub")
	for i := 1; i <= 5; i++ {
		pub.Publish("a/b", fmt.Sprintf("m%d", i), 1)
	}
	brokertest.Eventually(t, "dropped messages leave the store", func() error {
		if u := usage(t, b); u.Messages != 3 {
			return fmt.Errorf("store holds %d messages, want 3", u.Messages)
		}
		return nil
	})
	if n := value(t, scrape(t, b), "jobsbroker_session_dropped_messages_total", "reason=queue_full"); n != 2 {
		t.Errorf("jobsbroker_session_dropped_messages_total{reason=queue_full} = %v, want 2", n)
	}
	b = restart(t, b)
	dev = persistent(t, b.MQTTAddr(), "dev", 4)
	if p := payloads(receive(t, dev, 3)); !slices.Equal(p, []string{"m3", "m4", "m5"}) {
		t.Fatalf("delivered %v, want the newest three", p)
	}
}

// TestRetainedAcrossRestart: retained messages survive a restart with
// their MQTT 5 properties; an empty retained publish deletes one for good.
func TestRetainedAcrossRestart(t *testing.T) {
	b := brokertest.Start(t)
	pub := brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "pub", Version: 5, Clean: true})
	pub.Publish("cfg/a", []byte("A1"), 1, true)
	pub.Publish("cfg/a", []byte("A2"), 1, true)
	pub.Publish("cfg/b", []byte("B"), 1, true)
	pub.Publish("cfg/c", []byte("C"), 0, true)
	pub.Publish("cfg/b", nil, 1, true) // deletes
	b = restart(t, b)
	sub := brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "sub", Version: 5, Clean: true})
	sub.Subscribe("cfg/#", 1, 0)
	got := map[string]string{}
	for range 2 {
		pk := sub.ExpectPublish()
		if !pk.FixedHeader.Retain {
			t.Errorf("%s delivered on subscription without RETAIN", pk.TopicName)
		}
		got[pk.TopicName] = string(pk.Payload)
	}
	if want := map[string]string{"cfg/a": "A2", "cfg/c": "C"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("retained after restart = %v, want %v", got, want)
	}
	if pk, ok := sub.NextPublish(300 * time.Millisecond); ok {
		t.Fatalf("unexpected retained %s %q", pk.TopicName, pk.Payload)
	}
	pub = brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "pub", Version: 5, Clean: true})
	pub.Publish("cfg/a", nil, 1, true)
	b = restart(t, b)
	if u := usage(t, b); u.Retained != 1 {
		t.Fatalf("store holds %d retained messages, want 1 (cfg/c)", u.Retained)
	}
}

// TestRetainedLimits: a retained message over the size limit, or a new
// one beyond the count, is refused (MQTT 5: PUBACK 0x97 Quota exceeded;
// MQTT 3.1.1: the connection is closed) and changes nothing; replacing and
// deleting are always taken.
func TestRetainedLimits(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) {
		c.MaxRetainedMessages = 2
		c.MaxRetainedSize = 10
	})
	pub := brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "pub", Version: 5, Clean: true})
	if code := pub.Publish("r/big", []byte("01234567890"), 1, true); code != packets.ErrQuotaExceeded.Code {
		t.Errorf("an 11-byte retained message: PUBACK %#x, want 0x97", code)
	}
	for _, topic := range []string{"r/1", "r/2"} {
		if code := pub.Publish(topic, []byte("x"), 1, true); code != 0 {
			t.Fatalf("%s: PUBACK %#x", topic, code)
		}
	}
	if code := pub.Publish("r/3", []byte("x"), 1, true); code != packets.ErrQuotaExceeded.Code {
		t.Errorf("a third retained topic: PUBACK %#x, want 0x97", code)
	}
	if code := pub.Publish("r/1", []byte("y"), 1, true); code != 0 {
		t.Errorf("replacing a retained message at the limit: PUBACK %#x", code)
	}
	if code := pub.Publish("r/2", nil, 1, true); code != 0 {
		t.Errorf("deleting a retained message: PUBACK %#x", code)
	}
	if code := pub.Publish("r/3", []byte("x"), 1, true); code != 0 {
		t.Errorf("a new retained message after a deletion: PUBACK %#x", code)
	}
	if code := pub.Publish("r/4", []byte("plain"), 1, false); code != 0 {
		t.Errorf("a publish without RETAIN: PUBACK %#x", code)
	}
	v3 := brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "v3", Version: 4, Clean: true})
	v3.TryPublish("r/5", []byte("x"), 1, true)
	if !v3.Closed(5 * time.Second) {
		t.Error("an MQTT 3.1.1 client over the retained limit stays connected")
	}
	if n := value(t, scrape(t, b), "jobsbroker_mqtt_publishes_refused_total"); n != 3 {
		t.Errorf("jobsbroker_mqtt_publishes_refused_total = %v, want 3", n)
	}
	sub := brokertest.DialRaw(t, b.MQTTAddr(), brokertest.RawOptions{ID: "sub", Version: 5, Clean: true})
	sub.Subscribe("r/#", 1, 0)
	got := map[string]string{}
	for range 2 {
		pk := sub.ExpectPublish()
		got[pk.TopicName] = string(pk.Payload)
	}
	if fmt.Sprint(got) != fmt.Sprint(map[string]string{"r/1": "y", "r/3": "x"}) {
		t.Fatalf("retained = %v", got)
	}
}

// TestNotifyNextQueuedForOfflineSession: a device with a persistent
// session subscribed to notify-next hears, when it comes back, of the jobs
// created while it was away: once, and only the latest notify-next.
func TestNotifyNextQueuedForOfflineSession(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("mqtt%d", v), func(t *testing.T) {
			b := brokertest.Start(t)
			api := b.IoT()
			ctx := context.Background()
			thing := fmt.Sprintf("pump-%d", v)
			next := "$aws/things/" + thing + "/jobs/notify-next"
			dev := persistent(t, b.MQTTAddr(), thing, v)
			dev.Subscribe(next, 1, 0)
			dev.Disconnect()

			for _, id := range []string{"job-a", "job-b"} {
				if _, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String(id), Targets: []string{brokertest.ThingARN(thing)},
					Document: aws.String(`{"op":"` + id + `"}`)}); err != nil {
					t.Fatal(err)
				}
			}
			// job-a is next; canceling it makes job-b next: the queued
			// notify-next for job-a is replaced.
			if _, err := api.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("job-a")}); err != nil {
				t.Fatal(err)
			}
			brokertest.Eventually(t, "the notify-next for job-b is queued", func() error {
				if n := value(t, scrape(t, b), "jobsbroker_session_queued_messages"); n != 1 {
					return fmt.Errorf("%v messages queued", n)
				}
				return nil
			})
			b = restart(t, b)
			dev = persistent(t, b.MQTTAddr(), thing, v)
			if !dev.SessionPresent {
				t.Fatal("session not present")
			}
			got := receive(t, dev, 1)
			if !strings.Contains(string(got[0].Payload), `"jobId":"job-b"`) || got[0].TopicName != next {
				t.Fatalf("got %s %s, want notify-next for job-b", got[0].TopicName, got[0].Payload)
			}
			if pk, ok := dev.NextPublish(300 * time.Millisecond); ok {
				t.Fatalf("a second notification: %s %s", pk.TopicName, pk.Payload)
			}
			dev.Disconnect()
			dev = persistent(t, b.MQTTAddr(), thing, v)
			if pk, ok := dev.NextPublish(300 * time.Millisecond); ok {
				t.Fatalf("delivered again after it was acknowledged: %s", pk.Payload)
			}
		})
	}
}

// TestSubscriptionOptionsRestored: an MQTT 5 subscription's identifier
// and granted QoS are in force after a restart.
func TestSubscriptionOptionsRestored(t *testing.T) {
	b := brokertest.Start(t)
	dev := persistent(t, b.MQTTAddr(), "dev", 5)
	dev.Subscribe("ids/#", 1, 42)
	if code := dev.Subscribe("zero/#", 0, 0); code != 0 {
		t.Fatalf("QoS 0 subscription granted %#x", code)
	}
	dev.Disconnect()
	b = restart(t, b)
	dev = persistent(t, b.MQTTAddr(), "dev", 5)
	pub := brokertest.Connect3(t, b.MQTTAddr(), "pub")
	pub.Publish("ids/x", "with id", 1)
	pk := receive(t, dev, 1)[0]
	if !slices.Equal(pk.Properties.SubscriptionIdentifier, []int{42}) || pk.FixedHeader.Qos != 1 {
		t.Errorf("message through the restored subscription: ids %v qos %d, want [42] and 1",
			pk.Properties.SubscriptionIdentifier, pk.FixedHeader.Qos)
	}
	pub.Publish("zero/x", "at qos 0", 1)
	if pk := receive(t, dev, 1)[0]; pk.FixedHeader.Qos != 0 {
		t.Errorf("message through a QoS 0 subscription has QoS %d", pk.FixedHeader.Qos)
	}
}

// TestSessionTakeover: a second connection with the client ID takes the
// session over, with what the first one had in flight.
func TestSessionTakeover(t *testing.T) {
	b := brokertest.Start(t)
	first := persistent(t, b.MQTTAddr(), "dev", 4)
	first.Subscribe("a/b", 1, 0)
	pub := brokertest.Connect3(t, b.MQTTAddr(), "pub")
	pub.Publish("a/b", "unacked", 1)
	sent := first.ExpectPublish()
	second := persistent(t, b.MQTTAddr(), "dev", 4)
	if !second.SessionPresent {
		t.Fatal("takeover: session not present")
	}
	again := second.ExpectPublish()
	if string(again.Payload) != "unacked" || !again.FixedHeader.Dup || again.PacketID != sent.PacketID {
		t.Fatalf("takeover resent %q dup %v id %d", again.Payload, again.FixedHeader.Dup, again.PacketID)
	}
	second.Ack(again.PacketID)
	pub.Publish("a/b", "live", 1)
	if p := payloads(receive(t, second, 1)); p[0] != "live" {
		t.Fatalf("after takeover got %v", p)
	}
	brokertest.Eventually(t, "nothing is owed", func() error {
		if u := usage(t, b); u.Messages != 0 {
			return fmt.Errorf("%d messages stored", u.Messages)
		}
		return nil
	})
}

// TestSessionMetrics: the session gauges follow devices connecting and
// leaving.
func TestSessionMetrics(t *testing.T) {
	b := brokertest.Start(t)
	a := persistent(t, b.MQTTAddr(), "a", 4)
	a.Subscribe("x", 1, 0)
	c := persistent(t, b.MQTTAddr(), "c", 5)
	c.Disconnect()
	brokertest.Connect3(t, b.MQTTAddr(), "clean") // not a persistent session
	brokertest.Eventually(t, "the gauges", func() error {
		fam := scrape(t, b)
		if on, off := value(t, fam, "jobsbroker_sessions", "state=connected"), value(t, fam, "jobsbroker_sessions", "state=offline"); on != 1 || off != 1 {
			return fmt.Errorf("sessions connected %v offline %v, want 1 and 1", on, off)
		}
		if n := value(t, fam, "jobsbroker_session_store_records", "kind=session"); n != 2 {
			return fmt.Errorf("stored sessions %v, want 2", n)
		}
		return nil
	})
}

// TestSessionMovesToAnotherNode: on PostgreSQL, a device whose session
// node A held reconnects to node B with its session present, and gets the
// notify-next A queued for it while it was away.
func TestSessionMovesToAnotherNode(t *testing.T) {
	url := brokertest.PostgresURL(t)
	node := func(id string) *brokertest.Instance {
		return brokertest.Start(t, func(c *broker.Config) {
			c.Store, c.StoreURL, c.NodeID = broker.StorePostgres, url, id
		})
	}
	a, b := node("node-a"), node("node-b")
	const thing = "roamer"
	next := "$aws/things/" + thing + "/jobs/notify-next"
	dev := persistent(t, a.MQTTAddr(), thing, 4)
	dev.Subscribe(next, 1, 0)
	dev.Disconnect()
	awaitOffline(t, a, 1)
	if _, err := b.IoT().CreateJob(context.Background(), &iot.CreateJobInput{JobId: aws.String("j1"),
		Targets: []string{brokertest.ThingARN(thing)}, Document: aws.String(`{"op":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, "node a queues the notify-next", func() error {
		if n := value(t, scrape(t, a), "jobsbroker_session_queued_messages"); n != 1 {
			return fmt.Errorf("%v queued on node a", n)
		}
		return nil
	})
	a.Stop(t)
	dev = persistent(t, b.MQTTAddr(), thing, 4)
	if !dev.SessionPresent {
		t.Fatal("node b did not find the session node a held")
	}
	got := receive(t, dev, 1)[0]
	if got.TopicName != next || !strings.Contains(string(got.Payload), `"jobId":"j1"`) {
		t.Fatalf("got %s %s", got.TopicName, got.Payload)
	}
	// The subscription came along: the next change reaches the device on b.
	dev.Publish("$aws/things/"+thing+"/jobs/start-next", []byte(`{}`), 1, false)
	dev.Publish("$aws/things/"+thing+"/jobs/j1/update", []byte(`{"status":"SUCCEEDED"}`), 1, false)
	for {
		pk := dev.ExpectPublish()
		if pk.FixedHeader.Qos > 0 {
			dev.Ack(pk.PacketID)
		}
		if pk.TopicName == next {
			if strings.Contains(string(pk.Payload), "execution") {
				t.Fatalf("notify-next after the job succeeded still names one: %s", pk.Payload)
			}
			break
		}
	}
}

// TestSessionNotResumedAcrossVersions: as on AWS IoT, an MQTT 3.1.1
// persistent session is not resumed by an MQTT 5 connection, and the other
// way round.
func TestSessionNotResumedAcrossVersions(t *testing.T) {
	b := brokertest.Start(t)
	for i, vs := range [][2]byte{{4, 5}, {5, 4}} {
		id := fmt.Sprintf("dev-%d-%d", vs[0], vs[1])
		first := persistent(t, b.MQTTAddr(), id, vs[0])
		first.Subscribe("a/"+id, 1, 0)
		first.Disconnect()
		awaitOffline(t, b, i+1)
		again := persistent(t, b.MQTTAddr(), id, vs[1])
		if again.SessionPresent {
			t.Errorf("an MQTT %d session was resumed over MQTT %d", vs[0], vs[1])
		}
		pub := brokertest.Connect3(t, b.MQTTAddr(), "pub-"+id)
		pub.Publish("a/"+id, "x", 1)
		if pk, ok := again.NextPublish(300 * time.Millisecond); ok {
			t.Errorf("the ended session's subscription delivered %q", pk.Payload)
		}
		again.Disconnect()
		awaitOffline(t, b, i+1) // the new session of the other version
	}
}

// TestNotificationInFlightKept: a notification in flight to a connected
// device with a persistent session is written to the store once it has
// waited for its PUBACK a while, and resent with DUP after a restart; its
// PUBACK removes it.
func TestNotificationInFlightKept(t *testing.T) {
	b := brokertest.Start(t)
	const thing = "slow-acker"
	next := "$aws/things/" + thing + "/jobs/notify-next"
	dev := persistent(t, b.MQTTAddr(), thing, 4)
	dev.Subscribe(next, 1, 0)
	if _, err := b.IoT().CreateJob(context.Background(), &iot.CreateJobInput{JobId: aws.String("j1"),
		Targets: []string{brokertest.ThingARN(thing)}, Document: aws.String(`{"op":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	first := dev.ExpectPublish() // not acknowledged
	brokertest.Eventually(t, "the unacknowledged notification is written", func() error {
		if u := usage(t, b); u.Messages != 1 {
			return fmt.Errorf("%d messages stored", u.Messages)
		}
		return nil
	})
	dev.Drop()
	b = restart(t, b)
	dev = persistent(t, b.MQTTAddr(), thing, 4)
	again := dev.ExpectPublish()
	if again.TopicName != next || !again.FixedHeader.Dup || again.PacketID != first.PacketID {
		t.Fatalf("after the restart: %s dup %v id %d, want %s with DUP and id %d", again.TopicName, again.FixedHeader.Dup,
			again.PacketID, next, first.PacketID)
	}
	dev.Ack(again.PacketID)
	brokertest.Eventually(t, "the acknowledged notification leaves the store", func() error {
		if u := usage(t, b); u.Messages != 0 {
			return fmt.Errorf("%d messages stored", u.Messages)
		}
		return nil
	})
}

// TestStalledSubscriberHoldsUpNoPublisher: a persistent subscriber stops
// reading while three publishers send it 24 MiB of QoS 1 messages, far
// more than its socket takes. Every publisher gets every PUBACK at its own
// pace (mochi, whose writes to a client hold the lock that publishing a
// QoS 1 message to it needs, would keep them waiting for -write-timeout);
// the subscriber is disconnected once its output has made no progress for
// -write-timeout, and gets every message when it reconnects.
func TestStalledSubscriberHoldsUpNoPublisher(t *testing.T) {
	const n, publishers = 1500, 3
	b := brokertest.Start(t, func(c *broker.Config) { c.WriteTimeout, c.MaxQueuedMessages = 2*time.Second, 2*n })
	sub := dialRaw(t, b.MQTTAddr(), nil)
	if code, _ := sub.connect(rawConnect{id: "stalled-sub", persistent: true}); code != 0 {
		t.Fatalf("connect: %#x", code)
	}
	sub.subscribe(1, 1, "stalled/#")
	payload := strings.Repeat("x", 16<<10)
	var wg sync.WaitGroup
	for p := range publishers {
		pub := brokertest.Connect3(t, b.MQTTAddr(), fmt.Sprintf("stalled-pub-%d", p))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < n; i += publishers {
				// TryPublish gives up after 5 s without a PUBACK.
				if err := pub.TryPublish("stalled/t", fmt.Sprintf("%04d%s", i, payload), 1); err != nil {
					t.Errorf("publish %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait() // the subscriber reads nothing meanwhile
	if t.Failed() {
		return
	}
	brokertest.Eventually(t, "the stalled subscriber disconnected", func() error {
		if cl, ok := b.MQTT.Clients.Get("stalled-sub"); ok && !cl.Closed() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	sub.conn.Close()
	again := dialRaw(t, b.MQTTAddr(), nil)
	if code, present := again.connect(rawConnect{id: "stalled-sub", persistent: true}); code != 0 || !present {
		t.Fatalf("reconnect: %#x, session present %v", code, present)
	}
	got := map[string]bool{}
	for len(got) < n {
		pk, err := again.read(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(got), n, err)
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		got[string(pk.Payload[:4])] = true
		again.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
}
