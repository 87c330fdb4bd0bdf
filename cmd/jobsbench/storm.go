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

// StormResult is the outcome of the storm scenario. Times are measured
// from the moment the first device starts to connect.
type StormResult struct {
	Devices int `json:"devices"`
	// Concurrency is how many connection attempts were in flight at most.
	Concurrency int `json:"concurrency"`
	// SetupS is how long creating and rolling out the job took (not
	// measured work).
	SetupS float64 `json:"setup_s"`
	// ConnectedS is when the last device had its CONNACK; AnsweredS when
	// the last start-next was answered.
	ConnectedS float64 `json:"connected_s"`
	AnsweredS  float64 `json:"answered_s"`
	// Connect is each device's TCP connect plus MQTT handshake; StartNext
	// the round trip of its start-next.
	Connect     Latency     `json:"connect_latency"`
	StartNext   Latency     `json:"start_next_latency"`
	Answered    int         `json:"answered"`
	Errors      ErrorCounts `json:"errors"`
	ErrorsTotal int64       `json:"errors_total"`
	// RSS of the broker before the storm and after it; RSSPerDeviceKiB is
	// the growth per device (connection and session, plus the store's
	// share of the start-next writes).
	RSSBeforeMiB    float64 `json:"broker_rss_before_mib,omitempty"`
	RSSEndMiB       float64 `json:"broker_rss_end_mib,omitempty"`
	RSSPerDeviceKiB float64 `json:"broker_rss_per_device_kib,omitempty"`
}

// runStorm gives cfg.Connected things one queued job each, then connects
// them all at once (cfg.StormConcurrency attempts in flight); each sends
// start-next as soon as it is connected. It measures until every device
// has its answer.
func runStorm(ctx context.Context, cfg *config, rep *Report) error {
	t, err := openTarget(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeTarget(t, rep)
	api := newAPIClient(t.APIURL, cfg.APIConcurrency)
	run := runID()
	n := cfg.Connected
	things := names("storm-"+run, n)
	res := &StormResult{Devices: n, Concurrency: cfg.StormConcurrency}
	rep.Storm = res

	var registered, execs atomic.Int64
	setupStart := time.Now()
	prog := startProgress(cfg.Progress, "storm setup", func(time.Duration) string {
		return fmt.Sprintf("things %d/%d  executions %d/%d", registered.Load(), n, execs.Load(), n)
	})
	jobID := "storm-" + run
	err = func() error {
		targets, err := api.targetsFor(ctx, things, "storm-"+run, cfg.APIConcurrency, &registered)
		if err != nil {
			return err
		}
		if err := api.createJob(ctx, jobID, targets, benchDocument); err != nil {
			return err
		}
		return api.waitRolledOut(ctx, jobID, int64(n), 100*time.Millisecond, func(v int64) { execs.Store(v) })
	}()
	prog.Stop()
	if err != nil {
		return fmt.Errorf("storm setup: %w", err)
	}
	res.SetupS = seconds(int64(time.Since(setupStart)))
	rssBefore := t.RSS()
	res.RSSBeforeMiB = mib(rssBefore)

	type stormDevice struct {
		connected, sent, answered atomic.Int64 // mono() - t0; 0 if not yet
		connectLat                int64
	}
	devs := make([]stormDevice, n)
	clients := make([]*Client, n)
	defer func() { closeAll(clients) }()
	var answered, failed, rejected, invalid, connErrs atomic.Int64
	allDone := make(chan struct{})
	var doneOnce sync.Once
	finish := func() {
		if answered.Load()+failed.Load() == int64(n) {
			doneOnce.Do(func() { close(allDone) })
		}
	}
	if n == 0 {
		close(allDone)
	}
	d := &dialer{addrs: t.mqttAddrs(), attempts: 3}
	prog = startProgress(cfg.Progress, "storm", func(time.Duration) string {
		return fmt.Sprintf("connected %d/%d  answered %d/%d  errors %d", d.connected.Load(), n, answered.Load(), n, failed.Load())
	})
	defer prog.Stop()
	payload := []byte(`{"statusDetails":{"step":"download"},"clientToken":"storm"}`)
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, cfg.StormConcurrency))
	t0 := mono()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := &devs[i]
			prefix := "$aws/things/" + things[i] + "/jobs/start-next"
			accepted, rejectedTopic := prefix+"/accepted", prefix+"/rejected"
			onMessage := func(_ *Client, m *packets.Packet) {
				var fail *atomic.Int64
				switch m.TopicName {
				case accepted:
					if !bytes.HasPrefix(m.Payload, []byte(`{"execution":{"jobId":"`+jobID+`"`)) {
						fail = &invalid
					}
				case rejectedTopic:
					fail = &rejected
				default:
					return
				}
				if !dev.answered.CompareAndSwap(0, mono()-t0) {
					return
				}
				if fail != nil {
					fail.Add(1)
					failed.Add(1)
				} else {
					answered.Add(1)
				}
				finish()
			}
			start := mono()
			c, err := d.dial(ctx, i, ClientOptions{ClientID: things[i], KeepAlive: cfg.KeepAlive, OnMessage: onMessage})
			<-sem
			if err != nil {
				connErrs.Add(1)
				failed.Add(1)
				finish()
				return
			}
			d.connected.Add(1)
			now := mono()
			dev.connectLat = now - start
			dev.connected.Store(now - t0)
			clients[i] = c
			dev.sent.Store(mono() - t0)
			if err := c.Publish(prefix, payload, 1); err != nil {
				connErrs.Add(1)
				failed.Add(1)
				finish()
			}
		}()
	}
	wg.Wait()
	wait := time.NewTimer(cfg.WaitTimeout)
	defer wait.Stop()
	select {
	case <-allDone:
	case <-wait.C:
		rep.note("storm: not every device was answered within -wait %s", cfg.WaitTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	prog.Stop()

	var connLat, snLat []int64
	var lastConn, lastAns int64
	for i := range devs {
		dev := &devs[i]
		if c := dev.connected.Load(); c != 0 {
			connLat = append(connLat, dev.connectLat)
			lastConn = max(lastConn, c)
		}
		if a := dev.answered.Load(); a != 0 {
			snLat = append(snLat, a-dev.sent.Load())
			lastAns = max(lastAns, a)
		}
	}
	res.ConnectedS = seconds(lastConn)
	res.AnsweredS = seconds(lastAns)
	res.Connect = summarize(connLat)
	res.StartNext = summarize(snLat)
	res.Answered = int(answered.Load())
	res.Errors = ErrorCounts{
		Rejected:    rejected.Load(),
		Invalid:     invalid.Load(),
		Disconnects: connErrs.Load(),
		Timeouts:    int64(n) - answered.Load() - failed.Load(),
	}
	res.ErrorsTotal = res.Errors.Total()
	rssEnd := t.RSS()
	res.RSSEndMiB = mib(rssEnd)
	if rssBefore > 0 && n > 0 {
		res.RSSPerDeviceKiB = round3(float64(rssEnd-rssBefore) / 1024 / float64(n))
	}
	return nil
}
