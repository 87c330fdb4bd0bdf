// Package s3test runs a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw, its posix backend in a temporary
// directory), which checks SigV4 signatures, presigned query
// authentication and X-Amz-Expires as S3 does. .ci/run installs it; a test
// that needs it skips when it is absent, except under CI=true, where it
// fails.
package s3test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Install is how to get the server.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 (or run .ci/run)"

// Region, AccessKeyID and SecretAccessKey are the server's settings.
const (
	Region          = "us-east-1"
	AccessKeyID     = "AKIDJOBSBROKERTEST"
	SecretAccessKey = "jobsbroker-test-secret"
)

// Server is a running S3-compatible server.
type Server struct {
	// Endpoint is its base URL, http://127.0.0.1:PORT.
	Endpoint string
	t        testing.TB
}

// Start runs a server for the rest of the test, or skips the test (fails
// under CI=true) when versitygw is not installed. JOBSBROKER_VERSITYGW
// may name the binary; otherwise it is looked up on PATH and in
// $(go env GOPATH)/bin.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	addr := freeAddr(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--access", AccessKeyID, "--secret", SecretAccessKey, "--region", Region,
		"--port", addr, "--quiet", "posix", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	s := &Server{Endpoint: "http://" + addr, t: t}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Binary returns the path of the versitygw binary, or skips the test
// (fails it under CI=true) when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	bin := find()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("versitygw is not installed (CI=true): %s", Install)
		}
		t.Skipf("versitygw is not installed: %s", Install)
	}
	return bin
}

func find() string {
	if p := os.Getenv("JOBSBROKER_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := string(bytes.TrimSpace(out)) + "/bin/versitygw"
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Put creates bucket (if it does not exist) and stores body under key,
// with header-signed requests.
func (s *Server) Put(bucket, key string, body []byte) {
	s.t.Helper()
	if code := s.do(http.MethodPut, "/"+bucket, nil); code != http.StatusOK && code != http.StatusConflict {
		s.t.Fatalf("create bucket %s: status %d", bucket, code)
	}
	if code := s.do(http.MethodPut, "/"+bucket+"/"+key, body); code != http.StatusOK {
		s.t.Fatalf("put %s/%s: status %d", bucket, key, code)
	}
}

func (s *Server) do(method, path string, body []byte) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.Endpoint+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
	if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(context.Background(), creds, req, hash, "s3", Region, time.Now()); err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Get fetches url (a presigned URL) and returns the status and body.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// String describes the server.
func (s *Server) String() string { return fmt.Sprintf("versitygw at %s", s.Endpoint) }
