package interop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestMosquittoSubReceiveMaximum: libmosquitto's MQTT 5 client with a
// Receive Maximum of 3 (mosquitto_sub -D connect receive-maximum 3) gets
// all of 300 QoS 1 messages published at once, in order, from the broker
// binary. libmosquitto counts what it is sent unacknowledged and ends the
// connection if a server exceeds the Receive Maximum; mochi on its own
// stops delivering after a few.
func TestMosquittoSubReceiveMaximum(t *testing.T) {
	sub := Need(t, "mosquitto_sub", "install Debian's mosquitto-clients")
	const n = 300
	p := brokertest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	host, port, _ := net.SplitHostPort(p.MQTTAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", "mqttv5", "-i", "rm-sub",
		"-D", "connect", "receive-maximum", "3", "-q", "1", "-t", "flow/#", "-C", fmt.Sprint(n))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// mosquitto_sub's output is buffered while it runs: the broker's
	// metrics say when it has subscribed.
	brokertest.Eventually(t, "mosquitto_sub subscribed", func() error {
		resp, err := http.Get(p.APIURL() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "\njobsbroker_mqtt_subscriptions 1\n") {
			return fmt.Errorf("no subscription yet")
		}
		return nil
	})
	pub := brokertest.Connect3(t, p.MQTTAddr, "rm-pub")
	for i := range n {
		pub.Publish("flow/t", fmt.Sprint(i), 1)
	}
	werr := cmd.Wait() // -C: it exits after n messages
	text := out.String()
	if werr != nil {
		t.Fatalf("mosquitto_sub: %v:\n%s", werr, tail(text, 20))
	}
	payloads := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(payloads) != n {
		t.Fatalf("mosquitto_sub printed %d lines, want %d messages:\n%s", len(payloads), n, tail(text, 20))
	}
	for i, got := range payloads {
		if got != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: out of order", i, got)
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
