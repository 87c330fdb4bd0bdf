package sigv4

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"
	awsv1 "github.com/aws/aws-sdk-go/aws"
	credsv1 "github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/iotjobsdataplane"
)

// awkwardID needs escaping in a path: the SDKs send it percent-encoded and
// sign it escaped twice. AWS would reject it as a job id; the SDKs do not
// validate patterns, so it exercises the escaping end to end.
const awkwardID = "job:1 $next+x=y~é"

func iotClient(ts *testServer, k Key) *iot.Client {
	var cp aws.CredentialsProvider = aws.AnonymousCredentials{}
	if k.AccessKeyID != "" {
		cp = credentials.NewStaticCredentialsProvider(k.AccessKeyID, k.SecretAccessKey, "")
	}
	return iot.New(iot.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(ts.URL),
		Credentials:      cp,
		RetryMaxAttempts: 1,
	})
}

// TestSDKv2IoT calls the AWS IoT control plane through the AWS SDK for Go
// v2 client, which signs with service name "iot".
func TestSDKv2IoT(t *testing.T) {
	ts := newTestServer(t, newTestVerifier(t, Options{}))
	ctx := context.Background()
	c := iotClient(ts, keyAlice)

	t.Run("DescribeJob with escaped job id", func(t *testing.T) {
		for _, id := range []string{"plain-job_1", "$next", awkwardID} {
			if _, err := c.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String(id)}); err != nil {
				t.Fatalf("DescribeJob(%q): %v", id, err)
			}
			o := ts.only(t)
			wantOK(t, o, keyAlice)
			if o.principal.Service != "iot" || o.principal.Region != "us-east-1" {
				t.Errorf("principal scope = %s/%s", o.principal.Region, o.principal.Service)
			}
		}
	})
	t.Run("CreateJob with JSON body", func(t *testing.T) {
		_, err := c.CreateJob(ctx, &iot.CreateJobInput{
			JobId:    aws.String("job:create"),
			Targets:  []string{"arn:aws:iot:us-east-1:123456789012:thing/thing:1"},
			Document: aws.String(`{"operation":"reboot","n":1}`),
		})
		if err != nil {
			t.Fatalf("CreateJob: %v", err)
		}
		o := ts.only(t)
		wantOK(t, o, keyAlice)
		var body map[string]any
		if err := json.Unmarshal(o.body, &body); err != nil || body["document"] == nil {
			t.Errorf("handler could not read the body after Verify: %q (%v)", o.body, err)
		}
	})
	t.Run("ListJobs with query parameters", func(t *testing.T) {
		_, err := c.ListJobs(ctx, &iot.ListJobsInput{
			Status:         iottypes.JobStatusInProgress,
			MaxResults:     aws.Int32(10),
			NextToken:      aws.String("a b+c/d=e&f"),
			ThingGroupName: aws.String("group:1"),
		})
		if err != nil {
			t.Fatalf("ListJobs: %v", err)
		}
		wantOK(t, ts.only(t), keyAlice)
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := keyAlice
		bad.SecretAccessKey += "x"
		if _, err := iotClient(ts, bad).DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("j")}); err == nil {
			t.Fatal("DescribeJob succeeded")
		}
		wantErr(t, ts.only(t), ErrSignatureMismatch, "does not match")
	})
	t.Run("unknown key", func(t *testing.T) {
		unknown := Key{AccessKeyID: "AKIANOBODY", SecretAccessKey: "x"}
		if _, err := iotClient(ts, unknown).DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("j")}); err == nil {
			t.Fatal("DescribeJob succeeded")
		}
		wantErr(t, ts.only(t), ErrUnknownKey)
	})
	t.Run("anonymous", func(t *testing.T) {
		if _, err := iotClient(ts, Key{}).DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("j")}); err == nil {
			t.Fatal("DescribeJob succeeded")
		}
		wantErr(t, ts.only(t), ErrMissingAuth)
	})
}

