package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// outcome is what a device makes of a message.
type outcome int

const (
	outIgnore    outcome = iota // not the answer to the outstanding request
	outAccepted                 // accepted
	outCycle                    // accepted, and it completed a cycle (a job, for steady)
	outRejected                 // rejected by the broker
	outInvalid                  // an answer that fails the device's checks
	outExhausted                // nothing left to do: the measurement must end
)

// deviceProto is the request/reply logic of one device in a loop: it
// builds each request and judges each answer. Its methods run under the
// device's lock, on the connection's reader goroutine (or the starter's).
type deviceProto interface {
	request() (topic string, payload []byte)
	reply(m *packets.Packet) outcome
}

// ErrorCounts counts failed operations by kind.
type ErrorCounts struct {
	Rejected    int64 `json:"rejected"`
	Timeouts    int64 `json:"timeouts"`
	Disconnects int64 `json:"disconnects"`
	Invalid     int64 `json:"invalid"`
}

// Total is the sum of all kinds.
func (e ErrorCounts) Total() int64 { return e.Rejected + e.Timeouts + e.Disconnects + e.Invalid }

func (e *ErrorCounts) add(o ErrorCounts) {
	e.Rejected += o.Rejected
	e.Timeouts += o.Timeouts
	e.Disconnects += o.Disconnects
	e.Invalid += o.Invalid
}

// loopDevice is one connection that keeps exactly one request outstanding:
// it sends the next request as soon as the previous one is answered.
type loopDevice struct {
	run   *loopRun
	c     *Client
	proto deviceProto

	mu     sync.Mutex
	sentAt int64 // mono() of the outstanding request; 0 if none
	// intended is when the outstanding (or next) request was due: sentAt
	// in a closed loop; its slot in the schedule when paced, so that a
	// request sent late because the previous answer came late counts the
	// wait in its latency.
	intended int64
	stopped  bool
	samples  []int64 // latencies of the requests answered in the window
	ops      int64   // requests accepted in the window
	cycles   int64   // cycles completed in the window
	errs     ErrorCounts
}

// loopRun drives devices in a closed loop: a warm-up, then a measured
// window [start, end). A request counts in the window if its answer
// arrives in it.
type loopRun struct {
	devices []*loopDevice
	timeout time.Duration
	// interval is the time between one device's requests when paced; 0
	// for a closed loop.
	interval int64
	start    int64
	end      atomic.Int64
	cutAt    atomic.Int64 // when a device ran out of work (0: never)
	// interrupted is set when the context ended the run early.
	interrupted atomic.Bool
	ops         atomic.Int64 // every accepted answer, warm-up included (progress)
	errs        atomic.Int64 // every error (progress)
	wg          sync.WaitGroup
}

// LoopResult is the outcome of a closed-loop run (steady and echo).
type LoopResult struct {
	Name         string      `json:"name"`
	Broker       string      `json:"broker"`
	Persistent   bool        `json:"persistent_sessions,omitempty"`
	Devices      int         `json:"devices"`
	WarmupS      float64     `json:"warmup_s"`
	WindowS      float64     `json:"window_s"`
	Ops          int64       `json:"ops"`
	OpsPerSec    float64     `json:"ops_per_s"`
	CyclesPerSec float64     `json:"jobs_per_s,omitempty"`
	Latency      Latency     `json:"latency"`
	Errors       ErrorCounts `json:"errors"`
	ErrorsTotal  int64       `json:"errors_total"`
	RSSMiB       float64     `json:"broker_rss_mib,omitempty"`
	// RSSFileMiB is the part of RSSMiB that maps the store's files.
	RSSFileMiB float64 `json:"broker_rss_file_mib,omitempty"`
	// TargetOpsPerSec is the paced request rate of all devices together;
	// 0 for a closed loop (each device sends as soon as it is answered).
	TargetOpsPerSec float64 `json:"target_ops_per_s,omitempty"`
	// Usage is the CPU and store activity during the window.
	Usage    *WindowUsage `json:"usage,omitempty"`
	CutShort string       `json:"cut_short,omitempty"`
	// TurnsOpsPerSec are the rates of the turns a compareSessions result
	// merges, in order.
	TurnsOpsPerSec []float64 `json:"turns_ops_per_s,omitempty"`

	samples []int64 // the window's latencies, for merging turns
}

