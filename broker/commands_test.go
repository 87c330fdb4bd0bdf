package broker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/fxamacker/cbor/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// The tests in this file run AWS IoT commands end to end (COMMANDS.md):
// commands through the AWS SDK for Go v2 (service/iot), StartCommandExecution
// as a request on the jobs data-plane listener, and devices as raw MQTT
// clients, which see every property and packet the broker sends.

const cmdArnPrefix = "arn:aws:iot:us-east-1:123456789012:command/"

func cmdBroker(t *testing.T, mod ...func(*broker.Config)) (*brokertest.Instance, *iot.Client) {
	t.Helper()
	b := brokertest.Start(t, append([]func(*broker.Config){func(c *broker.Config) { c.Events = true }}, mod...)...)
	return b, b.IoT()
}

func createStaticCommand(t *testing.T, api *iot.Client, id, contentType string, content []byte) {
	t.Helper()
	in := &iot.CreateCommandInput{CommandId: aws.String(id), Namespace: types.CommandNamespaceAWSIoT,
		Payload: &types.CommandPayload{Content: content}}
	if contentType != "" {
		in.Payload.ContentType = aws.String(contentType)
	}
	out, err := api.CreateCommand(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateCommand %s: %v", id, err)
	}
	if aws.ToString(out.CommandArn) != cmdArnPrefix+id {
		t.Fatalf("commandArn %q", aws.ToString(out.CommandArn))
	}
}

// startExec calls StartCommandExecution on the jobs data-plane listener
// and returns the HTTP status, the error type header and the body.
func startExec(t *testing.T, b *brokertest.Instance, body map[string]any) (int, string, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, b.JobsURL()+"/command-executions", bytes.NewReader(raw))
	if creds := b.Credentials; creds.AccessKeyID != "" {
		sum := sha256.Sum256(raw)
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "iot-jobs-data", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := b.HTTPClient(nil).Do(req)
	if err != nil {
		t.Fatalf("StartCommandExecution: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &out)
	return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), out
}

// mustStartExec starts an execution of cmd for thing and returns its id.
func mustStartExec(t *testing.T, b *brokertest.Instance, cmd, thing string, timeout int, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"commandArn": cmdArnPrefix + cmd, "targetArn": brokertest.ThingARN(thing), "executionTimeoutSeconds": timeout}
	for k, v := range extra {
		body[k] = v
	}
	code, typ, out := startExec(t, b, body)
	id, _ := out["executionId"].(string)
	if code != http.StatusOK || id == "" {
		t.Fatalf("StartCommandExecution: %d %s %v", code, typ, out)
	}
	return id
}

