package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// scrape fetches /metrics and returns its families.
func scrape(t *testing.T, b *brokertest.Instance) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := b.HTTPClient(nil).Get(b.APIURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// value returns the value of the series of name whose labels include
// want ("k=v" pairs).
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.Metric {
		if !hasLabels(m, want...) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// hasLabels reports whether m's labels include want ("k=v" pairs).
func hasLabels(m *dto.Metric, want ...string) bool {
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	for _, kv := range want {
		k, v, _ := strings.Cut(kv, "=")
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestMetrics runs a scripted flow and checks /metrics: exact values, and
// that every metric passes the Prometheus lint.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := brokertest.Start(t, func(c *broker.Config) { c.Registry = reg })
	ctx := context.Background()
	d := brokertest.Connect(t, b.MQTTAddr(), "m1", 4)
	d.Subscribe("$aws/things/m1/jobs/notify-next", 1)
	if _, err := b.IoT().CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("mj"), Document: aws.String(`{"op":"x"}`),
		Targets: []string{brokertest.ThingARN("m1"), brokertest.ThingARN("m2")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.IoT().DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("nope")}); err == nil {
		t.Fatal("DescribeJob of an unknown job succeeded")
	}
	d.Expect("$aws/things/m1/jobs/notify-next")
	d.MustAccept("$aws/things/m1/jobs/start-next", `{}`)
	d.MustReject("$aws/things/m1/jobs/mj/update", `{"status":"SUCCEEDED","expectedVersion":1}`)
	d.MustReject("$aws/things/m1/jobs/mj/update", `{"status":"DONE"}`)
	d.MustAccept("$aws/things/m1/jobs/mj/update", `{"status":"SUCCEEDED"}`)
	d.Expect("$aws/things/m1/jobs/notify-next")
	dpOK(t, b, "GET", "/things/m2/jobs", "")

	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"jobsbroker_requests_total", []string{"transport=mqtt", "operation=StartNextPendingJobExecution", "result=accepted"}, 1},
		{"jobsbroker_requests_total", []string{"transport=mqtt", "operation=UpdateJobExecution", "result=accepted"}, 1},
		{"jobsbroker_requests_total", []string{"transport=mqtt", "operation=UpdateJobExecution", "result=rejected"}, 2},
		{"jobsbroker_requests_total", []string{"transport=http", "operation=GetPendingJobExecutions", "result=accepted"}, 1},
		{"jobsbroker_rejections_total", []string{"transport=mqtt", "code=VersionMismatch"}, 1},
		{"jobsbroker_rejections_total", []string{"transport=mqtt", "code=InvalidRequest"}, 1},
		{"jobsbroker_request_duration_seconds", []string{"transport=mqtt", "operation=UpdateJobExecution"}, 3},
		{"jobsbroker_api_requests_total", []string{"api=control", "operation=CreateJob", "code=200"}, 1},
		{"jobsbroker_api_requests_total", []string{"api=control", "operation=DescribeJob", "code=404"}, 1},
		{"jobsbroker_api_requests_total", []string{"api=data", "operation=GetPendingJobExecutions", "code=200"}, 1},
		{"jobsbroker_notifications_total", []string{"kind=notify-next"}, 2},
		{"jobsbroker_job_things", []string{"status=SUCCEEDED"}, 1},
		{"jobsbroker_job_things", []string{"status=QUEUED"}, 1},
		{"jobsbroker_job_things", []string{"status=IN_PROGRESS"}, 0},
		{"jobsbroker_jobs", []string{"status=IN_PROGRESS"}, 1},
		{"jobsbroker_timers_armed", nil, 0},
		{"jobsbroker_rollout_backlog_things", nil, 0},
		{"jobsbroker_mqtt_clients_connected", nil, 1},
		{"jobsbroker_ready", nil, 1},
		{"jobsbroker_build_info", nil, 1},
	}
	// Counters are updated beside the deliveries, not before them (a
	// notification is counted once it is queued to its subscribers):
	// scrape until they have caught up.
	var f map[string]*dto.MetricFamily
	brokertest.Eventually(t, "metrics", func() error {
		f = scrape(t, b)
		var wrong []string
		for _, c := range checks {
			if _, ok := f[c.name]; !ok {
				wrong = append(wrong, "no metric "+c.name) // a vector with no series yet
				continue
			}
			if got := value(t, f, c.name, c.labels...); got != c.want {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v, want %v", c.name, c.labels, got, c.want))
			}
		}
		if len(wrong) > 0 {
			return errors.New(strings.Join(wrong, "; "))
		}
		return nil
	})
	if commits := value(t, f, "jobsbroker_store_commit_duration_seconds"); commits < 4 {
		t.Errorf("store commits observed = %v, want at least the 4 writes of the flow", commits)
	}
	if value(t, f, "jobsbroker_mqtt_messages_received_total") < 4 || value(t, f, "jobsbroker_mqtt_sent_bytes_total") == 0 {
		t.Errorf("mochi's counters are not mirrored")
	}
	if _, ok := f["go_goroutines"]; !ok {
		t.Error("no Go collector")
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// No label carries a thing name or a job id.
	for name, fam := range f {
		for _, m := range fam.Metric {
			for _, l := range m.Label {
				if v := l.GetValue(); v == "m1" || v == "m2" || v == "mj" {
					t.Errorf("%s has a label %s=%s: thing names and job ids must not be labels", name, l.GetName(), v)
				}
			}
		}
	}
}

// TestMetricsFresh: before any request, every labelled metric already has
// a series at zero for each label value known in advance (Prometheus's
// advice), so that dashboards and rates over them show 0, not nothing.
func TestMetricsFresh(t *testing.T) {
	b := brokertest.Start(t)
	f := scrape(t, b)
	has := func(name string, want ...string) {
		t.Helper()
		fam, ok := f[name]
		if !ok {
			t.Errorf("no series of %s on a fresh broker", name)
			return
		}
		for _, m := range fam.Metric {
			if hasLabels(m, want...) {
				return
			}
		}
		t.Errorf("no series %s%v on a fresh broker", name, want)
	}
	for _, kind := range []string{"notify", "notify-next", "event"} {
		has("jobsbroker_notifications_total", "kind="+kind)
	}
	for _, op := range []string{"GetPendingJobExecutions", "StartNextPendingJobExecution", "DescribeJobExecution", "UpdateJobExecution"} {
		for _, transport := range []string{"mqtt", "http"} {
			has("jobsbroker_requests_total", "transport="+transport, "operation="+op, "result=accepted")
			has("jobsbroker_requests_total", "transport="+transport, "operation="+op, "result=rejected")
			has("jobsbroker_request_duration_seconds", "transport="+transport, "operation="+op)
		}
		has("jobsbroker_api_requests_total", "api=data", "operation="+op, "code=200")
	}
	for _, code := range []string{"InvalidRequest", "VersionMismatch", "RequestThrottled", "InternalError"} {
		has("jobsbroker_rejections_total", "transport=mqtt", "code="+code)
	}
	for _, code := range []string{"InvalidRequestException", "ThrottlingException", "InvalidSignatureException"} {
		has("jobsbroker_rejections_total", "transport=http", "code="+code)
	}
	for _, op := range []string{"CreateJob", "DescribeJob", "CancelJobExecution", "DescribeEndpoint"} {
		has("jobsbroker_api_requests_total", "api=control", "operation="+op, "code=200")
	}
	has("jobsbroker_api_request_duration_seconds", "api=control")
	has("jobsbroker_api_request_duration_seconds", "api=data")
	for _, s := range []string{"QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "REMOVED", "CANCELED"} {
		has("jobsbroker_job_things", "status="+s)
	}
	if v := value(t, f, "jobsbroker_requests_total", "transport=mqtt", "operation=UpdateJobExecution", "result=accepted"); v != 0 {
		t.Errorf("a fresh broker counts %v updates", v)
	}
}
