package console

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The broker page shows the figures /metrics serves, read from the same
// registry (nothing is counted twice). Rates come from two reads of the
// registry at least sampleGap apart, shared by every open broker page.

const sampleGap = time.Second

// figures are the registry's values at one time.
type figures struct {
	At            time.Time
	Connected     float64
	Subscriptions float64
	Requests      float64 // device requests, MQTT and HTTP
	Rejections    float64
	Notifications float64
	APICalls      float64
	MsgsIn        float64
	MsgsOut       float64
	CommitCount   float64
	CommitSum     float64
	CommitBuckets []bucket
	CommitOps     float64 // sum of operations in commits
	Executions    map[string]float64
	Jobs          map[string]float64
	Backlog       float64
	Timers        float64
	StoreBytes    float64
	Goroutines    float64
	RSS           float64
	Started       float64
	Version       string
	HasStore      bool // the store's gauges are there
}

type bucket struct {
	Le    float64
	Count float64
}

type sampler struct {
	mu        sync.Mutex
	prev, cur *figures
}

// figures returns the latest two reads (prev may be nil), reading the
// registry again when the latest is sampleGap old.
func (c *Console) figures() (prev, cur *figures, err error) {
	s := &c.metrics
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || time.Since(s.cur.At) >= sampleGap {
		f, err := c.gather()
		if err != nil {
			return s.prev, s.cur, err
		}
		s.prev, s.cur = s.cur, f
	}
	return s.prev, s.cur, nil
}

func (c *Console) gather() (*figures, error) {
	if c.opts.Metrics == nil {
		return nil, fmt.Errorf("no metrics registry")
	}
	mfs, err := c.opts.Metrics.Gather()
	if err != nil && len(mfs) == 0 {
		return nil, err
	}
	f := &figures{At: time.Now(), Executions: map[string]float64{}, Jobs: map[string]float64{}}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			v := value(m)
			switch name {
			case "jobsbroker_mqtt_clients_connected":
				f.Connected = v
			case "jobsbroker_mqtt_subscriptions":
				f.Subscriptions = v
			case "jobsbroker_requests_total":
				f.Requests += v
			case "jobsbroker_rejections_total":
				f.Rejections += v
			case "jobsbroker_notifications_total":
				f.Notifications += v
			case "jobsbroker_api_requests_total":
				if label(m, "api") == "control" {
					f.APICalls += v
				}
			case "jobsbroker_mqtt_messages_received_total":
				f.MsgsIn = v
			case "jobsbroker_mqtt_messages_sent_total":
				f.MsgsOut = v
			case "jobsbroker_store_commit_duration_seconds":
				h := m.GetHistogram()
				f.CommitCount, f.CommitSum = float64(h.GetSampleCount()), h.GetSampleSum()
				for _, b := range h.GetBucket() {
					f.CommitBuckets = append(f.CommitBuckets, bucket{Le: b.GetUpperBound(), Count: float64(b.GetCumulativeCount())})
				}
			case "jobsbroker_store_commit_operations":
				f.CommitOps = m.GetHistogram().GetSampleSum()
			case "jobsbroker_job_things":
				f.Executions[label(m, "status")] = v
				f.HasStore = true
			case "jobsbroker_jobs":
				f.Jobs[label(m, "status")] = v
			case "jobsbroker_rollout_backlog_things":
				f.Backlog = v
			case "jobsbroker_timers_armed":
				f.Timers = v
			case "jobsbroker_store_size_bytes":
				f.StoreBytes += v
			case "go_goroutines":
				f.Goroutines = v
			case "process_resident_memory_bytes":
				f.RSS = v
			case "process_start_time_seconds":
				f.Started = v
			case "jobsbroker_build_info":
				f.Version = label(m, "version")
			}
		}
	}
	return f, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// figure is one line of the broker page.
type figure struct {
	Label, Value, Note string
}

type brokerBody struct {
	Live      []figure
	Store     []figure
	Process   []figure
	Execs     []figure
	JobsBy    []figure
	Measuring bool
	Problem   string
}

