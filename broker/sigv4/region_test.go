package sigv4

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestRegion: with Options.Region set, only signatures scoped to that
// region verify, and a wrong one is refused in AWS's words; without it any
// region does.
func TestRegion(t *testing.T) {
	signIn := func(url, region string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, url+"/jobs/j1", nil)
		creds := aws.Credentials{AccessKeyID: keyAlice.AccessKeyID, SecretAccessKey: keyAlice.SecretAccessKey}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sha256Hex(nil), "iot", region, time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	}
	checked := newTestServer(t, newTestVerifier(t, Options{Region: "eu-west-1"}))
	send(t, signIn(checked.URL, "eu-west-1"))
	if o := checked.only(t); o.err != nil || o.principal.Region != "eu-west-1" {
		t.Fatalf("the broker's own region: %+v", o)
	}
	send(t, signIn(checked.URL, "us-east-1"))
	wantErr(t, checked.only(t), ErrWrongRegion, "Credential should be scoped to a valid region, not 'us-east-1'.")

	anyRegion := newTestServer(t, newTestVerifier(t, Options{}))
	send(t, signIn(anyRegion.URL, "ap-southeast-2"))
	wantOK(t, anyRegion.only(t), keyAlice)

	if _, err := NewVerifier(nil, Options{Services: []string{"iot"}, Region: "eu west"}); err == nil {
		t.Fatal("NewVerifier accepted an invalid region")
	}
}
