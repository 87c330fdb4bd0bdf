package jobshook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/jobsbroker/jobsbroker/store"
)

// MaxClientTokenLength is the longest clientToken AWS IoT accepts.
const MaxClientTokenLength = 64

// request is the decoded body of a device request. Only clientToken is
// common to all four operations; the other fields are read by the
// operation that uses them.
type request struct {
	fields      map[string]json.RawMessage
	clientToken *string
}

// decodeRequest parses a request payload. It returns a rejection with code
// InvalidJson for bytes that are not a JSON document, and InvalidRequest
// for JSON that is not an object or whose clientToken is not a string of
// at most 64 characters. Only a valid clientToken is kept to be echoed: a
// longer one is refused without it (AWS refuses such tokens; its shadow
// service answers them with a bare code and message), so that no reply
// repeats a value it refused. An empty payload is read as {}: some clients
// send nothing when a request has no fields.
func decodeRequest(payload []byte) (*request, *rejection) {
	r := &request{}
	payload = bytes.Trim(payload, " \t\r\n") // JSON's whitespace, not Unicode's
	if len(payload) == 0 {
		return r, nil
	}
	if !utf8.Valid(payload) || !json.Valid(payload) {
		return r, &rejection{code: CodeInvalidJSON, message: "the payload is not valid JSON"}
	}
	if payload[0] != '{' {
		return r, &rejection{code: CodeInvalidRequest, message: "the payload must be a JSON object"}
	}
	if err := json.Unmarshal(payload, &r.fields); err != nil {
		return r, &rejection{code: CodeInvalidJSON, message: "the payload is not valid JSON"}
	}
	if raw, ok := r.fields["clientToken"]; ok && !isNull(raw) {
		var token string
		if err := json.Unmarshal(raw, &token); err != nil {
			return r, &rejection{code: CodeInvalidRequest, message: "clientToken must be a string"}
		}
		if n := utf8.RuneCountInString(token); n > MaxClientTokenLength {
			return r, &rejection{code: CodeInvalidRequest, message: fmt.Sprintf("clientToken has %d characters; it may have at most 64", n)}
		}
		r.clientToken = &token
	}
	return r, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// get returns the field's raw value, treating null as absent.
func (r *request) get(name string) (json.RawMessage, bool) {
	raw, ok := r.fields[name]
	if !ok || isNull(raw) {
		return nil, false
	}
	return raw, true
}

// int reads an integer field. Numbers and decimal strings are accepted:
// the FreeRTOS Jobs library, the Python v1 SDK and AWS's own examples send
// "expectedVersion":"3".
func (r *request) int(name string) (*int64, *rejection) {
	raw, ok := r.get(name)
	if !ok {
		return nil, nil
	}
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, invalid(name + " must be an integer")
		}
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, invalid(name + " must be an integer")
	}
	return &v, nil
}

// bool reads a boolean field.
func (r *request) bool(name string, def bool) (bool, *rejection) {
	raw, ok := r.get(name)
	if !ok {
		return def, nil
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return def, invalid(name + " must be true or false")
	}
	return v, nil
}

// string reads a string field.
func (r *request) string(name string) (string, bool, *rejection) {
	raw, ok := r.get(name)
	if !ok {
		return "", false, nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false, invalid(name + " must be a string")
	}
	return v, true, nil
}

// details reads statusDetails: a JSON object of string values.
func (r *request) details() (map[string]string, *rejection) {
	raw, ok := r.get("statusDetails")
	if !ok {
		return nil, nil
	}
	m := map[string]string{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid("statusDetails must be a JSON object whose values are strings")
	}
	return m, nil
}

func invalid(msg string) *rejection { return &rejection{code: CodeInvalidRequest, message: msg} }

// startNextInput decodes a StartNextPendingJobExecution request.
func (r *request) startNextInput(thing string) (*store.StartNextInput, *rejection) {
	in := &store.StartNextInput{ThingName: thing}
	var rej *rejection
	if in.StatusDetails, rej = r.details(); rej != nil {
		return nil, rej
	}
	if in.StepTimeoutInMinutes, rej = r.int("stepTimeoutInMinutes"); rej != nil {
		return nil, rej
	}
	return in, nil
}

// describeInput decodes a DescribeJobExecution request; includeJobDocument
// defaults to true.
func (r *request) describeInput(thing, job string) (*store.DescribeExecutionInput, *rejection) {
	in := &store.DescribeExecutionInput{ThingName: thing, JobID: job}
	var rej *rejection
	if in.ExecutionNumber, rej = r.int("executionNumber"); rej != nil {
		return nil, rej
	}
	if in.IncludeJobDocument, rej = r.bool("includeJobDocument", true); rej != nil {
		return nil, rej
	}
	return in, nil
}

// updateInput decodes an UpdateJobExecution request and whether the reply
// should carry the execution state.
func (r *request) updateInput(thing, job string) (*store.UpdateExecutionInput, bool, *rejection) {
	in := &store.UpdateExecutionInput{ThingName: thing, JobID: job}
	status, ok, rej := r.string("status")
	if rej != nil {
		return nil, false, rej
	}
	if !ok {
		return nil, false, invalid("status is required")
	}
	in.Status = store.ExecutionStatus(status)
	if in.StatusDetails, rej = r.details(); rej != nil {
		return nil, false, rej
	}
	if in.ExpectedVersion, rej = r.int("expectedVersion"); rej != nil {
		return nil, false, rej
	}
	if in.ExecutionNumber, rej = r.int("executionNumber"); rej != nil {
		return nil, false, rej
	}
	if in.StepTimeoutInMinutes, rej = r.int("stepTimeoutInMinutes"); rej != nil {
		return nil, false, rej
	}
	if in.IncludeJobDocument, rej = r.bool("includeJobDocument", false); rej != nil {
		return nil, false, rej
	}
	withState, rej := r.bool("includeJobExecutionState", false)
	if rej != nil {
		return nil, false, rej
	}
	return in, withState, nil
}
