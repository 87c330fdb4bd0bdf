package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// The chaos test: 200 devices work through several jobs over MQTT while the
// broker is killed with SIGKILL at random moments and restarted on the same
// data directory (on new ports, with its clock moved on so that step timers
// armed before the kill fire).
const (
	chaosThings = 200
	chaosKills  = 8
	// chaosSeedEnv replays a run: the seed decides every device's outcome
	// per execution, the kill points and the downtimes.
	chaosSeedEnv = "JOBSBROKER_CHAOS_SEED"
)

// chaosJob is one job of the run.
type chaosJob struct {
	id      string
	targets func(i int) bool
	retry   *iottypes.JobExecutionsRetryConfig
	// timed: devices arm a one-minute step timer with their first progress
	// update, and every restart moves the broker's clock two minutes on,
	// so an execution caught IN_PROGRESS by a kill may end TIMED_OUT.
	timed bool
}

func retryCriteria(c ...iottypes.RetryCriteria) *iottypes.JobExecutionsRetryConfig {
	return &iottypes.JobExecutionsRetryConfig{CriteriaList: c}
}

var chaosJobs = []chaosJob{
	{id: "chaos-a", targets: func(int) bool { return true },
		retry: retryCriteria(iottypes.RetryCriteria{FailureType: iottypes.RetryableFailureTypeFailed, NumberOfRetries: aws.Int32(2)})},
	{id: "chaos-b", targets: func(i int) bool { return i%2 == 0 }},
	{id: "chaos-c", targets: func(int) bool { return true },
		retry: retryCriteria(iottypes.RetryCriteria{FailureType: iottypes.RetryableFailureTypeAll, NumberOfRetries: aws.Int32(1)})},
	{id: "chaos-t", targets: func(i int) bool { return i%4 == 1 }, timed: true,
		retry: retryCriteria(
			iottypes.RetryCriteria{FailureType: iottypes.RetryableFailureTypeTimedOut, NumberOfRetries: aws.Int32(1)},
			iottypes.RetryCriteria{FailureType: iottypes.RetryableFailureTypeFailed, NumberOfRetries: aws.Int32(1)})},
	{id: "chaos-d", targets: func(i int) bool { return i%3 != 0 },
		retry: retryCriteria(iottypes.RetryCriteria{FailureType: iottypes.RetryableFailureTypeFailed, NumberOfRetries: aws.Int32(1)})},
}

func chaosJobByID(id string) *chaosJob {
	for i := range chaosJobs {
		if chaosJobs[i].id == id {
			return &chaosJobs[i]
		}
	}
	return nil
}

func chaosThing(i int) string { return fmt.Sprintf("chaos-%03d", i) }

// chaosPlan is what a device does with one execution: how many IN_PROGRESS
// progress updates it sends, and the terminal status it reports. It depends
// only on the seed and the execution, so the final state of every
// execution a device finished is known in advance.
type chaosPlan struct {
	progress int
	final    string
}

func planFor(seed int64, job, thing string, exec int64) chaosPlan {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%s/%d", seed, job, thing, exec)
	x := h.Sum64()
	p := chaosPlan{progress: 1 + int(x>>32)%3, final: "SUCCEEDED"}
	switch r := x % 100; {
	case r >= 92:
		p.final = "REJECTED"
	case r >= 55:
		p.final = "FAILED"
	}
	if chaosJobByID(job).timed {
		p.progress = 1 // the step timer is armed by the only progress update
	}
	return p
}

// Every request of the plan bumps the version by one: QUEUED at 1,
// start-next, the progress updates, the terminal update. A step timer
// firing replaces the terminal update.
func (p chaosPlan) finalVersion() int64 { return int64(3 + p.progress) }

// Device status details, so that a state in a rejection can be told apart
// from the device's own earlier request.
func progressDetails(p, n int) map[string]string {
	return map[string]string{"progress": fmt.Sprintf("%d/%d", p, n)}
}

func finalDetails(status string, exec int64) map[string]string {
	return map[string]string{"result": status, "exec": strconv.FormatInt(exec, 10)}
}

