package sigv4

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Test keys. The secrets contain '/' and '+' as real AWS secrets do.
var (
	keyAlice = Key{AccessKeyID: "AKIAALICE0000000001", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYALICE+KEY", Name: "alice"}
	keyBob   = Key{AccessKeyID: "AKIABOB00000000000002", SecretAccessKey: "bobSecret/+/value", Name: "bob"}
)

func testCredentials(t testing.TB) *Credentials {
	t.Helper()
	c, err := NewCredentials(keyAlice, keyBob)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestVerifier(t testing.TB, opts Options) *Verifier {
	t.Helper()
	if opts.Services == nil {
		opts.Services = []string{"iot", "execute-api"}
	}
	v, err := NewVerifier(testCredentials(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// outcome is what the test server saw for one request.
type outcome struct {
	principal Principal
	err       error
	body      []byte // the body the handler read after Verify
	rawPath   string // r.URL.EscapedPath() as the server saw it
}

// testServer is an httptest.Server whose handler calls Verify, records
// the outcome and answers JSON: "{}" (a valid, empty response for the
// operations used) or a 403 with an AWS-style error body.
type testServer struct {
	*httptest.Server
	mu       sync.Mutex
	outcomes []outcome
}

func newTestServer(t testing.TB, v *Verifier) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := v.Verify(r)
		body, readErr := io.ReadAll(r.Body)
		if readErr != nil {
			err = errors.Join(err, readErr)
		}
		ts.mu.Lock()
		ts.outcomes = append(ts.outcomes, outcome{principal: p, err: err, body: body, rawPath: r.URL.EscapedPath()})
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			msg := err.Error()
			var se *Error
			if errors.As(err, &se) {
				msg = se.Message
			}
			w.Header().Set("X-Amzn-Errortype", "UnauthorizedException")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(ts.Close)
	return ts
}

// only returns the single outcome recorded since the last call.
func (ts *testServer) only(t testing.TB) outcome {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.outcomes) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(ts.outcomes))
	}
	o := ts.outcomes[0]
	ts.outcomes = nil
	return o
}

// wantOK fails unless o verified as key k.
func wantOK(t testing.TB, o outcome, k Key) {
	t.Helper()
	if o.err != nil {
		var se *Error
		if errors.As(o.err, &se) && se.Detail != "" {
			t.Logf("detail:\n%s", se.Detail)
		}
		t.Fatalf("Verify: %v", o.err)
	}
	if o.principal.AccessKeyID != k.AccessKeyID || o.principal.Name != k.Name {
		t.Fatalf("principal = %+v, want %s", o.principal, k)
	}
}

// wantErr fails unless o failed with kind, and its message contains each
// of msgs.
func wantErr(t testing.TB, o outcome, kind error, msgs ...string) {
	t.Helper()
	if !errors.Is(o.err, kind) {
		t.Fatalf("Verify error = %v, want %v", o.err, kind)
	}
	var se *Error
	if !errors.As(o.err, &se) {
		t.Fatalf("Verify error %T is not *Error", o.err)
	}
	for _, m := range msgs {
		if !strings.Contains(se.Message, m) {
			t.Errorf("message %q does not contain %q", se.Message, m)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// signV2 builds a request to url and signs it with the AWS SDK for Go v2
// signer, as the v2 SDK clients do.
func signV2(t testing.TB, k Key, method, url, body, service string, at time.Time, hdr map[string]string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for name, val := range hdr {
		req.Header.Set(name, val)
	}
	creds := aws.Credentials{AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sha256Hex([]byte(body)), service, "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	return req
}

// send sends req and drains the response.
func send(t testing.TB, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}
