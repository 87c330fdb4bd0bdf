package presign_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jobsbroker/jobsbroker/jobshook/presign"
	"github.com/jobsbroker/jobsbroker/store"
)

// BenchmarkDocument measures what preparing a document for a device costs
// on the request path: a document without placeholders (the common case,
// a cached per-job answer), the same check done without the cache on the
// largest document allowed, and a document with one placeholder (the job
// read and one signature).
func BenchmarkDocument(b *testing.B) {
	reader := jobs{"ota": {JobID: "ota"}, "plain": {JobID: "plain"}}
	s, err := presign.New(presign.Store{Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	d := presign.NewDeliverer(s, reader, nil)
	ctx := context.Background()
	small := `{"operation":"install","url":"https://example.invalid/fw.bin"}`
	large := `{"blob":"` + strings.Repeat("x", store.MaxDocumentLength-12) + `"}`
	ota := `{"operation":"install","url":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/pump/fw-2.1.bin}"}`
	for _, bc := range []struct {
		name string
		run  func() string
	}{
		{"plain-cached", func() string { return d.Document(ctx, "plain", 1, small) }},
		{"plain-32k-cached", func() string { return d.Document(ctx, "plain", 2, large) }},
		{"plain-32k-uncached-scan", func() string {
			if presign.Has(large) {
				b.Fatal("placeholder found")
			}
			return large
		}},
		{"one-placeholder", func() string { return d.Document(ctx, "ota", 3, ota) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if bc.run() == "" {
					b.Fatal("empty document")
				}
			}
		})
	}
}