// retryAllowed mirrors PROTOCOL.md §9.4 for the configurations above:
// a criterion for the failure type limits the retries of that type,
// otherwise an ALL criterion limits all of them.
func retryAllowed(cfg *iottypes.JobExecutionsRetryConfig, status string, attempt, failedRetries, timedOutRetries int) bool {
	if cfg == nil || (status != "FAILED" && status != "TIMED_OUT") {
		return false
	}
	typed, all := -1, -1
	for _, c := range cfg.CriteriaList {
		switch string(c.FailureType) {
		case status:
			typed = int(aws.ToInt32(c.NumberOfRetries))
		case "ALL":
			all = int(aws.ToInt32(c.NumberOfRetries))
		}
	}
	switch {
	case typed >= 0 && status == "FAILED":
		return failedRetries < typed
	case typed >= 0:
		return timedOutRetries < typed
	case all >= 0:
		return attempt < all
	}
	return false
}

// chaosAck is an accepted reply a device received.
type chaosAck struct {
	job     string
	exec    int64
	status  string
	version int64
}

// chaosBroker tells devices where the broker currently listens.
type chaosBroker struct {
	mu   sync.Mutex
	addr string
}

func (b *chaosBroker) get() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

func (b *chaosBroker) set(addr string) {
	b.mu.Lock()
	b.addr = addr
	b.mu.Unlock()
}

// chaosDevice is one simulated device.
type chaosDevice struct {
	thing    string
	seed     int64
	broker   *chaosBroker
	accepted *atomic.Int64 // all devices' accepted replies, for the kill schedule
	rng      *rand.Rand

	conn   *chaosConn
	reqSeq int

	acks        []chaosAck // in the order received
	problems    []string
	done        bool
	reconnects  int
	resent      int // requests sent again after a lost connection
	lostReplies int // rejections explained by an earlier attempt that was applied
	timedOut    int // executions a step timer ended under the device
	throttled   int // requests answered RequestThrottled
}

func (d *chaosDevice) problem(format string, args ...any) {
	d.problems = append(d.problems, d.thing+": "+fmt.Sprintf(format, args...))
}

// connect dials the broker's current address until it answers, with
// exponential backoff (the broker may be down, or up on new ports).
func (d *chaosDevice) connect(ctx context.Context) bool {
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		c, err := chaosDial(d.broker.get(), d.thing, 3*time.Second)
		if err == nil {
			d.conn = c
			d.reconnects++
			return true
		}
		sleep := backoff/2 + time.Duration(d.rng.Int63n(int64(backoff)))
		select {
		case <-ctx.Done():
		case <-time.After(sleep):
		}
		backoff = min(2*backoff, 400*time.Millisecond)
	}
	return false
}

// send makes one request until it is answered, reconnecting and sending it
// again (with a new clientToken) whenever the connection dies first. It
// returns the reply and how many times the request was published: any
// publish may have been applied even though its reply was lost. A request
// answered RequestThrottled ran nothing; it is sent again after a pause.
func (d *chaosDevice) send(ctx context.Context, topic string, body map[string]any) (chaosReply, int, bool) {
	d.reqSeq++
	prefix := fmt.Sprintf("%s/%d/", d.thing, d.reqSeq)
	for attempt := 1; ; attempt++ {
		if d.conn == nil && !d.connect(ctx) {
			return chaosReply{}, attempt - 1, false
		}
		r, err := d.conn.request(ctx, topic, prefix+strconv.Itoa(attempt), body, 20*time.Second)
		if err == nil && !r.Accepted && r.Body["code"] == "RequestThrottled" {
			// Over the thing's request rate: nothing ran; try again later.
			d.throttled++
			select {
			case <-ctx.Done():
				return chaosReply{}, attempt, false
			case <-time.After(20*time.Millisecond + time.Duration(d.rng.Int63n(int64(50*time.Millisecond)))):
			}
			continue
		}
		if err == nil {
			return r, attempt, true
		}
		d.conn.close()
		d.conn = nil
		if ctx.Err() != nil {
			return chaosReply{}, attempt, false
		}
		d.resent++
	}
}

