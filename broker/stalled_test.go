package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store"
)

// TestStalledClientBlocksNobody: a client that subscribes to every
// thing's notify-next and then stops reading must not hold up the replies
// and notifications of other clients, and is disconnected once a write to
// it has blocked for the write timeout.
func TestStalledClientBlocksNobody(t *testing.T) {
	t.Run("stays connected", func(t *testing.T) { testStalledClient(t, -1) })
	t.Run("write timeout", func(t *testing.T) { testStalledClient(t, time.Second) })
}

func testStalledClient(t *testing.T, writeTimeout time.Duration) {
	b := brokertest.Start(t, func(c *broker.Config) { c.NoSync, c.WriteTimeout = true, writeTimeout })
	conn, err := net.Dial("tcp", b.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	var buf bytes.Buffer
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 600, ClientIdentifier: "stalled"}}
	if err := connect.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1, ProtocolVersion: 4,
		Filters: packets.Subscriptions{{Filter: "$aws/things/+/jobs/notify-next", Qos: 1}}}
	if err := sub.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, "the stalled client is subscribed", func() error {
		if len(b.MQTT.Topics.Subscribers("$aws/things/x/jobs/notify-next").Subscriptions) == 0 {
			return fmt.Errorf("no subscription yet")
		}
		return nil
	})
	// From here on the client reads nothing: enough notifications to fill
	// its socket buffers several times over.
	doc := `{"operation":"flash","blob":"` + strings.Repeat("x", 30<<10) + `"}`
	ctx := context.Background()
	for i := range 400 {
		in := &store.CreateJobInput{Job: store.Job{JobID: fmt.Sprintf("flood-%d", i),
			Targets: []string{brokertest.ThingARN(fmt.Sprintf("flood-%d", i))}}, Document: doc}
		if _, err := b.Store.CreateJob(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	// Another device is served as usual, notifications included.
	d := brokertest.Connect3(t, b.MQTTAddr(), "pump-1")
	d.Subscribe("$aws/things/pump-1/jobs/notify-next", 1)
	createJob(t, b, "after-flood", "pump-1")
	if next := d.Expect("$aws/things/pump-1/jobs/notify-next").JSON(t); next["execution"] == nil {
		t.Fatalf("notify-next = %v", next)
	}
	start := time.Now()
	for range 20 {
		d.MustAccept("$aws/things/pump-1/jobs/get", map[string]any{})
	}
	t.Logf("20 requests answered in %v beside the stalled client", time.Since(start))
	if writeTimeout < 0 {
		// Everyone else was served while it was still connected.
		if cl, ok := b.MQTT.Clients.Get("stalled"); !ok || cl.Closed() {
			t.Fatal("the stalled client was disconnected with no write timeout")
		}
		return
	}
	brokertest.Eventually(t, "the stalled client is disconnected", func() error {
		if cl, ok := b.MQTT.Clients.Get("stalled"); ok && !cl.Closed() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
}