func cmdExecution(t *testing.T, api *iot.Client, id, thing string) *iot.GetCommandExecutionOutput {
	t.Helper()
	out, err := api.GetCommandExecution(context.Background(), &iot.GetCommandExecutionInput{
		ExecutionId: aws.String(id), TargetArn: aws.String(brokertest.ThingARN(thing)), IncludeResult: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetCommandExecution %s: %v", id, err)
	}
	return out
}

// cmdDevice is a device on raw MQTT: it acknowledges QoS 1 deliveries and
// keeps the publishes it has not been asked for yet.
type cmdDevice struct {
	*rawClient
	thing   string
	kept    []packets.Packet
	nextPID uint16
}

func dialDevice(t *testing.T, addr, thing string, version byte, persistent bool) *cmdDevice {
	t.Helper()
	c := dialRaw(t, addr, nil)
	if code, _ := c.connect(rawConnect{id: thing, version: version, persistent: persistent}); code != 0 {
		t.Fatalf("%s: CONNACK %#x", thing, code)
	}
	return &cmdDevice{rawClient: c, thing: thing, nextPID: 100}
}

func (d *cmdDevice) base(exec string) string {
	return "$aws/commands/things/" + d.thing + "/executions/" + exec + "/"
}

// next reads the next packet, acknowledging a QoS 1 publish.
func (d *cmdDevice) next(wait time.Duration) (packets.Packet, error) {
	pk, err := d.read(wait)
	if err == nil && pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 1 {
		d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	return pk, err
}

// publishOn waits for a publish on topic.
func (d *cmdDevice) publishOn(topic string) packets.Packet {
	d.t.Helper()
	for i, pk := range d.kept {
		if pk.TopicName == topic {
			d.kept = append(d.kept[:i], d.kept[i+1:]...)
			return pk
		}
	}
	for {
		pk, err := d.next(10 * time.Second)
		if err != nil {
			d.t.Fatalf("%s: no publish on %s: %v (kept %d others)", d.thing, topic, err, len(d.kept))
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		if pk.TopicName == topic {
			return pk
		}
		d.kept = append(d.kept, pk)
	}
}

// quiet fails the test if a publish arrives before reads have waited
// wait in vain.
func (d *cmdDevice) quiet(wait time.Duration, what string) {
	d.t.Helper()
	for {
		pk, err := d.next(wait)
		if err != nil {
			return
		}
		if pk.FixedHeader.Type == packets.Publish {
			d.t.Fatalf("%s: %s %s", what, pk.TopicName, pk.Payload)
		}
	}
}

// report publishes a status report at QoS 1 and returns the reply's topic
// suffix (accepted or rejected) and body.
func (d *cmdDevice) report(exec string, body string) (string, map[string]any) {
	d.t.Helper()
	return d.reportOn(d.base(exec)+"response/json", body)
}

func (d *cmdDevice) reportOn(topic, body string) (string, map[string]any) {
	d.t.Helper()
	d.nextPID++
	d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: d.nextPID,
		TopicName: topic, Payload: []byte(body)})
	accepted := strings.Replace(topic, "/response", "/response/accepted", 1)
	rejected := strings.Replace(topic, "/response", "/response/rejected", 1)
	for {
		pk, err := d.next(10 * time.Second)
		if err != nil {
			d.t.Fatalf("%s: no reply to %s: %v", d.thing, topic, err)
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		var out map[string]any
		json.Unmarshal(pk.Payload, &out)
		switch pk.TopicName {
		case accepted:
			return "accepted", out
		case rejected:
			return "rejected", out
		}
		d.kept = append(d.kept, pk)
	}
}

func (d *cmdDevice) mustAccept(exec, body string) {
	d.t.Helper()
	if kind, out := d.report(exec, body); kind != "accepted" || out["executionId"] != exec || len(out) != 1 {
		d.t.Fatalf("report %s on %s: %s %v, want accepted {executionId}", body, exec, kind, out)
	}
}

func (d *cmdDevice) mustReject(exec, body, code string) map[string]any {
	d.t.Helper()
	kind, out := d.report(exec, body)
	if kind != "rejected" || out["error"] != code || out["executionId"] != exec {
		d.t.Fatalf("report %s on %s: %s %v, want rejected %s", body, exec, kind, out, code)
	}
	return out
}

// TestCommandStaticJSON: a static JSON command reaches a subscribed MQTT 5
// device on .../request/json with its content type and a message expiry
// counting down the timeout; the device's reports are accepted to it
// alone (it never subscribed to the replies), its result reads back
// upper-case over HTTP, a report after the final status is
// TerminalStateReached, and the events of each status go out.
func TestCommandStaticJSON(t *testing.T) { commandStaticJSON(t) }

func commandStaticJSON(t *testing.T, mod ...func(*broker.Config)) {
	b, api := cmdBroker(t, mod...)
	createStaticCommand(t, api, "C1", "application/json", []byte(`{"a":1}`))
	events := dialDevice(t, b.MQTTAddr(), "watcher", 4, false)
	if _, codes := events.subscribe(1, 1, "$aws/events/commandExecution/C1/#"); codes[0] >= 0x80 {
		t.Fatalf("events subscription refused: % x", codes)
	}
	dev := dialDevice(t, b.MQTTAddr(), "T1", 5, false)
	if _, codes := dev.subscribe(1, 1, "$aws/commands/things/T1/executions/+/request/json"); codes[0] >= 0x80 {
		t.Fatalf("subscription refused: % x", codes)
	}
	exec := mustStartExec(t, b, "C1", "T1", 300, nil)
	req := dev.publishOn(dev.base(exec) + "request/json")
	if string(req.Payload) != `{"a":1}` || req.Properties.ContentType != "application/json" || req.FixedHeader.Qos != 1 {
		t.Fatalf("request %q content type %q QoS %d", req.Payload, req.Properties.ContentType, req.FixedHeader.Qos)
	}
	if e := req.Properties.MessageExpiryInterval; e < 297 || e > 299 {
		t.Fatalf("message expiry %d, want the 300 s timeout less the second AWS takes off", e)
	}
	created := events.publishOn("$aws/events/commandExecution/C1/CREATED")
	var ev map[string]any
	json.Unmarshal(created.Payload, &ev)
	if ev["executionId"] != exec || ev["eventType"] != "COMMAND_EXECUTION" || ev["commandArn"] != cmdArnPrefix+"C1" ||
		ev["targetArn"] != brokertest.ThingARN("T1") || ev["timestamp"].(float64) != float64(brokertest.Epoch.UnixMilli()) {
		t.Fatalf("CREATED event %s", created.Payload)
	}

	dev.mustAccept(exec, `{"status":"IN_PROGRESS","statusReason":{"reasonCode":"200","reasonDescription":"working"},"deviceType":"things","deviceId":"T1","executionId":"`+exec+`"}`)
	if got := cmdExecution(t, api, exec, "T1"); got.Status != types.CommandExecutionStatusInProgress || got.StatusReason == nil || aws.ToString(got.StatusReason.ReasonCode) != "200" {
		t.Fatalf("after IN_PROGRESS: %+v", got)
	}
	dev.mustAccept(exec, `{"status":"SUCCEEDED","result":{"ok":{"b":true},"msg":{"s":"done"},"raw":{"bin":"AAE="}}}`)
	got := cmdExecution(t, api, exec, "T1")
	if got.Status != types.CommandExecutionStatusSucceeded || got.CompletedAt == nil || aws.ToString(got.CommandArn) != cmdArnPrefix+"C1" ||
		aws.ToString(got.TargetArn) != brokertest.ThingARN("T1") || aws.ToInt64(got.ExecutionTimeoutSeconds) != 300 {
		t.Fatalf("after SUCCEEDED: %+v", got)
	}
	if r := got.Result; !aws.ToBool(r["ok"].B) || aws.ToString(r["msg"].S) != "done" || !bytes.Equal(r["raw"].BIN, []byte{0, 1}) {
		t.Fatalf("result %+v", r)
	}
	resp, err := http.Get(b.APIURL() + "/command-executions/" + exec + "?targetArn=" + brokertest.ThingARN("T1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"result":{"msg":{"S":"done"},"ok":{"B":true},"raw":{"BIN":"AAE="}}`) {
		t.Fatalf("HTTP result is not upper-case: %s", body)
	}
	out := dev.mustReject(exec, `{"status":"FAILED"}`, "TerminalStateReached")
	if out["errorMessage"] != "Command Execution status cannot be updated to FAILED since execution has already completed with status SUCCEEDED." {
		t.Fatalf("errorMessage %q", out["errorMessage"])
	}
	for _, s := range []string{"IN_PROGRESS", "SUCCEEDED"} {
		events.publishOn("$aws/events/commandExecution/C1/" + s)
	}
	// Nobody else gets the replies: a second client subscribed to them
	// sees nothing of the next report's.
	spy := dialDevice(t, b.MQTTAddr(), "spy", 4, false)
	spy.subscribe(1, 1, "$aws/commands/things/T1/executions/+/response/#")
	dev.mustReject(exec, `{"status":"FAILED"}`, "TerminalStateReached")
	if pk, err := spy.next(300 * time.Millisecond); err == nil {
		t.Fatalf("another client received %s %s", pk.TopicName, pk.Payload)
	}
}

// TestCommandDynamicPayload: a payload template with parameters (given,
// and a default) is sent as JSON and as CBOR, typed; a value that breaks a
// condition is a ValidationException and sends nothing.
func TestCommandDynamicPayload(t *testing.T) {
	b, api := cmdBroker(t)
	ctx := context.Background()
	for _, f := range []types.OutputFormat{types.OutputFormatJson, types.OutputFormatCbor} {
		_, err := api.CreateCommand(ctx, &iot.CreateCommandInput{
			CommandId:       aws.String("set-" + strings.ToLower(string(f))),
			Namespace:       types.CommandNamespaceAWSIoT,
			PayloadTemplate: aws.String(`{"temp":"${aws:iot:commandexecution::parameter:temperature}","unit":"${aws:iot:commandexecution::parameter:unit}","timeout":"${aws:iot:commandexecution::executionTimeoutSec}"}`),
			Preprocessor:    &types.CommandPreprocessor{AwsJsonSubstitution: &types.AwsJsonSubstitutionCommandPreprocessorConfig{OutputFormat: f}},
			MandatoryParameters: []types.CommandParameter{
				{Name: aws.String("temperature"), Type: types.CommandParameterTypeInteger, ValueConditions: []types.CommandParameterValueCondition{{
					ComparisonOperator: types.CommandParameterValueComparisonOperatorInRange,
					Operand:            &types.CommandParameterValueComparisonOperand{NumberRange: &types.CommandParameterValueNumberRange{Min: aws.String("10"), Max: aws.String("30")}}}}},
				{Name: aws.String("unit"), Type: types.CommandParameterTypeString, DefaultValue: &types.CommandParameterValue{S: aws.String("C")}},
			},
		})
		if err != nil {
			t.Fatalf("CreateCommand %s: %v", f, err)
		}
	}
	dev := dialDevice(t, b.MQTTAddr(), "T1", 5, false)
	dev.subscribe(1, 1, "$aws/commands/things/T1/executions/+/request/json", "$aws/commands/things/T1/executions/+/request/cbor")
	params := map[string]any{"parameters": map[string]any{"temperature": map[string]any{"I": 22}}}
	exec := mustStartExec(t, b, "set-json", "T1", 60, params)
	req := dev.publishOn(dev.base(exec) + "request/json")
	if string(req.Payload) != `{"temp":22,"unit":"C","timeout":60}` || req.Properties.ContentType != "application/json" {
		t.Fatalf("JSON request %s (%s)", req.Payload, req.Properties.ContentType)
	}
	exec = mustStartExec(t, b, "set-cbor", "T1", 60, params)
	req = dev.publishOn(dev.base(exec) + "request/cbor")
	var doc map[string]any
	if err := cbor.Unmarshal(req.Payload, &doc); err != nil || req.Properties.ContentType != "application/cbor" {
		t.Fatalf("CBOR request % x (%s): %v", req.Payload, req.Properties.ContentType, err)
	}
	if doc["temp"] != uint64(22) || doc["unit"] != "C" || doc["timeout"] != uint64(60) {
		t.Fatalf("CBOR request decodes to %#v", doc)
	}
	code, typ, out := startExec(t, b, map[string]any{"commandArn": cmdArnPrefix + "set-json", "targetArn": brokertest.ThingARN("T1"),
		"parameters": map[string]any{"temperature": map[string]any{"I": 40}}})
	if code != http.StatusBadRequest || typ != "ValidationException" {
		t.Fatalf("a value out of range: %d %s %v", code, typ, out)
	}
	code, typ, _ = startExec(t, b, map[string]any{"commandArn": cmdArnPrefix + "set-json", "targetArn": brokertest.ThingARN("T1")})
	if code != http.StatusBadRequest || typ != "ValidationException" {
		t.Fatalf("a parameter without value or default: %d %s", code, typ)
	}
}

// TestCommandBinaryPayload: a payload of another content type (here the
// default, application/octet-stream) goes to .../request with no suffix,
// byte for byte, to MQTT 3.1.1 and MQTT 5 devices alike.
func TestCommandBinaryPayload(t *testing.T) {
	b, api := cmdBroker(t)
	blob := []byte{0, 1, 2, 0xfe, 0xff}
	createStaticCommand(t, api, "fw", "", blob)
	got, err := api.GetCommand(context.Background(), &iot.GetCommandInput{CommandId: aws.String("fw")})
	if err != nil || aws.ToString(got.Payload.ContentType) != "application/octet-stream" || !bytes.Equal(got.Payload.Content, blob) {
		t.Fatalf("GetCommand: %+v %v", got, err)
	}
	for _, v := range []byte{4, 5} {
		thing := fmt.Sprintf("T%d", v)
		dev := dialDevice(t, b.MQTTAddr(), thing, v, false)
		dev.subscribe(1, 1, "$aws/commands/things/"+thing+"/executions/+/request")
		exec := mustStartExec(t, b, "fw", thing, 30, nil)
		req := dev.publishOn(dev.base(exec) + "request")
		if !bytes.Equal(req.Payload, blob) {
			t.Fatalf("MQTT %d: payload % x", v, req.Payload)
		}
		if v == 5 && req.Properties.ContentType != "application/octet-stream" {
			t.Fatalf("content type %q", req.Properties.ContentType)
		}
	}
}

// TestCommandDeviceOutcomes: FAILED with a reason, REJECTED, a device's
// own TIMED_OUT (final), and the rejections of malformed reports.
func TestCommandDeviceOutcomes(t *testing.T) {
	b, api := cmdBroker(t)
	createStaticCommand(t, api, "C", "application/json", []byte(`{}`))
	dev := dialDevice(t, b.MQTTAddr(), "T1", 4, false)

	failed := mustStartExec(t, b, "C", "T1", 60, nil)
	dev.mustAccept(failed, `{"status":"FAILED","statusReason":{"reasonCode":"DEVICE_TOO_BUSY","reasonDescription":"battery low"}}`)
	got := cmdExecution(t, api, failed, "T1")
	if got.Status != types.CommandExecutionStatusFailed || aws.ToString(got.StatusReason.ReasonCode) != "DEVICE_TOO_BUSY" ||
		aws.ToString(got.StatusReason.ReasonDescription) != "battery low" || got.CompletedAt == nil {
		t.Fatalf("FAILED: %+v", got)
	}
	rejected := mustStartExec(t, b, "C", "T1", 60, nil)
	dev.mustAccept(rejected, `{"status":"REJECTED"}`)
	if got := cmdExecution(t, api, rejected, "T1"); got.Status != types.CommandExecutionStatusRejected {
		t.Fatalf("REJECTED: %+v", got)
	}
	dev.mustReject(rejected, `{"status":"IN_PROGRESS"}`, "TerminalStateReached")

	timedOut := mustStartExec(t, b, "C", "T1", 60, nil)
	dev.mustAccept(timedOut, `{"status":"TIMED_OUT","statusReason":{"reasonCode":"WATCHDOG"}}`)
	if got := cmdExecution(t, api, timedOut, "T1"); got.Status != types.CommandExecutionStatusTimedOut || got.CompletedAt == nil {
		t.Fatalf("device TIMED_OUT: %+v", got)
	}
	dev.mustReject(timedOut, `{"status":"SUCCEEDED"}`, "TerminalStateReached")

	open := mustStartExec(t, b, "C", "T1", 60, nil)
	dev.mustReject(open, `{"status":`, "InvalidJson")
	dev.mustReject(open, `{"statusReason":{"reasonCode":"X"}}`, "InvalidRequest")
	dev.mustReject(open, `{"status":"DONE"}`, "InvalidRequest")
	dev.mustReject(open, `{"status":"SUCCEEDED","result":{"x":{"S":"upper case is the HTTP shape"}}}`, "InvalidRequest")
	dev.mustReject(open, `{"status":"SUCCEEDED","statusReason":{"reasonCode":"lower"}}`, "InvalidRequest")
	dev.mustReject(open, `{"status":"CREATED"}`, "InvalidRequest")
	dev.mustReject("no-such-execution", `{"status":"SUCCEEDED"}`, "ResourceNotFound")
	// /response without a suffix is JSON; /response/cbor takes CBOR and
	// answers in CBOR.
	bare := mustStartExec(t, b, "C", "T1", 60, nil)
	if kind, out := dev.reportOn(dev.base(bare)+"response", `{"status":"IN_PROGRESS"}`); kind != "accepted" || out["executionId"] != bare {
		t.Fatalf("report on .../response: %s %v", kind, out)
	}
	report, _ := cbor.Marshal(map[string]any{"status": "SUCCEEDED", "result": map[string]any{"raw": map[string]any{"bin": []byte{7}}}})
	dev.nextPID++
	dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: dev.nextPID,
		TopicName: dev.base(bare) + "response/cbor", Payload: report})
	reply := dev.publishOn(dev.base(bare) + "response/accepted/cbor")
	var ack map[string]string
	if err := cbor.Unmarshal(reply.Payload, &ack); err != nil || ack["executionId"] != bare {
		t.Fatalf("CBOR reply % x: %v", reply.Payload, err)
	}
	if got := cmdExecution(t, api, bare, "T1"); got.Status != types.CommandExecutionStatusSucceeded || !bytes.Equal(got.Result["raw"].BIN, []byte{7}) {
		t.Fatalf("after the CBOR report: %+v", got)
	}

	// The Java SDK sends bin as an array of signed bytes.
	dev.mustAccept(open, `{"status":"SUCCEEDED","result":{"raw":{"bin":[1,-1]}}}`)
	if got := cmdExecution(t, api, open, "T1"); !bytes.Equal(got.Result["raw"].BIN, []byte{1, 0xff}) {
		t.Fatalf("bin %v", got.Result["raw"].BIN)
	}
}

// TestCommandCloudTimeoutThenLateResult: an execution without a final
// report in its timeout is TIMED_OUT with $NO_RESPONSE_FROM_DEVICE (no
// completedAt); the device may still report its result, which is final.
func TestCommandCloudTimeoutThenLateResult(t *testing.T) { commandCloudTimeout(t) }

func commandCloudTimeout(t *testing.T, mod ...func(*broker.Config)) {
	b, api := cmdBroker(t, mod...)
	createStaticCommand(t, api, "C", "application/json", []byte(`{}`))
	dev := dialDevice(t, b.MQTTAddr(), "T1", 4, false)
	exec := mustStartExec(t, b, "C", "T1", 10, nil)
	dev.mustAccept(exec, `{"status":"IN_PROGRESS"}`)
	b.Clock.Advance(10 * time.Second)
	brokertest.Eventually(t, "the execution timed out", func() error {
		got := cmdExecution(t, api, exec, "T1")
		if got.Status != types.CommandExecutionStatusTimedOut {
			return fmt.Errorf("status %s", got.Status)
		}
		if aws.ToString(got.StatusReason.ReasonCode) != "$NO_RESPONSE_FROM_DEVICE" || got.CompletedAt != nil {
			t.Fatalf("cloud timeout: %+v", got)
		}
		return nil
	})
	dev.mustReject(exec, `{"status":"IN_PROGRESS"}`, "InvalidStateTransition")
	dev.mustAccept(exec, `{"status":"SUCCEEDED","result":{"late":{"b":true}}}`)
	got := cmdExecution(t, api, exec, "T1")
	if got.Status != types.CommandExecutionStatusSucceeded || got.CompletedAt == nil || got.StatusReason != nil {
		t.Fatalf("late result: %+v", got)
	}
}

// TestCommandOfflinePersistentDevice: a device away with a persistent
// session gets the request when it comes back, before the timeout; a
// request whose timeout passed meanwhile is never delivered.
func TestCommandOfflinePersistentDevice(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("mqtt%d", v), func(t *testing.T) {
			b, api := cmdBroker(t)
			createStaticCommand(t, api, "C", "application/json", []byte(`{"go":1}`))
			dev := dialDevice(t, b.MQTTAddr(), "T1", v, true)
			dev.subscribe(1, 1, "$aws/commands/things/T1/executions/+/request/json")
			dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
			dev.conn.Close()
			kept := mustStartExec(t, b, "C", "T1", 300, nil)
			expired := mustStartExec(t, b, "C", "T1", 2, nil)
			shortest := mustStartExec(t, b, "C", "T1", 1, nil)
			// The short requests' messages expire on the wall clock (the
			// broker's message expiry is a wall-clock matter); its
			// execution times out on the broker's clock.
			until := time.Now().Add(2 * time.Second)
			brokertest.Eventually(t, "the short requests' expiry passed", func() error {
				if time.Now().Before(until) {
					return errors.New("not yet")
				}
				return nil
			})
			b.Clock.Advance(2 * time.Second)
			brokertest.Eventually(t, "the short executions timed out", func() error {
				for _, x := range []string{expired, shortest} {
					if got := cmdExecution(t, api, x, "T1"); got.Status != types.CommandExecutionStatusTimedOut {
						return fmt.Errorf("%s: status %s", x, got.Status)
					}
				}
				return nil
			})
			back := dialDevice(t, b.MQTTAddr(), "T1", v, true)
			req := back.publishOn(back.base(kept) + "request/json")
			if string(req.Payload) != `{"go":1}` {
				t.Fatalf("request %s", req.Payload)
			}
			// A report's reply comes after whatever the session held.
			back.mustAccept(kept, `{"status":"SUCCEEDED"}`)
			for _, pk := range back.kept {
				if strings.Contains(pk.TopicName, expired) || strings.Contains(pk.TopicName, shortest) {
					t.Fatalf("the expired request was delivered: %s", pk.TopicName)
				}
			}
		})
	}
}