// run works through the thing's jobs until start-next finds nothing.
func (d *chaosDevice) run(ctx context.Context) {
	defer func() {
		if d.conn != nil {
			d.conn.close()
		}
	}()
	base := "$aws/things/" + d.thing + "/jobs/"
	for {
		r, _, ok := d.send(ctx, base+"start-next", map[string]any{"statusDetails": map[string]string{"by": "start-next"}})
		if !ok {
			return
		}
		if !r.Accepted {
			d.problem("start-next rejected: %s", r.Raw)
			return
		}
		if _, has := r.Body["execution"]; !has {
			d.done = true
			return
		}
		exMap, _ := r.Body["execution"].(map[string]any)
		job, _ := exMap["jobId"].(string)
		ex, ok := stateFrom(exMap)
		if !ok || chaosJobByID(job) == nil {
			d.problem("start-next returned %s", r.Raw)
			return
		}
		// start-next returns an IN_PROGRESS execution as it is; the device
		// only asks once its previous execution has ended, so the one it
		// gets is always just started.
		if ex.Status != "IN_PROGRESS" || ex.Version != 2 || ex.ExecutionNumber < 1 {
			d.problem("start-next returned %s (want IN_PROGRESS at version 2)", r.Raw)
			return
		}
		d.ack(chaosAck{job, ex.ExecutionNumber, ex.Status, ex.Version})
		if !d.work(ctx, base, job, ex.ExecutionNumber) {
			return
		}
	}
}

func (d *chaosDevice) ack(a chaosAck) {
	d.acks = append(d.acks, a)
	d.accepted.Add(1)
}

// work sends an execution's progress updates and its terminal update. It
// returns false when the device has to stop.
func (d *chaosDevice) work(ctx context.Context, base, job string, exec int64) bool {
	plan := planFor(d.seed, job, d.thing, exec)
	timed := chaosJobByID(job).timed
	version := int64(2)
	timerArmed := false
	for p := 1; p <= plan.progress+1; p++ {
		status, details := "IN_PROGRESS", progressDetails(p, plan.progress)
		if p > plan.progress {
			status, details = plan.final, finalDetails(plan.final, exec)
		}
		body := map[string]any{
			"status": status, "statusDetails": details, "expectedVersion": version,
			"executionNumber": exec, "includeJobExecutionState": true,
		}
		arms := timed && p == 1
		if arms {
			body["stepTimeoutInMinutes"] = 1
		}
		topic := base + job + "/update"
		r, attempts, ok := d.send(ctx, topic, body)
		if !ok {
			return false
		}
		st, hasState := stateFrom(r.Body["executionState"])
		if r.Accepted {
			if !hasState || st.Status != status || st.Version != version+1 || !sameDetails(st.Details, details) {
				d.problem("%s: update to %s at version %d accepted with %s", job, status, version, r.Raw)
				return false
			}
			d.ack(chaosAck{job, exec, st.Status, st.Version})
			version++
			timerArmed = timerArmed || arms
			continue
		}
		code, _ := r.Body["code"].(string)
		conflict := code == "VersionMismatch" || code == "InvalidStateTransition"
		switch {
		case conflict && hasState && attempts > 1 && st.Status == status && st.Version == version+1 && sameDetails(st.Details, details):
			// An earlier attempt was applied and its reply lost with the
			// broker: the execution is exactly what this request makes it.
			d.lostReplies++
			version++
			timerArmed = timerArmed || arms
		case conflict && hasState && timed && st.Status == "TIMED_OUT" &&
			((timerArmed && st.Version == version+1) || (arms && attempts > 1 && st.Version == version+2)):
			// The step timer armed by this execution's progress update
			// fired when the broker came back with its clock moved on.
			d.timedOut++
			return true
		default:
			d.problem("%s exec %d: update to %s at version %d (attempt %d) rejected, and no lost reply explains it: %s",
				job, exec, status, version, attempts, r.Raw)
			return false
		}
	}
	return true
}

