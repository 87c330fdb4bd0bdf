package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestTimeoutWhileStoppedReachesPersistentDevice: a device with a
// persistent session runs a job with a one-minute in-progress timeout and
// goes away; the broker is stopped and the minute passes. The timeout
// fires as the store opens, before the broker is assembled: its
// notify-next (nothing pending any more) is held until the device's
// session is loaded, kept for it, and delivered when it comes back.
func TestTimeoutWhileStoppedReachesPersistentDevice(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	if _, err := b.IoT().CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("j1"), Targets: lcARNs([]string{"dev"}),
		Document: aws.String(`{"op":"x"}`), TimeoutConfig: &iottypes.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(1)}}); err != nil {
		t.Fatal(err)
	}
	dev := persistent(t, b.MQTTAddr(), "dev", 4)
	for _, f := range []string{"$aws/things/dev/jobs/start-next/accepted", "$aws/things/dev/jobs/notify-next"} {
		if code := dev.Subscribe(f, 1, 0); code != 1 {
			t.Fatalf("SUBACK %#x for %s", code, f)
		}
	}
	started := false
	for deadline := time.Now().Add(10 * time.Second); !started; {
		if time.Now().After(deadline) {
			t.Fatal("start-next never returned the execution")
		}
		dev.Publish("$aws/things/dev/jobs/start-next", []byte(`{}`), 1, false)
		for {
			pk, ok := dev.NextPublish(300 * time.Millisecond)
			if !ok {
				break
			}
			if pk.FixedHeader.Qos > 0 {
				dev.Ack(pk.PacketID)
			}
			if strings.HasSuffix(pk.TopicName, "/start-next/accepted") && strings.Contains(string(pk.Payload), `"IN_PROGRESS"`) {
				started = true
			}
		}
	}
	dev.Disconnect()
	brokertest.Eventually(t, "the device is offline", func() error {
		if n := value(t, scrape(t, b), "jobsbroker_sessions", "state=offline"); n != 1 {
			return fmt.Errorf("%v sessions offline", n)
		}
		return nil
	})

	b.Stop(t)
	b.Clock.Advance(2 * time.Minute)
	b = brokertest.StartWith(t, b.Config, b.Clock)
	dev = persistent(t, b.MQTTAddr(), "dev", 4)
	if !dev.SessionPresent {
		t.Fatal("the session is gone after the restart")
	}
	for {
		pk, ok := dev.NextPublish(5 * time.Second)
		if !ok {
			t.Fatal("no notify-next after the timeout that fired while the broker was stopped")
		}
		if pk.FixedHeader.Qos > 0 {
			dev.Ack(pk.PacketID)
		}
		if strings.HasSuffix(pk.TopicName, "/notify-next") && !strings.Contains(string(pk.Payload), `"execution"`) {
			return
		}
		t.Logf("skipping %s %s", pk.TopicName, pk.Payload)
	}
}