// TestCommandAccess: under mtls and password identities a thing reads and
// answers only its own commands topics.
func TestCommandAccess(t *testing.T) {
	for _, mode := range []auth.Mode{auth.ModeMTLS, auth.ModePassword} {
		t.Run(string(mode), func(t *testing.T) {
			creds := filepath.Join(t.TempDir(), "credentials")
			writeCredentials(t, creds, opsKey, opsSecret)
			ib := startIdentity(t, mode, func(c *broker.Config) { c.CredentialsFile = creds })
			ib.Credentials = aws.Credentials{AccessKeyID: opsKey, SecretAccessKey: opsSecret}
			api := ib.IoT()
			createStaticCommand(t, api, "C", "application/json", []byte(`{}`))
			other := mustStartExec(t, ib.Instance, "C", "thing-2", 60, nil)

			c := ib.dial(t, "thing-1")
			p := ib.login("thing-1", "thing-1")
			p.version = 5
			if code, _ := c.connect(p); code != 0 {
				t.Fatalf("connect: %#x", code)
			}
			for filter, ok := range map[string]bool{
				"$aws/commands/things/thing-1/executions/+/request/json": true,
				"$aws/commands/things/thing-1/#":                         true,
				"$aws/commands/clients/thing-1/executions/+/request":     true,
				"$aws/commands/things/thing-2/executions/+/request/json": false,
				"$aws/commands/things/+/executions/+/request/json":       false,
				"$aws/commands/#": false,
				"$aws/commands/clients/thing-2/executions/+/request":      false,
				"$aws/commands/things/thing-2/executions/+/response/json": false,
			} {
				_, codes := c.subscribe(7, 1, filter)
				if granted := codes[0] < 0x80; granted != ok {
					t.Errorf("subscribe %s: code %#x, want allowed=%v", filter, codes[0], ok)
				}
			}
			// Answering another thing's execution is refused and changes
			// nothing.
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 9,
				TopicName: "$aws/commands/things/thing-2/executions/" + other + "/response/json", Payload: []byte(`{"status":"SUCCEEDED"}`)})
			if ack := c.expect(packets.Puback); ack.ReasonCode < 0x80 {
				t.Fatalf("PUBACK %#x for another thing's report, want not authorized", ack.ReasonCode)
			}
			// Forging a request for oneself is refused too.
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 10,
				TopicName: "$aws/commands/things/thing-1/executions/E1/request/json", Payload: []byte(`{}`)})
			if ack := c.expect(packets.Puback); ack.ReasonCode < 0x80 {
				t.Fatalf("PUBACK %#x for a forged request, want not authorized", ack.ReasonCode)
			}
			// A malformed topic of its own is answered InvalidTopic; one of
			// another thing's is refused.
			bad := "$aws/commands/things/thing-1/executions/E.1/response/json"
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 11,
				TopicName: bad, Payload: []byte(`{"status":"SUCCEEDED"}`)})
			probe := &cmdDevice{rawClient: c, thing: "thing-1"}
			if reply := probe.publishOn(bad + "/rejected"); !strings.Contains(string(reply.Payload), `"error":"InvalidTopic"`) {
				t.Fatalf("a malformed topic of its own: %s", reply.Payload)
			}
			if ack := c.expect(packets.Puback); ack.PacketID != 11 || ack.ReasonCode >= 0x80 {
				t.Fatalf("PUBACK %d %#x for a malformed topic of its own", ack.PacketID, ack.ReasonCode)
			}
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 12,
				TopicName: "$aws/commands/things/thing-2/executions/E.1/response/json", Payload: []byte(`{}`)})
			if ack := c.expect(packets.Puback); ack.ReasonCode < 0x80 {
				t.Fatalf("PUBACK %#x for a malformed topic of another thing, want not authorized", ack.ReasonCode)
			}
			if got := cmdExecution(t, api, other, "thing-2"); got.Status != types.CommandExecutionStatusCreated {
				t.Fatalf("thing-2's execution changed: %s", got.Status)
			}
			// Its own execution it may answer.
			own := mustStartExec(t, ib.Instance, "C", "thing-1", 60, nil)
			dev := &cmdDevice{rawClient: c, thing: "thing-1", nextPID: 20}
			dev.publishOn(dev.base(own) + "request/json")
			dev.mustAccept(own, `{"status":"SUCCEEDED"}`)
		})
	}
}