// TestChaosSIGKILL runs 200 devices through five jobs while the broker is
// killed with SIGKILL eight times at random moments and restarted
// on the same data directory. It then checks, through the control plane
// and the data plane of the last broker, that every accepted reply is in
// the store, that versions only grew, that no execution is in a state the
// state machine cannot produce, that each execution ended exactly as its
// device's deterministic plan says, and that the jobs' counts match their
// executions. Set JOBSBROKER_CHAOS_SEED to replay a run.
func TestChaosSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary with 200 devices")
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv(chaosSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", chaosSeedEnv, s, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, chaosSeedEnv, seed)
	rng := rand.New(rand.NewSource(seed))

	dir := t.TempDir()
	ctx := context.Background()
	p := brokertest.StartProcess(t, dir)
	api := brokertest.IoTClient(p.APIURL())
	for _, j := range chaosJobs {
		var targets []string
		for i := range chaosThings {
			if j.targets(i) {
				targets = append(targets, brokertest.ThingARN(chaosThing(i)))
			}
		}
		if _, err := api.CreateJob(ctx, &iot.CreateJobInput{
			JobId: aws.String(j.id), Targets: targets, Document: aws.String(`{"operation":"` + j.id + `"}`),
			JobExecutionsRetryConfig: j.retry,
		}); err != nil {
			t.Fatalf("create %s: %v", j.id, err)
		}
	}

	// Kill when the devices have received these shares of the accepted
	// replies the run should produce (about, as retries of the timed job
	// and lost replies make the total vary).
	expected := 0
	for i := range chaosThings {
		for _, j := range chaosJobs {
			if j.targets(i) {
				for _, plan := range expectedPlans(seed, &j, chaosThing(i)) {
					expected += 2 + plan.progress
				}
			}
		}
	}
	var killAt []int64
	for k := range chaosKills {
		f := 0.05 + 0.1*float64(k) + 0.07*rng.Float64()
		killAt = append(killAt, int64(f*float64(expected)))
	}
	t.Logf("about %d accepted replies expected; kills after %v", expected, killAt)

	ref := &chaosBroker{addr: p.MQTTAddr}
	var accepted atomic.Int64
	devices := make([]*chaosDevice, chaosThings)
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var finished atomic.Int32
	defer func() {
		cancel()
		wg.Wait()
	}()
	for i := range devices {
		d := &chaosDevice{thing: chaosThing(i), seed: seed, broker: ref, accepted: &accepted,
			rng: rand.New(rand.NewSource(seed + int64(i) + 1))}
		devices[i] = d
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer finished.Add(1)
			d.run(runCtx)
		}()
	}

	start := time.Now()
	for k, at := range killAt {
		pollFor(t, 60*time.Second, fmt.Sprintf("kill %d: %d accepted replies", k+1, at), func() error {
			if n := accepted.Load(); n < at {
				if finished.Load() == chaosThings {
					return fmt.Errorf("the devices finished with only %d accepted replies", n)
				}
				return fmt.Errorf("%d so far", n)
			}
			return nil
		})
		time.Sleep(time.Duration(rng.Int63n(int64(20 * time.Millisecond))))
		p.Kill()
		t.Logf("kill %d at %v after %d accepted replies", k+1, time.Since(start).Round(time.Millisecond), accepted.Load())
		time.Sleep(time.Duration(rng.Int63n(int64(300 * time.Millisecond))))
		// Two minutes later by the broker's clock: step timers armed
		// before the kill have expired.
		p = brokertest.StartProcess(t, dir, "-debug-clock-offset", strconv.Itoa(2*(k+1))+"m")
		ref.set(p.MQTTAddr)
	}
	pollFor(t, 90*time.Second, "devices finished", func() error {
		if n := finished.Load(); n < chaosThings {
			return fmt.Errorf("%d of %d finished", n, chaosThings)
		}
		return nil
	})
	cancel()
	wg.Wait()
	t.Logf("devices finished %v after the start", time.Since(start).Round(time.Millisecond))

	var acks, reconnects, resent, lost, timedOut, throttled int
	for _, d := range devices {
		for _, pr := range d.problems {
			t.Error(pr)
		}
		if !d.done && len(d.problems) == 0 {
			t.Errorf("%s did not finish", d.thing)
		}
		acks += len(d.acks)
		reconnects += d.reconnects
		resent += d.resent
		lost += d.lostReplies
		timedOut += d.timedOut
		throttled += d.throttled
	}
	t.Logf("%d accepted replies, %d connections, %d requests sent again, %d replies lost with the broker, %d executions timed out under their device, %d requests throttled",
		acks, reconnects, resent, lost, timedOut, throttled)
	// Every kill drops every connected device.
	if reconnects < chaosThings+chaosKills {
		t.Errorf("only %d connections for %d devices and %d kills: the kills did not hit the devices", reconnects, chaosThings, chaosKills)
	}
	checkChaosFinal(t, p, seed, devices)
	// The broker that survived the kills still stops cleanly.
	if code := p.Terminate(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// expectedPlans lists the executions a thing goes through for job when no
// timer intervenes: its retries follow from the plans' terminal statuses.
func expectedPlans(seed int64, j *chaosJob, thing string) []chaosPlan {
	var plans []chaosPlan
	failed := 0
	for exec := int64(1); ; exec++ {
		plan := planFor(seed, j.id, thing, exec)
		plans = append(plans, plan)
		if !retryAllowed(j.retry, plan.final, int(exec-1), failed, 0) {
			return plans
		}
		failed++
	}
}

// chaosExec is an execution as the final broker reports it.
type chaosExec struct {
	thing, job    string
	exec          int64
	status        string
	version       int64
	details       map[string]string
	queued        time.Time
	started       *time.Time
	updated       time.Time
	secondsBefore *int64
	retryAttempt  int32
}

// checkChaosFinal checks the invariants against the final broker.
func checkChaosFinal(t *testing.T, p *brokertest.Process, seed int64, devices []*chaosDevice) {
	ctx := context.Background()
	api := brokertest.IoTClient(p.APIURL())
	httpc := &http.Client{Timeout: 10 * time.Second}
	final := map[string]*chaosExec{} // by thing/job/exec
	key := func(thing, job string, exec int64) string { return fmt.Sprintf("%s/%s/%d", thing, job, exec) }
	terminal := map[string]bool{"SUCCEEDED": true, "FAILED": true, "TIMED_OUT": true, "REJECTED": true, "REMOVED": true, "CANCELED": true}
	known := map[string]bool{"QUEUED": true, "IN_PROGRESS": true}
	for s := range terminal {
		known[s] = true
	}

	for _, j := range chaosJobs {
		// Every execution of the job, a page at a time.
		byThing := map[string][]*chaosExec{}
		var next *string
		pages := 0
		for {
			out, err := api.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String(j.id), MaxResults: aws.Int32(37), NextToken: next})
			if err != nil {
				t.Fatalf("list executions of %s: %v", j.id, err)
			}
			pages++
			for _, s := range out.ExecutionSummaries {
				thing := aws.ToString(s.ThingArn)
				thing = thing[strings.LastIndex(thing, "/")+1:]
				sum := s.JobExecutionSummary
				e := &chaosExec{thing: thing, job: j.id, exec: aws.ToInt64(sum.ExecutionNumber), status: string(sum.Status),
					retryAttempt: aws.ToInt32(sum.RetryAttempt)}
				byThing[thing] = append(byThing[thing], e)
			}
			if next = out.NextToken; next == nil {
				break
			}
		}
		if pages < 2 {
			t.Errorf("%s: ListJobExecutionsForJob answered in %d page(s) of 37; paging not exercised", j.id, pages)
		}

		job, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String(j.id)})
		if err != nil {
			t.Fatalf("describe %s: %v", j.id, err)
		}
		latest := map[string]int32{}
		for i := range chaosThings {
			thing := chaosThing(i)
			execs := byThing[thing]
			if !j.targets(i) {
				if len(execs) > 0 {
					t.Errorf("%s: %s is not a target but has %d executions", j.id, thing, len(execs))
				}
				continue
			}
			sort.Slice(execs, func(a, b int) bool { return execs[a].exec < execs[b].exec })
			if len(execs) == 0 {
				t.Errorf("%s: target %s has no execution", j.id, thing)
				continue
			}
			failed, timedOut := 0, 0
			for n, e := range execs {
				if e.exec != int64(n+1) {
					t.Errorf("%s/%s: execution numbers %v are not 1..%d", j.id, thing, execNumbers(execs), len(execs))
					break
				}
				if int(e.retryAttempt) != n {
					t.Errorf("%s/%s exec %d: retryAttempt %d, want %d", j.id, thing, e.exec, e.retryAttempt, n)
				}
				describeChaosExec(t, api, httpc, p, e)
				final[key(thing, j.id, e.exec)] = e
				checkChaosExec(t, seed, &j, e, terminal, known)
				// Retries: every execution but the last ended in a failure
				// the job's retry configuration retries; the last one in
				// a status it does not.
				allowed := retryAllowed(j.retry, e.status, n, failed, timedOut)
				if last := n == len(execs)-1; allowed == last && terminal[e.status] {
					t.Errorf("%s/%s exec %d ended %s (retries so far: %d failed, %d timed out) but it is %s execution of %d",
						j.id, thing, e.exec, e.status, failed, timedOut, map[bool]string{true: "the last", false: "not the last"}[last], len(execs))
				}
				if e.status == "FAILED" {
					failed++
				}
				if e.status == "TIMED_OUT" {
					timedOut++
				}
			}
			if !j.timed {
				if want := expectedPlans(seed, &j, thing); len(want) != len(execs) {
					t.Errorf("%s/%s: %d executions, the plan makes %d", j.id, thing, len(execs), len(want))
				}
			}
			// The job counts each thing by its latest execution.
			latest[execs[len(execs)-1].status]++
		}
		pd := job.Job.JobProcessDetails
		got := map[string]int32{
			"QUEUED": aws.ToInt32(pd.NumberOfQueuedThings), "IN_PROGRESS": aws.ToInt32(pd.NumberOfInProgressThings),
			"SUCCEEDED": aws.ToInt32(pd.NumberOfSucceededThings), "FAILED": aws.ToInt32(pd.NumberOfFailedThings),
			"REJECTED": aws.ToInt32(pd.NumberOfRejectedThings), "TIMED_OUT": aws.ToInt32(pd.NumberOfTimedOutThings),
			"REMOVED": aws.ToInt32(pd.NumberOfRemovedThings), "CANCELED": aws.ToInt32(pd.NumberOfCanceledThings),
		}
		for s := range known {
			if got[s] != latest[s] {
				t.Errorf("%s: jobProcessDetails has %d %s things, its executions %d (details %v, executions %v)", j.id, got[s], s, latest[s], got, latest)
				break
			}
		}
		if job.Job.Status != iottypes.JobStatusCompleted {
			t.Errorf("%s is %s after every device finished, want COMPLETED", j.id, job.Job.Status)
		}
	}

	// Every accepted reply is in the store, and versions only grew.
	for _, d := range devices {
		seen := map[string]int64{}
		for _, a := range d.acks {
			k := key(d.thing, a.job, a.exec)
			e := final[k]
			if e == nil {
				t.Errorf("%s: accepted %s at version %d, but the execution does not exist", k, a.status, a.version)
				continue
			}
			if prev, ok := seen[k]; ok && a.version <= prev {
				t.Errorf("%s: accepted version %d after version %d", k, a.version, prev)
			}
			seen[k] = a.version
			if a.version > e.version {
				t.Errorf("%s: accepted %s at version %d, the store has %s at version %d", k, a.status, a.version, e.status, e.version)
			}
			switch {
			case terminal[a.status] && (e.status != a.status || e.version != a.version):
				t.Errorf("%s: accepted %s at version %d, the store has %s at version %d: a terminal execution changed", k, a.status, a.version, e.status, e.version)
			case a.status == "IN_PROGRESS" && e.status == "QUEUED":
				t.Errorf("%s: accepted IN_PROGRESS at version %d, the store has it QUEUED", k, a.version)
			}
		}
	}

	// Nothing is pending any more, as the data plane sees it.
	for i := range chaosThings {
		code, _, body, err := httpJSON(httpc, http.MethodGet, "http://"+p.JobsAddr+"/things/"+chaosThing(i)+"/jobs", nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GetPendingJobExecutions %s: %d %v %v", chaosThing(i), code, body, err)
		}
		if q, ip := body["queuedJobs"].([]any), body["inProgressJobs"].([]any); len(q)+len(ip) != 0 {
			t.Errorf("%s still has pending executions: %v", chaosThing(i), body)
		}
	}
}

