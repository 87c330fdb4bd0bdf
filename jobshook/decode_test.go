package jobshook

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/store"
)

func TestDecodeRequest(t *testing.T) {
	token64 := strings.Repeat("x", 64)
	token65 := strings.Repeat("x", 65)
	runes64 := strings.Repeat("é", 64) // 128 bytes, 64 characters
	tt := []struct {
		desc    string
		payload string
		code    string  // "" : no rejection
		token   *string // the clientToken captured, even on a rejection
		fields  []string
	}{
		{desc: "empty payload is {}"},
		{desc: "whitespace payload is {}", payload: " \r\n\t "},
		{desc: "empty object", payload: `{}`},
		{desc: "surrounding whitespace", payload: "\n {\"clientToken\":\"c-1\"} \n", token: ptr("c-1"), fields: []string{"clientToken"}},
		{desc: "clientToken", payload: `{"clientToken":"c-1"}`, token: ptr("c-1"), fields: []string{"clientToken"}},
		{desc: "empty clientToken is kept", payload: `{"clientToken":""}`, token: ptr(""), fields: []string{"clientToken"}},
		{desc: "escaped clientToken", payload: `{"clientToken":"a\u0062\"c"}`, token: ptr(`ab"c`), fields: []string{"clientToken"}},
		{desc: "null clientToken is absent", payload: `{"clientToken":null}`, fields: []string{"clientToken"}},
		{desc: "clientToken of 64 characters", payload: `{"clientToken":"` + token64 + `"}`, token: &token64, fields: []string{"clientToken"}},
		{desc: "clientToken of 64 two-byte characters", payload: `{"clientToken":"` + runes64 + `"}`, token: &runes64, fields: []string{"clientToken"}},
		{desc: "clientToken of 65 characters is not kept", payload: `{"clientToken":"` + token65 + `"}`, code: CodeInvalidRequest},
		{desc: "numeric clientToken", payload: `{"clientToken":17}`, code: CodeInvalidRequest},
		{desc: "object clientToken", payload: `{"clientToken":{"a":"b"}}`, code: CodeInvalidRequest},
		{
			desc:    "unknown fields ignored",
			payload: `{"jobId":"job-1","thingName":"thing-1","timestamp":1717000000,"nested":{"a":[1,2,{"b":null}]},"clientToken":"c-2"}`,
			token:   ptr("c-2"),
			fields:  []string{"jobId", "thingName", "timestamp", "nested", "clientToken"},
		},
		{desc: "not JSON", payload: `clientToken=c-1`, code: CodeInvalidJSON},
		{desc: "lone closing brace", payload: `}`, code: CodeInvalidJSON},
		{desc: "truncated object", payload: `{"clientToken":"c-1"`, code: CodeInvalidJSON},
		{desc: "trailing comma", payload: `{"clientToken":"c-1",}`, code: CodeInvalidJSON},
		{desc: "two documents", payload: `{} {}`, code: CodeInvalidJSON},
		{desc: "single quotes", payload: `{'clientToken':'c-1'}`, code: CodeInvalidJSON},
		{desc: "invalid UTF-8 in a string", payload: "{\"clientToken\":\"c-\xff\"}", code: CodeInvalidJSON},
		{desc: "invalid UTF-8 in an unknown field", payload: "{\"clientToken\":\"c-1\",\"x\":\"\xc3\x28\"}", code: CodeInvalidJSON},
		{desc: "empty array", payload: `[]`, code: CodeInvalidRequest},
		{desc: "array of objects", payload: `[{"clientToken":"c-1"}]`, code: CodeInvalidRequest},
		{desc: "string", payload: `"c-1"`, code: CodeInvalidRequest},
		{desc: "number", payload: `17`, code: CodeInvalidRequest},
		{desc: "true", payload: `true`, code: CodeInvalidRequest},
		{desc: "null", payload: `null`, code: CodeInvalidRequest},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			req, rej := decodeRequest([]byte(tc.payload))
			if req == nil {
				t.Fatal("decodeRequest returned no request")
			}
			checkRejection(t, rej, tc.code)
			switch {
			case tc.token == nil && req.clientToken != nil:
				t.Errorf("clientToken = %q, want none", *req.clientToken)
			case tc.token != nil && req.clientToken == nil:
				t.Errorf("clientToken not captured, want %q", *tc.token)
			case tc.token != nil && *req.clientToken != *tc.token:
				t.Errorf("clientToken = %q, want %q", *req.clientToken, *tc.token)
			}
			if tc.code == "" {
				names := map[string]bool{} // a repeated name counts once
				for _, f := range req.fields {
					names[string(f.name)] = true
				}
				got := slices.Sorted(maps.Keys(names))
				if len(got) != len(tc.fields) {
					t.Errorf("fields = %q, want %q", got, tc.fields)
				}
				for _, k := range tc.fields {
					if !names[k] {
						t.Errorf("field %q missing from %q", k, got)
					}
				}
			}
		})
	}
}