// TestCommandControlPlane: the command operations through the SDK's
// typed errors and paginators.
func TestCommandControlPlane(t *testing.T) {
	b, api := cmdBroker(t)
	ctx := context.Background()
	for i := range 5 {
		createStaticCommand(t, api, fmt.Sprintf("c%d", i), "application/json", []byte(`{}`))
	}
	_, err := api.CreateCommand(ctx, &iot.CreateCommandInput{CommandId: aws.String("c0"), Payload: &types.CommandPayload{Content: []byte("x")}})
	var conflict *types.ConflictException
	if !errors.As(err, &conflict) || aws.ToString(conflict.ResourceId) != "c0" {
		t.Fatalf("duplicate CreateCommand: %v", err)
	}
	var invalid *types.ValidationException
	if _, err := api.CreateCommand(ctx, &iot.CreateCommandInput{CommandId: aws.String("empty")}); !errors.As(err, &invalid) {
		t.Fatalf("CreateCommand without a payload: %v", err)
	}
	if _, err := api.CreateCommand(ctx, &iot.CreateCommandInput{CommandId: aws.String("big"),
		Payload: &types.CommandPayload{Content: make([]byte, 32<<10+1)}}); !errors.As(err, &invalid) {
		t.Fatalf("CreateCommand over 32 KB: %v", err)
	}
	var notFound *types.ResourceNotFoundException
	if _, err := api.GetCommand(ctx, &iot.GetCommandInput{CommandId: aws.String("nope")}); !errors.As(err, &notFound) {
		t.Fatalf("GetCommand of an unknown id: %v", err)
	}
	var ids []string
	pager := iot.NewListCommandsPaginator(api, &iot.ListCommandsInput{MaxResults: aws.Int32(2), SortOrder: types.SortOrderAscending})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Commands {
			ids = append(ids, aws.ToString(c.CommandId))
		}
	}
	if strings.Join(ids, ",") != "c0,c1,c2,c3,c4" {
		t.Fatalf("ListCommands pages: %v", ids)
	}
	if _, err := api.ListCommands(ctx, &iot.ListCommandsInput{MaxResults: aws.Int32(101)}); !errors.As(err, &invalid) {
		t.Fatalf("maxResults 101: %v", err)
	}

	// Executions: idempotency, listing, deletion.
	first := mustStartExec(t, b, "c0", "T1", 60, map[string]any{"clientToken": "tok"})
	if again := mustStartExec(t, b, "c0", "T1", 60, map[string]any{"clientToken": "tok"}); again != first {
		t.Fatalf("a retry with the same clientToken made execution %s, want %s", again, first)
	}
	code, typ, _ := startExec(t, b, map[string]any{"commandArn": cmdArnPrefix + "c0", "targetArn": brokertest.ThingARN("T2"), "clientToken": "tok"})
	if code != http.StatusConflict || typ != "ConflictException" {
		t.Fatalf("the clientToken reused for another request: %d %s", code, typ)
	}
	for _, body := range []map[string]any{
		{"commandArn": cmdArnPrefix + "missing", "targetArn": brokertest.ThingARN("T1")},
		{"commandArn": cmdArnPrefix + "c0", "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/g"},
		{"commandArn": cmdArnPrefix + "c0", "targetArn": brokertest.ThingARN("T1"), "executionTimeoutSeconds": 43201},
	} {
		code, typ, _ := startExec(t, b, body)
		if want := map[bool]int{true: 404, false: 400}[strings.Contains(body["commandArn"].(string), "missing")]; code != want {
			t.Errorf("StartCommandExecution %v: %d %s, want %d", body, code, typ, want)
		}
	}
	var execs []string
	for range 4 {
		execs = append(execs, mustStartExec(t, b, "c1", "T1", 60, nil))
		b.Clock.Advance(time.Second)
	}
	var listed []string
	ep := iot.NewListCommandExecutionsPaginator(api, &iot.ListCommandExecutionsInput{
		CommandArn: aws.String(cmdArnPrefix + "c1"), MaxResults: aws.Int32(3), SortOrder: types.SortOrderAscending})
	for ep.HasMorePages() {
		page, err := ep.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page.CommandExecutions {
			listed = append(listed, aws.ToString(x.ExecutionId))
		}
	}
	if strings.Join(listed, ",") != strings.Join(execs, ",") {
		t.Fatalf("ListCommandExecutions pages %v, want %v", listed, execs)
	}
	if _, err := api.ListCommandExecutions(ctx, &iot.ListCommandExecutionsInput{}); !errors.As(err, &invalid) {
		t.Fatalf("ListCommandExecutions without commandArn or targetArn: %v", err)
	}
	_, err = api.DeleteCommandExecution(ctx, &iot.DeleteCommandExecutionInput{ExecutionId: aws.String(execs[0]), TargetArn: aws.String(brokertest.ThingARN("T1"))})
	if !errors.As(err, &conflict) {
		t.Fatalf("DeleteCommandExecution of a CREATED execution: %v", err)
	}
	if _, err := api.GetCommandExecution(ctx, &iot.GetCommandExecutionInput{ExecutionId: aws.String(execs[0]), TargetArn: aws.String(brokertest.ThingARN("T9"))}); !errors.As(err, &notFound) {
		t.Fatalf("GetCommandExecution for another target: %v", err)
	}

	// Deprecate, restore, delete: 202 while not long deprecated, 204 after.
	up, err := api.UpdateCommand(ctx, &iot.UpdateCommandInput{CommandId: aws.String("c2"), Deprecated: aws.Bool(true), DisplayName: aws.String("old")})
	if err != nil || !aws.ToBool(up.Deprecated) || aws.ToString(up.DisplayName) != "old" {
		t.Fatalf("UpdateCommand: %+v %v", up, err)
	}
	if code, typ, _ := startExec(t, b, map[string]any{"commandArn": cmdArnPrefix + "c2", "targetArn": brokertest.ThingARN("T1")}); code != 400 || typ != "ValidationException" {
		t.Fatalf("StartCommandExecution of a deprecated command: %d %s", code, typ)
	}
	if _, err := api.UpdateCommand(ctx, &iot.UpdateCommandInput{CommandId: aws.String("c2"), Description: aws.String("edit")}); !errors.As(err, &conflict) {
		t.Fatalf("editing a deprecated command: %v", err)
	}
	del, err := api.DeleteCommand(ctx, &iot.DeleteCommandInput{CommandId: aws.String("c3")})
	if err != nil || del.StatusCode != http.StatusAccepted {
		t.Fatalf("DeleteCommand of an available command: %+v %v", del, err)
	}
	if got, err := api.GetCommand(ctx, &iot.GetCommandInput{CommandId: aws.String("c3")}); err != nil || !aws.ToBool(got.PendingDeletion) {
		t.Fatalf("GetCommand pending deletion: %+v %v", got, err)
	}
	b.Clock.Advance(12*time.Hour + time.Second)
	del, err = api.DeleteCommand(ctx, &iot.DeleteCommandInput{CommandId: aws.String("c2")})
	if err != nil || del.StatusCode != http.StatusNoContent {
		t.Fatalf("DeleteCommand of a command deprecated for 12 h: %+v %v", del, err)
	}
	for _, id := range []string{"c2", "c3"} {
		if _, err := api.GetCommand(ctx, &iot.GetCommandInput{CommandId: aws.String(id)}); !errors.As(err, &notFound) {
			t.Fatalf("GetCommand %s after its deletion: %v", id, err)
		}
	}
}