func execNumbers(execs []*chaosExec) []int64 {
	var out []int64
	for _, e := range execs {
		out = append(out, e.exec)
	}
	return out
}

// describeChaosExec reads one execution through the control plane and the
// data plane, and checks that the two agree.
func describeChaosExec(t *testing.T, api *iot.Client, httpc *http.Client, p *brokertest.Process, e *chaosExec) {
	out, err := api.DescribeJobExecution(context.Background(), &iot.DescribeJobExecutionInput{
		JobId: aws.String(e.job), ThingName: aws.String(e.thing), ExecutionNumber: aws.Int64(e.exec)})
	if err != nil {
		t.Fatalf("describe %s/%s exec %d: %v", e.job, e.thing, e.exec, err)
	}
	x := out.Execution
	if string(x.Status) != e.status || aws.ToInt64(x.ExecutionNumber) != e.exec {
		t.Errorf("%s/%s exec %d: listed %s, described %s exec %d", e.job, e.thing, e.exec, e.status, x.Status, aws.ToInt64(x.ExecutionNumber))
	}
	e.version = x.VersionNumber
	e.queued = aws.ToTime(x.QueuedAt)
	e.started = x.StartedAt
	e.updated = aws.ToTime(x.LastUpdatedAt)
	e.secondsBefore = x.ApproximateSecondsBeforeTimedOut
	e.details = map[string]string{}
	if x.StatusDetails != nil {
		e.details = x.StatusDetails.DetailsMap
	}

	url := fmt.Sprintf("http://%s/things/%s/jobs/%s?executionNumber=%d&includeJobDocument=false", p.JobsAddr, e.thing, e.job, e.exec)
	code, _, body, err := httpJSON(httpc, http.MethodGet, url, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("data-plane describe %s/%s exec %d: %d %v %v", e.job, e.thing, e.exec, code, body, err)
	}
	dp, ok := stateFrom(body["execution"])
	if !ok || dp.Status != e.status || dp.Version != e.version || dp.ExecutionNumber != e.exec || !sameDetails(dp.Details, e.details) {
		t.Errorf("%s/%s exec %d: control plane says %s v%d %v, data plane %v", e.job, e.thing, e.exec, e.status, e.version, e.details, body["execution"])
	}
}