// TestSDKv1JobsDataPlane calls the jobs data plane through the AWS SDK for
// Go v1 client, which signs with service name "iot-jobs-data".
func TestSDKv1JobsDataPlane(t *testing.T) {
	ts := newTestServer(t, newTestVerifier(t, Options{Services: []string{"iot-jobs-data"}}))
	newClient := func(k Key) *iotjobsdataplane.IoTJobsDataPlane {
		sess, err := session.NewSessionWithOptions(session.Options{
			Config: awsv1.Config{
				Region:      awsv1.String("us-east-1"),
				Endpoint:    awsv1.String(ts.URL),
				Credentials: credsv1.NewStaticCredentials(k.AccessKeyID, k.SecretAccessKey, ""),
				MaxRetries:  awsv1.Int(0),
			},
			SharedConfigState: session.SharedConfigDisable,
		})
		if err != nil {
			t.Fatal(err)
		}
		return iotjobsdataplane.New(sess)
	}
	c := newClient(keyBob)

	t.Run("DescribeJobExecution $next for thing with colon", func(t *testing.T) {
		for _, id := range []string{"$next", awkwardID} {
			_, err := c.DescribeJobExecution(&iotjobsdataplane.DescribeJobExecutionInput{
				JobId:              awsv1.String(id),
				ThingName:          awsv1.String("thing:1"),
				IncludeJobDocument: awsv1.Bool(true),
			})
			if err != nil {
				t.Fatalf("DescribeJobExecution(%q): %v", id, err)
			}
			o := ts.only(t)
			wantOK(t, o, keyBob)
			if id == "$next" && o.rawPath != "/things/thing%3A1/jobs/%24next" {
				t.Errorf("wire path = %q; the SDK escaping has changed", o.rawPath)
			}
		}
	})
	t.Run("UpdateJobExecution with body", func(t *testing.T) {
		_, err := c.UpdateJobExecution(&iotjobsdataplane.UpdateJobExecutionInput{
			JobId:         awsv1.String("job-1"),
			ThingName:     awsv1.String("thing:1"),
			Status:        awsv1.String(iotjobsdataplane.JobExecutionStatusInProgress),
			StatusDetails: map[string]*string{"step": awsv1.String("2 of 3")},
		})
		if err != nil {
			t.Fatalf("UpdateJobExecution: %v", err)
		}
		o := ts.only(t)
		wantOK(t, o, keyBob)
		if !strings.Contains(string(o.body), `"IN_PROGRESS"`) {
			t.Errorf("handler read body %q", o.body)
		}
	})
	t.Run("wrong service for this verifier", func(t *testing.T) {
		// The control-plane client signs "iot", which the data plane
		// verifier must refuse.
		ic := iotClient(ts, keyBob)
		if _, err := ic.DescribeJob(context.Background(), &iot.DescribeJobInput{JobId: aws.String("j")}); err == nil {
			t.Fatal("DescribeJob succeeded")
		}
		wantErr(t, ts.only(t), ErrWrongService, "'iot-jobs-data'")
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := keyBob
		bad.SecretAccessKey = "nope"
		_, err := newClient(bad).DescribeJobExecution(&iotjobsdataplane.DescribeJobExecutionInput{
			JobId: awsv1.String("$next"), ThingName: awsv1.String("thing:1"),
		})
		if err == nil {
			t.Fatal("DescribeJobExecution succeeded")
		}
		wantErr(t, ts.only(t), ErrSignatureMismatch)
	})
}

// debianAWSCLI is the AWS CLI installed by Debian's awscli package.
const debianAWSCLI = "/usr/bin/aws"

// awsCLIs returns the CLIs to test: Debian's (required when CI=true) and,
// when different, the aws found on PATH (often a pip-installed CLI v1).
func awsCLIs(t *testing.T) []string {
	t.Helper()
	var clis []string
	if _, err := os.Stat(debianAWSCLI); err == nil {
		clis = append(clis, debianAWSCLI)
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing and CI=true: install it with 'apt-get install -y awscli'", debianAWSCLI)
	}
	if p, err := exec.LookPath("aws"); err == nil && p != debianAWSCLI {
		if resolved, err := filepath.EvalSymlinks(p); err != nil || resolved != debianAWSCLI {
			clis = append(clis, p)
		}
	}
	if len(clis) == 0 {
		t.Skipf("no AWS CLI: %s is missing (install it with 'apt-get install -y awscli') and there is no aws on PATH", debianAWSCLI)
	}
	return clis
}