// TestCommandPostgres runs the static command's flow and the cloud
// timeout on the PostgreSQL store.
func TestCommandPostgres(t *testing.T) {
	url := brokertest.PostgresURL(t)
	pg := func(c *broker.Config) { c.Store, c.StoreURL = broker.StorePostgres, url }
	t.Run("StaticJSON", func(t *testing.T) { commandStaticJSON(t, pg) })
	t.Run("CloudTimeout", func(t *testing.T) { commandCloudTimeout(t, pg) })
	t.Run("OtherNode", func(t *testing.T) {
		// A device connected to node b gets the request of an execution
		// started on node a, and reports to b.
		a, api := cmdBroker(t, pg, func(c *broker.Config) { c.NodeID = "a" })
		b, _ := cmdBroker(t, pg, func(c *broker.Config) { c.NodeID = "b" })
		createStaticCommand(t, api, "X", "application/json", []byte(`{"far":1}`))
		dev := dialDevice(t, b.MQTTAddr(), "T9", 5, false)
		dev.subscribe(1, 1, "$aws/commands/things/T9/executions/+/request/json")
		exec := mustStartExec(t, a, "X", "T9", 60, nil)
		if req := dev.publishOn(dev.base(exec) + "request/json"); string(req.Payload) != `{"far":1}` {
			t.Fatalf("request on the other node: %s", req.Payload)
		}
		dev.mustAccept(exec, `{"status":"SUCCEEDED"}`)
		if got := cmdExecution(t, api, exec, "T9"); got.Status != types.CommandExecutionStatusSucceeded {
			t.Fatalf("status seen from node a: %s", got.Status)
		}
		// Node b polls the others' executions every second: two polls
		// later there is still one delivery.
		dev.quiet(2500*time.Millisecond, "a second delivery")
	})
}

