package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// FanoutResult is the outcome of the fanout scenario. Times are measured
// from just before CreateJob is sent.
type FanoutResult struct {
	Things    int `json:"things"`
	Connected int `json:"connected"`
	// SetupS is how long registering the things took (not measured work).
	SetupS float64 `json:"setup_s"`
	// ConnectS is how long connecting and subscribing the devices took.
	ConnectS float64 `json:"connect_s"`
	// CreateMs is CreateJob's round trip: the job is committed, with its
	// first rollout step.
	CreateMs float64 `json:"create_ms"`
	// RolloutS is when DescribeJob first showed every thing with an
	// execution and no rollout in progress (polled every 100 ms).
	RolloutS float64 `json:"rollout_s"`
	// ExecutionsPerSec is things given their execution per second, over
	// RolloutS.
	ExecutionsPerSec float64 `json:"executions_per_s"`
	// FirstNotifyMs, NotifyP50S, NotifyP99S and AllNotifiedS are when the
	// first, the median, the 99th-percentile and the last connected device
	// got its notify-next for the job.
	FirstNotifyMs float64 `json:"first_notify_ms"`
	NotifyP50S    float64 `json:"notify_p50_s"`
	NotifyP99S    float64 `json:"notify_p99_s"`
	AllNotifiedS  float64 `json:"all_notified_s"`
	// NotifiesPerSec is connected devices notified per second, over
	// AllNotifiedS.
	NotifiesPerSec float64 `json:"notifies_per_s"`
	Notified       int     `json:"notified"`
	// Missing are connected devices with no notify-next by the deadline.
	Missing     int   `json:"missing"`
	Disconnects int   `json:"disconnects"`
	ErrorsTotal int64 `json:"errors_total"`
	// RSS of the broker before the devices connected, once they were
	// connected and subscribed, and at the end; RSSPerDeviceKiB is the
	// growth from connecting, per device.
	RSSBeforeMiB    float64 `json:"broker_rss_before_mib,omitempty"`
	RSSConnectedMiB float64 `json:"broker_rss_connected_mib,omitempty"`
	RSSEndMiB       float64 `json:"broker_rss_end_mib,omitempty"`
	RSSPerDeviceKiB float64 `json:"broker_rss_per_device_kib,omitempty"`
	// LivePerDeviceKiB is the growth of what the broker holds live (heap
	// in use and goroutine stacks, each measured after a forced
	// collection) from connecting, per device: RSS without the garbage of
	// the connection burst and the collector's headroom.
	LivePerDeviceKiB float64 `json:"broker_live_per_device_kib,omitempty"`
}

