package console

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// hub is what the streams share: the wake-up on committed changes, a
// short-lived cache of job reads (several consoles on one page cost one
// read), and each watched job's counts over time for its chart.
type hub struct {
	version atomic.Uint64 // advances on every batch of committed changes
	streams atomic.Int64  // streams open: without any, changes cost one atomic add

	mu   sync.Mutex
	wake chan struct{} // closed and replaced on a change while streams are open

	jobsMu sync.Mutex
	jobs   map[string]*jobEntry
}

const (
	maxWatchedJobs = 512 // jobs whose history the hub keeps
	maxSamples     = 240 // points of history per job; older ones are thinned
	sampleEvery    = 10 * time.Second
)

// sample is a job's counts at one time, by status in store.Statuses order.
type sample struct {
	At     time.Time
	Counts [8]int64
}

func countsOf(p *store.ProcessDetails) [8]int64 {
	var c [8]int64
	for i, s := range store.Statuses {
		c[i] = p.Count(s)
	}
	return c
}

// jobEntry is what the hub knows of one job.
type jobEntry struct {
	job     *store.Job
	readAt  time.Time
	version uint64
	used    time.Time

	hist        []sample
	seeded      bool // history was reconstructed from the executions (or could not be)
	fromRecords bool // hist starts with points reconstructed from execution timestamps

	covered   int64 // things the job's targets cover, for the backlog
	coveredAt time.Time

	summary    string // the targets in a few words
	summaryOf  uint64 // the Seq and target count it was made for
	summaryLen int
}

func newHub() *hub {
	return &hub{wake: make(chan struct{}), jobs: map[string]*jobEntry{}}
}

// changed wakes the open streams.
func (h *hub) changed() {
	h.version.Add(1)
	if h.streams.Load() == 0 {
		return
	}
	h.mu.Lock()
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
}

// waiter returns a channel closed by the next change.
func (h *hub) waiter() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wake
}

// freshness says how current a job read must be.
type freshness int

const (
	// subject is the job a page is about: read again after any change
	// (several streams waking together share one read).
	subject freshness = iota
	// row is a job listed among others: read again at most every
	// rowMaxAge, and a finished job not again for finalMaxAge. A read
	// decodes the job's targets, which for a job of 1,000 thing ARNs costs
	// far more than its counts; a list of 25 such jobs re-read four times a
	// second cost the broker a tenth of its CPU under load.
	row
)

const (
	rowMaxAge   = time.Second
	finalMaxAge = time.Minute
)

// final reports whether a job's counts can no longer change.
func final(j *store.Job) bool {
	return !j.IsConcurrent && (j.Status == store.JobCompleted || (j.Status == store.JobCanceled && j.ProcessDetails.Pending() == 0))
}

// job returns a job with its counts, from an earlier read when that is
// current enough for f, or from a fresh one; fresh reads add to the job's
// history.
func (c *Console) job(ctx context.Context, id string, f freshness) (*store.Job, error) {
	h := c.hub
	now := time.Now()
	v := h.version.Load()
	h.jobsMu.Lock()
	if e := h.jobs[id]; e != nil && e.job != nil {
		age := now.Sub(e.readAt)
		var current bool
		switch {
		case f == row && final(e.job):
			current = age < finalMaxAge
		case f == row:
			current = age < rowMaxAge
		default:
			current = age < c.opts.Refresh/2 && (e.version == v || age < c.opts.MinInterval/4)
		}
		if current {
			e.used = now
			j := e.job
			h.jobsMu.Unlock()
			return j, nil
		}
	}
	h.jobsMu.Unlock()
	j, err := c.opts.Store.DescribeJob(ctx, id)
	if err != nil {
		return nil, err
	}
	h.jobsMu.Lock()
	defer h.jobsMu.Unlock()
	e := h.entry(id, now)
	if e.job != nil && e.job.Seq != j.Seq {
		*e = jobEntry{used: now} // the id was deleted and created again
	}
	e.job, e.readAt, e.version = j, now, v
	if e.summaryOf != j.Seq || e.summaryLen != len(j.Targets) {
		e.summary, e.summaryOf, e.summaryLen = targetSummary(j.Targets), j.Seq, len(j.Targets)
	}
	e.record(sample{At: c.opts.Clock.Now(), Counts: countsOf(&j.ProcessDetails)})
	return j, nil
}