// TestCommandStartSigned: with credentials configured, StartCommandExecution
// takes a SigV4 signature for iot-jobs-data, as the rest of its listener;
// an unsigned or wrongly signed call starts nothing.
func TestCommandStartSigned(t *testing.T) {
	b, _ := startSigned(t)
	api := b.IoT()
	createStaticCommand(t, api, "C", "application/json", []byte(`{}`))
	body := []byte(`{"commandArn":"` + cmdArnPrefix + `C","targetArn":"` + brokertest.ThingARN("T1") + `"}`)
	send := func(secret string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, b.JobsURL()+"/command-executions", bytes.NewReader(body))
		if secret != "" {
			sum := sha256.Sum256(body)
			creds := aws.Credentials{AccessKeyID: opsKey, SecretAccessKey: secret}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "iot-jobs-data", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := b.HTTPClient(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType")
	}
	if code, typ := send(""); code != http.StatusForbidden || typ != "MissingAuthenticationTokenException" {
		t.Fatalf("unsigned: %d %s", code, typ)
	}
	if code, typ := send("wrong"); code != http.StatusForbidden || typ != "InvalidSignatureException" {
		t.Fatalf("wrongly signed: %d %s", code, typ)
	}
	list, err := api.ListCommandExecutions(context.Background(), &iot.ListCommandExecutionsInput{CommandArn: aws.String(cmdArnPrefix + "C")})
	if err != nil || len(list.CommandExecutions) != 0 {
		t.Fatalf("a refused call started something: %+v %v", list, err)
	}
	if code, typ := send(opsSecret); code != http.StatusOK {
		t.Fatalf("signed: %d %s", code, typ)
	}
}

// TestCommandClientTarget: an execution for an MQTT client ID goes to the
// clients/{clientId}/ topics, where that client reports on it.
func TestCommandClientTarget(t *testing.T) {
	b, api := cmdBroker(t)
	createStaticCommand(t, api, "C", "application/json", []byte(`{"x":1}`))
	target := "arn:aws:iot:us-east-1:123456789012:client/dev-7"
	code, typ, out := startExec(t, b, map[string]any{"commandArn": cmdArnPrefix + "C", "targetArn": target, "executionTimeoutSeconds": 30})
	if code != http.StatusOK {
		t.Fatalf("StartCommandExecution for a client: %d %s %v", code, typ, out)
	}
	exec := out["executionId"].(string)
	dev := dialDevice(t, b.MQTTAddr(), "dev-7", 5, false)
	base := "$aws/commands/clients/dev-7/executions/" + exec + "/"
	// The request went out before the client subscribed: a new one is
	// started to see it arrive.
	dev.subscribe(1, 1, "$aws/commands/clients/dev-7/executions/+/request/json")
	code, _, out = startExec(t, b, map[string]any{"commandArn": cmdArnPrefix + "C", "targetArn": target, "executionTimeoutSeconds": 30})
	if code != http.StatusOK {
		t.Fatalf("second start: %d", code)
	}
	second := out["executionId"].(string)
	if req := dev.publishOn("$aws/commands/clients/dev-7/executions/" + second + "/request/json"); string(req.Payload) != `{"x":1}` {
		t.Fatalf("request %s", req.Payload)
	}
	if kind, reply := dev.reportOn(base+"response/json", `{"status":"SUCCEEDED"}`); kind != "accepted" {
		t.Fatalf("report: %s %v", kind, reply)
	}
	got, err := api.GetCommandExecution(context.Background(), &iot.GetCommandExecutionInput{ExecutionId: aws.String(exec), TargetArn: aws.String(target)})
	if err != nil || got.Status != types.CommandExecutionStatusSucceeded || aws.ToString(got.TargetArn) != target {
		t.Fatalf("GetCommandExecution: %+v %v", got, err)
	}
	// The same execution id under another device's topic does not exist.
	if kind, reply := dev.reportOn("$aws/commands/things/dev-7/executions/"+second+"/response/json", `{"status":"SUCCEEDED"}`); kind != "rejected" || reply["error"] != "ResourceNotFound" {
		t.Fatalf("report under the thing topics: %s %v", kind, reply)
	}
}

// TestCommandStartWithCertificates: where the data plane takes only
// certificates (mtls, no credentials), StartCommandExecution takes an
// operator's certificate, never a device's.
func TestCommandStartWithCertificates(t *testing.T) {
	pki := brokertest.NewPKI(t)
	server := pki.Server("server")
	b := brokertest.Start(t, func(c *broker.Config) {
		c.MQTTAddr, c.MQTTTLSAddr = broker.Off, "127.0.0.1:0"
		c.TLSCert, c.TLSKey, c.ClientCA = server.Cert, server.Key, pki.CAFile
		c.Identity, c.Operators = auth.ModeMTLS, []string{"ops"}
	})
	createStaticCommand(t, b.IoT(), "C", "application/json", []byte(`{}`))
	body := []byte(`{"commandArn":"` + cmdArnPrefix + `C","targetArn":"` + brokertest.ThingARN("thing-1") + `"}`)
	post := func(name string) (int, string) {
		files := pki.Device(name)
		cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := b.HTTPClient(&cert).Post(b.JobsURL()+"/command-executions", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType")
	}
	if code, typ := post("thing-1"); code != http.StatusBadRequest || typ != "CertificateValidationException" {
		t.Fatalf("a device's certificate: %d %s", code, typ)
	}
	if code, typ := post("ops"); code != http.StatusOK {
		t.Fatalf("an operator's certificate: %d %s", code, typ)
	}
}

// TestCommandShortTimeout: executions of 1 and 2 seconds (the model's
// minimum is 1) are sent like any other, announced with a message expiry
// of 1 second, never less.
func TestCommandShortTimeout(t *testing.T) {
	b, api := cmdBroker(t)
	createStaticCommand(t, api, "C", "application/json", []byte(`{"now":1}`))
	dev := dialDevice(t, b.MQTTAddr(), "T1", 5, false)
	dev.subscribe(1, 1, "$aws/commands/things/T1/executions/+/request/json")
	for _, timeout := range []int{1, 2} {
		exec := mustStartExec(t, b, "C", "T1", timeout, nil)
		req := dev.publishOn(dev.base(exec) + "request/json")
		if string(req.Payload) != `{"now":1}` || req.Properties.MessageExpiryInterval != 1 {
			t.Fatalf("timeout %d: request %s, message expiry %d, want 1", timeout, req.Payload, req.Properties.MessageExpiryInterval)
		}
		dev.mustAccept(exec, `{"status":"SUCCEEDED"}`)
	}
}

// TestCommandInvalidTopic: a publish under $aws/commands/ that maps to no
// API is answered InvalidTopic on its topic + "/rejected", to the
// publisher alone, as jobs requests are; publishes on the broker's own
// topics (a request, a reply) are still dropped unanswered.
func TestCommandInvalidTopic(t *testing.T) {
	b, api := cmdBroker(t)
	createStaticCommand(t, api, "C", "application/json", []byte(`{}`))
	dev := dialDevice(t, b.MQTTAddr(), "T1", 4, false)
	// The spy listens from before the execution starts, and takes its
	// request (delivered after the commit, at a moment of its own) first:
	// anything it receives later was forwarded.
	spy := dialDevice(t, b.MQTTAddr(), "spy", 4, false)
	spy.subscribe(1, 1, "$aws/commands/#")
	exec := mustStartExec(t, b, "C", "T1", 60, nil)
	spy.publishOn(dev.base(exec) + "request/json")
	for topic, execID := range map[string]string{
		dev.base(exec) + "response/xml":                                  exec,
		dev.base(exec) + "response/accepted/json/x":                      exec,
		dev.base(exec) + "status":                                        exec,
		dev.base(strings.Repeat("e", 65)) + "response/json":              "",
		dev.base("E.1") + "response/json":                                "",
		"$aws/commands/devices/T1/executions/" + exec + "/response/json": exec,
		"$aws/commands/things/T1/executions":                             "",
	} {
		dev.nextPID++
		dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: dev.nextPID,
			TopicName: topic, Payload: []byte(`{"status":"SUCCEEDED"}`)})
		reply := dev.publishOn(topic + "/rejected")
		var out map[string]any
		if err := json.Unmarshal(reply.Payload, &out); err != nil || out["error"] != "InvalidTopic" || out["errorMessage"] == "" {
			t.Fatalf("%s: reply %s", topic, reply.Payload)
		}
		if got, _ := out["executionId"].(string); got != execID {
			t.Fatalf("%s: executionId %q, want %q", topic, got, execID)
		}
	}
	if got := cmdExecution(t, api, exec, "T1"); got.Status != types.CommandExecutionStatusCreated {
		t.Fatalf("an invalid topic changed the execution: %s", got.Status)
	}
	// The broker's own topics: dropped, not answered, not forwarded.
	for _, topic := range []string{dev.base(exec) + "request/json", dev.base(exec) + "response/accepted/json"} {
		dev.nextPID++
		dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: dev.nextPID,
			TopicName: topic, Payload: []byte(`{}`)})
	}
	dev.mustAccept(exec, `{"status":"SUCCEEDED"}`)
	for _, pk := range dev.kept {
		if strings.HasSuffix(pk.TopicName, "/rejected") {
			t.Fatalf("a publish on a broker topic was answered on %s", pk.TopicName)
		}
	}
	spy.quiet(300*time.Millisecond, "another client received")
}

