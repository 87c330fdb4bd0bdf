package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

// CommandNodes opens command stores over one database for one test.
// Open returns node name's store (the same one for the same name; for a
// single-node backend the suite only asks for one name); Restart closes
// that node and opens it again on the same data.
type CommandNodes struct {
	Open    func(name string) store.CommandStore
	Restart func(name string) store.CommandStore // closes the node if open, and opens it
	Stop    func(name string)                    // closes the node
}

// RunCommands runs the contract suite of store.CommandStore. shared says
// whether several nodes may use the database at once.
func RunCommands(t *testing.T, shared bool, open func(t *testing.T, clk clock.Clock) CommandNodes) {
	tests := []struct {
		name   string
		shared bool
		fn     func(t *testing.T, c *cmdHarness)
	}{
		{"CommandLifecycle", false, testCommandLifecycle},
		{"ListCommands", false, testListCommands},
		{"StartStatic", false, testStartStatic},
		{"ClientToken", false, testClientToken},
		{"DynamicPayload", false, testDynamicPayload},
		{"DeviceStatusMachine", false, testDeviceStatusMachine},
		{"CloudTimeout", false, testCloudTimeout},
		{"TimeoutAcrossRestart", false, testTimeoutAcrossRestart},
		{"TimeoutDueAtOpen", false, testTimeoutDueAtOpen},
		{"TimeoutOnceAcrossNodes", true, testTimeoutOnceAcrossNodes},
		{"RequestsReachOtherNodes", true, testRequestsReachOtherNodes},
		{"ListAndDeleteExecutions", false, testListAndDeleteExecutions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.shared && !shared {
				t.Skip("a single-node store has no other node")
			}
			clk := clock.NewFake(Epoch)
			c := &cmdHarness{t: t, clk: clk, nodes: open(t, clk), ctx: context.Background()}
			c.s = c.node("a")
			tt.fn(t, c)
		})
	}
}

type cmdHarness struct {
	t     *testing.T
	clk   *clock.Fake
	nodes CommandNodes
	ctx   context.Context
	s     store.CommandStore

	mu      sync.Mutex
	changes []store.CommandChange
	seq     int
}

func (c *cmdHarness) node(name string) store.CommandStore {
	s := c.nodes.Open(name)
	s.SetCommandHandler(c.record)
	return s
}

func (c *cmdHarness) restart(name string) store.CommandStore {
	s := c.nodes.Restart(name)
	s.SetCommandHandler(c.record)
	return s
}

func (c *cmdHarness) record(cs []store.CommandChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, cs...)
}

func (c *cmdHarness) take() []store.CommandChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.changes
	c.changes = nil
	return cs
}

func (c *cmdHarness) static(id, contentType string, content []byte) *store.Command {
	c.t.Helper()
	cmd := &store.Command{CommandID: id, Payload: &store.CommandPayload{Content: content, ContentType: contentType}}
	if err := store.ValidateCreateCommand(cmd); err != nil {
		c.t.Fatal(err)
	}
	out, err := c.s.CreateCommand(c.ctx, cmd)
	if err != nil {
		c.t.Fatalf("CreateCommand %s: %v", id, err)
	}
	return out
}

func thingTarget(name string) store.CommandTarget {
	return store.CommandTarget{Kind: store.CommandTargetThing, ID: name}
}

func (c *cmdHarness) start(in store.StartCommandExecutionInput) (*store.CommandExecution, error) {
	c.seq++
	if in.ExecutionID == "" {
		in.ExecutionID = fmt.Sprintf("exec-%04d", c.seq)
	}
	return c.s.StartCommandExecution(c.ctx, &in)
}

func (c *cmdHarness) mustStart(cmd, thing string, timeout int64) *store.CommandExecution {
	c.t.Helper()
	x, err := c.start(store.StartCommandExecutionInput{CommandID: cmd, Target: thingTarget(thing), ExecutionTimeoutSeconds: timeout})
	if err != nil {
		c.t.Fatalf("StartCommandExecution: %v", err)
	}
	return x
}