// checkChaosExec checks one final execution against the state machine
// (PROTOCOL.md §8) and the device's plan.
func checkChaosExec(t *testing.T, seed int64, j *chaosJob, e *chaosExec, terminal, known map[string]bool) {
	where := fmt.Sprintf("%s/%s exec %d (%s v%d %v)", j.id, e.thing, e.exec, e.status, e.version, e.details)
	switch {
	case !known[e.status]:
		t.Errorf("%s: status not in the AWS enum", where)
		return
	case e.version < 1:
		t.Errorf("%s: versionNumber below 1", where)
	case e.status == "QUEUED" && (e.version != 1 || e.started != nil):
		t.Errorf("%s: a QUEUED execution has version 1 and no startedAt (startedAt %v)", where, e.started)
	case e.status == "IN_PROGRESS" && e.started == nil:
		t.Errorf("%s: IN_PROGRESS without startedAt", where)
	case terminal[e.status] && e.secondsBefore != nil:
		t.Errorf("%s: a terminal execution reports approximateSecondsBeforeTimedOut %d", where, *e.secondsBefore)
	case e.started != nil && (e.started.Before(e.queued) || e.updated.Before(*e.started)):
		t.Errorf("%s: queuedAt %v, startedAt %v, lastUpdatedAt %v out of order", where, e.queued, *e.started, e.updated)
	}
	if !terminal[e.status] {
		t.Errorf("%s: still pending after its device finished", where)
		return
	}
	// Every execution was started by start-next and ended by its device's
	// planned terminal update, or (timed job only) by its step timer.
	plan := planFor(seed, j.id, e.thing, e.exec)
	switch {
	case e.started == nil:
		t.Errorf("%s: never started", where)
	case e.status == "TIMED_OUT" && !j.timed:
		t.Errorf("%s: timed out, but no timer was armed", where)
	case e.status == "TIMED_OUT" && !sameDetails(e.details, progressDetails(1, 1)):
		t.Errorf("%s: timed out with details other than its progress update's", where)
	case e.status != "TIMED_OUT" && (e.status != plan.final || !sameDetails(e.details, finalDetails(plan.final, e.exec))):
		t.Errorf("%s: the device's plan ends it %s with %v", where, plan.final, finalDetails(plan.final, e.exec))
	case e.version != plan.finalVersion():
		t.Errorf("%s: version %d after %d requests of the plan, want %d", where, e.version, plan.progress+2, plan.finalVersion())
	}
}