// TestCommandReportDecoding: a report is read as strictly as a jobs
// request: invalid UTF-8, text after the JSON value and undecodable CBOR
// are InvalidJson; member names are exact (a wrong-case one is an unknown
// member, ignored); a status a device may not send is InvalidRequest
// before the execution is looked up, so also for one that does not exist
// or is finished.
func TestCommandReportDecoding(t *testing.T) {
	b, api := cmdBroker(t)
	createStaticCommand(t, api, "C", "application/json", []byte(`{}`))
	dev := dialDevice(t, b.MQTTAddr(), "T1", 4, false)
	open := mustStartExec(t, b, "C", "T1", 60, nil)
	for _, body := range []string{
		"{\"status\":\"SUCCEEDED\",\"statusReason\":{\"reasonCode\":\"OK\",\"reasonDescription\":\"\xff\"}}",
		`{"status":"SUCCEEDED"} {"status":"FAILED"}`,
		`{"status":"SUCCEEDED"}]`,
	} {
		dev.mustReject(open, body, "InvalidJson")
	}
	for _, body := range []string{
		`{"Status":"SUCCEEDED"}`,
		`{"STATUS":"SUCCEEDED","status":null}`,
		`{"status":"SUCCEEDED","statusReason":{"ReasonCode":"OK"}}`,
		`{"status":"FOO"}`,
		`{"status":"CREATED"}`,
		`{"status":"succeeded"}`,
		`["status"]`,
	} {
		dev.mustReject(open, body, "InvalidRequest")
	}
	// An unknown status is refused before the lookup: for an execution
	// that does not exist, and for one that is finished.
	dev.mustReject("no-such-execution", `{"status":"FOO"}`, "InvalidRequest")
	done := mustStartExec(t, b, "C", "T1", 60, nil)
	dev.mustAccept(done, `{"status":"SUCCEEDED","statusReason":{"reasonCode":"OK","Extra":1},"Result":{"x":{"s":"ignored"}}}`)
	if got := cmdExecution(t, api, done, "T1"); got.Status != types.CommandExecutionStatusSucceeded || len(got.Result) != 0 {
		t.Fatalf("after a report with a wrong-case result member: %+v", got)
	}
	dev.mustReject(done, `{"status":"CREATED"}`, "InvalidRequest")
	dev.mustReject(done, `{"status":"FOO"}`, "InvalidRequest")

	// CBOR that does not decode is InvalidJson, as malformed JSON is.
	for _, body := range [][]byte{{0xa1, 0x66}, {0xff}, append(mustCBOR(t, map[string]any{"status": "SUCCEEDED"}), 0x00)} {
		dev.nextPID++
		dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: dev.nextPID,
			TopicName: dev.base(open) + "response/cbor", Payload: body})
		reply := dev.publishOn(dev.base(open) + "response/rejected/cbor")
		var out map[string]string
		if err := cbor.Unmarshal(reply.Payload, &out); err != nil || out["error"] != "InvalidJson" || out["executionId"] != open {
			t.Fatalf("CBOR report % x: reply %v %v", body, out, err)
		}
	}
	if got := cmdExecution(t, api, open, "T1"); got.Status != types.CommandExecutionStatusCreated {
		t.Fatalf("a refused report changed the execution: %s", got.Status)
	}
}

