package jobshook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/wire"
)

func at(sec int64) time.Time { return time.Unix(sec, 0) }

// checkIntegers fails unless every number in the JSON document is an
// integer, written without a fraction or an exponent.
func checkIntegers(t *testing.T, doc []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case json.Number:
			if strings.ContainsAny(x.String(), ".eE") {
				t.Errorf("%s = %s is not an integer", path, x)
			}
		case map[string]any:
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("$", v)
}

// pending builds a PendingSet in "next" order through Put, whatever order
// the entries are given in.
func pending(list ...store.PendingExecution) store.PendingSet {
	var set store.PendingSet
	for _, e := range list {
		set = set.Put(e)
	}
	return set
}

func queued(id string, seq uint64) store.PendingExecution {
	q := at(1717000000 + int64(seq)*100)
	return store.PendingExecution{
		JobID: id, ExecutionNumber: 1, Status: store.StatusQueued,
		QueuedAt: q, LastUpdatedAt: q, VersionNumber: 1, QueueSeq: seq,
	}
}

func inProgress(id string, seq uint64) store.PendingExecution {
	e := queued(id, seq)
	e.Status, e.StartedAt, e.LastUpdatedAt, e.VersionNumber = store.StatusInProgress, e.QueuedAt.Add(10*time.Second), e.QueuedAt.Add(50*time.Second), 3
	return e
}

func TestNotifyPayload(t *testing.T) {
	now := at(1717000500)
	tt := []struct {
		desc string
		set  store.PendingSet
		want string
	}{
		{
			desc: "nothing pending",
			want: `{"timestamp":1717000500,"jobs":{}}`,
		},
		{
			desc: "empty set",
			set:  store.PendingSet{},
			want: `{"timestamp":1717000500,"jobs":{}}`,
		},
		{
			desc: "queued only",
			set:  pending(queued("reboot-7", 2)),
			want: `{"timestamp":1717000500,"jobs":{"QUEUED":[{"jobId":"reboot-7","queuedAt":1717000200,"lastUpdatedAt":1717000200,"versionNumber":1,"executionNumber":1}]}}`,
		},
		{
			desc: "in progress only",
			set:  pending(inProgress("fw-2024-05", 1)),
			want: `{"timestamp":1717000500,"jobs":{"IN_PROGRESS":[{"jobId":"fw-2024-05","queuedAt":1717000100,"startedAt":1717000110,"lastUpdatedAt":1717000150,"versionNumber":3,"executionNumber":1}]}}`,
		},
		{
			desc: "both, given queued first",
			set:  pending(queued("reboot-7", 2), inProgress("fw-2024-05", 1)),
			want: `{"timestamp":1717000500,"jobs":{"IN_PROGRESS":[{"jobId":"fw-2024-05","queuedAt":1717000100,"startedAt":1717000110,"lastUpdatedAt":1717000150,"versionNumber":3,"executionNumber":1}],"QUEUED":[{"jobId":"reboot-7","queuedAt":1717000200,"lastUpdatedAt":1717000200,"versionNumber":1,"executionNumber":1}]}}`,
		},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := notifyPayload(tc.set, now)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestNotifyPayloadCap(t *testing.T) {
	var (
		many []store.PendingExecution
		ip   []string
	)
	// 12 queued and 3 in progress, the in-progress ones queued last.
	for i := range 12 {
		many = append(many, queued(fmt.Sprintf("q-%02d", i), uint64(i+1)))
	}
	for i := range 3 {
		id := fmt.Sprintf("ip-%d", i)
		many = append(many, inProgress(id, uint64(100+i)))
		ip = append(ip, id)
	}
	var manyIP []store.PendingExecution
	var manyIPIDs []string
	for i := range 12 {
		id := fmt.Sprintf("ip-%02d", i)
		manyIP = append(manyIP, inProgress(id, uint64(i+1)))
		if i < 10 {
			manyIPIDs = append(manyIPIDs, id)
		}
	}
	manyIP = append(manyIP, queued("q-late", 50))
	tt := []struct {
		desc           string
		set            store.PendingSet
		wantInProgress []string
		wantQueued     []string // nil: no QUEUED key
	}{
		{
			desc:           "in progress first, then the oldest queued up to ten",
			set:            pending(many...),
			wantInProgress: ip,
			wantQueued:     []string{"q-00", "q-01", "q-02", "q-03", "q-04", "q-05", "q-06"},
		},
		{
			desc:           "ten in progress leave no room for queued",
			set:            pending(manyIP...),
			wantInProgress: manyIPIDs,
		},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := notifyPayload(tc.set, at(1717000500))
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Jobs map[string][]struct {
					JobID string `json:"jobId"`
				} `json:"jobs"`
			}
			if err := json.Unmarshal(got, &m); err != nil {
				t.Fatal(err)
			}
			ids := func(key string) []string {
				var out []string
				for _, e := range m.Jobs[key] {
					out = append(out, e.JobID)
				}
				return out
			}
			if g := ids("IN_PROGRESS"); strings.Join(g, ",") != strings.Join(tc.wantInProgress, ",") {
				t.Errorf("IN_PROGRESS = %v, want %v", g, tc.wantInProgress)
			}
			if g := ids("QUEUED"); strings.Join(g, ",") != strings.Join(tc.wantQueued, ",") {
				t.Errorf("QUEUED = %v, want %v", g, tc.wantQueued)
			}
			if _, ok := m.Jobs["QUEUED"]; ok && tc.wantQueued == nil {
				t.Errorf("QUEUED key present without members: %s", got)
			}
			if n := len(m.Jobs["IN_PROGRESS"]) + len(m.Jobs["QUEUED"]); n != 10 {
				t.Errorf("%d entries, want 10", n)
			}
		})
	}
}