// runFanout creates one job for cfg.Things things, cfg.Connected of them
// connected and subscribed to notify-next, and measures how fast the job
// is committed, rolled out and announced.
func runFanout(ctx context.Context, cfg *config, rep *Report) error {
	if cfg.Connected > cfg.Things {
		return fmt.Errorf("fanout: -connected %d is more than -things %d", cfg.Connected, cfg.Things)
	}
	t, err := openTarget(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeTarget(t, rep)
	api := newAPIClient(t.APIURL, cfg.APIConcurrency)
	run := runID()
	things := names("fan-"+run, cfg.Things)
	res := &FanoutResult{Things: cfg.Things, Connected: cfg.Connected}
	rep.Fanout = res

	var registered atomic.Int64
	setupStart := time.Now()
	prog := startProgress(cfg.Progress, "fanout setup", func(time.Duration) string {
		return fmt.Sprintf("things registered %d/%d", registered.Load(), cfg.Things)
	})
	targets, err := api.targetsFor(ctx, things, "fan-"+run, cfg.APIConcurrency, &registered)
	prog.Stop()
	if err != nil {
		return fmt.Errorf("fanout setup: %w", err)
	}
	res.SetupS = seconds(int64(time.Since(setupStart)))
	if len(targets) == 1 && cfg.Things > 1 {
		rep.note("fanout: the job targets one thing group of %d things (registered through the API): "+
			"their ARNs would not fit in one CreateJob request", cfg.Things)
	}

	jobID := "fanout-" + run
	want := []byte(`"jobId":"` + jobID + `"`)
	arrivals := make([]atomic.Int64, cfg.Connected)
	var notified atomic.Int64
	allNotified := make(chan struct{})
	var closeOnce sync.Once
	var t0 atomic.Int64
	rssBefore := t.RSS()
	res.RSSBeforeMiB = mib(rssBefore)
	liveBefore := t.Live(ctx)
	connectStart := time.Now()
	// The connected devices are spread evenly over the fleet (and so over
	// the rollout order).
	connected := make([]string, cfg.Connected)
	for i := range connected {
		connected[i] = things[int(int64(i)*int64(cfg.Things)/int64(cfg.Connected))]
	}
	clients, err := connectDevices(ctx, cfg, t.mqttAddrs(), "fanout connect", connected, func(i int, c *Client) error {
		topic := "$aws/things/" + connected[i] + "/jobs/notify-next"
		c.SetOnMessage(func(_ *Client, m *packets.Packet) {
			if m.TopicName != topic || !bytes.Contains(m.Payload, want) {
				return
			}
			if arrivals[i].CompareAndSwap(0, mono()-t0.Load()) && notified.Add(1) == int64(cfg.Connected) {
				closeOnce.Do(func() { close(allNotified) })
			}
		})
		return c.Subscribe(ctx, topic, 1)
	})
	if err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	defer closeAll(clients)
	res.ConnectS = seconds(int64(time.Since(connectStart)))
	kctx, stopKeepAlive := context.WithCancel(ctx)
	defer stopKeepAlive()
	go keepAlive(kctx, func() []*Client { return clients }, cfg.KeepAlive)
	time.Sleep(time.Second) // let the broker settle after the connection burst
	rssConnected := t.RSS()
	res.RSSConnectedMiB = mib(rssConnected)
	if rssBefore > 0 && cfg.Connected > 0 {
		res.RSSPerDeviceKiB = round3(float64(rssConnected-rssBefore) / 1024 / float64(cfg.Connected))
	}
	// After the RSS: the forced collection would shrink what RSS shows.
	if liveConnected := t.Live(ctx); liveBefore > 0 && liveConnected > 0 && cfg.Connected > 0 {
		res.LivePerDeviceKiB = round3(float64(liveConnected-liveBefore) / 1024 / float64(cfg.Connected))
	}

	var rolledOut atomic.Int64
	var execs atomic.Int64
	prog = startProgress(cfg.Progress, "fanout", func(time.Duration) string {
		return fmt.Sprintf("executions %d/%d  notified %d/%d", execs.Load(), cfg.Things, notified.Load(), cfg.Connected)
	})
	defer prog.Stop()
	if cfg.Connected == 0 {
		close(allNotified)
	}
	start := mono()
	t0.Store(start)
	if err := api.createJob(ctx, jobID, targets, benchDocument); err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	res.CreateMs = ms(mono() - start)
	if cfg.Consoles > 0 {
		con, err := openConsoles(ctx, t.APIURL, consolePages(cfg.Consoles, "/console/jobs/"+jobID, "/console/"))
		if err != nil {
			return fmt.Errorf("fanout: %w", err)
		}
		defer func() { rep.Console = con.close() }()
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.WaitTimeout)
	defer cancel()
	rolloutErr := make(chan error, 1)
	go func() {
		err := api.waitRolledOut(wctx, jobID, int64(cfg.Things), 100*time.Millisecond, func(n int64) { execs.Store(n) })
		rolledOut.Store(mono() - start)
		rolloutErr <- err
	}()
	select {
	case <-allNotified:
	case <-wctx.Done():
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.note("fanout: not every connected device was notified within -wait %s", cfg.WaitTimeout)
	}
	if err := <-rolloutErr; err != nil {
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() != nil:
			rep.note("fanout: the rollout did not finish within -wait %s", cfg.WaitTimeout)
			rolledOut.Store(0)
		default:
			return fmt.Errorf("fanout: %w", err)
		}
	}
	prog.Stop()
	res.RolloutS = seconds(rolledOut.Load())
	if res.RolloutS > 0 {
		res.ExecutionsPerSec = round1(float64(cfg.Things) / res.RolloutS)
	}

	var times []int64
	for i := range arrivals {
		if a := arrivals[i].Load(); a != 0 {
			times = append(times, a)
		}
	}
	for _, c := range clients {
		if c.Err() != nil {
			res.Disconnects++
		}
	}
	res.Notified = len(times)
	res.Missing = cfg.Connected - len(times)
	if len(times) > 0 {
		l := summarize(times)
		res.FirstNotifyMs = ms(times[0])
		res.NotifyP50S = round3(l.P50Ms / 1000)
		res.NotifyP99S = round3(l.P99Ms / 1000)
		res.AllNotifiedS = round3(l.MaxMs / 1000)
		res.NotifiesPerSec = round3(float64(len(times)) / (float64(times[len(times)-1]) / 1e9))
	}
	res.ErrorsTotal = int64(res.Missing + res.Disconnects)
	res.RSSEndMiB = mib(t.RSS())
	return nil
}
