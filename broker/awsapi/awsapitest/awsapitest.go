// Package awsapitest holds what tests of the AWS-shaped HTTP APIs share:
// turning fuzzer input into a request the way a server would read it off
// the wire, and checking the rest-json error envelope (PROTOCOL.md §10.3).
package awsapitest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// RawRequest turns fuzz input into the request net/http's server would
// hand the handler, by parsing it from the wire (sent to host). It
// reports false for input that is not one HTTP/1.1 request with exactly
// this method and target (the server answers those itself), and for the
// asterisk form, which the server and ServeMux answer without the API.
func RawRequest(host, method, path, query string, body []byte) (*http.Request, bool) {
	target := path
	if query != "" {
		target += "?" + query
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", method, target, host, len(body))
	b.Write(body)
	req, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil || req.Method != method || req.RequestURI != target || target == "*" {
		return nil, false
	}
	req.RemoteAddr = "192.0.2.7:50000"
	return req, true
}

// ErrorType checks that an error response has the rest-json envelope
// (x-amzn-ErrorType equal to the body's __type, a non-empty message, a
// JSON Content-Type) and returns the exception's name.
func ErrorType(t testing.TB, desc string, res *http.Response, raw []byte) string {
	t.Helper()
	typ := res.Header.Get("x-amzn-ErrorType")
	var body struct {
		Type    *string `json:"__type"`
		Message *string `json:"message"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s: error body is not a JSON object: %v", desc, err)
	}
	switch {
	case typ == "":
		t.Fatalf("%s: no x-amzn-ErrorType", desc)
	case body.Type == nil || *body.Type != typ:
		t.Fatalf("%s: x-amzn-ErrorType %q differs from __type", desc, typ)
	case body.Message == nil || *body.Message == "":
		t.Fatalf("%s: error without a message", desc)
	case !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json"):
		t.Fatalf("%s: error with Content-Type %q", desc, res.Header.Get("Content-Type"))
	}
	return typ
}