// execFixture is the reboot-7 execution of PROTOCOL.md §5.2.
func execFixture() *store.Execution {
	return &store.Execution{
		JobID: "reboot-7", ThingName: "pump-42", ExecutionNumber: 1,
		Status:        store.StatusInProgress,
		StatusDetails: map[string]string{"step": "download"},
		QueuedAt:      at(1717000200), StartedAt: at(1717000310), LastUpdatedAt: at(1717000310),
		VersionNumber: 2,
		StepDeadline:  at(1717000310 + 1800),
	}
}

const rebootDoc = `{"operation":"reboot","delaySeconds":5}`

func TestNotifyNextPayload(t *testing.T) {
	queuedExec := &store.Execution{
		JobID: "reboot-7", ThingName: "pump-42", ExecutionNumber: 1, Status: store.StatusQueued,
		QueuedAt: at(1717000200), LastUpdatedAt: at(1717000200), VersionNumber: 1,
	}
	tt := []struct {
		desc string
		next *store.Execution
		doc  string
		now  time.Time
		want string
	}{
		{
			desc: "queue became empty",
			now:  at(1717000700),
			want: `{"timestamp":1717000700}`,
		},
		{
			desc: "queued next without thingName",
			next: queuedExec,
			doc:  rebootDoc,
			now:  at(1717000600),
			want: `{"timestamp":1717000600,"execution":{"jobId":"reboot-7","status":"QUEUED","queuedAt":1717000200,"lastUpdatedAt":1717000200,"versionNumber":1,"executionNumber":1,"jobDocument":{"operation":"reboot","delaySeconds":5}}}`,
		},
		{
			desc: "in progress next with a running step timer",
			next: execFixture(),
			doc:  rebootDoc,
			now:  at(1717000310),
			want: `{"timestamp":1717000310,"execution":{"jobId":"reboot-7","status":"IN_PROGRESS","statusDetails":{"step":"download"},"queuedAt":1717000200,"startedAt":1717000310,"lastUpdatedAt":1717000310,"approximateSecondsBeforeTimedOut":1800,"versionNumber":2,"executionNumber":1,"jobDocument":{"operation":"reboot","delaySeconds":5}}}`,
		},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := notifyNextPayload(tc.next, tc.doc, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestExecution(t *testing.T) {
	now := at(1717000310)
	tt := []struct {
		desc  string
		exec  func(e *store.Execution)
		doc   string
		thing bool
		want  string
	}{
		{
			desc:  "reply shape: thingName, timer and document",
			doc:   rebootDoc,
			thing: true,
			want:  `{"jobId":"reboot-7","thingName":"pump-42","status":"IN_PROGRESS","statusDetails":{"step":"download"},"queuedAt":1717000200,"startedAt":1717000310,"lastUpdatedAt":1717000310,"approximateSecondsBeforeTimedOut":1800,"versionNumber":2,"executionNumber":1,"jobDocument":{"operation":"reboot","delaySeconds":5}}`,
		},
		{
			desc: "no thingName, no document",
			want: `{"jobId":"reboot-7","status":"IN_PROGRESS","statusDetails":{"step":"download"},"queuedAt":1717000200,"startedAt":1717000310,"lastUpdatedAt":1717000310,"approximateSecondsBeforeTimedOut":1800,"versionNumber":2,"executionNumber":1}`,
		},
		{
			desc: "queued: no startedAt, no timer, no statusDetails",
			exec: func(e *store.Execution) {
				e.Status, e.StartedAt, e.StatusDetails, e.LastUpdatedAt, e.VersionNumber = store.StatusQueued, time.Time{}, nil, e.QueuedAt, 1
			},
			thing: true,
			want:  `{"jobId":"reboot-7","thingName":"pump-42","status":"QUEUED","queuedAt":1717000200,"lastUpdatedAt":1717000200,"versionNumber":1,"executionNumber":1}`,
		},
		{
			desc: "empty statusDetails omitted",
			exec: func(e *store.Execution) { e.StatusDetails = map[string]string{}; e.StepDeadline = time.Time{} },
			want: `{"jobId":"reboot-7","status":"IN_PROGRESS","queuedAt":1717000200,"startedAt":1717000310,"lastUpdatedAt":1717000310,"versionNumber":2,"executionNumber":1}`,
		},
		{
			desc: "terminal: no timer even with a deadline stored",
			exec: func(e *store.Execution) { e.Status, e.VersionNumber = store.StatusSucceeded, 3 },
			want: `{"jobId":"reboot-7","status":"SUCCEEDED","statusDetails":{"step":"download"},"queuedAt":1717000200,"startedAt":1717000310,"lastUpdatedAt":1717000310,"versionNumber":3,"executionNumber":1}`,
		},
		{
			desc: "in-progress timer earlier than the step timer",
			exec: func(e *store.Execution) { e.InProgressDeadline = at(1717000310 + 600) },
			want: `{"jobId":"reboot-7","status":"IN_PROGRESS","statusDetails":{"step":"download"},"queuedAt":1717000200,"startedAt":1717000310,"lastUpdatedAt":1717000310,"approximateSecondsBeforeTimedOut":600,"versionNumber":2,"executionNumber":1}`,
		},
		{
			desc: "in-progress timer only",
			exec: func(e *store.Execution) { e.StepDeadline, e.InProgressDeadline = time.Time{}, at(1717000310+7200) },
			want: `{"jobId":"reboot-7","status":"IN_PROGRESS","statusDetails":{"step":"download"},"queuedAt":1717000200,"startedAt":1717000310,"lastUpdatedAt":1717000310,"approximateSecondsBeforeTimedOut":7200,"versionNumber":2,"executionNumber":1}`,
		},
		{
			desc: "overdue timer reads zero, not negative",
			exec: func(e *store.Execution) { e.StepDeadline = at(1717000300) },
			want: `{"jobId":"reboot-7","status":"IN_PROGRESS","statusDetails":{"step":"download"},"queuedAt":1717000200,"startedAt":1717000310,"lastUpdatedAt":1717000310,"approximateSecondsBeforeTimedOut":0,"versionNumber":2,"executionNumber":1}`,
		},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			e := execFixture()
			if tc.exec != nil {
				tc.exec(e)
			}
			got, err := json.Marshal(execution(e, tc.doc, tc.thing, now))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestIntegerSeconds feeds times with fractions of a second everywhere and
// checks that every payload carries integer epoch seconds, not
// milliseconds and not floats (PROTOCOL.md §3, §15 items 1-2).
func TestIntegerSeconds(t *testing.T) {
	frac := func(sec int64) time.Time { return time.Unix(sec, 987_654_321) }
	now := frac(1717000500)
	e := &store.Execution{
		JobID: "fw", ThingName: "pump-42", ExecutionNumber: 1, Status: store.StatusInProgress,
		QueuedAt: frac(1717000000), StartedAt: frac(1717000100), LastUpdatedAt: frac(1717000150),
		VersionNumber: 3, StepDeadline: frac(1717000500).Add(1500 * time.Millisecond),
	}
	set := pending(e.Summary(), store.PendingExecution{
		JobID: "q", ExecutionNumber: 1, Status: store.StatusQueued,
		QueuedAt: frac(1717000200), LastUpdatedAt: frac(1717000200), VersionNumber: 1, QueueSeq: 9,
	})
	notify, err := notifyPayload(set, now)
	if err != nil {
		t.Fatal(err)
	}
	next, err := notifyNextPayload(e, `{"n":1}`, now)
	if err != nil {
		t.Fatal(err)
	}
	reply, rej := marshal(executionReply{Execution: execution(e, "", true, now), Timestamp: now.Unix()})
	if rej != nil {
		t.Fatal(rej.message)
	}
	pendingJSON, rej := marshal(pendingReply{InProgressJobs: summaries(set[:1]), QueuedJobs: summaries(set[1:]), Timestamp: now.Unix()})
	if rej != nil {
		t.Fatal(rej.message)
	}
	rejected := rejectedPayload(&rejection{code: CodeVersionMismatch, message: "m", state: e.State()}, nil, now)
	for name, doc := range map[string][]byte{"notify": notify, "notify-next": next, "execution reply": reply, "pending reply": pendingJSON, "rejected": rejected} {
		t.Run(name, func(t *testing.T) {
			checkIntegers(t, doc)
			var ts struct {
				Timestamp int64 `json:"timestamp"`
			}
			if err := json.Unmarshal(doc, &ts); err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			if ts.Timestamp != 1717000500 {
				t.Errorf("timestamp = %d, want 1717000500 (seconds)", ts.Timestamp)
			}
		})
	}
	var w struct {
		Execution wire.Execution `json:"execution"`
	}
	if err := json.Unmarshal(next, &w); err != nil {
		t.Fatal(err)
	}
	x := w.Execution
	if x.QueuedAt != 1717000000 || x.StartedAt != 1717000100 || x.LastUpdatedAt != 1717000150 {
		t.Errorf("times = %d/%d/%d, want whole seconds 1717000000/1717000100/1717000150", x.QueuedAt, x.StartedAt, x.LastUpdatedAt)
	}
	if x.ApproximateSecondsBeforeTimedOut == nil || *x.ApproximateSecondsBeforeTimedOut < 1 || *x.ApproximateSecondsBeforeTimedOut > 2 {
		t.Errorf("approximateSecondsBeforeTimedOut = %v, want 1 or 2 whole seconds", x.ApproximateSecondsBeforeTimedOut)
	}
}

func TestRejectedPayload(t *testing.T) {
	now := at(1717000900)
	tt := []struct {
		desc  string
		rej   *rejection
		token *string
		want  string
	}{
		{
			desc:  "with token, no state",
			rej:   &rejection{code: CodeResourceNotFound, message: "no execution of job fw-2024-06 for thing pump-42"},
			token: ptr("c-31"),
			want:  `{"code":"ResourceNotFound","message":"no execution of job fw-2024-06 for thing pump-42","clientToken":"c-31","timestamp":1717000900}`,
		},
		{
			desc: "no token",
			rej:  &rejection{code: CodeInvalidJSON, message: "payload is not valid JSON"},
			want: `{"code":"InvalidJson","message":"payload is not valid JSON","timestamp":1717000900}`,
		},
		{
			desc:  "empty token echoed",
			rej:   &rejection{code: CodeInvalidRequest, message: "m"},
			token: ptr(""),
			want:  `{"code":"InvalidRequest","message":"m","clientToken":"","timestamp":1717000900}`,
		},
		{
			desc: "with state",
			rej: &rejection{code: CodeInvalidStateTransition, message: "execution is already SUCCEEDED", state: &store.ExecutionState{
				Status: store.StatusSucceeded, StatusDetails: map[string]string{"progress": "100"}, VersionNumber: 5,
			}},
			token: ptr("c-30"),
			want:  `{"code":"InvalidStateTransition","message":"execution is already SUCCEEDED","clientToken":"c-30","timestamp":1717000900,"executionState":{"status":"SUCCEEDED","statusDetails":{"progress":"100"},"versionNumber":5}}`,
		},
		{
			desc: "with state without details",
			rej:  &rejection{code: CodeVersionMismatch, message: "m", state: &store.ExecutionState{Status: store.StatusInProgress, VersionNumber: 3}},
			want: `{"code":"VersionMismatch","message":"m","timestamp":1717000900,"executionState":{"status":"IN_PROGRESS","versionNumber":3}}`,
		},
		{
			desc:  "message with characters to escape",
			rej:   &rejection{code: CodeInvalidRequest, message: `status "SUCCESS" is not a status`},
			token: ptr(`a"b`),
			want:  `{"code":"InvalidRequest","message":"status \"SUCCESS\" is not a status","clientToken":"a\"b","timestamp":1717000900}`,
		},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			got := rejectedPayload(tc.rej, tc.token, now)
			if string(got) != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestRejectionFor(t *testing.T) {
	state := &store.ExecutionState{Status: store.StatusInProgress, StatusDetails: map[string]string{"p": "1"}, VersionNumber: 4}
	withState := func(kind error, msg string) error {
		return &store.Error{Kind: kind, Message: msg, State: state}
	}
	tt := []struct {
		desc      string
		err       error
		code      string
		message   string // "" : any non-empty message
		wantState bool
	}{
		{desc: "version mismatch", err: withState(store.ErrVersionMismatch, "expected 2, at 4"), code: CodeVersionMismatch, message: "expected 2, at 4", wantState: true},
		{desc: "invalid state transition", err: withState(store.ErrInvalidStateTransition, "already SUCCEEDED"), code: CodeInvalidStateTransition, message: "already SUCCEEDED", wantState: true},
		{desc: "wrapped version mismatch", err: fmt.Errorf("update: %w", withState(store.ErrVersionMismatch, "stale")), code: CodeVersionMismatch, message: "stale", wantState: true},
		{desc: "invalid request", err: store.Errorf(store.ErrInvalidRequest, "bad status"), code: CodeInvalidRequest, message: "bad status"},
		{desc: "invalid request drops a state", err: withState(store.ErrInvalidRequest, "bad"), code: CodeInvalidRequest, message: "bad"},
		{desc: "limit exceeded", err: store.Errorf(store.ErrLimitExceeded, "too many"), code: CodeInvalidRequest, message: "too many"},
		{desc: "not found", err: store.Errorf(store.ErrNotFound, "no such execution"), code: CodeResourceNotFound, message: "no such execution"},
		{desc: "not found drops a state", err: withState(store.ErrNotFound, "gone"), code: CodeResourceNotFound, message: "gone"},
		{desc: "terminal state", err: store.Errorf(store.ErrTerminalState, "job is done"), code: CodeTerminalStateReached, message: "job is done"},
		{desc: "throttled", err: store.Errorf(store.ErrThrottled, "slow down"), code: CodeRequestThrottled, message: "slow down"},
		{desc: "bare sentinel", err: store.ErrNotFound, code: CodeResourceNotFound},
		{desc: "unavailable", err: store.Unavailable("commit", io.ErrShortWrite), code: CodeInternalError},
		{desc: "unavailable as a store error", err: store.Errorf(store.ErrUnavailable, "closing"), code: CodeInternalError},
		{desc: "deadline exceeded", err: context.DeadlineExceeded, code: CodeInternalError},
		{desc: "wrapped deadline exceeded", err: fmt.Errorf("view: %w", context.DeadlineExceeded), code: CodeInternalError},
		{desc: "plain error", err: errors.New("disk on fire"), code: CodeInternalError},
	}
	for _, tc := range tt {
		t.Run(tc.desc, func(t *testing.T) {
			rej := rejectionFor(tc.err)
			if rej == nil {
				t.Fatal("no rejection")
			}
			if rej.code != tc.code {
				t.Errorf("code = %q, want %q", rej.code, tc.code)
			}
			switch {
			case rej.message == "":
				t.Error("empty message")
			case tc.message != "" && rej.message != tc.message:
				t.Errorf("message = %q, want %q", rej.message, tc.message)
			}
			if tc.code == CodeInternalError && (strings.Contains(rej.message, "disk on fire") || strings.Contains(rej.message, io.ErrShortWrite.Error())) {
				t.Errorf("message %q leaks the internal cause", rej.message)
			}
			switch {
			case tc.wantState && rej.state != state:
				t.Errorf("state = %v, want the error's state", rej.state)
			case !tc.wantState && rej.state != nil:
				t.Errorf("state = %+v, want none", rej.state)
			}
		})
	}
}