func (c *cmdHarness) update(x *store.CommandExecution, status store.CommandStatus, reason *store.CommandStatusReason, result map[string]store.CommandResult) (*store.CommandExecution, error) {
	return c.s.UpdateCommandExecution(c.ctx, &store.UpdateCommandExecutionInput{
		ExecutionID: x.ExecutionID, Target: x.Target, Status: status, StatusReason: reason, Result: result})
}

func (c *cmdHarness) get(x *store.CommandExecution) *store.CommandExecution {
	c.t.Helper()
	got, err := c.s.GetCommandExecution(c.ctx, x.ExecutionID, x.Target)
	if err != nil {
		c.t.Fatalf("GetCommandExecution: %v", err)
	}
	return got
}

func testCommandLifecycle(t *testing.T, c *cmdHarness) {
	cmd := c.static("reboot", "", []byte("now"))
	equal(t, "default content type", cmd.Payload.ContentType, store.DefaultCommandContentType)
	equal(t, "namespace", cmd.Namespace, store.CommandNamespaceIoT)
	_, err := c.s.CreateCommand(c.ctx, &store.Command{CommandID: "reboot", Namespace: store.CommandNamespaceIoT, Payload: cmd.Payload})
	ExpectError(t, err, store.ErrConflict)

	got, err := c.s.GetCommand(c.ctx, "reboot")
	if err != nil || !bytes.Equal(got.Payload.Content, []byte("now")) || !got.CreatedAt.Equal(Epoch) {
		t.Fatalf("GetCommand: %+v, %v", got, err)
	}
	_, err = c.s.GetCommand(c.ctx, "nope")
	ExpectError(t, err, store.ErrNotFound)

	c.clk.Advance(time.Minute)
	up, err := c.s.UpdateCommand(c.ctx, &store.UpdateCommandInput{CommandID: "reboot", DisplayName: ptr("Reboot"), Deprecated: ptr(true)})
	if err != nil || up.DisplayName != "Reboot" || !up.Deprecated || !up.LastUpdatedAt.Equal(Epoch.Add(time.Minute)) {
		t.Fatalf("UpdateCommand: %+v, %v", up, err)
	}
	_, err = c.s.UpdateCommand(c.ctx, &store.UpdateCommandInput{CommandID: "reboot", Description: ptr("edit")})
	ExpectError(t, err, store.ErrConflict)
	_, err = c.mustStartErr("reboot")
	ExpectError(t, err, store.ErrInvalidRequest)
	up, err = c.s.UpdateCommand(c.ctx, &store.UpdateCommandInput{CommandID: "reboot", Deprecated: ptr(false), Description: ptr("restored")})
	if err != nil || up.Deprecated || up.Description != "restored" {
		t.Fatalf("restore: %+v, %v", up, err)
	}
	_, err = c.s.UpdateCommand(c.ctx, &store.UpdateCommandInput{CommandID: "nope", Deprecated: ptr(true)})
	ExpectError(t, err, store.ErrNotFound)

	// Deleting a command that is not deprecated schedules the deletion.
	now, err := c.s.DeleteCommand(c.ctx, "reboot")
	if err != nil || now {
		t.Fatalf("DeleteCommand of an available command: now=%v, %v; want scheduled", now, err)
	}
	got, err = c.s.GetCommand(c.ctx, "reboot")
	if err != nil || !got.PendingDeletion {
		t.Fatalf("pending deletion: %+v, %v", got, err)
	}
	_, err = c.mustStartErr("reboot")
	ExpectError(t, err, store.ErrInvalidRequest)
	c.clk.Advance(store.CommandDeletionGrace)
	_, err = c.s.GetCommand(c.ctx, "reboot")
	ExpectError(t, err, store.ErrNotFound)
	c.static("reboot", "text/plain", []byte("again")) // the id is free again

	// A command deprecated for longer than the grace is deleted at once.
	if _, err := c.s.UpdateCommand(c.ctx, &store.UpdateCommandInput{CommandID: "reboot", Deprecated: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	c.clk.Advance(store.CommandDeletionGrace + time.Second)
	if now, err := c.s.DeleteCommand(c.ctx, "reboot"); err != nil || !now {
		t.Fatalf("DeleteCommand of a long-deprecated command: now=%v, %v", now, err)
	}
	_, err = c.s.GetCommand(c.ctx, "reboot")
	ExpectError(t, err, store.ErrNotFound)
	if now, err := c.s.DeleteCommand(c.ctx, "never"); err != nil || !now {
		t.Fatalf("DeleteCommand of an unknown id: now=%v, %v", now, err)
	}
}

func (c *cmdHarness) mustStartErr(cmd string) (*store.CommandExecution, error) {
	return c.start(store.StartCommandExecutionInput{CommandID: cmd, Target: thingTarget("t1")})
}

func testListCommands(t *testing.T, c *cmdHarness) {
	for i := range 5 {
		c.static(fmt.Sprintf("cmd-%d", i), "application/json", []byte(`{}`))
		c.clk.Advance(time.Second)
	}
	dyn := dynamicCommand("dyn", "JSON")
	if err := store.ValidateCreateCommand(dyn); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s.CreateCommand(c.ctx, dyn); err != nil {
		t.Fatal(err)
	}
	var ids []string
	tok := ""
	for {
		page, err := c.s.ListCommands(c.ctx, &store.ListCommandsInput{MaxResults: 2, NextToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range page.Commands {
			ids = append(ids, cmd.CommandID)
		}
		if tok = page.NextToken; tok == "" {
			break
		}
	}
	equalSlice(t, "newest first", ids, []string{"dyn", "cmd-4", "cmd-3", "cmd-2", "cmd-1", "cmd-0"})
	page, err := c.s.ListCommands(c.ctx, &store.ListCommandsInput{Ascending: true, MaxResults: 1})
	if err != nil || len(page.Commands) != 1 || page.Commands[0].CommandID != "cmd-0" || page.NextToken == "" {
		t.Fatalf("ascending: %+v, %v", page, err)
	}
	page, err = c.s.ListCommands(c.ctx, &store.ListCommandsInput{CommandParameterName: "temperature"})
	if err != nil || len(page.Commands) != 1 || page.Commands[0].CommandID != "dyn" {
		t.Fatalf("by parameter: %+v, %v", page, err)
	}
	page, err = c.s.ListCommands(c.ctx, &store.ListCommandsInput{Namespace: store.CommandNamespaceFleetWise})
	if err != nil || len(page.Commands) != 0 {
		t.Fatalf("FleetWise namespace: %+v, %v", page, err)
	}
	if now, err := c.s.DeleteCommand(c.ctx, "cmd-4"); err != nil || now {
		t.Fatalf("DeleteCommand: now=%v, %v; want scheduled", now, err)
	}
	page, err = c.s.ListCommands(c.ctx, &store.ListCommandsInput{MaxResults: 2})
	if err != nil || len(page.Commands) != 2 || page.Commands[1].CommandID != "cmd-4" || !page.Commands[1].PendingDeletion {
		t.Fatalf("a command pending deletion is listed with pendingDeletion: %+v, %v", page, err)
	}
	_, err = c.s.ListCommands(c.ctx, &store.ListCommandsInput{MaxResults: 101})
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = c.s.ListCommands(c.ctx, &store.ListCommandsInput{NextToken: "garbage!"})
	ExpectError(t, err, store.ErrInvalidRequest)
}

func testStartStatic(t *testing.T, c *cmdHarness) {
	c.static("json", "application/json", []byte(`{"a":1}`))
	c.static("bin", "", []byte{0, 1, 2, 0xff})
	c.static("cbor", "application/cbor", []byte{0xa0})
	for _, tc := range []struct{ cmd, format, ct string }{
		{"json", "json", "application/json"}, {"bin", "", store.DefaultCommandContentType}, {"cbor", "cbor", "application/cbor"},
	} {
		x := c.mustStart(tc.cmd, "t1", 300)
		equal(t, "status", x.Status, store.CommandCreated)
		equal(t, "timeout", x.ExecutionTimeoutSeconds, int64(300))
		if !x.StartedAt.Equal(x.CreatedAt) || !x.Deadline.Equal(x.CreatedAt.Add(300*time.Second)) {
			t.Fatalf("times: %+v", x)
		}
		cs := c.take()
		if len(cs) != 1 || !cs[0].Created || cs[0].Request == nil {
			t.Fatalf("changes %+v: want one creation", cs)
		}
		r := cs[0].Request
		equal(t, tc.cmd+" format", r.Format, tc.format)
		equal(t, tc.cmd+" content type", r.ContentType, tc.ct)
		cmd, _ := c.s.GetCommand(c.ctx, tc.cmd)
		if !bytes.Equal(r.Payload, cmd.Payload.Content) || !r.Expires.Equal(x.Deadline) {
			t.Fatalf("request %+v", r)
		}
	}
	x := c.mustStart("json", "t1", 0)
	equal(t, "default timeout", x.ExecutionTimeoutSeconds, int64(store.DefaultCommandTimeoutSeconds))
	_, err := c.start(store.StartCommandExecutionInput{CommandID: "json", Target: thingTarget("t1"), ExecutionTimeoutSeconds: store.MaxCommandTimeoutSeconds + 1})
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = c.start(store.StartCommandExecutionInput{CommandID: "missing", Target: thingTarget("t1")})
	ExpectError(t, err, store.ErrNotFound)
	v := "x"
	_, err = c.start(store.StartCommandExecutionInput{CommandID: "json", Target: thingTarget("t1"),
		Parameters: map[string]store.CommandParameterValue{"p": {S: &v}}})
	ExpectError(t, err, store.ErrInvalidRequest)
}

func testClientToken(t *testing.T, c *cmdHarness) {
	c.static("json", "application/json", []byte(`{}`))
	in := store.StartCommandExecutionInput{CommandID: "json", Target: thingTarget("t1"), ClientToken: "tok-1", ExecutionTimeoutSeconds: 60}
	x1, err := c.start(in)
	if err != nil {
		t.Fatal(err)
	}
	c.take()
	x2, err := c.start(in)
	if err != nil || x2.ExecutionID != x1.ExecutionID {
		t.Fatalf("retry: %+v, %v; want execution %s", x2, err, x1.ExecutionID)
	}
	if cs := c.take(); len(cs) != 0 {
		t.Fatalf("a retry changed something: %+v", cs)
	}
	in.Target = thingTarget("t2")
	_, err = c.start(in)
	ExpectError(t, err, store.ErrConflict)
}

func dynamicCommand(id, format string) *store.Command {
	def := int32(20)
	return &store.Command{
		CommandID:       id,
		PayloadTemplate: `{"set":"${aws:iot:commandexecution::parameter:temperature}","unit":"${aws:iot:commandexecution::parameter:unit}","note":"to ${aws:iot:commandexecution::parameter:temperature} degrees","within":"${aws:iot:commandexecution::executionTimeoutSec}","on":"${aws:iot:commandexecution::parameter:on}"}`,
		Preprocessor:    &store.CommandPreprocessor{AwsJSONSubstitution: &store.AwsJSONSubstitution{OutputFormat: format}},
		MandatoryParameters: []store.CommandParameter{
			{Name: "temperature", Type: "INTEGER", DefaultValue: &store.CommandParameterValue{I: &def},
				ValueConditions: []store.CommandParameterValueCondition{{ComparisonOperator: "IN_RANGE",
					Operand: store.CommandParameterValueOperand{NumberRange: &store.CommandNumberRange{Min: "10", Max: "30"}}}}},
			{Name: "unit", Type: "STRING", ValueConditions: []store.CommandParameterValueCondition{{ComparisonOperator: "IN_SET",
				Operand: store.CommandParameterValueOperand{Strings: []string{"C", "F"}}}}},
			{Name: "on", Type: "BOOLEAN"},
		},
	}
}

func testDynamicPayload(t *testing.T, c *cmdHarness) {
	for _, f := range []string{"JSON", "CBOR"} {
		cmd := dynamicCommand("dyn-"+f, f)
		if err := store.ValidateCreateCommand(cmd); err != nil {
			t.Fatal(err)
		}
		if _, err := c.s.CreateCommand(c.ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	unit, on := "C", true
	params := map[string]store.CommandParameterValue{"unit": {S: &unit}, "on": {B: &on}}
	x, err := c.start(store.StartCommandExecutionInput{CommandID: "dyn-JSON", Target: thingTarget("t1"), Parameters: params, ExecutionTimeoutSeconds: 30})
	if err != nil {
		t.Fatal(err)
	}
	if v := x.Parameters["temperature"]; v.I == nil || *v.I != 20 {
		t.Fatalf("the default was not applied: %+v", x.Parameters)
	}
	cs := c.take()
	if len(cs) != 1 || cs[0].Request == nil {
		t.Fatalf("changes %+v", cs)
	}
	want := `{"set":20,"unit":"C","note":"to 20 degrees","within":30,"on":true}`
	equal(t, "JSON payload", string(cs[0].Request.Payload), want)
	equal(t, "JSON format", cs[0].Request.Format, "json")

	if _, err := c.start(store.StartCommandExecutionInput{CommandID: "dyn-CBOR", Target: thingTarget("t1"), Parameters: params, ExecutionTimeoutSeconds: 30}); err != nil {
		t.Fatal(err)
	}
	cs = c.take()
	equal(t, "CBOR format", cs[0].Request.Format, "cbor")
	equal(t, "CBOR content type", cs[0].Request.ContentType, "application/cbor")
	// {"set":20,"unit":"C","note":"to 20 degrees","within":30,"on":true}
	wantCBOR := []byte{0xa5, 0x63, 's', 'e', 't', 0x14, 0x64, 'u', 'n', 'i', 't', 0x61, 'C',
		0x64, 'n', 'o', 't', 'e', 0x6d, 't', 'o', ' ', '2', '0', ' ', 'd', 'e', 'g', 'r', 'e', 'e', 's',
		0x66, 'w', 'i', 't', 'h', 'i', 'n', 0x18, 0x1e, 0x62, 'o', 'n', 0xf5}
	if !bytes.Equal(cs[0].Request.Payload, wantCBOR) {
		t.Fatalf("CBOR payload % x, want % x", cs[0].Request.Payload, wantCBOR)
	}

	hot := int32(31)
	bad := map[string]store.CommandParameterValue{"unit": {S: &unit}, "on": {B: &on}, "temperature": {I: &hot}}
	_, err = c.start(store.StartCommandExecutionInput{CommandID: "dyn-JSON", Target: thingTarget("t1"), Parameters: bad})
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = c.start(store.StartCommandExecutionInput{CommandID: "dyn-JSON", Target: thingTarget("t1"),
		Parameters: map[string]store.CommandParameterValue{"on": {B: &on}}})
	ExpectError(t, err, store.ErrInvalidRequest) // unit has no value and no default
	kelvin := "K"
	_, err = c.start(store.StartCommandExecutionInput{CommandID: "dyn-JSON", Target: thingTarget("t1"),
		Parameters: map[string]store.CommandParameterValue{"unit": {S: &kelvin}, "on": {B: &on}}})
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = c.start(store.StartCommandExecutionInput{CommandID: "dyn-JSON", Target: thingTarget("t1"),
		Parameters: map[string]store.CommandParameterValue{"unit": {B: &on}, "on": {B: &on}}})
	ExpectError(t, err, store.ErrInvalidRequest) // wrong type
	if cs := c.take(); len(cs) != 0 {
		t.Fatalf("a refused start changed something: %+v", cs)
	}
}

func testDeviceStatusMachine(t *testing.T, c *cmdHarness) {
	c.static("json", "application/json", []byte(`{}`))
	x := c.mustStart("json", "t1", 60)
	c.take()
	c.clk.Advance(time.Second)
	reason := &store.CommandStatusReason{ReasonCode: "200", ReasonDescription: "working"}
	got, err := c.update(x, store.CommandInProgress, reason, nil)
	if err != nil || got.Status != store.CommandInProgress || got.StatusReason.ReasonCode != "200" || !got.CompletedAt.IsZero() {
		t.Fatalf("IN_PROGRESS: %+v, %v", got, err)
	}
	if _, err := c.update(x, store.CommandInProgress, nil, nil); err != nil {
		t.Fatalf("a repeated IN_PROGRESS: %v", err)
	}
	// A status a device does not send is refused before the lookup
	// (COMMANDS.md §3.5 step 3): CREATED too, and for an execution that
	// does not exist.
	_, err = c.update(x, store.CommandCreated, nil, nil)
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = c.update(x, "DONE", nil, nil)
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = c.s.UpdateCommandExecution(c.ctx, &store.UpdateCommandExecutionInput{ExecutionID: x.ExecutionID, Target: thingTarget("t2"), Status: "DONE"})
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = c.s.UpdateCommandExecution(c.ctx, &store.UpdateCommandExecutionInput{ExecutionID: x.ExecutionID, Target: thingTarget("t2"), Status: store.CommandSucceeded})
	ExpectError(t, err, store.ErrNotFound)
	s, yes := "battery at 50 percent", true
	c.clk.Advance(time.Second)
	got, err = c.update(x, store.CommandSucceeded, nil, map[string]store.CommandResult{"battery": {S: &s}, "ok": {B: &yes}, "raw": {BIN: []byte{1, 2}}})
	if err != nil || got.Status != store.CommandSucceeded || !got.CompletedAt.Equal(Epoch.Add(2*time.Second)) || !got.Deadline.IsZero() {
		t.Fatalf("SUCCEEDED: %+v, %v", got, err)
	}
	stored := c.get(x)
	if r := stored.Result["battery"]; r.S == nil || *r.S != s || !bytes.Equal(stored.Result["raw"].BIN, []byte{1, 2}) {
		t.Fatalf("result %+v", stored.Result)
	}
	if stored.StatusReason != nil {
		t.Fatalf("a final update without statusReason keeps %+v", stored.StatusReason)
	}
	_, err = c.update(x, store.CommandFailed, nil, nil)
	se := ExpectError(t, err, store.ErrTerminalState)
	equal(t, "message", se.Message, "Command Execution status cannot be updated to FAILED since execution has already completed with status SUCCEEDED.")
	_, err = c.update(x, store.CommandCreated, nil, nil)
	ExpectError(t, err, store.ErrInvalidRequest)
	cs := c.take()
	if len(cs) != 3 {
		t.Fatalf("%d changes, want one per accepted update", len(cs))
	}

	for _, final := range []store.CommandStatus{store.CommandFailed, store.CommandRejected, store.CommandTimedOut} {
		y := c.mustStart("json", "t1", 60)
		got, err := c.update(y, final, &store.CommandStatusReason{ReasonCode: "DEVICE_BUSY"}, nil)
		if err != nil || got.Status != final || got.CompletedAt.IsZero() || got.CloudTimedOut {
			t.Fatalf("%s: %+v, %v", final, got, err)
		}
		_, err = c.update(y, store.CommandInProgress, nil, nil)
		ExpectError(t, err, store.ErrTerminalState)
	}
}

func waitStatus(c *cmdHarness, x *store.CommandExecution, s store.CommandStatus) *store.CommandExecution {
	c.t.Helper()
	var got *store.CommandExecution
	Eventually(c.t, fmt.Sprintf("execution %s is %s", x.ExecutionID, s), func() error {
		var err error
		got, err = c.s.GetCommandExecution(c.ctx, x.ExecutionID, x.Target)
		if err == nil && got.Status != s {
			err = fmt.Errorf("status %s", got.Status)
		}
		return err
	})
	return got
}

func timedOutChanges(cs []store.CommandChange) int {
	n := 0
	for _, ch := range cs {
		if ch.TimedOut {
			n++
		}
	}
	return n
}

func testCloudTimeout(t *testing.T, c *cmdHarness) {
	c.static("json", "application/json", []byte(`{}`))
	x := c.mustStart("json", "t1", 5)
	y := c.mustStart("json", "t1", 5)
	z := c.mustStart("json", "t1", 50)
	if _, err := c.update(y, store.CommandInProgress, nil, nil); err != nil {
		t.Fatal(err)
	}
	c.clk.Advance(4 * time.Second)
	if got := c.get(x); got.Status != store.CommandCreated {
		t.Fatalf("timed out early: %+v", got)
	}
	c.clk.Advance(time.Second)
	got := waitStatus(c, x, store.CommandTimedOut)
	if got.StatusReason == nil || got.StatusReason.ReasonCode != store.NoResponseReasonCode || got.StatusReason.ReasonDescription != "" || !got.CompletedAt.IsZero() {
		t.Fatalf("cloud timeout: %+v", got)
	}
	waitStatus(c, y, store.CommandTimedOut)
	if got := c.get(z); got.Status != store.CommandCreated {
		t.Fatalf("the longer timeout fired: %+v", got)
	}
	// The device may still finish after a cloud timeout, but not go back
	// to IN_PROGRESS.
	_, err := c.update(x, store.CommandInProgress, nil, nil)
	ExpectError(t, err, store.ErrInvalidStateTransition)
	late, err := c.update(x, store.CommandSucceeded, nil, nil)
	if err != nil || late.Status != store.CommandSucceeded || late.CompletedAt.IsZero() || late.StatusReason != nil {
		t.Fatalf("late result: %+v, %v", late, err)
	}
	own := &store.CommandStatusReason{ReasonCode: "DEVICE_TIMEOUT"}
	final, err := c.update(y, store.CommandTimedOut, own, nil)
	if err != nil || final.Status != store.CommandTimedOut || final.CloudTimedOut || final.StatusReason.ReasonCode != "DEVICE_TIMEOUT" {
		t.Fatalf("device TIMED_OUT after the cloud's: %+v, %v", final, err)
	}
	_, err = c.update(y, store.CommandSucceeded, nil, nil)
	ExpectError(t, err, store.ErrTerminalState)
	c.clk.Advance(time.Hour)
	waitStatus(c, z, store.CommandTimedOut)
	if n := timedOutChanges(c.take()); n != 3 {
		t.Fatalf("%d timeouts reported, want 3", n)
	}
}

func testTimeoutAcrossRestart(t *testing.T, c *cmdHarness) {
	c.static("json", "application/json", []byte(`{}`))
	x := c.mustStart("json", "t1", 30)
	c.take()
	c.s = c.restart("a")
	c.clk.Advance(time.Minute) // the deadline passed while the store was closed
	waitStatus(c, x, store.CommandTimedOut)
	c.s = c.restart("a")
	c.clk.Advance(time.Minute)
	y := c.mustStart("json", "t1", 1)
	c.clk.Advance(2 * time.Second)
	waitStatus(c, y, store.CommandTimedOut)
	if n := timedOutChanges(c.take()); n != 2 {
		t.Fatalf("%d timeouts reported, want 2 (each execution once)", n)
	}
}

// testTimeoutDueAtOpen: a timeout that came due while the store was
// closed fires as it opens, before its user has installed a handler; the
// change reaches the handler installed afterwards.
func testTimeoutDueAtOpen(t *testing.T, c *cmdHarness) {
	c.static("json", "application/json", []byte(`{}`))
	x := c.mustStart("json", "t1", 30)
	c.take()
	c.nodes.Stop("a")
	c.clk.Advance(time.Minute)
	s := c.nodes.Restart("a")
	c.s = s
	waitStatus(c, x, store.CommandTimedOut) // fired with no handler installed
	s.SetCommandHandler(c.record)
	if n := timedOutChanges(c.take()); n != 1 {
		t.Fatalf("%d timeouts reached the handler installed after the store opened, want 1", n)
	}
}

func testTimeoutOnceAcrossNodes(t *testing.T, c *cmdHarness) {
	c.node("b")
	c.node("c")
	c.static("json", "application/json", []byte(`{}`))
	var xs []*store.CommandExecution
	for range 20 {
		xs = append(xs, c.mustStart("json", "t1", 10))
	}
	c.clk.Advance(11 * time.Second)
	for _, x := range xs {
		waitStatus(c, x, store.CommandTimedOut)
	}
	if n := timedOutChanges(c.take()); n != len(xs) {
		t.Fatalf("%d timeouts reported across three nodes, want %d", n, len(xs))
	}
}

func testListAndDeleteExecutions(t *testing.T, c *cmdHarness) {
	c.static("a", "application/json", []byte(`{}`))
	c.static("b", "application/json", []byte(`{}`))
	var onT1 []string
	for i := range 5 {
		x := c.mustStart("a", "t1", 60)
		onT1 = append(onT1, x.ExecutionID)
		if i%2 == 0 {
			if _, err := c.update(x, store.CommandSucceeded, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		c.clk.Advance(time.Second)
	}
	bx := c.mustStart("b", "t1", 60)
	other := c.mustStart("a", "t2", 60)
	list := func(in store.ListCommandExecutionsInput) []string {
		t.Helper()
		var ids []string
		for {
			page, err := c.s.ListCommandExecutions(c.ctx, &in)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range page.Executions {
				ids = append(ids, x.ExecutionID)
			}
			if in.NextToken = page.NextToken; in.NextToken == "" {
				return ids
			}
		}
	}
	t1 := thingTarget("t1")
	equalSlice(t, "by command, ascending", list(store.ListCommandExecutionsInput{CommandID: "a", Ascending: true, MaxResults: 2}),
		append(append([]string{}, onT1...), other.ExecutionID))
	equalSlice(t, "by target, newest first", list(store.ListCommandExecutionsInput{Target: &t1, MaxResults: 4}),
		[]string{bx.ExecutionID, onT1[4], onT1[3], onT1[2], onT1[1], onT1[0]})
	equalSlice(t, "succeeded", list(store.ListCommandExecutionsInput{Target: &t1, Status: store.CommandSucceeded, Ascending: true}),
		[]string{onT1[0], onT1[2], onT1[4]})
	equalSlice(t, "started after", list(store.ListCommandExecutionsInput{CommandID: "a", StartedAfter: Epoch.Add(3 * time.Second), Ascending: true}),
		[]string{onT1[3], onT1[4], other.ExecutionID})
	_, err := c.s.ListCommandExecutions(c.ctx, &store.ListCommandExecutionsInput{})
	ExpectError(t, err, store.ErrInvalidRequest)
	_, err = c.s.ListCommandExecutions(c.ctx, &store.ListCommandExecutionsInput{CommandID: "a", Target: &t1})
	ExpectError(t, err, store.ErrInvalidRequest)

	err = c.s.DeleteCommandExecution(c.ctx, onT1[1], t1)
	ExpectError(t, err, store.ErrConflict)
	if err := c.s.DeleteCommandExecution(c.ctx, onT1[0], t1); err != nil {
		t.Fatal(err)
	}
	_, err = c.s.GetCommandExecution(c.ctx, onT1[0], t1)
	ExpectError(t, err, store.ErrNotFound)
	_, err = c.s.GetCommandExecution(c.ctx, onT1[1], thingTarget("t2"))
	ExpectError(t, err, store.ErrNotFound)
	if err := c.s.DeleteCommandExecution(c.ctx, onT1[0], t1); err != nil {
		t.Fatalf("deleting a deleted execution: %v", err)
	}
	equalSlice(t, "after the deletion", list(store.ListCommandExecutionsInput{CommandID: "a", Ascending: true}),
		append(append([]string{}, onT1[1:]...), other.ExecutionID))
}

// testRequestsReachOtherNodes: an execution started on one node is handed
// to the handler of every node once, with its request, so that each node
// sends it to the devices connected to it.
func testRequestsReachOtherNodes(t *testing.T, c *cmdHarness) {
	c.node("b")
	c.node("c")
	c.static("json", "application/json", []byte(`{"k":1}`))
	created := map[string]int{}
	count := func(want int, ids ...string) error {
		for _, ch := range c.take() {
			if ch.Created {
				if ch.Request == nil || string(ch.Request.Payload) != `{"k":1}` || ch.Request.Format != "json" {
					t.Fatalf("a delivered execution without its request: %+v", ch)
				}
				created[ch.Execution.ExecutionID]++
			}
		}
		for _, id := range ids {
			if n := created[id]; n != want {
				return fmt.Errorf("execution %s handed over %d times", id, n)
			}
		}
		return nil
	}
	x := c.mustStart("json", "t1", 60)
	Eventually(t, "every node has the first execution", func() error { return count(3, x.ExecutionID) })
	y := c.mustStart("json", "t1", 60)
	Eventually(t, "every node has the second execution", func() error { return count(3, y.ExecutionID) })
	if err := count(3, x.ExecutionID); err != nil {
		t.Fatalf("the first execution was handed over again: %v", err)
	}
}
