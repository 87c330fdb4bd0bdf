// Package brokertest starts real brokers and real MQTT clients for tests:
// a jobsbroker on 127.0.0.1:0 with its store in a temporary directory, and
// paho clients speaking MQTT 3.1.1 or MQTT 5 over loopback. Nothing here is
// a mock; the helpers only make the tests short.
package brokertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// Epoch is where the fake clock of a test broker starts.
var Epoch = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// Instance is a running test broker.
type Instance struct {
	*broker.Broker
	Config broker.Config
	Clock  *clock.Fake
	// Credentials sign the requests of IoT(); set them when the broker
	// has a credentials file.
	Credentials aws.Credentials
}

// Start runs a broker on loopback with a fake clock and a temporary data
// directory; it is shut down when the test ends. mod may adjust the config.
func Start(t testing.TB, mod ...func(*broker.Config)) *Instance {
	t.Helper()
	clk := clock.NewFake(Epoch)
	cfg := broker.Config{
		MQTTAddr: "127.0.0.1:0",
		APIAddr:  "127.0.0.1:0",
		JobsAddr: "127.0.0.1:0",
		DataDir:  t.TempDir(),
		Clock:    clk,
		Logger:   Logger(t),
	}
	for _, m := range mod {
		m(&cfg)
	}
	return StartWith(t, cfg, clk)
}

// StartWith runs a broker with exactly cfg (for restarts on the same data
// directory).
func StartWith(t testing.TB, cfg broker.Config, clk *clock.Fake) *Instance {
	t.Helper()
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	inst := &Instance{Broker: b, Config: cfg, Clock: clk}
	t.Cleanup(func() { inst.Stop(t) })
	return inst
}

// Stop shuts the broker down; it is safe to call twice.
func (i *Instance) Stop(t testing.TB) {
	if i.Broker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := i.Broker.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	i.Broker = nil
}

// APIURL is the base URL of the control-plane API (https when the broker
// has a TLS certificate).
func (i *Instance) APIURL() string { return i.scheme() + i.APIAddr() }

// JobsURL is the base URL of the iot-jobs-data API.
func (i *Instance) JobsURL() string { return i.scheme() + i.JobsAddr() }

func (i *Instance) scheme() string {
	if i.Config.TLSCert != "" {
		return "https://"
	}
	return "http://"
}

// HTTPClient returns an HTTP client for the broker's APIs. With TLS it
// trusts the CA bundle of Config.ClientCA (tests sign the server
// certificate with the same CA as the devices') and presents cert, if any.
func (i *Instance) HTTPClient(cert *tls.Certificate) *http.Client {
	if i.Config.TLSCert == "" {
		return &http.Client{Timeout: 30 * time.Second}
	}
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(i.Config.ClientCA); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	conf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
}

// IoT returns an AWS SDK for Go v2 IoT client pointed at the broker,
// signing with i.Credentials (or a placeholder key when they are unset).
func (i *Instance) IoT() *iot.Client {
	creds := i.Credentials
	if creds.AccessKeyID == "" {
		creds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}
	}
	return iot.New(iot.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(i.APIURL()),
		Credentials:      credentials.StaticCredentialsProvider{Value: creds},
		RetryMaxAttempts: 1,
		HTTPClient:       i.HTTPClient(nil),
	})
}

// IoTClient returns an AWS SDK for Go v2 IoT client for endpoint, with
// static credentials and no retries.
func IoTClient(endpoint string) *iot.Client {
	return iot.New(iot.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		RetryMaxAttempts: 1,
	})
}

// ThingARN is the ARN of a thing in the default account.
func ThingARN(thing string) string {
	return "arn:aws:iot:" + broker.DefaultRegion + ":" + broker.DefaultAccount + ":thing/" + thing
}

// Logger returns a logger that writes to the test log (only shown on
// failure), or to stderr with JOBSBROKER_TEST_LOG=1.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("JOBSBROKER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

var _ io.Writer = tWriter{}

// Eventually polls cond until it returns nil; see storetest.Eventually.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	storetest.Eventually(t, what, cond)
}
