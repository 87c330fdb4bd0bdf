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
//
// The payload is split into its top-level members by hand rather than
// through encoding/json's map decoding, which was a fifth of the
// allocations of a device operation: once the payload has passed
// json.Valid, a member's name and value are found by skipping strings and
// nested brackets. Values stay raw, aliasing the payload, until an
// operation reads them; a request lives no longer than its packet.
type request struct {
	fields      []field
	clientToken *string // points at token when the payload has a valid one

	// Room for the usual number of members and the token, so that a
	// request is one allocation.
	buf   [8]field
	token string
}

// field is one top-level member of a request: its name (unescaped) and
// its raw JSON value.
type field struct {
	name []byte
	raw  []byte
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
	r.fields = members(payload, r.buf[:0])
	if raw, ok := r.get("clientToken"); ok {
		token, ok := jsonString(raw)
		if !ok {
			return r, &rejection{code: CodeInvalidRequest, message: "clientToken must be a string"}
		}
		if n := utf8.RuneCountInString(token); n > MaxClientTokenLength {
			return r, &rejection{code: CodeInvalidRequest, message: fmt.Sprintf("clientToken has %d characters; it may have at most 64", n)}
		}
		r.token = token
		r.clientToken = &r.token
	}
	return r, nil
}

// members appends the members of obj, a valid JSON object, to fields.
func members(obj []byte, fields []field) []field {
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		end := skipString(obj, i)
		name := obj[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var s string
			json.Unmarshal(obj[i:end], &s) // valid JSON: cannot fail
			name = []byte(s)
		}
		i = skipSpace(obj, skipSpace(obj, end)+1) // past the colon
		vend := skipValue(obj, i)
		fields = append(fields, field{name: name, raw: obj[i:vend]})
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return fields
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the value that starts at i.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}

// jsonString decodes raw, a valid JSON value, as a string; ok is false
// when it is not one.
func jsonString(raw []byte) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	return s, json.Unmarshal(raw, &s) == nil
}

func isNull(raw []byte) bool { return string(raw) == "null" }

// get returns the field's raw value, treating null as absent. Of members
// with the same name the last counts, as in encoding/json.
func (r *request) get(name string) ([]byte, bool) {
	for i := len(r.fields) - 1; i >= 0; i-- {
		if string(r.fields[i].name) == name {
			raw := r.fields[i].raw
			if isNull(raw) {
				return nil, false
			}
			return raw, true
		}
	}
	return nil, false
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
		if text, ok = jsonString(raw); !ok {
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
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return def, invalid(name + " must be true or false")
}

// string reads a string field.
func (r *request) string(name string) (string, bool, *rejection) {
	raw, ok := r.get(name)
	if !ok {
		return "", false, nil
	}
	v, ok := jsonString(raw)
	if !ok {
		return "", false, invalid(name + " must be a string")
	}
	return v, true, nil
}

// status reads the required status field. A status of the model is
// answered with its constant rather than a copy of the payload's bytes.
func (r *request) status() (store.ExecutionStatus, *rejection) {
	raw, ok := r.get("status")
	if !ok {
		return "", invalid("status is required")
	}
	if len(raw) > 2 && raw[0] == '"' {
		for _, s := range store.Statuses {
			if string(raw[1:len(raw)-1]) == string(s) {
				return s, nil
			}
		}
	}
	status, _, rej := r.string("status")
	return store.ExecutionStatus(status), rej
}

// details reads statusDetails: a JSON object of string values.
func (r *request) details() (map[string]string, *rejection) {
	raw, ok := r.get("statusDetails")
	if !ok {
		return nil, nil
	}
	bad := func() *rejection { return invalid("statusDetails must be a JSON object whose values are strings") }
	if raw[0] != '{' {
		return nil, bad()
	}
	var buf [10]field // AWS allows 10 pairs
	pairs := members(raw, buf[:0])
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		if isNull(p.raw) {
			m[string(p.name)] = "" // as encoding/json stores null in a map of strings
			continue
		}
		v, ok := jsonString(p.raw)
		if !ok {
			return nil, bad()
		}
		m[string(p.name)] = v
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
	var rej *rejection
	if in.Status, rej = r.status(); rej != nil {
		return nil, false, rej
	}
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
