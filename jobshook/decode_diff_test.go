package jobshook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"testing"
	"unicode/utf8"
)

// oldFields is how requests were read before decode.go split them by hand:
// encoding/json into a map of raw values (the last of repeated names
// wins, names unescaped). It is kept here as the reference the hand
// split must agree with.
func oldFields(payload []byte) (map[string]json.RawMessage, bool) {
	payload = bytes.Trim(payload, " \t\r\n")
	if len(payload) == 0 || !utf8.Valid(payload) || !json.Valid(payload) || payload[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, false
	}
	return m, true
}

// oldDetails, oldString and oldBool are the encoding/json readings of
// statusDetails and of string and boolean fields.
func oldDetails(raw json.RawMessage) (map[string]string, bool) {
	m := map[string]string{}
	return m, json.Unmarshal(raw, &m) == nil
}

func oldString(raw json.RawMessage) (string, bool) {
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

func oldBool(raw json.RawMessage) (bool, bool) {
	var b bool
	return b, json.Unmarshal(raw, &b) == nil
}

// checkSameReading compares the hand split of payload with encoding/json's
// reading of it, member by member and for every way a field is read.
func checkSameReading(t *testing.T, payload []byte) {
	t.Helper()
	want, ok := oldFields(payload)
	if !ok {
		return
	}
	req, rej := decodeRequest(payload)
	if rej != nil && rej.code == CodeInvalidJSON {
		t.Fatalf("decodeRequest(%q): %v", payload, rej)
	}
	got := map[string]json.RawMessage{}
	for _, f := range req.fields {
		got[string(f.name)] = f.raw
	}
	if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("members of %q:\n got %q\nwant %q", payload, got, want)
	}
	for name, raw := range want {
		if isNull(raw) {
			continue
		}
		if s, ok := oldString(raw); true {
			gs, gok := jsonString(raw)
			if ok != gok || s != gs {
				t.Fatalf("string %s of %q: got %q %v, want %q %v", name, payload, gs, gok, s, ok)
			}
		}
		r := &request{fields: []field{{name: []byte("f"), raw: raw}}}
		b, ok := oldBool(raw)
		gb, grej := r.bool("f", false)
		if ok != (grej == nil) || (ok && b != gb) {
			t.Fatalf("bool %s of %q: got %v %v, want %v %v", name, payload, gb, grej, b, ok)
		}
		d, ok := oldDetails(raw)
		r.fields[0].name = []byte("statusDetails")
		gd, grej := r.details()
		if ok != (grej == nil) || (ok && !reflect.DeepEqual(d, gd)) {
			t.Fatalf("details %s of %q: got %v %v, want %v %v", name, payload, gd, grej, d, ok)
		}
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, p := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : "x" , "b":[1,{"c":"]}"}],"d":{"e":{"f":[]}}}`,
		`{"a":1,"a":"two"}`, `{"\u0061":"x","a\"b":"y\\z"}`, `{"a":"\ud800"}`, `{"a":"é\u00e9\n"}`,
		`{"statusDetails":{"k":"v","k":"w","n":null}}`, `{"statusDetails":{"k":1}}`, `{"statusDetails":{}}`,
		`{"statusDetails":[]}`, `{"statusDetails":"x"}`, `{"s\u0074atusDetails":{"a":"b"}}`,
		`{"includeJobDocument":true,"x":false,"y":"true","z":0,"w":-1.5e3}`,
		`{"clientToken":"t","clientToken":null}`, `{"a":"\/\b\f\r\t"}`, "{\"a\":\t\"x\"\r\n}",
	} {
		t.Run(p, func(t *testing.T) { checkSameReading(t, []byte(p)) })
	}
}

// FuzzDecodeMatchesEncodingJSON checks that the hand split of requests
// reads every payload exactly as encoding/json did.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"status":"IN_PROGRESS","statusDetails":{"a":"b"},"expectedVersion":"3","clientToken":"c"}`))
	f.Add([]byte(`{"a":{"b":["}",{"c":"\""}]},"a":null}`))
	for i := range 4 {
		f.Add([]byte(fmt.Sprintf(`{"k%d":"\u00%d9"}`, i, i)))
	}
	f.Fuzz(func(t *testing.T, payload []byte) { checkSameReading(t, payload) })
}