// loopOptions are the settings of one runLoop.
type loopOptions struct {
	Warmup, Duration time.Duration
	// Timeout stops a device whose request is unanswered this long.
	Timeout time.Duration
	// Rate paces the devices to this many requests per second in all
	// (each device at Rate/devices); 0 runs a closed loop.
	Rate float64
	// Probe, if not nil, is sampled at the start and the end of the window.
	Probe *prober
	// Progress receives the progress lines; nil shows none.
	Progress io.Writer
}

// runLoop runs protos over connected clients (one each) for the warm-up,
// then for the measured duration, and summarizes the window. A request
// that is not answered within the timeout counts as an error and stops
// its device.
//
// Paced (o.Rate > 0), each device sends on a fixed schedule, the devices'
// schedules evenly staggered; a request whose slot passed while the
// previous one was unanswered goes out at once, and its latency runs from
// its slot (so that a slow broker cannot hide its queueing by slowing the
// load down).
func runLoop(ctx context.Context, name string, clients []*Client, protos []deviceProto, o loopOptions) (*LoopResult, error) {
	warmup, duration, probe, stderr := o.Warmup, o.Duration, o.Probe, o.Progress
	r := &loopRun{timeout: o.Timeout}
	if o.Rate > 0 {
		r.interval = max(1, int64(float64(len(clients))/o.Rate*1e9))
	}
	for i, c := range clients {
		d := &loopDevice{run: r, c: c, proto: protos[i], samples: make([]int64, 0, 1024)}
		r.devices = append(r.devices, d)
		c.SetOnMessage(d.onMessage)
	}
	now := mono()
	r.start = now + int64(warmup)
	r.end.Store(r.start + int64(duration))
	r.wg.Add(len(r.devices))

	var lastOps int64
	var lastAt time.Duration
	prog := startProgress(stderr, name, func(el time.Duration) string {
		ops := r.ops.Load()
		rate := float64(ops-lastOps) / max(1e-9, (el-lastAt).Seconds())
		lastOps, lastAt = ops, el
		phase := "warm-up"
		if t := mono(); t >= r.end.Load() {
			phase = "draining"
		} else if t >= r.start {
			phase = fmt.Sprintf("measuring %.0f/%.0fs", float64(t-r.start)/1e9, float64(r.end.Load()-r.start)/1e9)
		}
		return fmt.Sprintf("%-22s %8.0f ops/s  total %9d  errors %d", phase, rate, ops, r.errs.Load())
	})
	defer prog.Stop()

	var first, last sample
	probed := make(chan struct{})
	go func(ctx context.Context) {
		defer close(probed)
		if probe == nil {
			return
		}
		time.Sleep(time.Duration(r.start - mono()))
		first = probe.sample(ctx)
		for t := mono(); t < r.end.Load(); t = mono() {
			time.Sleep(min(50*time.Millisecond, time.Duration(r.end.Load()-t)))
		}
		last = probe.sample(ctx)
	}(context.WithoutCancel(ctx))

	for i, d := range r.devices {
		d.mu.Lock()
		if r.interval == 0 {
			d.sendLocked(mono())
		} else {
			d.scheduleLocked(now+r.interval*int64(i)/int64(len(r.devices)), now)
		}
		d.mu.Unlock()
	}
	allStopped := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(allStopped)
	}()
	sweep := time.NewTicker(100 * time.Millisecond)
	defer sweep.Stop()
	for done := false; !done; {
		select {
		case <-allStopped:
			done = true
		case <-sweep.C:
			r.sweep()
		case <-ctx.Done():
			r.interrupted.Store(true)
			r.endBy(mono())
			// Devices stop at their next answer; the sweeper ends the rest.
			ctx = context.Background()
		}
	}
	prog.Stop()
	<-probed

	res := &LoopResult{Name: name, Devices: len(clients), WarmupS: warmup.Seconds(), TargetOpsPerSec: o.Rate}
	end := r.end.Load()
	if cut := r.cutAt.Load(); cut != 0 {
		res.CutShort = fmt.Sprintf("a device ran out of work %.1fs into the measured window", float64(cut-r.start)/1e9)
	}
	if r.interrupted.Load() {
		res.CutShort = "interrupted"
	}
	if end <= r.start {
		return nil, fmt.Errorf("%s: the run ended during the warm-up (%s)", name, res.CutShort)
	}
	var samples []int64
	var cycles int64
	for _, d := range r.devices {
		samples = append(samples, d.samples...)
		res.Ops += d.ops
		cycles += d.cycles
		res.Errors.add(d.errs)
	}
	window := end - r.start
	res.WindowS = seconds(window)
	res.OpsPerSec = round1(float64(res.Ops) / (float64(window) / 1e9))
	res.CyclesPerSec = round1(float64(cycles) / (float64(window) / 1e9))
	if probe != nil && first.at != 0 {
		res.Usage = windowUsage(first, last)
	}
	res.Latency = summarize(samples)
	res.ErrorsTotal = res.Errors.Total()
	res.samples = samples
	return res, nil
}

