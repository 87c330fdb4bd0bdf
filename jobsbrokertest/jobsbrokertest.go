// Package jobsbrokertest runs a jobsbroker inside a Go test, as
// net/http/httptest runs an HTTP server: on 127.0.0.1 with ports the
// kernel picks, its store in memory (nothing is written to disk), stopped
// when the test ends. Device code under test connects to MQTTAddr; test
// code drives jobs through the AWS SDK for Go v2 with AWSConfig, makes the
// broker misbehave with faults, reads what the device sent and was sent
// in its transcript, and waits for an execution to reach a status.
//
//	b := jobsbrokertest.Start(t, jobsbrokertest.Options{Preload: `
//	jobs:
//	  - jobId: fw-2
//	    targets: [arn:aws:iot:us-east-1:123456789012:thing/pump-1]
//	    document: {operation: update}
//	`})
//	runDevice(t, b.MQTTAddr(), "pump-1") // the code under test
//	b.Wait(t.Context(), "pump-1", "fw-2", "SUCCEEDED", 10*time.Second)
//
// The broker is the real one (cmd/jobsbroker serves the same with
// -data-dir :memory:), so what passes here passes against the broker in
// CI, and against AWS IoT wherever the README lists no difference.
package jobsbrokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/preload"
	"github.com/jobsbroker/jobsbroker/broker/traffic"
	"github.com/jobsbroker/jobsbroker/jobshook/faults"
)

// Region and Account are those of the ARNs the broker returns and takes:
// a job's targets are arn:aws:iot:us-east-1:123456789012:thing/NAME.
const (
	Region  = broker.DefaultRegion
	Account = broker.DefaultAccount
)

// ThingARN is the ARN of a thing of the test broker, for job targets.
func ThingARN(thing string) string {
	return "arn:aws:iot:" + Region + ":" + Account + ":thing/" + thing
}

// Options configures a test broker; the zero value is a plain one.
type Options struct {
	// Preload is a preload file's text (YAML or JSON; see the README's
	// "Testing device code"): things, groups, templates and jobs created
	// before the broker serves.
	Preload string
	// Faults is a fault file's text (YAML or JSON), in force from the
	// start.
	Faults string
	// Logger receives the broker's logs (default: none).
	Logger *slog.Logger
	// Config, if set, adjusts the broker's configuration before it
	// starts. The listeners, the data directory and transcripts are set
	// already; change them only if the test needs to.
	Config func(*broker.Config)
}

// Broker is a running test broker.
type Broker struct {
	b      *broker.Broker
	client *http.Client
}

// New starts a broker. Close stops it; in a test, Start does both.
func New(opts Options) (*Broker, error) {
	cfg := broker.Config{
		MQTTAddr:    "127.0.0.1:0",
		APIAddr:     "127.0.0.1:0",
		JobsAddr:    "127.0.0.1:0",
		DataDir:     broker.InMemory,
		Transcripts: true,
		Logger:      opts.Logger,
	}
	if opts.Preload != "" {
		p, err := preload.Parse([]byte(opts.Preload), "Options.Preload")
		if err != nil {
			return nil, err
		}
		cfg.Preload = p
	}
	if opts.Faults != "" {
		p, err := faults.Parse([]byte(opts.Faults), "Options.Faults")
		if err != nil {
			return nil, err
		}
		cfg.Faults = p
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	b, err := broker.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		b.Shutdown(context.Background())
		return nil, err
	}
	return &Broker{b: b, client: &http.Client{}}, nil
}

// Start starts a broker for the test and stops it when the test ends. A
// broker that cannot start fails the test.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	b, err := New(opts)
	if err != nil {
		t.Fatalf("jobsbrokertest: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("jobsbrokertest: stop: %v", err)
		}
	})
	return b
}

// Close stops the broker, letting requests in flight finish (for up to
// ten seconds).
func (b *Broker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return b.b.Shutdown(ctx)
}

// Broker returns the broker itself, for what this package does not wrap.
func (b *Broker) Broker() *broker.Broker { return b.b }

// MQTTAddr is the MQTT listener's host:port.
func (b *Broker) MQTTAddr() string { return b.b.MQTTAddr() }

// MQTTURL is the MQTT listener as a URL, tcp://host:port, the form most
// MQTT client libraries take.
func (b *Broker) MQTTURL() string { return "tcp://" + b.b.MQTTAddr() }

// APIURL is the base URL of the AWS IoT control-plane API (CreateJob ...)
// and of the /admin endpoints.
func (b *Broker) APIURL() string { return "http://" + b.b.APIAddr() }

