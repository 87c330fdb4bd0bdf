package jobshook

import (
	"testing"
	"time"
)

// TestCommandRequestExpiry: a request is sent while its execution's
// deadline is ahead, however close, and is kept for an offline device only
// through the last whole second that ends by the deadline.
func TestCommandRequestExpiry(t *testing.T) {
	at := func(sec, ms int64) time.Time { return time.Unix(sec, ms*int64(time.Millisecond)) }
	for _, tc := range []struct {
		now       time.Time
		remaining time.Duration
		want      int64
		ok        bool
	}{
		{at(100, 0), 10 * time.Second, 109, true},        // announced as 9, as AWS
		{at(100, 300), 10 * time.Second, 109, true},      // deadline 110.3: kept through 109
		{at(100, 300), time.Second, 100, true},           // announced as 1
		{at(100, 300), 2 * time.Second, 101, true},       // announced as 1
		{at(100, 100), 700 * time.Millisecond, 99, true}, // sent to connected devices only
		{at(100, 0), time.Millisecond, 99, true},         //
		{at(100, 0), 0, 0, false},                        // the deadline passed
		{at(100, 0), -time.Second, 0, false},             //
		{at(100, 999), 43200 * time.Second, 43299, true}, // the longest timeout
	} {
		got, ok := CommandRequestExpiry(tc.now, tc.remaining)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CommandRequestExpiry(%v, %v) = %d, %v; want %d, %v", tc.now.UnixMilli(), tc.remaining, got, ok, tc.want, tc.ok)
		}
		if ok && time.Unix(got+1, 0).After(tc.now.Add(tc.remaining)) {
			t.Errorf("CommandRequestExpiry(%v, %v) = %d keeps the request past its deadline", tc.now.UnixMilli(), tc.remaining, got)
		}
	}
}

// TestDecodeCommandUpdate: the codes and the decoded fields of reports,
// read as strictly as jobs requests.
func TestDecodeCommandUpdate(t *testing.T) {
	for _, tc := range []struct {
		payload string
		code    string
		status  string
	}{
		{`{"status":"IN_PROGRESS","deviceId":"T1"}`, "", "IN_PROGRESS"},
		{" \n{\"status\":\"FAILED\"}\r\n", "", "FAILED"},
		{"{\"status\":\"SUCCEEDED\",\"statusReason\":{\"reasonCode\":\"OK\",\"reasonDescription\":\"\xc3\"}}", CmdInvalidJSON, ""},
		{"{\"status\":\"SUCCEEDED\",\"x\":\"\xff\"}", CmdInvalidJSON, ""},
		{`{"status":"SUCCEEDED"} {}`, CmdInvalidJSON, ""},
		{`{"status":"SUCCEEDED"}}`, CmdInvalidJSON, ""},
		{``, CmdInvalidJSON, ""},
		{`{"Status":"SUCCEEDED"}`, CmdInvalidRequest, ""},
		{`{"status":"SUCCEEDED","Status":"FAILED"}`, "", "SUCCEEDED"},
		{`{"status":"SUCCEEDED","statusReason":{"REASONCODE":"OK"}}`, CmdInvalidRequest, ""},
		{`{"status":"SUCCEEDED","statusReason":{"reasonCode":"OK","ReasonDescription":"x"}}`, "", "SUCCEEDED"},
		{`{"status":"SUCCEEDED","Result":{"a":{"s":"x"}}}`, "", "SUCCEEDED"},
		{`{"status":"SUCCEEDED","result":{"a":{"S":"x"}}}`, CmdInvalidRequest, ""},
		{`{"status":1}`, CmdInvalidRequest, ""},
		{`{"status":"FOO"}`, CmdInvalidRequest, ""},
		{`{"status":"CREATED"}`, CmdInvalidRequest, ""},
		{`{"status":null}`, CmdInvalidRequest, ""},
		{`"SUCCEEDED"`, CmdInvalidRequest, ""},
		{`{"status":"SUCCEEDED","statusReason":"OK"}`, CmdInvalidRequest, ""},
		{`{"status":"SUCCEEDED","result":{"a":"x"}}`, CmdInvalidRequest, ""},
	} {
		in, code, msg := decodeCommandUpdate([]byte(tc.payload), "json")
		if code != tc.code || code == "" && string(in.Status) != tc.status || code != "" && msg == "" {
			t.Errorf("%q: code %q (%s), want %q", tc.payload, code, msg, tc.code)
		}
	}
	if in, _, _ := decodeCommandUpdate([]byte(`{"status":"SUCCEEDED","Result":{"a":{"s":"x"}}}`), "json"); in != nil && in.Result != nil {
		t.Errorf("a wrong-case result member was read: %v", in.Result)
	}
	for _, payload := range [][]byte{{0xa1, 0x66}, {0xff}, {0xa1, 0x01, 0x02}, {0xa0, 0x00}} {
		if _, code, _ := decodeCommandUpdate(payload, "cbor"); code != CmdInvalidJSON {
			t.Errorf("CBOR % x: code %q, want InvalidJson", payload, code)
		}
	}
}
