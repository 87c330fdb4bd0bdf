package jobsbrokertest_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/jobsbroker/jobsbroker/jobsbrokertest"
)

// A device's firmware-update flow against a broker that answers its first
// update VersionMismatch. In a test, jobsbrokertest.Start(t, ...) does what
// New and Close do here, and stops the broker when the test ends.
func Example() {
	b, err := jobsbrokertest.New(jobsbrokertest.Options{
		Preload: `
jobs:
  - jobId: fw-2
    targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1]
    document: {operation: update, version: "2.0"}
`,
		Faults: `
faults:
  - {kind: reject, thing: pump-1, operation: update, code: VersionMismatch, count: 1}
`,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	// The device: start the next job, report success, and retry once a
	// rejection says to.
	device := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.MQTTURL()).SetClientID("pump-1"))
	if tok := device.Connect(); tok.Wait() && tok.Error() != nil {
		log.Fatal(tok.Error())
	}
	defer device.Disconnect(0)
	replies := make(chan mqtt.Message, 8)
	device.SubscribeMultiple(map[string]byte{
		"$aws/things/pump-1/jobs/start-next/+":  1,
		"$aws/things/pump-1/jobs/fw-2/update/+": 1,
	}, func(_ mqtt.Client, m mqtt.Message) { replies <- m }).Wait()
	request := func(topic, payload string) string {
		device.Publish("$aws/things/pump-1/jobs/"+topic, 1, false, payload).Wait()
		m := <-replies
		return strings.TrimPrefix(m.Topic(), "$aws/things/pump-1/jobs/")
	}
	fmt.Println(request("start-next", `{}`))
	for request("fw-2/update", `{"status":"SUCCEEDED"}`) != "fw-2/update/accepted" {
		fmt.Println("retrying after a rejection")
	}

	e, err := b.Wait(context.Background(), "pump-1", "fw-2", "SUCCEEDED", 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.Status, "at version", e.VersionNumber)
	for _, l := range b.Transcript("pump-1") {
		fmt.Println(l.Direction, strings.TrimPrefix(l.Topic, "$aws/things/pump-1/jobs/"))
	}
	// Output:
	// start-next/accepted
	// retrying after a rejection
	// SUCCEEDED at version 3
	// in start-next
	// out start-next/accepted
	// in fw-2/update
	// fault fw-2/update/rejected
	// out fw-2/update/rejected
	// in fw-2/update
	// out fw-2/update/accepted
}