// checkRejection checks that rej has code, or is nil when code is "".
func checkRejection(t *testing.T, rej *rejection, code string) {
	t.Helper()
	switch {
	case code == "" && rej != nil:
		t.Fatalf("rejected %s (%s), want accepted", rej.code, rej.message)
	case code != "" && rej == nil:
		t.Fatalf("accepted, want %s", code)
	case code != "" && rej.code != code:
		t.Fatalf("rejected %s (%s), want %s", rej.code, rej.message, code)
	case rej != nil && rej.message == "":
		t.Fatalf("rejection %s has no message", rej.code)
	case rej != nil && rej.state != nil:
		t.Fatalf("a decoding rejection carries an execution state")
	}
}

// mustDecode decodes a payload that must be a valid request.
func mustDecode(t *testing.T, payload string) *request {
	t.Helper()
	req, rej := decodeRequest([]byte(payload))
	if rej != nil {
		t.Fatalf("decodeRequest(%s) = %s: %s", payload, rej.code, rej.message)
	}
	return req
}

func TestRequestInt(t *testing.T) {
	tt := []struct {
		desc    string
		payload string
		want    *int64
		code    string
	}{
		{desc: "absent", payload: `{}`},
		{desc: "empty payload", payload: ``},
		{desc: "null is absent", payload: `{"v":null}`},
		{desc: "number", payload: `{"v":3}`, want: ptr[int64](3)},
		{desc: "zero", payload: `{"v":0}`, want: ptr[int64](0)},
		{desc: "negative number", payload: `{"v":-1}`, want: ptr[int64](-1)},
		{desc: "numeric string", payload: `{"v":"3"}`, want: ptr[int64](3)},
		{desc: "negative numeric string", payload: `{"v":"-1"}`, want: ptr[int64](-1)},
		{desc: "escaped numeric string", payload: `{"v":"\u0034\u0032"}`, want: ptr[int64](42)},
		{desc: "largest int64", payload: `{"v":9223372036854775807}`, want: ptr[int64](9223372036854775807)},
		{desc: "largest int64 as a string", payload: `{"v":"9223372036854775807"}`, want: ptr[int64](9223372036854775807)},
		{desc: "overflow", payload: `{"v":9223372036854775808}`, code: CodeInvalidRequest},
		{desc: "fraction", payload: `{"v":1.5}`, code: CodeInvalidRequest},
		{desc: "fraction as a string", payload: `{"v":"1.5"}`, code: CodeInvalidRequest},
		{desc: "word", payload: `{"v":"three"}`, code: CodeInvalidRequest},
		{desc: "empty string", payload: `{"v":""}`, code: CodeInvalidRequest},
		{desc: "string with spaces", payload: `{"v":" 3 "}`, code: CodeInvalidRequest},
		{desc: "bool", payload: `{"v":true}`, code: CodeInvalidRequest},
		{desc: "object", payload: `{"v":{"n":3}}`, code: CodeInvalidRequest},
		{desc: "array", payload: `{"v":[3]}`, code: CodeInvalidRequest},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, rej := mustDecode(t, tc.payload).int("v")
			checkRejection(t, rej, tc.code)
			if rej != nil && !strings.Contains(rej.message, "v ") {
				t.Errorf("message %q does not name the field", rej.message)
			}
			checkPtr(t, got, tc.want)
		})
	}
}

func checkPtr[T comparable](t *testing.T, got, want *T) {
	t.Helper()
	switch {
	case got == nil && want != nil:
		t.Errorf("got absent, want %v", *want)
	case got != nil && want == nil:
		t.Errorf("got %v, want absent", *got)
	case got != nil && *got != *want:
		t.Errorf("got %v, want %v", *got, *want)
	}
}

