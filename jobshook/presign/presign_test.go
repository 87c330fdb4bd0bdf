package presign_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/jobshook/presign"
	"github.com/jobsbroker/jobsbroker/jobshook/presign/s3test"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

func TestParseObjectURL(t *testing.T) {
	for _, c := range []struct {
		url, bucket, key string
	}{
		{"https://s3.amazonaws.com/fw-bucket/pump/fw.bin", "fw-bucket", "pump/fw.bin"},
		{"https://s3.us-west-2.amazonaws.com/fw-bucket/fw.bin", "fw-bucket", "fw.bin"},
		{"https://s3-eu-west-1.amazonaws.com/fw-bucket/a/b/c", "fw-bucket", "a/b/c"},
		{"https://fw-bucket.s3.amazonaws.com/fw.bin", "fw-bucket", "fw.bin"},
		{"https://fw.bucket.s3.eu-central-1.amazonaws.com/dir/fw.bin", "fw.bucket", "dir/fw.bin"},
		{"https://artifacts.example.com/fw-bucket/fw%20v2.bin", "fw-bucket", "fw v2.bin"},
		{"s3://fw-bucket/fw.bin", "fw-bucket", "fw.bin"},
	} {
		obj, err := presign.ParseObjectURL(c.url)
		if err != nil || obj.Bucket != c.bucket || obj.Key != c.key {
			t.Errorf("ParseObjectURL(%q) = %+v, %v; want %s/%s", c.url, obj, err, c.bucket, c.key)
		}
	}
	for _, bad := range []string{
		"", "fw.bin", "ftp://s3.amazonaws.com/b/k", "https://s3.amazonaws.com/", "https://s3.amazonaws.com/bucket",
		"https://s3.amazonaws.com/bucket/", "https://s3.amazonaws.com/Bucket_Upper/k", "https://s3.amazonaws.com/b/k?versionId=1",
		"https://user:pw@s3.amazonaws.com/bucket/k", `https://s3.amazonaws.com/bucket/k"`, "https://s3.amazonaws.com/bucket/a b",
	} {
		if _, err := presign.ParseObjectURL(bad); !errors.Is(err, presign.ErrPlaceholder) {
			t.Errorf("ParseObjectURL(%q) = %v, want ErrPlaceholder", bad, err)
		}
	}
}

func newSigner(t *testing.T, endpoint string, c clock.Clock) *presign.Signer {
	t.Helper()
	s, err := presign.New(presign.Store{Endpoint: endpoint, Region: "us-east-1", AccessKeyID: "AKID", SecretAccessKey: "secret"}, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExpand(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := newSigner(t, "https://artifacts.example.com:9000/s3/", clock.NewFake(at))
	doc := `{"url":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/fw-bucket/pump/fw%201.bin}",` +
		`"sig":"${aws:iot:s3-presigned-url-v2:https://s3.us-east-1.amazonaws.com/fw-bucket/fw.sig}","n":1}`
	out, err := s.Expand(doc, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "${") || !strings.HasPrefix(out, `{"url":"https://artifacts.example.com:9000/s3/fw-bucket/pump/fw%201.bin?`) ||
		!strings.HasSuffix(out, `","n":1}`) {
		t.Fatalf("expanded document = %s", out)
	}
	first := out[len(`{"url":"`):strings.Index(out, `","sig"`)]
	u, err := url.Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, want := range map[string]string{
		"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": "AKID/20260501/us-east-1/s3/aws4_request",
		"X-Amz-Date": "20260501T120000Z", "X-Amz-Expires": "90", "X-Amz-SignedHeaders": "host",
	} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q (%s)", k, q.Get(k), want, first)
		}
	}
	if len(q.Get("X-Amz-Signature")) != 64 {
		t.Errorf("X-Amz-Signature = %q", q.Get("X-Amz-Signature"))
	}
	plain := `{"operation":"reboot"}`
	if got, err := s.Expand(plain, time.Minute); err != nil || got != plain {
		t.Errorf("Expand(plain) = %q, %v", got, err)
	}
}