// targets returns the words of a job's targets, as computed at its last
// read.
func (h *hub) targets(id string) string {
	h.jobsMu.Lock()
	defer h.jobsMu.Unlock()
	if e := h.jobs[id]; e != nil {
		return e.summary
	}
	return ""
}

// entry returns id's entry, making room for it (jobsMu held).
func (h *hub) entry(id string, now time.Time) *jobEntry {
	e := h.jobs[id]
	if e == nil {
		if len(h.jobs) >= maxWatchedJobs {
			var oldest string
			for k, o := range h.jobs {
				if oldest == "" || o.used.Before(h.jobs[oldest].used) {
					oldest = k
				}
			}
			delete(h.jobs, oldest)
		}
		e = &jobEntry{}
		h.jobs[id] = e
	}
	e.used = now
	return e
}

// record adds a point when the counts moved, or sampleEvery after the
// last one; past maxSamples every other point is dropped (the first and
// the latest are kept), so a long rollout keeps its whole shape.
func (e *jobEntry) record(s sample) {
	if n := len(e.hist); n > 0 {
		last := e.hist[n-1]
		if !s.At.After(last.At) {
			return
		}
		if last.Counts == s.Counts && s.At.Sub(last.At) < sampleEvery {
			return
		}
	}
	e.hist = append(e.hist, s)
	if len(e.hist) > maxSamples {
		thin := e.hist[:1]
		for i := 1; i < len(e.hist)-1; i += 2 {
			thin = append(thin, e.hist[i])
		}
		e.hist = append(thin, e.hist[len(e.hist)-1])
	}
}

// history returns a copy of a job's recorded counts over time.
func (h *hub) history(id string) (hist []sample, fromRecords, seeded bool) {
	h.jobsMu.Lock()
	defer h.jobsMu.Unlock()
	e := h.jobs[id]
	if e == nil {
		return nil, false, false
	}
	return append([]sample(nil), e.hist...), e.fromRecords, e.seeded
}

// seed puts the points reconstructed from a job's executions before the
// recorded ones.
func (h *hub) seed(id string, seq uint64, points []sample, ok bool) {
	h.jobsMu.Lock()
	defer h.jobsMu.Unlock()
	e := h.jobs[id]
	if e == nil || e.job == nil || e.job.Seq != seq || e.seeded {
		return
	}
	e.seeded = true
	if !ok || len(points) == 0 {
		return
	}
	var keep []sample
	for _, s := range e.hist {
		if s.At.After(points[len(points)-1].At) {
			keep = append(keep, s)
		}
	}
	e.hist = append(points, keep...)
	e.fromRecords = true
	for len(e.hist) > maxSamples {
		thin := e.hist[:1]
		for i := 1; i < len(e.hist)-1; i += 2 {
			thin = append(thin, e.hist[i])
		}
		e.hist = append(thin, e.hist[len(e.hist)-1])
	}
}

// covered returns the cached count of things a job's targets cover, and
// whether it is recent enough.
func (h *hub) covered(id string, maxAge time.Duration) (int64, bool) {
	h.jobsMu.Lock()
	defer h.jobsMu.Unlock()
	e := h.jobs[id]
	if e == nil || e.coveredAt.IsZero() || time.Since(e.coveredAt) > maxAge {
		return 0, false
	}
	return e.covered, true
}

func (h *hub) setCovered(id string, n int64) {
	h.jobsMu.Lock()
	defer h.jobsMu.Unlock()
	e := h.entry(id, time.Now())
	e.covered, e.coveredAt = n, time.Now()
}
