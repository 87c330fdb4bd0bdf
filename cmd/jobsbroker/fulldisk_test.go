//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// TestFullDiskKeepsReads checks, with the real binary, what the broker
// promises when its store cannot write: a write is answered InternalError
// over MQTT and ServiceUnavailableException (503) over HTTP, nothing the
// failed request tried to change is visible, and no acknowledged change
// is ever lost.
//
//   - ENOSPC, a full disk: the data directory is on a 64 MB tmpfs (mounted
//     in a user and mount namespace of its own, so no root is needed where
//     unprivileged user namespaces are allowed), filled up by a ballast
//     file. The broker runs with -min-free-bytes 16 MiB, so it refuses
//     writes before Badger's memory-mapped files run out of blocks; reads
//     (GetPendingJobExecutions over MQTT, DescribeJobExecution over HTTP,
//     DescribeJob, /healthz) go on, and writes resume by themselves once
//     the ballast is gone.
//   - ENOSPC without the guard (-min-free-bytes -1): the same, and the
//     broker must not die either. Badger writes through memory maps of
//     sparse files, and a write to a page the full filesystem cannot back
//     is SIGBUS; the store keeps the free space one commit and one
//     memtable flush need whatever the setting says. Before that floor,
//     the first write on the full disk killed the broker in
//     badger.(*logFile).writeEntry.
//   - EFBIG, a store error: the running broker's RLIMIT_FSIZE is lowered to
//     1 MiB with prlimit(2) (the Go runtime ignores SIGXFSZ), so Badger
//     fails to create its next memtable. That leaves Badger unable to read
//     or write: the broker fails stop, answering every request
//     InternalError / 503 while /healthz says alive and /readyz unready,
//     and a restart finds every acknowledged change.
func TestFullDiskKeepsReads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	t.Run("ENOSPC", func(t *testing.T) { runFullDisk(t, tmpfsFault(t)) })
	t.Run("ENOSPC-unguarded", func(t *testing.T) {
		f := tmpfsFault(t)
		f.args = []string{"-min-free-bytes", "-1"}
		runFullDisk(t, f)
	})
	t.Run("EFBIG", func(t *testing.T) { runFullDisk(t, fileSizeFault(t)) })
}

// diskFault is a way of making the broker's writes fail.
type diskFault struct {
	// stays says whether the fault outlives the broker process (a full
	// filesystem does, a process's resource limit does not).
	stays bool
	// failStop says the store cannot serve at all after the fault, until
	// a restart; otherwise reads go on and writes resume in place.
	failStop bool
	args     []string // broker flags for this fault
	dataDir  string   // the data directory as the broker sees it
	hostDir  string   // the same directory as the test sees it
	prefix   []string // runs the broker where dataDir is
	fill     func(t *testing.T, b *diskBroker)
	free     func(t *testing.T, b *diskBroker)
}

