package storetest

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
)

// deviceClientDetails is what the AWS IoT Device Client reports for a
// handler that printed two lines and a warning: its output as it is, line
// breaks, tabs and a terminal colour code included.
var deviceClientDetails = map[string]string{
	"stdout": "line one\nline two\n",
	"stderr": "warning:\tdisk 91% full\r\n\x1b[0m",
}

// testStatusDetailsAsAgentsSend: statusDetails values are taken as AWS's
// service takes them from real agents (any character but U+0000, up to
// 1,024 of them) and read back unchanged; the ten-pair limit holds on
// every operation that takes them, and a refused map changes nothing.
func testStatusDetailsAsAgentsSend(t *testing.T, h *Harness) {
	h.CreateJob("j", "t", "u")
	out, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{ThingName: "t", StatusDetails: deviceClientDetails})
	if err != nil {
		t.Fatalf("start-next with a handler's output: %v", err)
	}
	if !maps.Equal(out.Execution.StatusDetails, deviceClientDetails) {
		t.Fatalf("start-next statusDetails = %q, want %q", out.Execution.StatusDetails, deviceClientDetails)
	}
	ten := map[string]string{}
	for i := range store.MaxStatusDetails {
		ten[fmt.Sprintf("k%d", i)] = "\u2028\t\u200b" + strings.Repeat("x", 1021)
	}
	if _, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j",
		Status: store.StatusInProgress, StatusDetails: ten}); err != nil {
		t.Fatalf("ten pairs of 1,024 characters: %v", err)
	}
	if _, err := h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "t", JobID: "j",
		Status: store.StatusSucceeded, StatusDetails: deviceClientDetails}); err != nil {
		t.Fatalf("SUCCEEDED with a handler's output: %v", err)
	}
	e := h.Describe("t", "j")
	if e.Status != store.StatusSucceeded || !maps.Equal(e.StatusDetails, deviceClientDetails) {
		t.Fatalf("described %s %q, want SUCCEEDED %q", e.Status, e.StatusDetails, deviceClientDetails)
	}

	eleven := maps.Clone(ten)
	eleven["k10"] = "v"
	huge := map[string]string{}
	for i := range 10001 {
		huge[fmt.Sprintf("k%d", i)] = "v"
	}
	before := h.Describe("u", "j")
	for name, details := range map[string]map[string]string{
		"11 pairs":     eleven,
		"10,001 pairs": huge,
		"U+0000":       {"stdout": "a\x00b"},
		"1,025 chars":  {"stdout": strings.Repeat("\n", 1025)},
	} {
		_, err := h.Store.StartNextPendingJobExecution(h.Ctx, &store.StartNextInput{ThingName: "u", StatusDetails: details})
		ExpectError(t, err, store.ErrInvalidRequest)
		_, err = h.Store.UpdateJobExecution(h.Ctx, &store.UpdateExecutionInput{ThingName: "u", JobID: "j",
			Status: store.StatusInProgress, StatusDetails: details})
		ExpectError(t, err, store.ErrInvalidRequest)
		err = h.Store.CancelJobExecution(h.Ctx, &store.CancelExecutionInput{ThingName: "u", JobID: "j", StatusDetails: details})
		se := ExpectError(t, err, store.ErrInvalidRequest)
		if len(se.Message) > 200 {
			t.Errorf("%s: a %d-byte message quotes what was refused", name, len(se.Message))
		}
	}
	after := h.Describe("u", "j")
	equal(t, "version after refused statusDetails", after.VersionNumber, before.VersionNumber)
	equal(t, "status after refused statusDetails", after.Status, before.Status)
}
