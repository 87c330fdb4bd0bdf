package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// processStartExec runs StartCommandExecution against a broker process.
func processStartExec(t *testing.T, p *brokertest.Process, cmd, thing string, timeout int) string {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"commandArn": cmdArnPrefix + cmd, "targetArn": brokertest.ThingARN(thing), "executionTimeoutSeconds": timeout})
	resp, err := http.Post("http://"+p.JobsAddr+"/command-executions", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ExecutionID string }
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != http.StatusOK || out.ExecutionID == "" {
		t.Fatalf("StartCommandExecution: %d %s", resp.StatusCode, body)
	}
	return out.ExecutionID
}

// TestCommandUpdatesSurviveSIGKILL: a device sends a burst of final
// reports and the broker is killed (SIGKILL) in the middle of it; after a
// restart every report it had accepted is there. Then an execution whose
// timeout comes while the broker is down times out once after the
// restart.
func TestCommandUpdatesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	p := brokertest.StartProcess(t, dir)
	api := brokertest.IoTClient(p.APIURL())
	ctx := context.Background()
	if _, err := api.CreateCommand(ctx, &iot.CreateCommandInput{CommandId: aws.String("C"),
		Payload: &types.CommandPayload{Content: []byte(`{}`), ContentType: aws.String("application/json")}}); err != nil {
		t.Fatal(err)
	}
	const n = 200
	execs := make([]string, n)
	for i := range execs {
		execs[i] = processStartExec(t, p, "C", "T1", 43200)
	}
	dev := dialRaw(t, p.MQTTAddr, nil)
	if code, _ := dev.connect(rawConnect{id: "T1"}); code != 0 {
		t.Fatalf("CONNACK %#x", code)
	}
	for i, x := range execs {
		dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: uint16(i + 1),
			TopicName: "$aws/commands/things/T1/executions/" + x + "/response/json",
			Payload:   []byte(fmt.Sprintf(`{"status":"SUCCEEDED","result":{"n":{"s":"%d"}}}`, i))})
	}
	accepted := map[string]bool{}
	killed := false
	for {
		pk, err := dev.read(10 * time.Second)
		if err != nil {
			break // the broker is gone
		}
		if pk.FixedHeader.Type != packets.Publish || !strings.HasSuffix(pk.TopicName, "/response/accepted/json") {
			continue
		}
		var body struct{ ExecutionID string }
		json.Unmarshal(pk.Payload, &body)
		accepted[body.ExecutionID] = true
		if len(accepted) == n/4 && !killed {
			p.Kill()
			killed = true
		}
	}
	if !killed {
		t.Fatalf("the burst ended (%d accepted) before the kill", len(accepted))
	}
	t.Logf("%d of %d reports accepted before SIGKILL", len(accepted), n)

	p = brokertest.StartProcess(t, dir)
	api = brokertest.IoTClient(p.APIURL())
	for x := range accepted {
		got, err := api.GetCommandExecution(ctx, &iot.GetCommandExecutionInput{ExecutionId: aws.String(x), TargetArn: aws.String(brokertest.ThingARN("T1"))})
		if err != nil {
			t.Fatalf("GetCommandExecution %s: %v", x, err)
		}
		if got.Status != types.CommandExecutionStatusSucceeded || got.Result["n"].S == nil {
			t.Fatalf("execution %s, accepted before the kill, is %s with result %v", x, got.Status, got.Result)
		}
	}

	// A timeout due while the broker is down fires once after the restart.
	// It is long enough that a loaded machine cannot delay the kill past it
	// (with 3 s the timer once fired in the first process).
	const timeout = 8
	requested := time.Now()
	late := processStartExec(t, p, "C", "T2", timeout)
	p.Kill()
	if time.Since(requested) >= timeout*time.Second {
		t.Fatalf("the kill came %v after the execution started, past its %d s timeout", time.Since(requested), timeout)
	}
	due := requested.Add(timeout*time.Second + 500*time.Millisecond)
	brokertest.Eventually(t, "the timeout is due", func() error {
		if time.Now().Before(due) {
			return errors.New("not yet")
		}
		return nil
	})
	p = brokertest.StartProcess(t, dir)
	api = brokertest.IoTClient(p.APIURL())
	brokertest.Eventually(t, "the execution timed out after the restart", func() error {
		got, err := api.GetCommandExecution(ctx, &iot.GetCommandExecutionInput{ExecutionId: aws.String(late), TargetArn: aws.String(brokertest.ThingARN("T2"))})
		if err != nil {
			return err
		}
		if got.Status != types.CommandExecutionStatusTimedOut || aws.ToString(got.StatusReason.ReasonCode) != "$NO_RESPONSE_FROM_DEVICE" {
			return fmt.Errorf("status %s", got.Status)
		}
		return nil
	})
	resp, err := http.Get(p.APIURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `jobsbroker_command_executions_total{status="TIMED_OUT"} 1`+"\n") {
		t.Fatalf("the timeout did not fire exactly once:\n%s", grepLines(string(metrics), "jobsbroker_command_"))
	}
}
