package awsapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestExactMembers(t *testing.T) {
	type inner struct {
		BaseRate int `json:"baseRatePerMinute"`
	}
	type body struct {
		Status  string            `json:"status"`
		Version *int64            `json:"expectedVersion,omitempty"`
		Details map[string]string `json:"statusDetails"`
		Rollout *inner            `json:"rollout"`
		List    []inner           `json:"list"`
		Raw     json.RawMessage   `json:"raw"`
		At      EpochSeconds      `json:"at"`
	}
	cases := []struct {
		in   string
		want body
	}{
		{`{"Status":"SUCCEEDED"}`, body{}},
		{`{"status":"IN_PROGRESS","Status":"SUCCEEDED"}`, body{Status: "IN_PROGRESS"}},
		{`{"Status":"SUCCEEDED","status":"IN_PROGRESS"}`, body{Status: "IN_PROGRESS"}},
		{`{"statusDetails":{"Step":"1"}}`, body{Details: map[string]string{"Step": "1"}}}, // map keys are data
		{`{"rollout":{"BaseRatePerMinute":5}}`, body{Rollout: &inner{}}},
		{`{"list":[{"baseRatePerMinute":1},{"BASERATEPERMINUTE":2}]}`, body{List: []inner{{1}, {0}}}},
		{`{"raw":{"Any":"Thing"}}`, body{Raw: json.RawMessage(`{"Any":"Thing"}`)}},
		{`{"expectedVersion":12345678901234567}`, body{Version: ptr(int64(12345678901234567))}},
	}
	for _, c := range cases {
		b, err := exactMembers([]byte(c.in), reflect.TypeFor[*body]())
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		var got body
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s decoded as %+v, want %+v", c.in, got, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// A body with something after its JSON value is malformed even when an
// unknown member would be dropped from the value (found by FuzzDataPlane).
func TestDecodeBodyRejectsTrailingData(t *testing.T) {
	type body struct {
		Status string `json:"status"`
	}
	for _, in := range []string{`{"":""}0`, `{"status":"x"} {}`, `{"Status":"x"}]`} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(in))
		var v body
		e := DecodeBody(r, &v)
		if e == nil {
			t.Errorf("%s: accepted as %+v", in, v)
			continue
		}
		if e.Status != http.StatusBadRequest || e.Type != "InvalidRequestException" {
			t.Errorf("%s: got %d %s, want 400 InvalidRequestException", in, e.Status, e.Type)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{\"Status\":\"x\",\"status\":\"y\"}\n"))
	var v body
	if e := DecodeBody(r, &v); e != nil || v.Status != "y" {
		t.Errorf("trailing newline: %v %+v", e, v)
	}
}

func TestCanonicalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/jobs": true, "/jobs/": true, "/things/a/jobs/$next": true,
		"": false, "jobs": false, "//": false, "///": false, "/jobs//": false, "//jobs": false,
		"/jobs/./x": false, "/jobs/../x": false, "/jobs/.": false,
	} {
		if got := canonicalPath(p); got != want {
			t.Errorf("canonicalPath(%q) = %v, want %v", p, got, want)
		}
	}
}