// tmpfsFault mounts a 64 MB tmpfs in a new user and mount namespace, kept
// alive by a holder process; the broker runs in that namespace (nsenter)
// and the test reaches the filesystem through /proc/<holder>/root. The
// holder waits on a pipe from the test, so it goes away with the test
// process even if that dies without cleaning up.
func tmpfsFault(t *testing.T) *diskFault {
	for _, tool := range []string{"unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux) to mount a small filesystem: %v", tool, err)
		}
	}
	mnt := t.TempDir()
	holder := exec.Command("unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
		`mount -t tmpfs -o size=64m jobsbroker-fulldisk "$0" && echo mounted && read -r _`, mnt)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	holder.Stderr = &stderr
	if err := holder.Start(); err != nil {
		t.Skipf("cannot run unshare to mount a small filesystem: %v", err)
	}
	t.Cleanup(func() {
		holder.Process.Kill()
		holder.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "mounted" {
			holder.Process.Kill()
			holder.Wait()
			t.Skipf("cannot mount a tmpfs in a new user and mount namespace (unprivileged user namespaces disabled, or a seccomp profile forbids them): %s", strings.TrimSpace(stderr.String()))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("unshare did not mount the tmpfs in 10s: %s", stderr.String())
	}
	pid := strconv.Itoa(holder.Process.Pid)
	ballast := filepath.Join("/proc", pid, "root", mnt, "ballast")
	return &diskFault{
		stays:   true,
		args:    []string{"-min-free-bytes", strconv.Itoa(16 << 20)},
		dataDir: filepath.Join(mnt, "data"),
		hostDir: filepath.Join("/proc", pid, "root", mnt, "data"),
		prefix:  []string{"nsenter", "--preserve-credentials", "--target", pid, "--user", "--mount", "--"},
		fill: func(t *testing.T, _ *diskBroker) {
			f, err := os.Create(ballast)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, size := range []int{1 << 20, 4 << 10} {
				buf := make([]byte, size)
				for {
					if _, err = f.Write(buf); err != nil {
						break
					}
				}
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the tmpfs: %v, want ENOSPC", err)
				}
			}
			var st syscall.Statfs_t
			if err := syscall.Statfs(filepath.Dir(ballast), &st); err != nil || st.Bavail != 0 {
				t.Fatalf("the tmpfs is not full: %d blocks free (%v)", st.Bavail, err)
			}
		},
		free: func(t *testing.T, _ *diskBroker) {
			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// fileSizeFault lowers the running broker's file-size limit.
func fileSizeFault(t *testing.T) *diskFault {
	dir := filepath.Join(t.TempDir(), "data")
	var old syscall.Rlimit
	return &diskFault{
		failStop: true,
		dataDir:  dir,
		hostDir:  dir,
		fill: func(t *testing.T, b *diskBroker) {
			if err := prlimit(b.cmd.Process.Pid, syscall.RLIMIT_FSIZE, nil, &old); err != nil {
				t.Fatalf("read the broker's RLIMIT_FSIZE: %v", err)
			}
			if err := prlimit(b.cmd.Process.Pid, syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 20, Max: old.Max}, nil); err != nil {
				t.Skipf("cannot lower the broker's RLIMIT_FSIZE: %v", err)
			}
		},
		free: func(t *testing.T, b *diskBroker) {
			if b.dead(0) {
				return
			}
			if err := prlimit(b.cmd.Process.Pid, syscall.RLIMIT_FSIZE, &old, nil); err != nil {
				t.Fatalf("restore the broker's RLIMIT_FSIZE: %v", err)
			}
		},
	}
}

// prlimit is prlimit(2): get and/or set a resource limit of process pid.
func prlimit(pid, resource int, set, get *syscall.Rlimit) error {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(resource),
		uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(get)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// diskRun is one run of the full-disk scenario.
type diskRun struct {
	t      *testing.T
	f      *diskFault
	b      *diskBroker
	mq     *chaosConn
	httpc  *http.Client
	ctx    context.Context
	tokens int
	// acked is each device's execution as its last acknowledged request
	// left it; maybe is what an unanswered request would have made it.
	acked map[string]chaosState
	maybe map[string]*chaosState
}

const (
	diskJob     = "disk-1"
	diskJob2    = "disk-2"
	diskMQTT    = "disk-mqtt"
	diskHTTP    = "disk-http"
	diskIdle    = "disk-idle"
	diskUpdates = 2000 // enough to fill a 16 MB memtable with 36 KB updates
)

func runFullDisk(t *testing.T, f *diskFault) {
	r := &diskRun{t: t, f: f, httpc: &http.Client{Timeout: 10 * time.Second}, ctx: context.Background(),
		acked: map[string]chaosState{}, maybe: map[string]*chaosState{}}
	b, err := startDiskBroker(t, f.prefix, f.dataDir, f.args...)
	if err != nil {
		t.Fatal(err)
	}
	r.b = b
	r.setup()

	f.fill(t, r.b)
	// (a) MQTT updates until one fails: those accepted before are
	// acknowledged and must stay; the failing one must be InternalError.
	r.checkRejection(r.updateUntilFailure())
	if f.failStop {
		r.checkFailStop()
	} else {
		// (b) Nothing of it is visible, (c) reads answer, and the broker
		// says it is not ready: ready means the store takes writes.
		r.checkReads("after the MQTT update failed")
		r.httpUpdateUntilFailure()
		r.checkReads("after the HTTP update failed")
		r.checkReady(false, "while writes are refused")
	}

	// (d) Space is back: writes succeed again, in place or after a restart.
	f.free(t, r.b)
	if f.failStop {
		r.restart()
	} else if !r.recoversInPlace() {
		t.Fatalf("writes did not resume once space came back:\n%s", r.b.logs())
	}
	r.checkAcked()
	r.mustWrite()
	r.checkReady(true, "once writes resumed")
}

// checkReady checks /readyz: 503 naming the store while it refuses
// writes, 200 once it takes them again.
func (r *diskRun) checkReady(want bool, when string) {
	r.t.Helper()
	code, _, body, err := r.http(http.MethodGet, "http://"+r.b.APIAddr+"/readyz", nil)
	if err != nil {
		r.availability("/readyz "+when, err.Error())
	}
	checks, _ := body["checks"].(map[string]any)
	switch {
	case want && code != http.StatusOK:
		r.t.Fatalf("/readyz %s: %d %v, want 200", when, code, body)
	case !want && (code != http.StatusServiceUnavailable || checks["store"] == "ok"):
		r.t.Fatalf("/readyz %s: %d %v, want 503 with the store's check failing", when, code, body)
	}
}

// checkFailStop checks a broker whose store failed: alive, unready, and
// answering requests with InternalError / ServiceUnavailableException
// rather than dying or hanging.
func (r *diskRun) checkFailStop() {
	t := r.t
	if code, _, body, err := r.http(http.MethodGet, "http://"+r.b.APIAddr+"/healthz", nil); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz after the store failed: %d %v %v", code, body, err)
	}
	if code, _, body, err := r.http(http.MethodGet, "http://"+r.b.APIAddr+"/readyz", nil); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after the store failed: %d %v %v, want 503", code, body, err)
	}
	code, errType, body, err := r.http(http.MethodGet, "http://"+r.b.JobsAddr+"/things/"+diskHTTP+"/jobs/"+diskJob, nil)
	if err != nil || code != http.StatusServiceUnavailable || errType != "ServiceUnavailableException" {
		t.Fatalf("a data-plane read after the store failed: %d %s %v %v, want 503 ServiceUnavailableException", code, errType, body, err)
	}
	rep, err := r.mqttTry("$aws/things/"+diskMQTT+"/jobs/get", map[string]any{})
	if err != nil || rep.Accepted || rep.Body["code"] != "InternalError" {
		t.Fatalf("an MQTT read after the store failed: %s %v, want InternalError", rep.Raw, err)
	}
	if r.b.dead(0) {
		t.Fatalf("the broker died:\n%s", r.b.logs())
	}
}

func (r *diskRun) setup() {
	t := r.t
	api := brokertest.IoTClient("http://" + r.b.APIAddr)
	// disk-1 first: it is the one start-next starts.
	for _, j := range []struct {
		id     string
		things []string
	}{{diskJob, []string{diskMQTT, diskHTTP, diskIdle}}, {diskJob2, []string{diskMQTT}}} {
		var targets []string
		for _, th := range j.things {
			targets = append(targets, brokertest.ThingARN(th))
		}
		if _, err := api.CreateJob(r.ctx, &iot.CreateJobInput{JobId: aws.String(j.id), Targets: targets, Document: aws.String(`{"op":"` + j.id + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	r.dialMQTT()
	// The MQTT device starts disk-1 (created first) and reports progress.
	rep := r.mqtt("$aws/things/"+diskMQTT+"/jobs/start-next", map[string]any{})
	if ex, _ := stateFrom(rep.Body["execution"]); !rep.Accepted || ex.Version != 2 || jobOf([]any{rep.Body["execution"]}, 0) != diskJob {
		t.Fatalf("start-next: %s", rep.Raw)
	}
	r.acked[diskMQTT] = chaosState{Status: "IN_PROGRESS", Version: 2, Details: map[string]string{}}
	r.mqttUpdate(map[string]string{"step": "setup"})
	// The HTTP device does the same over the data plane.
	code, _, body, err := r.http(http.MethodPut, "http://"+r.b.JobsAddr+"/things/"+diskHTTP+"/jobs/$next", map[string]any{})
	if ex, _ := stateFrom(body["execution"]); err != nil || code != http.StatusOK || ex.Version != 2 || jobOf([]any{body["execution"]}, 0) != diskJob {
		t.Fatalf("data-plane start-next: %d %v %v", code, body, err)
	}
	r.acked[diskHTTP] = chaosState{Status: "IN_PROGRESS", Version: 2, Details: map[string]string{}}
	if code, body := r.httpUpdate(map[string]string{"step": "setup"}); code != http.StatusOK {
		t.Fatalf("data-plane update: %d %v", code, body)
	}
	r.checkReads("before the disk filled")
}

func (r *diskRun) dialMQTT() {
	if r.mq != nil {
		r.mq.close()
	}
	c, err := chaosDial(r.b.MQTTAddr, diskMQTT, 5*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mq = c
	r.t.Cleanup(c.close)
}

// mqtt sends a request as the MQTT device and fails the test when the
// reply does not come.
func (r *diskRun) mqtt(topic string, body map[string]any) chaosReply {
	r.t.Helper()
	rep, err := r.mqttTry(topic, body)
	if err != nil {
		r.t.Fatalf("%s: %v\n%s", topic, err, r.b.logs())
	}
	return rep
}

// mqttTry sends a request as the MQTT device; a request over the thing's
// rate limit (RequestThrottled: nothing ran) is sent again after a pause.
func (r *diskRun) mqttTry(topic string, body map[string]any) (chaosReply, error) {
	for {
		r.tokens++
		tok := "disk-" + strconv.Itoa(r.tokens)
		rep, err := r.mq.request(r.ctx, topic, tok, body, 10*time.Second)
		if err == nil && rep.Body["clientToken"] != tok {
			r.t.Fatalf("reply to %s does not echo clientToken %s: %s", topic, tok, rep.Raw)
		}
		if err == nil && !rep.Accepted && rep.Body["code"] == "RequestThrottled" {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		return rep, err
	}
}

// http sends an HTTP request; 429 ThrottlingException (nothing ran) is
// sent again after a pause.
func (r *diskRun) http(method, url string, body any) (int, string, map[string]any, error) {
	for {
		code, errType, out, err := httpJSON(r.httpc, method, url, body)
		if err == nil && code == http.StatusTooManyRequests {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		return code, errType, out, err
	}
}

// mqttUpdate reports progress for the MQTT device and requires it accepted.
func (r *diskRun) mqttUpdate(details map[string]string) {
	r.t.Helper()
	rep, want, err := r.tryMQTTUpdate(details)
	if err != nil || !rep.Accepted {
		r.t.Fatalf("update %v: %v %s", details, err, rep.Raw)
	}
	r.acked[diskMQTT] = want
}

func (r *diskRun) tryMQTTUpdate(details map[string]string) (chaosReply, chaosState, error) {
	cur := r.acked[diskMQTT]
	want := chaosState{Status: "IN_PROGRESS", Version: cur.Version + 1, Details: details}
	rep, err := r.mqttTry("$aws/things/"+diskMQTT+"/jobs/"+diskJob+"/update", map[string]any{
		"status": "IN_PROGRESS", "statusDetails": details, "expectedVersion": cur.Version, "includeJobExecutionState": true})
	if err == nil && rep.Accepted {
		if st, _ := stateFrom(rep.Body["executionState"]); st.Version != want.Version || !sameDetails(st.Details, details) {
			r.t.Fatalf("update accepted with %s, want version %d", rep.Raw, want.Version)
		}
	}
	return rep, want, err
}

// httpUpdate reports progress for the HTTP device; a 200 is acknowledged.
func (r *diskRun) httpUpdate(details map[string]string) (int, map[string]any) {
	r.t.Helper()
	code, errType, body, err := r.tryHTTPUpdate(details)
	if err != nil {
		r.t.Fatalf("data-plane update: %v", err)
	}
	if errType != "" {
		body["x-amzn-ErrorType"] = errType
	}
	return code, body
}

func (r *diskRun) tryHTTPUpdate(details map[string]string) (int, string, map[string]any, error) {
	cur := r.acked[diskHTTP]
	want := chaosState{Status: "IN_PROGRESS", Version: cur.Version + 1, Details: details}
	code, errType, body, err := r.http(http.MethodPost, "http://"+r.b.JobsAddr+"/things/"+diskHTTP+"/jobs/"+diskJob,
		map[string]any{"status": "IN_PROGRESS", "statusDetails": details, "expectedVersion": cur.Version, "includeJobExecutionState": true})
	if err == nil && code == http.StatusOK {
		if st, _ := stateFrom(body["executionState"]); st.Version != want.Version || !sameDetails(st.Details, details) {
			r.t.Fatalf("data-plane update answered %v, want version %d", body, want.Version)
		}
		r.acked[diskHTTP] = want
	}
	return code, errType, body, err
}

// bigDetails are the ten statusDetails values allowed, nine of them of
// 1,000 four-byte characters: each update writes about 36 KB (below
// Badger's 64 KB value threshold, so into the memtable and its log), so
// that it needs fresh pages of the log, and a few hundred fill a memtable
// even at the default per-thing request rate.
func bigDetails(step int) map[string]string {
	d := map[string]string{"step": strconv.Itoa(step)}
	pad := strings.Repeat(string(rune(0x1F600+step%10)), 1000)
	for i := range 9 {
		d["pad"+strconv.Itoa(i)] = pad
	}
	return d
}

// updateUntilFailure sends MQTT updates until one is not accepted. It
// returns the rejection, or false when the request went unanswered (a
// known bug has been recorded then).
func (r *diskRun) updateUntilFailure() chaosReply {
	for i := 1; i <= diskUpdates; i++ {
		rep, want, err := r.tryMQTTUpdate(bigDetails(i))
		if err != nil {
			r.maybe[diskMQTT] = &want
			r.availability(fmt.Sprintf("MQTT update %d on the full disk (%d accepted before it)", i, i-1), err.Error())
		}
		if !rep.Accepted {
			r.t.Logf("MQTT update %d rejected (%d accepted on the full disk before it): %s", i, i-1, rep.Raw)
			return rep
		}
		r.acked[diskMQTT] = want
	}
	r.t.Fatalf("%d updates of 36 KB accepted after the disk filled", diskUpdates)
	return chaosReply{}
}

// checkRejection checks the MQTT rejection of a write the store could not
// make: InternalError (PROTOCOL.md §7.2), no executionState (§7.1).
func (r *diskRun) checkRejection(rep chaosReply) {
	if code := rep.Body["code"]; code != "InternalError" {
		r.t.Fatalf("a write the store could not make was rejected with %v, want InternalError: %s", code, rep.Raw)
	}
	if _, has := rep.Body["executionState"]; has {
		r.t.Errorf("an InternalError rejection carries executionState: %s", rep.Raw)
	}
	if msg, _ := rep.Body["message"].(string); msg == "" {
		r.t.Errorf("the InternalError rejection has no message: %s", rep.Raw)
	}
}

// httpUpdateUntilFailure sends data-plane updates until one fails: it must
// be ServiceUnavailableException 503 (PROTOCOL.md §7.4, §10.3).
func (r *diskRun) httpUpdateUntilFailure() {
	for i := 1; i <= diskUpdates; i++ {
		want := chaosState{Status: "IN_PROGRESS", Version: r.acked[diskHTTP].Version + 1, Details: bigDetails(i)}
		code, errType, body, err := r.tryHTTPUpdate(want.Details)
		if err != nil {
			r.maybe[diskHTTP] = &want
			r.availability(fmt.Sprintf("data-plane update %d on the full disk", i), err.Error())
			return
		}
		if code == http.StatusOK {
			continue
		}
		if code != http.StatusServiceUnavailable || errType != "ServiceUnavailableException" || body["__type"] != "ServiceUnavailableException" {
			r.t.Fatalf("a data-plane write the store could not make answered %d, x-amzn-ErrorType %q, %v; want 503 ServiceUnavailableException", code, errType, body)
		}
		r.t.Logf("data-plane update %d answered %d %s", i, code, errType)
		return
	}
	r.t.Fatalf("%d data-plane updates of 36 KB accepted after the disk filled", diskUpdates)
}

// availability fails the test for a request the broker did not answer
// (or answered with a transport error), with the broker's logs.
func (r *diskRun) availability(what, errText string) {
	r.t.Helper()
	state := "the broker is still running"
	if r.b.dead(time.Second) {
		state = "the broker process exited (" + r.b.cmd.ProcessState.String() + ")"
	}
	r.t.Fatalf("%s: %s; %s:\n%s", what, errText, state, evidenceOf(r.b.logs()))
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// checkReads reads both devices' executions, the MQTT device's pending
// list, the job and /healthz, and checks that they show the acknowledged
// state: nothing of a failed request.
func (r *diskRun) checkReads(when string) {
	t := r.t
	t.Helper()
	if r.b.dead(0) {
		return
	}
	// Over HTTP first: a read that kills the broker must not hide the others.
	code, _, body, err := r.http(http.MethodGet, "http://"+r.b.JobsAddr+"/things/"+diskHTTP+"/jobs/"+diskJob+"?includeJobDocument=false", nil)
	if err != nil {
		r.availability("data-plane DescribeJobExecution "+when, err.Error())
	} else if st, _ := stateFrom(body["execution"]); code != http.StatusOK || !r.isAcked(diskHTTP, st, true) {
		t.Fatalf("data-plane DescribeJobExecution %s: %d %v, want %+v", when, code, body, r.acked[diskHTTP])
	}
	if code, _, body, err := r.http(http.MethodGet, "http://"+r.b.APIAddr+"/healthz", nil); err != nil {
		r.availability("/healthz "+when, err.Error())
	} else if code != http.StatusOK || body["status"] != "alive" {
		t.Fatalf("/healthz %s: %d %v", when, code, body)
	}
	api := brokertest.IoTClient("http://" + r.b.APIAddr)
	if job, err := api.DescribeJob(r.ctx, &iot.DescribeJobInput{JobId: aws.String(diskJob)}); err != nil {
		r.availability("DescribeJob "+when, err.Error())
	} else if pd := job.Job.JobProcessDetails; job.Job.Status != iottypes.JobStatusInProgress ||
		aws.ToInt32(pd.NumberOfInProgressThings) != 2 || aws.ToInt32(pd.NumberOfQueuedThings) != 1 {
		t.Fatalf("DescribeJob %s: %s, %+v; want IN_PROGRESS with 2 things in progress and 1 queued", when, job.Job.Status, pd)
	}
	if ex, err := api.DescribeJobExecution(r.ctx, &iot.DescribeJobExecutionInput{JobId: aws.String(diskJob), ThingName: aws.String(diskMQTT)}); err != nil {
		r.availability("control-plane DescribeJobExecution "+when, err.Error())
	} else {
		st := chaosState{Status: string(ex.Execution.Status), Version: ex.Execution.VersionNumber, Details: map[string]string{}}
		if ex.Execution.StatusDetails != nil {
			st.Details = ex.Execution.StatusDetails.DetailsMap
		}
		if !r.isAcked(diskMQTT, st, true) {
			t.Fatalf("control-plane DescribeJobExecution %s: %s v%d, want %+v", when, st.Status, st.Version, r.acked[diskMQTT])
		}
	}
	if r.b.dead(0) {
		return
	}
	rep, err := r.mqttTry("$aws/things/"+diskMQTT+"/jobs/get", map[string]any{})
	if err != nil {
		r.availability("MQTT GetPendingJobExecutions "+when, err.Error())
		return
	}
	in, _ := rep.Body["inProgressJobs"].([]any)
	q, _ := rep.Body["queuedJobs"].([]any)
	if !rep.Accepted || len(in) != 1 || len(q) != 1 || jobOf(in, 0) != diskJob || !r.isAckedVersion(diskMQTT, int64(versionOf(in, 0))) ||
		jobOf(q, 0) != diskJob2 || versionOf(q, 0) != 1 {
		t.Fatalf("MQTT GetPendingJobExecutions %s: %s; want %s at version %d in progress and %s queued", when, rep.Raw, diskJob, r.acked[diskMQTT].Version, diskJob2)
	}
	rep, err = r.mqttTry("$aws/things/"+diskMQTT+"/jobs/"+diskJob+"/get", map[string]any{"includeJobDocument": false})
	if err != nil {
		r.availability("MQTT DescribeJobExecution "+when, err.Error())
		return
	}
	if st, _ := stateFrom(rep.Body["execution"]); !rep.Accepted || !r.isAcked(diskMQTT, st, true) {
		t.Fatalf("MQTT DescribeJobExecution %s: %s, want %+v", when, rep.Raw, r.acked[diskMQTT])
	}
}

func jobOf(list []any, i int) string {
	if i >= len(list) {
		return ""
	}
	m, _ := list[i].(map[string]any)
	s, _ := m["jobId"].(string)
	return s
}

func versionOf(list []any, i int) float64 {
	if i >= len(list) {
		return 0
	}
	m, _ := list[i].(map[string]any)
	v, _ := m["versionNumber"].(float64)
	return v
}

// isAcked reports whether st is the device's acknowledged state or, when
// maybe is allowed, what its unanswered request (if any: a rejected one
// must not show) would have made it.
func (r *diskRun) isAcked(thing string, st chaosState, maybe bool) bool {
	same := func(w chaosState) bool {
		return st.Status == w.Status && st.Version == w.Version && sameDetails(st.Details, w.Details)
	}
	return same(r.acked[thing]) || (maybe && r.maybe[thing] != nil && same(*r.maybe[thing]))
}

func (r *diskRun) isAckedVersion(thing string, v int64) bool {
	return v == r.acked[thing].Version || (r.maybe[thing] != nil && v == r.maybe[thing].Version)
}

// recoversInPlace polls for a write to succeed again without a restart.
func (r *diskRun) recoversInPlace() bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && !r.b.dead(0) {
		rep, want, err := r.tryMQTTUpdate(map[string]string{"step": "space-back"})
		if err == nil && rep.Accepted {
			r.acked[diskMQTT] = want
			return true
		}
		if err == nil && rep.Body["code"] != "InternalError" {
			r.t.Fatalf("an update after space came back: %s", rep.Raw)
		}
		if err != nil {
			r.availability("an MQTT update after space came back", err.Error())
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// restart stops the broker and starts it again on the same data
// directory, with the fault's flags.
func (r *diskRun) restart() {
	r.b.kill()
	nb, err := startDiskBroker(r.t, r.f.prefix, r.f.dataDir, r.f.args...)
	if err != nil {
		r.t.Fatalf("restart after space came back: %v", err)
	}
	r.b = nb
	r.dialMQTT()
}

// checkAcked checks that both devices' executions are as their last
// acknowledged requests (or an unanswered one) left them.
func (r *diskRun) checkAcked() {
	for _, thing := range []string{diskMQTT, diskHTTP} {
		code, _, body, err := r.http(http.MethodGet, "http://"+r.b.JobsAddr+"/things/"+thing+"/jobs/"+diskJob+"?includeJobDocument=false", nil)
		if err != nil || code != http.StatusOK {
			r.t.Fatalf("describe %s after recovery: %d %v %v\n%s", thing, code, body, err, r.b.logs())
		}
		st, _ := stateFrom(body["execution"])
		if !r.isAcked(thing, st, true) {
			m := "none"
			if r.maybe[thing] != nil {
				m = fmt.Sprintf("version %d", r.maybe[thing].Version)
			}
			r.t.Fatalf("%s after recovery: %s v%d (step %q); acknowledged: version %d (step %q), unanswered request: %s",
				thing, st.Status, st.Version, st.Details["step"], r.acked[thing].Version, r.acked[thing].Details["step"], m)
		}
		if r.maybe[thing] != nil && st.Version == r.maybe[thing].Version {
			r.t.Logf("%s: the unanswered request was applied", thing)
		}
		r.acked[thing] = st
	}
	r.checkReads("after recovery")
}

// mustWrite requires writes to succeed over MQTT and HTTP.
func (r *diskRun) mustWrite() {
	r.mqttUpdate(map[string]string{"step": "after"})
	if code, body := r.httpUpdate(map[string]string{"step": "after"}); code != http.StatusOK {
		r.t.Fatalf("data-plane update after recovery: %d %v", code, body)
	}
}