func TestCheck(t *testing.T) {
	s := newSigner(t, "http://127.0.0.1:9000", nil)
	for _, bad := range []string{
		`{"u":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b}"}`,
		`{"u":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/bucket/key"}`,
		`{"u":"${aws:iot:s3-presigned-url-v3:https://s3.amazonaws.com/bucket/key}"}`,
	} {
		if _, err := s.Check(bad); !errors.Is(err, presign.ErrPlaceholder) {
			t.Errorf("Check(%s) = %v, want ErrPlaceholder", bad, err)
		}
	}
	doc := `{"u":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/bucket/key}"}`
	if _, err := (*presign.Signer)(nil).Check(doc); err == nil || !strings.Contains(err.Error(), "artifact-endpoint") {
		t.Errorf("Check without a store = %v, want an error naming -artifact-endpoint", err)
	}
	out, err := s.Check(doc)
	if err != nil || !strings.Contains(out, "X-Amz-Expires=3600") {
		t.Errorf("Check = %q, %v; want the document signed for the longest lifetime", out, err)
	}
}

type jobs map[string]*store.Job

func (j jobs) DescribeJob(_ context.Context, id string) (*store.Job, error) {
	if job, ok := j[id]; ok {
		return job, nil
	}
	return nil, store.Errorf(store.ErrNotFound, "job %s does not exist", id)
}

func TestDelivererExpiry(t *testing.T) {
	expires := int64(120)
	reader := jobs{
		"ota":     {JobID: "ota", PresignedURLConfig: &store.PresignedURLConfig{ExpiresInSec: &expires}},
		"default": {JobID: "default"},
	}
	d := presign.NewDeliverer(newSigner(t, "http://127.0.0.1:9000", nil), reader, nil)
	doc := `{"u":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/bucket/key}"}`
	for id, want := range map[string]string{"ota": "X-Amz-Expires=120", "default": "X-Amz-Expires=3600"} {
		if got := d.Document(context.Background(), id, 1, doc); !strings.Contains(got, want) {
			t.Errorf("Document(%s) = %q; want %s", id, got, want)
		}
	}
	if got := d.Document(context.Background(), "gone", 3, doc); !strings.Contains(got, "X-Amz-Expires=60&") {
		t.Errorf("Document of a job that cannot be read = %q, want the shortest lifetime", got)
	}
	if got := d.Document(context.Background(), "plain", 4, `{"a":1}`); got != `{"a":1}` {
		t.Errorf("Document of a plain document = %q", got)
	}
	var none *presign.Deliverer
	if got := none.Document(context.Background(), "ota", 1, doc); got != doc {
		t.Errorf("a nil Deliverer changed the document: %s", got)
	}
}

// TestRealStore signs URLs for a real S3-compatible server that checks
// signatures and expiry: the URL downloads the object, a tampered one and
// an expired one are refused.
func TestRealStore(t *testing.T) {
	srv := s3test.Start(t)
	srv.Put("firmware", "pump/fw 2.1.bin", []byte("firmware image 2.1"))
	// Signed 55 s in the past with the shortest lifetime AWS allows: the
	// URL is good for five more seconds, then expires.
	past := clock.Offset{By: -55 * time.Second}
	s, err := presign.New(presign.Store{Endpoint: srv.Endpoint, Region: s3test.Region,
		AccessKeyID: s3test.AccessKeyID, SecretAccessKey: s3test.SecretAccessKey}, past)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.URL(presign.Object{Bucket: "firmware", Key: "pump/fw 2.1.bin"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := s3test.Get(t, u); code != 200 || body != "firmware image 2.1" {
		t.Fatalf("GET presigned URL = %d %q", code, body)
	}
	if code, _ := s3test.Get(t, strings.Replace(u, "X-Amz-Expires=60", "X-Amz-Expires=61", 1)); code != 403 {
		t.Errorf("GET with a tampered lifetime = %d, want 403", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := s3test.Get(t, u)
		if code == 403 {
			if !strings.Contains(body, "expired") && !strings.Contains(body, "AccessDenied") {
				t.Logf("expired URL answered: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the URL still works %v after it was due to expire: %d", 20*time.Second, code)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