func TestRequestBool(t *testing.T) {
	tt := []struct {
		desc    string
		payload string
		def     bool
		want    bool
		code    string
	}{
		{desc: "absent gives default true", payload: `{}`, def: true, want: true},
		{desc: "absent gives default false", payload: `{}`, def: false, want: false},
		{desc: "null gives default true", payload: `{"b":null}`, def: true, want: true},
		{desc: "null gives default false", payload: `{"b":null}`, def: false, want: false},
		{desc: "true over default false", payload: `{"b":true}`, def: false, want: true},
		{desc: "false over default true", payload: `{"b":false}`, def: true, want: false},
		{desc: "string", payload: `{"b":"true"}`, code: CodeInvalidRequest},
		{desc: "number", payload: `{"b":1}`, code: CodeInvalidRequest},
		{desc: "object", payload: `{"b":{}}`, code: CodeInvalidRequest},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, rej := mustDecode(t, tc.payload).bool("b", tc.def)
			checkRejection(t, rej, tc.code)
			if rej == nil && got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRequestString(t *testing.T) {
	tt := []struct {
		desc    string
		payload string
		want    string
		present bool
		code    string
	}{
		{desc: "absent", payload: `{}`},
		{desc: "null is absent", payload: `{"s":null}`},
		{desc: "string", payload: `{"s":"IN_PROGRESS"}`, want: "IN_PROGRESS", present: true},
		{desc: "empty string is present", payload: `{"s":""}`, want: "", present: true},
		{desc: "number", payload: `{"s":1}`, code: CodeInvalidRequest},
		{desc: "bool", payload: `{"s":false}`, code: CodeInvalidRequest},
		{desc: "array", payload: `{"s":["IN_PROGRESS"]}`, code: CodeInvalidRequest},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, present, rej := mustDecode(t, tc.payload).string("s")
			checkRejection(t, rej, tc.code)
			if rej == nil && (got != tc.want || present != tc.present) {
				t.Errorf("got %q, %v; want %q, %v", got, present, tc.want, tc.present)
			}
		})
	}
}

