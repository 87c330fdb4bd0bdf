package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// benchDocument is the job document of every job jobsbench creates.
const benchDocument = `{"operation":"bench","url":"https://example.invalid/firmware.bin","sha256":"00000000000000000000000000000000"}`

// estimatedOpsPerSec sizes -jobs-per-device when it is 0 (auto): a
// generous guess of the broker's steady rate on a small machine. If the
// devices still run out, the window is cut short and the report says so.
const estimatedOpsPerSec = 20_000

// autoJobsPerDevice is how many jobs each device needs for warm-up and
// window at estimatedOpsPerSec (three operations per job), with headroom.
func autoJobsPerDevice(devices int, warmup, duration time.Duration) int {
	ops := estimatedOpsPerSec * (warmup + duration).Seconds() * 1.5
	return max(1, int(math.Ceil(ops/3/float64(max(1, devices)))))
}

// runSteady measures the device loop start-next, update IN_PROGRESS,
// update SUCCEEDED over pre-created jobs, then (unless -no-echo) the echo
// baselines, and the ratios between them. With -sessions both, devices
// with clean sessions and devices with persistent ones take turns.
func runSteady(ctx context.Context, cfg *config, rep *Report) error {
	t, err := openTarget(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeTarget(t, rep)
	var res *LoopResult
	if cfg.CompareSessions {
		var persistent *LoopResult
		res, persistent, err = compareSessions(ctx, cfg, t.prober(), func(c *config) (*loopSetup, error) {
			return steadySetup(ctx, c, t, rep)
		})
		if err != nil {
			return err
		}
		for _, r := range []*LoopResult{res, persistent} {
			steadyDone(t, rep, r)
		}
		rep.SteadyPersistent = persistent
		rep.ratios().SteadyPersistentOverClean = ratio(persistent, res)
	} else if res, err = steadyJobs(ctx, cfg, t, rep); err != nil {
		return err
	}
	rep.Steady = res
	if cfg.NoEcho {
		return nil
	}
	if err := runEchoes(ctx, cfg, t, rep); err != nil {
		return err
	}
	if cfg.Rate > 0 {
		rep.note("steady: paced at %.0f ops/s, as are the echo baselines: compare latencies; the rates are the pace, so no ratios", cfg.Rate)
		return nil
	}
	for _, e := range rep.Echo {
		if e.OpsPerSec == 0 || e.Persistent {
			continue
		}
		r := round3(res.OpsPerSec / e.OpsPerSec)
		switch e.Broker {
		case "jobsbroker":
			rep.ratios().JobsOverEcho = r
		case "mosquitto":
			rep.ratios().JobsOverMosquittoEcho = r
		}
	}
	return nil
}

// steadyJobs sets steady up and runs its loop once.
func steadyJobs(ctx context.Context, cfg *config, t *target, rep *Report) (*LoopResult, error) {
	ls, err := steadySetup(ctx, cfg, t, rep)
	if err != nil {
		return nil, err
	}
	defer ls.close()
	res, err := runLoop(ctx, ls.name, ls.clients, ls.protos, cfg.loopOptions(t.prober()))
	if err != nil {
		return nil, err
	}
	res.Persistent = cfg.Persistent
	steadyDone(t, rep, res)
	return res, nil
}

// steadyDone completes a steady result and notes how its window ended.
func steadyDone(t *target, rep *Report, res *LoopResult) {
	res.Broker = "jobsbroker"
	res.RSSMiB, res.RSSFileMiB = mib(t.RSS()), mib(t.RSSFile())
	switch {
	case res.CutShort == "interrupted":
		rep.note("%s: interrupted; the window ended early", res.Name)
	case res.CutShort != "":
		rep.note("%s: %s; the window was cut there: rerun with -jobs-per-device above %d", res.Name, res.CutShort, rep.Settings.JobsPerDevice)
	}
}

// ratio is a's rate over b's, 0 when b measured none.
func ratio(a, b *LoopResult) float64 {
	if b.OpsPerSec == 0 {
		return 0
	}
	return round3(a.OpsPerSec / b.OpsPerSec)
}

// steadySetup creates the jobs, waits until they are rolled out and
// connects the devices, ready for the loop. Only device operations run in
// the measured window: job creation and rollout end before the devices
// start.
//
// A device works through its jobs as a sequence of things (layers), each
// with -jobs-per-thing pending jobs, rather than as one thing with every
// job pending: what a device operation costs grows with the thing's
// pending set, and real things have few pending jobs.
func steadySetup(ctx context.Context, cfg *config, t *target, rep *Report) (*loopSetup, error) {
	api := newAPIClient(t.APIURL, cfg.APIConcurrency)
	run := runID()
	devices := names("steady-"+run, cfg.Devices)
	perThing := max(1, cfg.JobsPerThing)
	perDevice := cfg.JobsPerDevice
	if perDevice <= 0 {
		perDevice = autoJobsPerDevice(cfg.Devices, cfg.Warmup, cfg.Duration)
	}
	layers := (perDevice + perThing - 1) / perThing
	perDevice = layers * perThing
	rep.Settings.JobsPerDevice = perDevice
	rep.Settings.JobsPerThing = perThing
	rep.note("steady: each device works through %d things with %d pending jobs each (%d jobs of %d things, %d executions), "+
		"created and rolled out before the devices connect: the measured window holds device operations only",
		layers, perThing, layers*perThing, cfg.Devices, perDevice*cfg.Devices)

	things := make([][]string, layers) // things[layer][device]
	for l := range things {
		things[l] = make([]string, cfg.Devices)
		for i, d := range devices {
			things[l][i] = fmt.Sprintf("%s-t%03d", d, l)
		}
	}
	var registered, created, rolled atomic.Int64
	total := int64(perDevice * cfg.Devices)
	setupStart := time.Now()
	prog := startProgress(cfg.Progress, "steady setup", func(time.Duration) string {
		return fmt.Sprintf("things %d/%d  jobs %d/%d  executions %d/%d", registered.Load(), layers*cfg.Devices,
			created.Load(), layers*perThing, rolled.Load(), total)
	})
	var jobIDs []string
	if cfg.SpreadJobs {
		rep.note("steady: -spread-jobs: each job targets one device's thing (%d jobs), so that devices on different nodes never update the same job",
			perDevice*cfg.Devices)
		ids, err := spreadJobs(ctx, cfg, api, run, things, perThing, &registered, &created, &rolled)
		prog.Stop()
		if err != nil {
			return nil, fmt.Errorf("steady setup: %w", err)
		}
		jobIDs = ids
		rep.SetupS["steady jobs"] = seconds(int64(time.Since(setupStart)))
		return steadyConnect(ctx, cfg, t, rep, devices, things, layers, perThing, jobIDs)
	}
	for l := range layers {
		targets, err := api.targetsFor(ctx, things[l], fmt.Sprintf("steady-%s-t%03d", run, l), cfg.APIConcurrency, &registered)
		if err != nil {
			prog.Stop()
			return nil, fmt.Errorf("steady setup: %w", err)
		}
		for j := range perThing {
			id := fmt.Sprintf("steady-%s-t%03d-j%02d", run, l, j)
			if err := api.createJob(ctx, id, targets, benchDocument); err != nil {
				prog.Stop()
				return nil, fmt.Errorf("steady setup: %w", err)
			}
			jobIDs = append(jobIDs, id)
			created.Add(1)
		}
	}
	var doneExecs int64
	for _, id := range jobIDs {
		err := api.waitRolledOut(ctx, id, int64(cfg.Devices), 100*time.Millisecond, func(n int64) { rolled.Store(doneExecs + n) })
		if err != nil {
			prog.Stop()
			return nil, fmt.Errorf("steady setup: %w", err)
		}
		doneExecs += int64(cfg.Devices)
	}
	prog.Stop()
	rep.SetupS["steady jobs"] = seconds(int64(time.Since(setupStart)))
	return steadyConnect(ctx, cfg, t, rep, devices, things, layers, perThing, jobIDs)
}

// spreadJobs creates, for -spread-jobs, each device's jobs for itself:
// every job targets one thing, so no two devices' operations update the
// same job's counts, and returns their ids once each is rolled out.
func spreadJobs(ctx context.Context, cfg *config, api *apiClient, run string, things [][]string, perThing int,
	registered, created, rolled *atomic.Int64) ([]string, error) {
	type job struct{ id, thing string }
	var jobs []job
	for l := range things {
		for i, thing := range things[l] {
			for j := range perThing {
				jobs = append(jobs, job{fmt.Sprintf("steady-%s-t%03d-d%05d-j%02d", run, l, i, j), thing})
			}
		}
		registered.Add(int64(len(things[l])))
	}
	// A thing's jobs are created in order (its queue order); things in
	// parallel.
	err := parallel(ctx, len(jobs)/perThing, cfg.APIConcurrency, func(ctx context.Context, k int) error {
		for _, jb := range jobs[k*perThing : (k+1)*perThing] {
			if err := api.createJob(ctx, jb.id, []string{thingARN(jb.thing)}, benchDocument); err != nil {
				return err
			}
			created.Add(1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, len(jobs), cfg.APIConcurrency, func(ctx context.Context, k int) error {
		if err := api.waitRolledOut(ctx, jobs[k].id, 1, 20*time.Millisecond, func(int64) {}); err != nil {
			return err
		}
		rolled.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(jobs))
	for _, jb := range jobs {
		ids = append(ids, jb.id)
	}
	return ids, nil
}

// steadyConnect connects steady's devices, each working through its
// things, ready for the loop.
func steadyConnect(ctx context.Context, cfg *config, t *target, rep *Report, devices []string, things [][]string,
	layers, perThing int, jobIDs []string) (*loopSetup, error) {
	name := "steady"
	if cfg.Persistent {
		name = "steady persistent"
	}
	var setup func(i int, c *Client) error
	if cfg.NotifyNext {
		// Each device listens for notify-next as each of its things, as a
		// device of AWS IoT Jobs does.
		setup = func(i int, c *Client) error {
			filters := make([]string, layers)
			for l := range layers {
				filters[l] = "$aws/things/" + things[l][i] + "/jobs/notify-next"
			}
			return c.SubscribeAll(ctx, filters, 1)
		}
	}
	clients, err := connectDevices(ctx, cfg, t.mqttAddrs(), name+" connect", devices, setup)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	protos := make([]deviceProto, len(clients))
	for i := range clients {
		mine := make([]string, layers)
		for l := range layers {
			mine[l] = things[l][i]
		}
		protos[i] = newSteadyProto(mine, perThing)
	}
	ls := newLoopSetup(ctx, cfg, name, clients, protos)
	if cfg.Consoles > 0 {
		// Pages of jobs in the middle of the devices' series, which are
		// being worked on while the window runs.
		mid := jobIDs[len(jobIDs)/2/perThing*perThing:]
		con, err := openConsoles(ctx, t.APIURL, consolePages(cfg.Consoles, "/console/", "/console/jobs/"+mid[0], "/console/broker",
			"/console/jobs/"+mid[min(1, len(mid)-1)], "/console/things/"+things[layers/2][0]))
		if err != nil {
			ls.close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		closeDevices := ls.close
		ls.close = func() {
			rep.Console = con.close()
			closeDevices()
		}
	}
	return ls, nil
}

// The states of a steady device.
const (
	stStartNext = iota
	stInProgress
	stSucceeded
)

// steadyProto is a device that works through its jobs: start-next, update
// IN_PROGRESS, update SUCCEEDED, and again; after perThing jobs (or when
// start-next finds nothing) it goes on as its next thing. Each request
// carries a clientToken, and each answer must echo it.
type steadyProto struct {
	things   []string
	layer    int
	perThing int
	done     int // jobs finished as the current thing

	thingPrefix                              string // $aws/things/{thing}/jobs/
	startTopic, startAccepted, startRejected string
	state                                    int
	jobID                                    string
	updTopic, updAccepted, updRejected       string
	seq                                      uint64
	buf                                      []byte
	want                                     []byte // "clientToken":"{seq}"
}

func newSteadyProto(things []string, perThing int) *steadyProto {
	p := &steadyProto{things: things, perThing: perThing, buf: make([]byte, 0, 128), want: make([]byte, 0, 40)}
	p.setThing(0)
	return p
}

func (p *steadyProto) setThing(layer int) {
	p.layer, p.done = layer, 0
	p.thingPrefix = "$aws/things/" + p.things[layer] + "/jobs/"
	p.startTopic = p.thingPrefix + "start-next"
	p.startAccepted = p.startTopic + "/accepted"
	p.startRejected = p.startTopic + "/rejected"
}

func (p *steadyProto) request() (string, []byte) {
	p.seq++
	p.buf = p.buf[:0]
	var topic string
	switch p.state {
	case stStartNext:
		topic = p.startTopic
		p.buf = append(p.buf, `{"statusDetails":{"step":"download"},"clientToken":"`...)
	case stInProgress:
		topic = p.updTopic
		p.buf = append(p.buf, `{"status":"IN_PROGRESS","statusDetails":{"step":"install","progress":"50"},"clientToken":"`...)
	default:
		topic = p.updTopic
		p.buf = append(p.buf, `{"status":"SUCCEEDED","statusDetails":{"step":"done","progress":"100"},"clientToken":"`...)
	}
	p.buf = strconv.AppendUint(p.buf, p.seq, 10)
	p.buf = append(p.buf, `"}`...)
	p.want = strconv.AppendUint(append(p.want[:0], `"clientToken":"`...), p.seq, 10)
	p.want = append(p.want, '"')
	return topic, p.buf
}

func (p *steadyProto) reply(m *packets.Packet) outcome {
	accepted, rejected := p.startAccepted, p.startRejected
	if p.state != stStartNext {
		accepted, rejected = p.updAccepted, p.updRejected
	}
	switch m.TopicName {
	case accepted:
	case rejected:
		p.state = stStartNext // start over: start-next returns the execution in progress
		return outRejected
	default:
		return outIgnore
	}
	if !bytes.Contains(m.Payload, p.want) {
		p.state = stStartNext
		return outInvalid
	}
	switch p.state {
	case stStartNext:
		if !bytes.HasPrefix(m.Payload, []byte(`{"execution":`)) {
			// Nothing pending as this thing: go on as the next one.
			if p.layer+1 >= len(p.things) {
				return outExhausted
			}
			p.setThing(p.layer + 1)
			return outAccepted
		}
		id, ok := jsonString(m.Payload, "jobId")
		if !ok {
			return outInvalid
		}
		if string(id) != p.jobID {
			p.jobID = string(id)
			p.updTopic = p.thingPrefix + p.jobID + "/update"
			p.updAccepted = p.updTopic + "/accepted"
			p.updRejected = p.updTopic + "/rejected"
		}
		p.state = stInProgress
		return outAccepted
	case stInProgress:
		p.state = stSucceeded
		return outAccepted
	default:
		p.state = stStartNext
		if p.done++; p.done == p.perThing {
			if p.layer+1 >= len(p.things) {
				return outExhausted
			}
			p.setThing(p.layer + 1)
		}
		return outCycle
	}
}

// jsonString returns the value of the first "key":"value" pair in a JSON
// text whose values need no unescaping (job ids, thing names).
func jsonString(data []byte, key string) ([]byte, bool) {
	pat := make([]byte, 0, len(key)+4)
	pat = append(append(append(pat, '"'), key...), `":"`...)
	i := bytes.Index(data, pat)
	if i < 0 {
		return nil, false
	}
	rest := data[i+len(pat):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}