// JobsURL is the base URL of the iot-jobs-data API (the device operations
// over HTTP).
func (b *Broker) JobsURL() string { return "http://" + b.b.JobsAddr() }

// AWSConfig returns a configuration for the AWS SDK for Go v2 that points
// at the broker's control plane, with a placeholder key (the broker takes
// unsigned and any-signed requests unless configured otherwise):
//
//	client := iot.NewFromConfig(b.AWSConfig())
//
// For the iot-jobs-data API, set its base endpoint to JobsURL:
//
//	jobs := iotjobsdataplane.NewFromConfig(b.AWSConfig(), func(o *iotjobsdataplane.Options) {
//		o.BaseEndpoint = aws.String(b.JobsURL())
//	})
func (b *Broker) AWSConfig() aws.Config {
	return aws.Config{
		Region:           Region,
		BaseEndpoint:     aws.String(b.APIURL()),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDJOBSBROKERTEST", "jobsbrokertest", ""),
		RetryMaxAttempts: 1,
	}
}

// Preload loads a preload file's text into the running broker, through the
// same API calls as a preload at start (Options.Preload). Unlike one at
// start it may stop half-way, at the first item the API refuses.
func (b *Broker) Preload(ctx context.Context, text string) error {
	p, err := preload.Parse([]byte(text), "Preload")
	if err != nil {
		return err
	}
	return b.b.LoadPreload(ctx, p)
}

// SetFaults puts a fault file's text in force instead of the faults there
// were ("" clears them).
func (b *Broker) SetFaults(text string) error {
	p, err := faults.Parse([]byte(text), "SetFaults")
	if err != nil {
		return err
	}
	return b.b.Faults.Replace(*p)
}

// AddFaults adds faults to those in force.
func (b *Broker) AddFaults(fs ...faults.Fault) error { return b.b.Faults.Add(fs...) }

// Faults returns the faults in force, with how often each matched and
// fired.
func (b *Broker) Faults() []faults.Status {
	_, list := b.b.Faults.Plan()
	return list
}

// FaultsFired returns how many times faults of kind have fired, as
// jobsbroker_faults_fired_total{kind} counts them.
func (b *Broker) FaultsFired(kind faults.Kind) int64 { return b.b.Faults.FiredCount(kind) }

// Transcript returns thing's transcript so far: every jobs request its
// devices published, every reply and notification they were sent, and
// every fault that acted on one, in order.
func (b *Broker) Transcript(thing string) []traffic.Line { return b.b.Transcripts.Lines(thing, 0) }

// Execution is a job execution, as DescribeJobExecution returns it.
type Execution struct {
	JobID           string `json:"jobId"`
	ThingArn        string `json:"thingArn"`
	Status          string `json:"status"`
	ExecutionNumber int64  `json:"executionNumber"`
	VersionNumber   int64  `json:"versionNumber"`
	StatusDetails   struct {
		DetailsMap map[string]string `json:"detailsMap"`
	} `json:"statusDetails"`
}

// ErrOtherTerminal is the error of a Wait whose execution ended in another
// status than the one waited for.
var ErrOtherTerminal = errors.New("the execution ended in another status")

// ErrTimeout is the error of a Wait whose timeout passed first.
var ErrTimeout = errors.New("timed out waiting for the execution's status")

// Wait waits until thing's execution of job has status, through GET
// /admin/wait (as `jobsbroker wait` does). It returns the execution, with
// ErrOtherTerminal when it ended in another status and ErrTimeout when
// timeout passed first (the execution is nil if the thing has none yet).
func (b *Broker) Wait(ctx context.Context, thing, job, status string, timeout time.Duration) (*Execution, error) {
	q := url.Values{"thing": {thing}, "job": {job}, "status": {status}, "timeout": {timeout.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.APIURL()+"/admin/wait?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var res broker.WaitResult
	if err := json.Unmarshal(body, &res); err != nil || res.Outcome == "" {
		return nil, fmt.Errorf("GET /admin/wait: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var e *Execution
	if string(res.Execution) != "null" {
		e = new(Execution)
		if err := json.Unmarshal(res.Execution, e); err != nil {
			return nil, fmt.Errorf("GET /admin/wait: the execution: %w", err)
		}
	}
	switch res.Outcome {
	case broker.WaitReached:
		return e, nil
	case broker.WaitOtherTerminal:
		return e, fmt.Errorf("%w: %s", ErrOtherTerminal, e.Status)
	}
	return e, ErrTimeout
}
