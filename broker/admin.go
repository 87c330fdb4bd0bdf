package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/broker/controlplane"
	"github.com/jobsbroker/jobsbroker/jobshook/faults"
	"github.com/jobsbroker/jobsbroker/store"
)

// admin serves the test endpoints of the API listener.
type admin struct {
	b   *Broker
	api *controlplane.API // called in process by wait
}

func badRequest(format string, args ...any) *awsapi.Error {
	return awsapi.Errorf(http.StatusBadRequest, "InvalidRequestException", fmt.Sprintf(format, args...))
}

// FaultsListing is what GET /admin/faults answers (and PUT, POST and
// DELETE, after their change).
type FaultsListing struct {
	Seed   uint64          `json:"seed"`
	Faults []faults.Status `json:"faults"`
}

func (a *admin) writeFaults(w http.ResponseWriter) {
	seed, list := a.b.Faults.Plan()
	awsapi.WriteJSON(w, http.StatusOK, FaultsListing{Seed: seed, Faults: list})
}

func (a *admin) listFaults(w http.ResponseWriter, _ *http.Request) { a.writeFaults(w) }

// readPlan reads a fault file from a request body.
func readPlan(r *http.Request) (*faults.Plan, *awsapi.Error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, awsapi.MaxBodyBytes))
	if err != nil {
		return nil, badRequest("the body could not be read (at most 1 MiB)")
	}
	plan, err := faults.Parse(body, "in the request body")
	if err != nil {
		return nil, badRequest("%v", err)
	}
	return plan, nil
}

// replaceFaults puts the fault file in the body in force instead of the
// faults there were (PUT /admin/faults).
func (a *admin) replaceFaults(w http.ResponseWriter, r *http.Request) {
	plan, e := readPlan(r)
	if e != nil {
		awsapi.WriteError(w, e)
		return
	}
	if err := a.b.Faults.Replace(*plan); err != nil {
		awsapi.WriteError(w, badRequest("%v", err))
		return
	}
	a.b.log.Info("faults replaced", "faults", len(plan.Faults), "seed", plan.Seed)
	a.writeFaults(w)
}

// addFaults adds the faults of the fault file in the body to those in
// force (POST /admin/faults); the seed stays as PUT set it.
func (a *admin) addFaults(w http.ResponseWriter, r *http.Request) {
	plan, e := readPlan(r)
	if e != nil {
		awsapi.WriteError(w, e)
		return
	}
	if plan.Seed != 0 {
		awsapi.WriteError(w, badRequest("seed: POST adds faults under the seed in force; set a seed with PUT"))
		return
	}
	if err := a.b.Faults.Add(plan.Faults...); err != nil {
		awsapi.WriteError(w, badRequest("%v", err))
		return
	}
	a.b.log.Info("faults added", "faults", len(plan.Faults))
	a.writeFaults(w)
}

// deleteFaults takes one fault (?id=) or all of them out of force
// (DELETE /admin/faults).
func (a *admin) deleteFaults(w http.ResponseWriter, r *http.Request) {
	if id := r.URL.Query().Get("id"); id != "" {
		if !a.b.Faults.Remove(id) {
			awsapi.WriteError(w, awsapi.Errorf(http.StatusNotFound, "ResourceNotFoundException", "no fault has id "+strconv.Quote(id)))
			return
		}
	} else {
		a.b.Faults.Clear()
	}
	a.writeFaults(w)
}

// transcript answers GET /admin/transcript?thing=T[&after=SEQ]: the
// thing's transcript lines (after line SEQ) as JSON Lines.
func (a *admin) transcript(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	thing := q.Get("thing")
	if err := store.ValidateThingName(thing); err != nil {
		awsapi.WriteError(w, badRequest("thing: %v", err))
		return
	}
	var after int64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			awsapi.WriteError(w, badRequest("after %q must be a line number (seq) from 0 up", s))
			return
		}
		after = n
	}
	if a.b.Transcripts == nil {
		awsapi.WriteError(w, awsapi.Errorf(http.StatusNotFound, "ResourceNotFoundException",
			"transcripts are off: start the broker with "+a.b.cfg.name("transcripts")+" or "+a.b.cfg.name("transcript_dir")))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, l := range a.b.Transcripts.Lines(thing, after) {
		if err := enc.Encode(l); err != nil {
			return
		}
	}
}