// endBy ends the measured window at t, if that is earlier.
func (r *loopRun) endBy(t int64) {
	for {
		e := r.end.Load()
		if t >= e || r.end.CompareAndSwap(e, t) {
			return
		}
	}
}

// cut ends the window at t because a device ran out of work.
func (r *loopRun) cut(t int64) {
	r.endBy(t)
	r.cutAt.CompareAndSwap(0, t)
}

// sweep stops devices whose request timed out or whose connection died.
func (r *loopRun) sweep() {
	now := mono()
	for _, d := range r.devices {
		d.mu.Lock()
		switch {
		case d.stopped:
		case d.sentAt != 0 && time.Duration(now-d.sentAt) > r.timeout:
			d.errs.Timeouts++
			r.errs.Add(1)
			d.stopLocked()
		case d.c.Err() != nil:
			d.errs.Disconnects++
			r.errs.Add(1)
			d.stopLocked()
		case d.sentAt == 0 && now >= r.end.Load():
			d.stopLocked() // idle (paced, or after an error) at the end
		}
		d.mu.Unlock()
	}
}

func (d *loopDevice) stopLocked() {
	if !d.stopped {
		d.stopped = true
		d.sentAt = 0
		d.run.wg.Done()
	}
}

// sendLocked sends the device's next request, due at intended.
func (d *loopDevice) sendLocked(intended int64) {
	topic, payload := d.proto.request()
	d.sentAt = mono()
	d.intended = min(intended, d.sentAt)
	if err := d.c.Publish(topic, payload, 1); err != nil {
		d.errs.Disconnects++
		d.run.errs.Add(1)
		d.stopLocked()
	}
}

// onMessage is the client's OnMessage: it judges the answer, records it
// and sends the next request, until the window has ended.
func (d *loopDevice) onMessage(_ *Client, m *packets.Packet) {
	now := mono()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || d.sentAt == 0 {
		return
	}
	out := d.proto.reply(m)
	if out == outIgnore {
		return
	}
	r := d.run
	lat := now - d.intended
	d.sentAt = 0
	end := r.end.Load()
	inWindow := now >= r.start && now < end
	switch out {
	case outAccepted, outCycle:
		r.ops.Add(1)
		if inWindow {
			d.samples = append(d.samples, lat)
			d.ops++
			if out == outCycle {
				d.cycles++
			}
		}
	case outRejected:
		d.errs.Rejected++
		r.errs.Add(1)
	case outInvalid:
		d.errs.Invalid++
		r.errs.Add(1)
	case outExhausted:
		r.cut(now)
		d.stopLocked()
		return
	}
	if now >= end {
		d.stopLocked()
		return
	}
	if r.interval == 0 {
		d.sendLocked(now)
		return
	}
	d.scheduleLocked(d.intended+r.interval, now)
}

// scheduleLocked sends the next request at due: now if it is already due,
// else from a timer.
func (d *loopDevice) scheduleLocked(due, now int64) {
	if due <= now {
		d.sendLocked(due)
		return
	}
	time.AfterFunc(time.Duration(due-now), func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.stopped && d.sentAt == 0 && mono() < d.run.end.Load() {
			d.sendLocked(due)
		}
	})
}