func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCommandCreateLimits: an explicitly empty contentType is a
// ValidationException (the model's minimum length is 1) while an absent
// one gets the default; a payload template is measured in characters, as
// the model's 32,768; starting a command whose deletion is scheduled says
// so.
func TestCommandCreateLimits(t *testing.T) {
	b, api := cmdBroker(t)
	ctx := context.Background()
	var invalid *types.ValidationException
	_, err := api.CreateCommand(ctx, &iot.CreateCommandInput{CommandId: aws.String("empty-type"),
		Payload: &types.CommandPayload{Content: []byte("x"), ContentType: aws.String("")}})
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "contentType") {
		t.Fatalf("CreateCommand with contentType \"\": %v", err)
	}
	if _, err := api.GetCommand(ctx, &iot.GetCommandInput{CommandId: aws.String("empty-type")}); err == nil {
		t.Fatal("the refused command was created")
	}
	createStaticCommand(t, api, "no-type", "", []byte("x"))

	template := func(chars int) *string {
		head := `{"p":"${aws:iot:commandexecution::parameter:p}","pad":"`
		return aws.String(head + strings.Repeat("é", chars-len(head)-2) + `"}`)
	}
	create := func(id string, tpl *string) error {
		_, err := api.CreateCommand(ctx, &iot.CreateCommandInput{CommandId: aws.String(id), PayloadTemplate: tpl,
			Preprocessor:        &types.CommandPreprocessor{AwsJsonSubstitution: &types.AwsJsonSubstitutionCommandPreprocessorConfig{OutputFormat: types.OutputFormatJson}},
			MandatoryParameters: []types.CommandParameter{{Name: aws.String("p"), Type: types.CommandParameterTypeString}}})
		return err
	}
	if err := create("tpl-max", template(32768)); err != nil {
		t.Fatalf("a template of 32,768 characters (%d bytes): %v", len(*template(32768)), err)
	}
	if err := create("tpl-over", template(32769)); !errors.As(err, &invalid) {
		t.Fatalf("a template of 32,769 characters: %v", err)
	}

	createStaticCommand(t, api, "doomed", "application/json", []byte(`{}`))
	if del, err := api.DeleteCommand(ctx, &iot.DeleteCommandInput{CommandId: aws.String("doomed")}); err != nil || del.StatusCode != http.StatusAccepted {
		t.Fatalf("DeleteCommand: %+v %v", del, err)
	}
	code, typ, out := startExec(t, b, map[string]any{"commandArn": cmdArnPrefix + "doomed", "targetArn": brokertest.ThingARN("T1")})
	if msg, _ := out["message"].(string); code != http.StatusBadRequest || typ != "ValidationException" || !strings.Contains(msg, "pending deletion") {
		t.Fatalf("starting a command pending deletion: %d %s %v", code, typ, out)
	}
}