// Outcomes of GET /admin/wait.
const (
	// WaitReached: the execution has the status asked for (200).
	WaitReached = "reached"
	// WaitOtherTerminal: the execution ended in another status (409).
	WaitOtherTerminal = "other-terminal"
	// WaitTimeout: the timeout passed first (408).
	WaitTimeout = "timeout"
)

// WaitResult is what GET /admin/wait answers: the outcome, and the
// execution as DescribeJobExecution returns it (null when the thing has
// none yet).
type WaitResult struct {
	Outcome   string          `json:"outcome"`
	Execution json.RawMessage `json:"execution"`
}

// Limits of GET /admin/wait's timeout.
const (
	DefaultWaitTimeout = 30 * time.Second
	MaxWaitTimeout     = 5 * time.Minute
	waitPoll           = 20 * time.Millisecond
)

var executionStatuses = []store.ExecutionStatus{store.StatusQueued, store.StatusInProgress, store.StatusSucceeded,
	store.StatusFailed, store.StatusTimedOut, store.StatusRejected, store.StatusRemoved, store.StatusCanceled}

// wait answers GET /admin/wait?thing=T&job=J&status=S&timeout=D once the
// thing's execution of the job has status S (200), has ended in another
// status (409), or D has passed (408).
func (a *admin) wait(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	thing, job := q.Get("thing"), q.Get("job")
	status := store.ExecutionStatus(q.Get("status"))
	if err := store.ValidateThingName(thing); err != nil {
		awsapi.WriteError(w, badRequest("thing: %v", err))
		return
	}
	if err := store.ValidateJobID(job); err != nil {
		awsapi.WriteError(w, badRequest("job: %v", err))
		return
	}
	if !slices.Contains(executionStatuses, status) {
		awsapi.WriteError(w, badRequest("status %q must be one of QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, TIMED_OUT, REJECTED, REMOVED, CANCELED", status))
		return
	}
	timeout := DefaultWaitTimeout
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > MaxWaitTimeout {
			awsapi.WriteError(w, badRequest("timeout %q must be a duration such as 30s, at most %v", s, MaxWaitTimeout))
			return
		}
		timeout = d
	}
	// A wait may outlast the listener's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + 10*time.Second))
	path := "/things/" + url.PathEscape(thing) + "/jobs/" + url.PathEscape(job)
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		res, e := a.describe(r, path)
		if e != nil {
			awsapi.WriteError(w, e)
			return
		}
		switch {
		case res.status == status:
			awsapi.WriteJSON(w, http.StatusOK, WaitResult{Outcome: WaitReached, Execution: res.raw})
			return
		case res.status.Terminal():
			awsapi.WriteJSON(w, http.StatusConflict, WaitResult{Outcome: WaitOtherTerminal, Execution: res.raw})
			return
		case !time.Now().Before(deadline):
			awsapi.WriteJSON(w, http.StatusRequestTimeout, WaitResult{Outcome: WaitTimeout, Execution: res.raw})
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// described is an execution as DescribeJobExecution returns it.
type described struct {
	raw    json.RawMessage // null when there is none yet
	status store.ExecutionStatus
}

// describe calls DescribeJobExecution in process; a thing without the
// execution yet is no error.
func (a *admin) describe(r *http.Request, path string) (described, *awsapi.Error) {
	body, e := awsapi.Call(r.Context(), a.api, http.MethodGet, path, nil)
	if e != nil {
		if e.Status == http.StatusNotFound {
			return described{raw: json.RawMessage("null")}, nil
		}
		return described{}, e
	}
	var out struct {
		Execution json.RawMessage `json:"execution"`
	}
	var exec struct {
		Status store.ExecutionStatus `json:"status"`
	}
	if err := json.Unmarshal(body, &out); err != nil || json.Unmarshal(out.Execution, &exec) != nil {
		return described{}, awsapi.Errorf(http.StatusInternalServerError, "InternalFailureException", "DescribeJobExecution answered what it should not")
	}
	return described{raw: out.Execution, status: exec.Status}, nil
}