func (c *Console) brokerPage(w http.ResponseWriter, r *http.Request, s *session) {
	build := func(context.Context) (*page, error) {
		body := &brokerBody{}
		prev, cur, err := c.figures()
		if cur == nil {
			body.Problem = "The metrics could not be read"
			if err != nil {
				body.Problem += ": " + err.Error()
			}
		} else {
			c.describe(body, prev, cur)
		}
		p := c.newPage(r, s, "broker", "Broker", body)
		p.Live = true
		return p, nil
	}
	c.serve(w, r, s, "broker", sampleGap, build, "broker-figures")
}

func (c *Console) describe(b *brokerBody, prev, cur *figures) {
	rate := func(get func(*figures) float64) string {
		if prev == nil {
			return "measuring…"
		}
		dt := cur.At.Sub(prev.At).Seconds()
		return num(math.Round(math.Max(get(cur)-get(prev), 0)/dt)) + "/s"
	}
	b.Measuring = prev == nil
	commit, commitNote := "no commits measured", "this store does not report commit times"
	if cur.CommitCount > 0 {
		commitNote = ""
		if prev != nil && cur.CommitCount > prev.CommitCount {
			commitNote = "over the last second; p99 from the histogram's buckets"
			n := cur.CommitCount - prev.CommitCount
			avg := (cur.CommitSum - prev.CommitSum) / n
			commit = fmt.Sprintf("%s average, p99 %s, %s commits/s, %.0f operations each", ms(avg), p99(prev.CommitBuckets, cur.CommitBuckets, n),
				num(math.Round(n/cur.At.Sub(prev.At).Seconds())), (cur.CommitOps-prev.CommitOps)/n)
		} else {
			commit = fmt.Sprintf("%s average since start (no commit in the last second)", ms(cur.CommitSum/cur.CommitCount))
		}
	}
	b.Live = []figure{
		{"Connected devices", num(cur.Connected), "MQTT clients connected to this node"},
		{"Subscriptions", num(cur.Subscriptions), ""},
		{"Device requests", rate(func(f *figures) float64 { return f.Requests }), "jobs requests over MQTT and HTTP"},
		{"Rejections", rate(func(f *figures) float64 { return f.Rejections }), "requests answered with an error"},
		{"Notifications", rate(func(f *figures) float64 { return f.Notifications }), "notify, notify-next and events sent"},
		{"API calls", rate(func(f *figures) float64 { return f.APICalls }), "control-plane calls, the console's actions included"},
		{"MQTT messages", rate(func(f *figures) float64 { return f.MsgsIn }) + " in, " + rate(func(f *figures) float64 { return f.MsgsOut }) + " out", ""},
		{"Commit latency", commit, commitNote},
	}
	if cur.HasStore {
		b.Store = []figure{
			{"Rollout backlog", num(cur.Backlog), "things that rollouts in progress have yet to reach"},
			{"Timers armed", num(cur.Timers), "executions with a step or in-progress timer"},
			{"Store size", bytesText(cur.StoreBytes), ""},
		}
		for _, st := range barOrder {
			b.Execs = append(b.Execs, figure{Label: st.Label, Value: num(cur.Executions[string(st.Status)])})
		}
		names := make([]string, 0, len(cur.Jobs))
		for k := range cur.Jobs {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			b.JobsBy = append(b.JobsBy, figure{Label: statusLabel(k), Value: num(cur.Jobs[k])})
		}
	}
	up := ""
	if cur.Started > 0 {
		up = time.Since(time.Unix(int64(cur.Started), 0)).Round(time.Second).String()
	}
	b.Process = []figure{
		{"Version", cur.Version, ""},
		{"Node", c.opts.NodeID, ""},
		{"Up for", up, ""},
		{"Memory (RSS)", bytesText(cur.RSS), ""},
		{"Goroutines", num(cur.Goroutines), ""},
	}
}

// p99 estimates the 99th percentile of the observations between two reads
// of a histogram: the upper bound of the bucket where it falls.
func p99(prev, cur []bucket, n float64) string {
	if len(prev) != len(cur) {
		return "?"
	}
	for i := range cur {
		if cur[i].Count-prev[i].Count >= 0.99*n {
			return "≤ " + ms(cur[i].Le)
		}
	}
	return "> " + ms(cur[len(cur)-1].Le)
}

func ms(sec float64) string {
	v := sec * 1000
	switch {
	case v < 1:
		return fmt.Sprintf("%.2f ms", v)
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func bytesText(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", b), ".0") + " " + units[i]
}
