package main

import "testing"

func TestJSONString(t *testing.T) {
	data := []byte(`{"execution":{"jobId":"steady-1-t000-j00","thingName":"x","jobDocument":{"jobId":"other"}}}`)
	if v, ok := jsonString(data, "jobId"); !ok || string(v) != "steady-1-t000-j00" {
		t.Errorf("jobId = %q, %v", v, ok)
	}
	if _, ok := jsonString(data, "missing"); ok {
		t.Error("found a missing key")
	}
	if _, ok := jsonString([]byte(`{"jobId":"unterminated`), "jobId"); ok {
		t.Error("accepted an unterminated string")
	}
}
