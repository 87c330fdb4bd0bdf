package interop

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	awsv1 "github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	credv1 "github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/iotjobsdataplane"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

const (
	signedKey    = "AKIAINTEROPSIGNED001"
	signedSecret = "interop/signed/secret/key/0123456789abcd"
)

// startSignedProcess runs the broker binary with a credentials file.
func startSignedProcess(t *testing.T) *brokertest.Process {
	t.Helper()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[ops]\naws_access_key_id = "+signedKey+"\naws_secret_access_key = "+signedSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return brokertest.StartProcess(t, filepath.Join(dir, "data"), "-credentials-file", creds)
}

// failure is one way a signature fails, the error type AWS's front door
// answers it with (always HTTP 403) and the start of AWS's message.
type failure struct {
	name        string
	key, secret string // "" key: unsigned
	region      string
	skew        time.Duration // the client's clock error
	code, msg   string
}

var failures = []failure{
	{name: "unsigned", code: "MissingAuthenticationTokenException", msg: "Missing Authentication Token"},
	{name: "wrong secret", key: signedKey, secret: "wrong", region: "us-east-1", code: "InvalidSignatureException",
		msg: "The request signature we calculated does not match the signature you provided."},
	{name: "unknown key", key: "AKIAINTEROPUNKNOWN01", secret: signedSecret, region: "us-east-1", code: "UnrecognizedClientException",
		msg: "The security token included in the request is invalid."},
	{name: "clock 10 minutes slow", key: signedKey, secret: signedSecret, region: "us-east-1", skew: -10 * time.Minute,
		code: "InvalidSignatureException", msg: "Signature expired: "},
	{name: "another region", key: signedKey, secret: signedSecret, region: "eu-west-1", code: "InvalidSignatureException",
		msg: "Credential should be scoped to a valid region, not 'eu-west-1'."},
}

type staticProvider struct{ key, secret string }

func (p staticProvider) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: p.key, SecretAccessKey: p.secret, Source: "interop"}, nil
}

// TestSignatureFailuresGoSDKs: the AWS SDK for Go v2 (control plane) and
// v1 (data plane) raise, for each signature failure, the error type they
// raise against AWS: a generic API error (v2 smithy.APIError, v1
// awserr.RequestFailure) with AWS's code and status 403.
func TestSignatureFailuresGoSDKs(t *testing.T) {
	p := startSignedProcess(t)
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
			if f.key != "" {
				creds = aws.NewCredentialsCache(staticProvider{f.key, f.secret})
			}
			api := iot.New(iot.Options{Region: cmpRegion(f.region), BaseEndpoint: aws.String(p.APIURL()), Credentials: creds,
				RetryMaxAttempts: 1, HTTPSignerV4: brokertest.SkewedSigner{Skew: f.skew}})
			_, err := api.ListJobs(context.Background(), &iot.ListJobsInput{})
			var ae smithy.APIError
			var re *smithyhttp.ResponseError
			if !errors.As(err, &ae) || ae.ErrorCode() != f.code || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
				t.Errorf("SDK v2 ListJobs: %v, want %s 403", err, f.code)
			}

			cfg := &awsv1.Config{Region: awsv1.String(cmpRegion(f.region)), Endpoint: awsv1.String("http://" + p.JobsAddr),
				MaxRetries: awsv1.Int(0), Credentials: credv1.AnonymousCredentials}
			if f.key != "" {
				cfg.Credentials = credv1.NewStaticCredentials(f.key, f.secret, "")
			}
			sess, err := session.NewSession(cfg)
			if err != nil {
				t.Fatal(err)
			}
			dev := iotjobsdataplane.New(sess)
			brokertest.SkewV1(&dev.Handlers, f.skew)
			_, err = dev.GetPendingJobExecutions(&iotjobsdataplane.GetPendingJobExecutionsInput{ThingName: awsv1.String("dev-1")})
			var rf awserr.RequestFailure
			if !errors.As(err, &rf) || rf.Code() != f.code || rf.StatusCode() != http.StatusForbidden {
				t.Errorf("SDK v1 GetPendingJobExecutions: %v, want %s 403", err, f.code)
			}
		})
	}
}

func cmpRegion(r string) string {
	if r == "" {
		return "us-east-1"
	}
	return r
}

// TestSignatureFailuresAWSCLI: Debian's AWS CLI reports the same error
// codes, on both APIs. (The CLI has no way to sign with a wrong clock;
// the Go SDKs cover that cause.)
func TestSignatureFailuresAWSCLI(t *testing.T) {
	path := Need(t, "/usr/bin/aws", "apt-get install awscli (Debian's AWS CLI 2.9)")
	p := startSignedProcess(t)
	for _, f := range failures {
		if f.skew != 0 {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			home := t.TempDir()
			env := append(os.Environ(), "AWS_PAGER=", "HOME="+home, "AWS_CONFIG_FILE="+home+"/config",
				"AWS_SHARED_CREDENTIALS_FILE="+home+"/credentials", "AWS_MAX_ATTEMPTS=1", "AWS_DEFAULT_REGION="+cmpRegion(f.region),
				"AWS_ACCESS_KEY_ID="+cmpKey(f.key), "AWS_SECRET_ACCESS_KEY="+cmpKey(f.secret))
			c := cli{t: t, path: path, env: env}
			var extra []string
			if f.key == "" {
				extra = []string{"--no-sign-request"}
			}
			c.fails(f.code, append([]string{"iot", "list-jobs", "--endpoint-url", p.APIURL()}, extra...)...)
			c.fails(f.code, append([]string{"iot-jobs-data", "get-pending-job-executions", "--thing-name", "dev-1",
				"--endpoint-url", "http://" + p.JobsAddr}, extra...)...)
		})
	}
	// The right key works, and the CLI's error line shows the type as AWS's would.
	home := t.TempDir()
	c := cli{t: t, path: path, env: append(os.Environ(), "AWS_PAGER=", "HOME="+home, "AWS_CONFIG_FILE="+home+"/config",
		"AWS_SHARED_CREDENTIALS_FILE="+home+"/credentials", "AWS_MAX_ATTEMPTS=1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+signedKey, "AWS_SECRET_ACCESS_KEY="+signedSecret)}
	if jobs := c.json("iot", "list-jobs", "--endpoint-url", p.APIURL()); jobs == nil {
		t.Fatal("a signed list-jobs printed nothing")
	}
	_, _, errOut := c.run("iot", "list-jobs", "--endpoint-url", p.APIURL(), "--region", "eu-west-1")
	if !strings.Contains(errOut, "An error occurred (InvalidSignatureException) when calling the ListJobs operation") ||
		!strings.Contains(errOut, "Credential should be scoped to a valid region, not 'eu-west-1'.") {
		t.Errorf("wrong region: %q", errOut)
	}
}

// cmpKey gives the CLI some key when the case signs nothing (it is told
// --no-sign-request then).
func cmpKey(s string) string {
	if s == "" {
		return "unused"
	}
	return s
}
