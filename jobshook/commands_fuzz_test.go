package jobshook

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/jobsbroker/jobsbroker/store"
)

// FuzzDecodeCommandUpdate checks that a device's status report, JSON or
// CBOR, never panics the decoder, that every report it accepts passes the
// store's validation, and that a rejection always carries a code the SDK
// enums know.
func FuzzDecodeCommandUpdate(f *testing.F) {
	for _, s := range []string{
		`{"status":"IN_PROGRESS"}`,
		`{"status":"SUCCEEDED","statusReason":{"reasonCode":"OK","reasonDescription":"done"},"result":{"a":{"s":"x"},"b":{"b":true},"c":{"bin":"AAE="}}}`,
		`{"deviceType":"things","deviceId":"T1","executionId":"E1","status":"FAILED","result":{"raw":{"bin":[1,-1,255]}}}`,
		`{"status":"TIMED_OUT","result":{}}`,
		`{"status":`,
		`[]`,
		"{\"status\":\"SUCCEEDED\",\"statusReason\":{\"reasonCode\":\"OK\",\"reasonDescription\":\"\xff\"}}",
		`{"status":"SUCCEEDED"} {"status":"FAILED"}`,
		`{"status":"SUCCEEDED"}x`,
		`{"Status":"SUCCEEDED"}`,
		`{"status":"SUCCEEDED","StatusReason":{"reasonCode":"lower"},"RESULT":{"a":{"S":"x"}}}`,
		`{"status":"CREATED"}`,
		`{"status":null,"result":null}`,
	} {
		f.Add([]byte(s), false)
	}
	rep, _ := cbor.Marshal(map[string]any{"status": "SUCCEEDED", "result": map[string]any{"r": map[string]any{"bin": []byte{1, 2}}}})
	f.Add(rep, true)
	f.Add(append(rep, 0), true)
	f.Add([]byte{0xa1, 0x66}, true)
	f.Fuzz(func(t *testing.T, payload []byte, isCBOR bool) {
		format := "json"
		if isCBOR {
			format = "cbor"
		}
		in, code, msg := decodeCommandUpdate(payload, format)
		if code != "" {
			switch code {
			case CmdInvalidJSON, CmdInvalidRequest:
			default:
				t.Fatalf("decoding answered %s", code)
			}
			if msg == "" {
				t.Fatal("a rejection without a message")
			}
			return
		}
		if err := store.ValidateCommandUpdate(in); err != nil {
			t.Fatalf("accepted a report the store refuses: %v", err)
		}
		if !isCBOR && (!utf8.Valid(payload) || !json.Valid(payload)) {
			t.Fatalf("accepted a report that is not one UTF-8 JSON value: %q", payload)
		}
	})
}