func TestRequestDetails(t *testing.T) {
	tt := []struct {
		desc    string
		payload string
		want    map[string]string // nil: absent (leave unchanged)
		code    string
	}{
		{desc: "absent", payload: `{}`},
		{desc: "null is absent", payload: `{"statusDetails":null}`},
		{desc: "empty object replaces", payload: `{"statusDetails":{}}`, want: map[string]string{}},
		{desc: "string values", payload: `{"statusDetails":{"step":"download","progress":"40"}}`, want: map[string]string{"step": "download", "progress": "40"}},
		{desc: "number value", payload: `{"statusDetails":{"progress":40}}`, code: CodeInvalidRequest},
		{desc: "bool value", payload: `{"statusDetails":{"ok":true}}`, code: CodeInvalidRequest},
		{desc: "object value", payload: `{"statusDetails":{"a":{"b":"c"}}}`, code: CodeInvalidRequest},
		{desc: "quoted map (Jobs library bug)", payload: `{"statusDetails":"{\"step\":\"x\"}"}`, code: CodeInvalidRequest},
		{desc: "array", payload: `{"statusDetails":[]}`, code: CodeInvalidRequest},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, rej := mustDecode(t, tc.payload).details()
			checkRejection(t, rej, tc.code)
			if rej != nil {
				return
			}
			if (got == nil) != (tc.want == nil) || !maps.Equal(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestStartNextInput(t *testing.T) {
	tt := []struct {
		desc    string
		payload string
		want    store.StartNextInput
		code    string
	}{
		{desc: "empty", payload: ``, want: store.StartNextInput{ThingName: thing1}},
		{
			desc:    "all fields",
			payload: `{"statusDetails":{"step":"download"},"stepTimeoutInMinutes":30,"clientToken":"c-1"}`,
			want:    store.StartNextInput{ThingName: thing1, StatusDetails: map[string]string{"step": "download"}, StepTimeoutInMinutes: ptr[int64](30)},
		},
		{desc: "numeric string step timeout", payload: `{"stepTimeoutInMinutes":"30"}`, want: store.StartNextInput{ThingName: thing1, StepTimeoutInMinutes: ptr[int64](30)}},
		{desc: "nulls are absent", payload: `{"statusDetails":null,"stepTimeoutInMinutes":null}`, want: store.StartNextInput{ThingName: thing1}},
		{desc: "bad step timeout", payload: `{"stepTimeoutInMinutes":"soon"}`, code: CodeInvalidRequest},
		{desc: "bad statusDetails", payload: `{"statusDetails":{"n":1}}`, code: CodeInvalidRequest},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, rej := mustDecode(t, tc.payload).startNextInput(thing1)
			checkRejection(t, rej, tc.code)
			if rej != nil {
				return
			}
			if got.ThingName != tc.want.ThingName {
				t.Errorf("ThingName = %q, want %q", got.ThingName, tc.want.ThingName)
			}
			if (got.StatusDetails == nil) != (tc.want.StatusDetails == nil) || !maps.Equal(got.StatusDetails, tc.want.StatusDetails) {
				t.Errorf("StatusDetails = %#v, want %#v", got.StatusDetails, tc.want.StatusDetails)
			}
			checkPtr(t, got.StepTimeoutInMinutes, tc.want.StepTimeoutInMinutes)
		})
	}
}

func TestDescribeInput(t *testing.T) {
	tt := []struct {
		desc    string
		payload string
		job     string
		want    store.DescribeExecutionInput
		code    string
	}{
		{desc: "includeJobDocument defaults to true", job: "job-1", want: store.DescribeExecutionInput{ThingName: thing1, JobID: "job-1", IncludeJobDocument: true}},
		{desc: "null includeJobDocument is the default", job: "$next", payload: `{"includeJobDocument":null}`, want: store.DescribeExecutionInput{ThingName: thing1, JobID: "$next", IncludeJobDocument: true}},
		{desc: "includeJobDocument false", job: "job-1", payload: `{"includeJobDocument":false}`, want: store.DescribeExecutionInput{ThingName: thing1, JobID: "job-1"}},
		{desc: "executionNumber", job: "job-1", payload: `{"executionNumber":2}`, want: store.DescribeExecutionInput{ThingName: thing1, JobID: "job-1", ExecutionNumber: ptr[int64](2), IncludeJobDocument: true}},
		{desc: "executionNumber as a string", job: "job-1", payload: `{"executionNumber":"2"}`, want: store.DescribeExecutionInput{ThingName: thing1, JobID: "job-1", ExecutionNumber: ptr[int64](2), IncludeJobDocument: true}},
		{desc: "greengrass-lite extra fields", job: "$next", payload: `{"jobId":"$next","thingName":"thing-1","includeJobDocument":true}`, want: store.DescribeExecutionInput{ThingName: thing1, JobID: "$next", IncludeJobDocument: true}},
		{desc: "bad executionNumber", job: "job-1", payload: `{"executionNumber":true}`, code: CodeInvalidRequest},
		{desc: "bad includeJobDocument", job: "job-1", payload: `{"includeJobDocument":"yes"}`, code: CodeInvalidRequest},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, rej := mustDecode(t, tc.payload).describeInput(thing1, tc.job)
			checkRejection(t, rej, tc.code)
			if rej != nil {
				return
			}
			if got.ThingName != tc.want.ThingName || got.JobID != tc.want.JobID || got.IncludeJobDocument != tc.want.IncludeJobDocument {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
			checkPtr(t, got.ExecutionNumber, tc.want.ExecutionNumber)
		})
	}
}