// runCLI runs an aws command against ts with an isolated home directory
// and the given extra environment.
func runCLI(t *testing.T, cli string, ts *testServer, env []string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	config := filepath.Join(home, "config")
	if err := os.WriteFile(config, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "--endpoint-url", ts.URL, "--region", "us-east-1", "--output", "json")
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Env = append([]string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"AWS_CONFIG_FILE=" + config,
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_MAX_ATTEMPTS=1",
		"AWS_RETRY_MODE=standard",
		"AWS_PAGER=",
		"AWS_EC2_METADATA_DISABLED=true",
	}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAWSCLI runs the AWS CLI (botocore signer) against the verifier.
func TestAWSCLI(t *testing.T) {
	clis := awsCLIs(t)
	// The broker and the CLI share one credentials file.
	credFile := writeFile(t, fmt.Sprintf("[ops]\naws_access_key_id = %s\naws_secret_access_key = %s\njobsbroker_name = operations\n",
		keyAlice.AccessKeyID, keyAlice.SecretAccessKey))
	creds, err := LoadCredentials(credFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(creds, Options{Services: []string{"iot", "execute-api"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, v)
	envKeys := func(k Key) []string {
		return []string{"AWS_ACCESS_KEY_ID=" + k.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + k.SecretAccessKey}
	}
	operations := Key{AccessKeyID: keyAlice.AccessKeyID, Name: "operations"}

	for _, cli := range clis {
		t.Run(cli, func(t *testing.T) {
			if out, err := runCLI(t, cli, ts, nil, "--version"); err != nil {
				t.Fatalf("%s --version: %v\n%s", cli, err, out)
			} else {
				t.Logf("%s: %s", cli, strings.TrimSpace(out))
			}
			ts.mu.Lock()
			ts.outcomes = nil
			ts.mu.Unlock()

			t.Run("describe-job with env credentials", func(t *testing.T) {
				for _, id := range []string{"job-1", "$next", awkwardID} {
					if out, err := runCLI(t, cli, ts, envKeys(keyAlice), "iot", "describe-job", "--job-id", id); err != nil {
						t.Fatalf("describe-job %q: %v\n%s", id, err, out)
					}
					wantOK(t, ts.only(t), operations)
				}
			})
			t.Run("describe-job with the shared credentials file", func(t *testing.T) {
				env := []string{"AWS_SHARED_CREDENTIALS_FILE=" + credFile, "AWS_PROFILE=ops"}
				if out, err := runCLI(t, cli, ts, env, "iot", "describe-job", "--job-id", "job:1"); err != nil {
					t.Fatalf("describe-job: %v\n%s", err, out)
				}
				wantOK(t, ts.only(t), operations)
			})
			t.Run("create-job with body", func(t *testing.T) {
				out, err := runCLI(t, cli, ts, envKeys(keyAlice), "iot", "create-job", "--job-id", "job:2",
					"--targets", "arn:aws:iot:us-east-1:123456789012:thing/t1", "--document", `{"op":"reboot"}`)
				if err != nil {
					t.Fatalf("create-job: %v\n%s", err, out)
				}
				o := ts.only(t)
				wantOK(t, o, operations)
				if !strings.Contains(string(o.body), "reboot") {
					t.Errorf("handler read body %q", o.body)
				}
			})
			t.Run("list-jobs with query parameters", func(t *testing.T) {
				out, err := runCLI(t, cli, ts, envKeys(keyAlice), "iot", "list-jobs", "--status", "IN_PROGRESS",
					"--thing-group-name", "group:1", "--page-size", "5")
				if err != nil {
					t.Fatalf("list-jobs: %v\n%s", err, out)
				}
				wantOK(t, ts.only(t), operations)
			})
			t.Run("wrong secret", func(t *testing.T) {
				bad := keyAlice
				bad.SecretAccessKey = "wrong"
				if out, err := runCLI(t, cli, ts, envKeys(bad), "iot", "describe-job", "--job-id", "j"); err == nil {
					t.Fatalf("describe-job succeeded:\n%s", out)
				}
				wantErr(t, ts.only(t), ErrSignatureMismatch)
			})
		})
	}
}