func TestUpdateInput(t *testing.T) {
	tt := []struct {
		desc      string
		payload   string
		want      store.UpdateExecutionInput
		withState bool
		code      string
	}{
		{
			desc:    "status only: both include flags default to false",
			payload: `{"status":"IN_PROGRESS"}`,
			want:    store.UpdateExecutionInput{ThingName: thing1, JobID: "job-1", Status: store.StatusInProgress},
		},
		{
			desc:    "every field as a number",
			payload: `{"status":"SUCCEEDED","statusDetails":{"progress":"100"},"expectedVersion":3,"executionNumber":1,"stepTimeoutInMinutes":-1,"includeJobDocument":true,"includeJobExecutionState":true,"clientToken":"c-1"}`,
			want: store.UpdateExecutionInput{
				ThingName: thing1, JobID: "job-1", Status: store.StatusSucceeded,
				StatusDetails:   map[string]string{"progress": "100"},
				ExpectedVersion: ptr[int64](3), ExecutionNumber: ptr[int64](1), StepTimeoutInMinutes: ptr[int64](-1),
				IncludeJobDocument: true,
			},
			withState: true,
		},
		{
			desc:    "numeric strings (FreeRTOS, Python v1)",
			payload: `{"status":"FAILED","expectedVersion":"3","executionNumber":"1","stepTimeoutInMinutes":"15"}`,
			want: store.UpdateExecutionInput{
				ThingName: thing1, JobID: "job-1", Status: store.StatusFailed,
				ExpectedVersion: ptr[int64](3), ExecutionNumber: ptr[int64](1), StepTimeoutInMinutes: ptr[int64](15),
			},
		},
		{
			desc:    "nulls are absent",
			payload: `{"status":"REJECTED","statusDetails":null,"expectedVersion":null,"executionNumber":null,"stepTimeoutInMinutes":null,"includeJobDocument":null,"includeJobExecutionState":null}`,
			want:    store.UpdateExecutionInput{ThingName: thing1, JobID: "job-1", Status: store.StatusRejected},
		},
		{
			desc:    "unknown status is left for the store to refuse",
			payload: `{"status":"SUCCESS"}`,
			want:    store.UpdateExecutionInput{ThingName: thing1, JobID: "job-1", Status: "SUCCESS"},
		},
		{desc: "empty payload: status required", payload: ``, code: CodeInvalidRequest},
		{desc: "missing status", payload: `{"statusDetails":{"a":"b"}}`, code: CodeInvalidRequest},
		{desc: "null status", payload: `{"status":null}`, code: CodeInvalidRequest},
		{desc: "numeric status", payload: `{"status":3}`, code: CodeInvalidRequest},
		{desc: "bad statusDetails", payload: `{"status":"IN_PROGRESS","statusDetails":"x"}`, code: CodeInvalidRequest},
		{desc: "bad expectedVersion", payload: `{"status":"IN_PROGRESS","expectedVersion":"v3"}`, code: CodeInvalidRequest},
		{desc: "bad executionNumber", payload: `{"status":"IN_PROGRESS","executionNumber":1.5}`, code: CodeInvalidRequest},
		{desc: "bad stepTimeoutInMinutes", payload: `{"status":"IN_PROGRESS","stepTimeoutInMinutes":[]}`, code: CodeInvalidRequest},
		{desc: "bad includeJobDocument", payload: `{"status":"IN_PROGRESS","includeJobDocument":1}`, code: CodeInvalidRequest},
		{desc: "bad includeJobExecutionState", payload: `{"status":"IN_PROGRESS","includeJobExecutionState":"true"}`, code: CodeInvalidRequest},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, withState, rej := mustDecode(t, tc.payload).updateInput(thing1, "job-1")
			checkRejection(t, rej, tc.code)
			if rej != nil {
				return
			}
			if got.ThingName != tc.want.ThingName || got.JobID != tc.want.JobID || got.Status != tc.want.Status {
				t.Errorf("got %s/%s %s, want %s/%s %s", got.ThingName, got.JobID, got.Status, tc.want.ThingName, tc.want.JobID, tc.want.Status)
			}
			if (got.StatusDetails == nil) != (tc.want.StatusDetails == nil) || !maps.Equal(got.StatusDetails, tc.want.StatusDetails) {
				t.Errorf("StatusDetails = %#v, want %#v", got.StatusDetails, tc.want.StatusDetails)
			}
			checkPtr(t, got.ExpectedVersion, tc.want.ExpectedVersion)
			checkPtr(t, got.ExecutionNumber, tc.want.ExecutionNumber)
			checkPtr(t, got.StepTimeoutInMinutes, tc.want.StepTimeoutInMinutes)
			if got.IncludeJobDocument != tc.want.IncludeJobDocument {
				t.Errorf("IncludeJobDocument = %v, want %v", got.IncludeJobDocument, tc.want.IncludeJobDocument)
			}
			if withState != tc.withState {
				t.Errorf("includeJobExecutionState = %v, want %v", withState, tc.withState)
			}
		})
	}
}
