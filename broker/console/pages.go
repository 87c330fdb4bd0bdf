package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jobsbroker/jobsbroker/broker/traffic"
	"github.com/jobsbroker/jobsbroker/store"
)

const (
	listPage       = 25    // rows per page of the tables
	searchPages    = 20    // ListJobs pages of 250 a search looks through (the newest 5,000 jobs)
	reconstructMax = 10000 // largest job whose history is rebuilt from its executions
	coverMaxAge    = 5 * time.Minute
)

// bar is a stacked progress bar.
type bar struct {
	Total, Done int64
	Percent     int
	Segs        []seg
	Text        string
}

type seg struct {
	statusInfo
	N    int64
	X, W float64 // in a 0-1000 view box
}

func makeBar(p *store.ProcessDetails) bar {
	b := bar{Total: p.Total()}
	b.Done = b.Total - p.Pending()
	if b.Total > 0 {
		b.Percent = int(b.Done * 100 / b.Total)
	}
	var words []string
	x := 0.0
	for _, st := range barOrder {
		n := p.Count(st.Status)
		if n == 0 {
			continue
		}
		w := 1000 * float64(n) / float64(max(b.Total, 1))
		b.Segs = append(b.Segs, seg{statusInfo: st, N: n, X: x, W: w})
		x += w
		words = append(words, num(n)+" "+strings.ToLower(st.Label))
	}
	if len(words) == 0 {
		b.Text = "no executions yet"
	} else {
		b.Text = fmt.Sprintf("%d%% done: %s, of %s", b.Percent, strings.Join(words, ", "), num(b.Total))
	}
	return b
}

// targetSummary says what a job targets in a few words.
func targetSummary(targets []string) string {
	things, groups := 0, 0
	var first string
	for _, t := range targets {
		kind, name, err := store.ParseTargetARN(t)
		if err != nil {
			continue
		}
		if first == "" {
			first = name
			if kind == store.TargetThingGroup {
				first = "group " + name
			}
		}
		if kind == store.TargetThing {
			things++
		} else {
			groups++
		}
	}
	if things+groups == 1 {
		return first
	}
	var parts []string
	if things > 0 {
		parts = append(parts, plural(things, "thing"))
	}
	if groups > 0 {
		parts = append(parts, plural(groups, "group"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return num(n) + " " + word + "s"
}

// ---- the jobs list ----

type jobRow struct {
	Job     *store.Job
	Targets string
	Bar     bar
}

type jobsBody struct {
	Status, Q, Next, This string
	Statuses              []store.JobStatus
	Rows                  []jobRow
	Note                  string
}

var jobStatuses = []store.JobStatus{store.JobInProgress, store.JobScheduled, store.JobCompleted, store.JobCanceled, store.JobDeletionInProgress}

func (c *Console) jobsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	status := store.JobStatus(q.Get("status"))
	if status != "" && !status.Valid() {
		status = ""
	}
	build := func(ctx context.Context) (*page, error) {
		body := &jobsBody{Status: string(status), Q: strings.TrimSpace(q.Get("q")), This: q.Get("next"), Statuses: jobStatuses}
		jobs, err := c.listJobs(ctx, body)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			full, err := c.job(ctx, j.JobID, row)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, err
			}
			body.Rows = append(body.Rows, jobRow{Job: full, Targets: c.hub.targets(j.JobID), Bar: makeBar(&full.ProcessDetails)})
		}
		p := c.newPage(r, s, "jobs", "Jobs", body)
		p.Live = true
		return p, nil
	}
	c.serve(w, r, s, "jobs", c.opts.Refresh, build, "jobs-list")
}

// listJobs reads one page of jobs, or the jobs whose id contains the
// search text among the newest searchPages*250.
func (c *Console) listJobs(ctx context.Context, body *jobsBody) ([]*store.Job, error) {
	in := &store.ListJobsInput{Status: store.JobStatus(body.Status), MaxResults: listPage, NextToken: body.This}
	if body.Q == "" {
		out, err := c.opts.Store.ListJobs(ctx, in)
		if err != nil {
			return nil, err
		}
		body.Next = out.NextToken
		return out.Jobs, nil
	}
	needle := strings.ToLower(body.Q)
	var found []*store.Job
	in.MaxResults, in.NextToken = store.MaxListResults, ""
	for range searchPages {
		out, err := c.opts.Store.ListJobs(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, j := range out.Jobs {
			if strings.Contains(strings.ToLower(j.JobID), needle) && len(found) < listPage*4 {
				found = append(found, j)
			}
		}
		if in.NextToken = out.NextToken; in.NextToken == "" {
			return found, nil
		}
	}
	body.Note = fmt.Sprintf("Searched the newest %s jobs.", num(searchPages*store.MaxListResults))
	return found, nil
}

// ---- a job ----

type jobBody struct {
	Job        *store.Job
	Document   string
	Bar        bar
	Counts     []seg
	Chart      chart
	Pace       string
	Backlog    string
	Targets    []target
	Executions []*store.Execution
	ExecStatus string
	Next, This string
	Template   string
	Live       bool // the job can still change
}

type target struct {
	Kind, Name string
	Thing      bool
}

func (c *Console) jobPage(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("jobId")
	q := r.URL.Query()
	status := store.ExecutionStatus(q.Get("status"))
	if status != "" && !status.Valid() {
		status = ""
	}
	doc, err := c.opts.Store.GetJobDocument(r.Context(), id, false)
	if err != nil {
		c.storeError(w, r, s, err, "job "+id)
		return
	}
	if !wantsStream(r) {
		if j, err := c.job(r.Context(), id, subject); err == nil {
			c.seedHistory(r.Context(), j)
		}
	}
	build := func(ctx context.Context) (*page, error) {
		j, err := c.job(ctx, id, subject)
		if err != nil {
			return nil, err
		}
		body := &jobBody{Job: j, Document: prettyJSON(doc), Bar: makeBar(&j.ProcessDetails), ExecStatus: string(status), This: q.Get("next"),
			Live: j.Status != store.JobCompleted || j.IsConcurrent}
		for _, st := range barOrder {
			body.Counts = append(body.Counts, seg{statusInfo: st, N: j.ProcessDetails.Count(st.Status)})
		}
		for _, t := range j.Targets {
			kind, name, err := store.ParseTargetARN(t)
			if err == nil {
				body.Targets = append(body.Targets, target{Kind: map[bool]string{true: "thing", false: "thing group"}[kind == store.TargetThing], Name: name, Thing: kind == store.TargetThing})
			}
		}
		if i := strings.LastIndex(j.JobTemplateArn, "/"); i >= 0 {
			body.Template = j.JobTemplateArn[i+1:]
		}
		hist, fromRecords, _ := c.hub.history(id)
		body.Chart = makeChart(hist, j, fromRecords, c.opts.Clock.Now())
		body.Pace = pace(hist, j)
		body.Backlog = c.backlog(j)
		execs, err := c.opts.Store.ListJobExecutionsForJob(ctx, &store.ListExecutionsInput{JobID: id, Status: status, MaxResults: listPage, NextToken: body.This})
		if err != nil {
			return nil, err
		}
		body.Executions, body.Next = execs.Executions, execs.NextToken
		p := c.newPage(r, s, "jobs", "Job "+id, body)
		p.Live = true
		return p, nil
	}
	c.serve(w, r, s, "job", c.opts.Refresh, build, "job-summary", "job-chart", "job-executions")
}

// pace describes how fast things are being given the job.
func pace(hist []sample, j *store.Job) string {
	var configured string
	if rc := j.RolloutConfig; rc != nil {
		if rc.ExponentialRate != nil {
			configured = fmt.Sprintf("exponential from %s a minute, ×%g", num(rc.ExponentialRate.BaseRatePerMinute), rc.ExponentialRate.IncrementFactor)
			if rc.MaximumPerMinute != nil {
				configured += ", at most " + num(*rc.MaximumPerMinute) + " a minute"
			}
		} else if rc.MaximumPerMinute != nil {
			configured = "at most " + num(*rc.MaximumPerMinute) + " a minute"
		}
	}
	if configured == "" {
		configured = "no limit set"
	}
	observed := ""
	if n := len(hist); n >= 2 {
		last := hist[n-1]
		first := hist[0]
		for i := n - 2; i >= 0; i-- {
			first = hist[i]
			if last.At.Sub(hist[i].At) >= time.Minute {
				break
			}
		}
		if span := last.At.Sub(first.At); span >= 5*time.Second {
			given := sum(last.Counts) - sum(first.Counts)
			observed = fmt.Sprintf("; %s things given the job in the last %s (%s a minute)", num(given), span.Round(time.Second), num(float64(int64(float64(given)/span.Minutes()))))
		}
	}
	return configured + observed
}

func sum(c [8]int64) int64 {
	var t int64
	for _, v := range c {
		t += v
	}
	return t
}

// backlog says how many target things are still to be given the job. The
// targets are counted in the background (a group of 100,000 things is 400
// pages of names), once per job and coverMaxAge, and the page says so
// until the count is in.
func (c *Console) backlog(j *store.Job) string {
	switch {
	case j.Status == store.JobScheduled:
		return "the rollout has not started (the job is scheduled)"
	case len(j.ProcessDetails.ProcessingTargets) == 0:
		if j.TargetSelection == store.Continuous && j.Status == store.JobInProgress {
			return "none: things that join a target group get the job as they join"
		}
		return "none: the rollout is over"
	}
	covered, ok := c.hub.covered(j.JobID, coverMaxAge)
	if !ok {
		c.countInBackground(j.JobID, j.Targets)
		return fmt.Sprintf("rolling out: %s things given the job so far (counting the target things…)", num(j.ProcessDetails.Total()))
	}
	left := max(covered-j.ProcessDetails.Total(), 0)
	return fmt.Sprintf("%s of the %s target things still to be given the job", num(left), num(covered))
}

// countInBackground counts a job's target things, unless a count of them
// is under way already; the streams wake when it is done.
func (c *Console) countInBackground(id string, targets []string) {
	if _, busy := c.counting.LoadOrStore(id, true); busy {
		return
	}
	go func() {
		defer c.counting.Delete(id)
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		defer cancel()
		n, err := c.countTargets(ctx, targets)
		if err != nil {
			c.log.Debug("console: count a job's targets", "job", id, "error", err)
			return
		}
		c.hub.setCovered(id, n)
		c.hub.changed()
	}()
}

// countTargets counts the distinct things a job's targets cover now.
func (c *Console) countTargets(ctx context.Context, targets []string) (int64, error) {
	seen := map[string]struct{}{}
	for _, t := range targets {
		kind, name, err := store.ParseTargetARN(t)
		if err != nil {
			continue
		}
		if kind == store.TargetThing {
			seen[name] = struct{}{}
			continue
		}
		in := &store.ListThingsInGroupInput{ThingGroupName: name, Recursive: true, PageInput: store.PageInput{MaxResults: store.MaxListResults}}
		for {
			page, err := c.opts.Store.ListThingsInThingGroup(ctx, in)
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if err != nil {
				return 0, err
			}
			for _, n := range page.Names {
				seen[n] = struct{}{}
			}
			if in.NextToken = page.NextToken; in.NextToken == "" {
				break
			}
		}
	}
	return int64(len(seen)), nil
}

// seedHistory rebuilds a job's counts over time from its executions'
// timestamps, once, for a job small enough to read whole.
func (c *Console) seedHistory(ctx context.Context, j *store.Job) {
	if _, _, seeded := c.hub.history(j.JobID); seeded {
		return
	}
	if j.ProcessDetails.Total() > reconstructMax {
		c.hub.seed(j.JobID, j.Seq, nil, false)
		return
	}
	var execs []*store.Execution
	in := &store.ListExecutionsInput{JobID: j.JobID, MaxResults: store.MaxListResults}
	for {
		page, err := c.opts.Store.ListJobExecutionsForJob(ctx, in)
		if err != nil {
			return // try again on the next visit
		}
		execs = append(execs, page.Executions...)
		if in.NextToken = page.NextToken; in.NextToken == "" || len(execs) > 2*reconstructMax {
			break
		}
	}
	c.hub.seed(j.JobID, j.Seq, reconstruct(execs, j, c.opts.Clock.Now()), true)
}

// reconstruct computes a job's counts at evenly spaced times from its
// executions: each thing counts under its latest attempt queued by then,
// QUEUED until it started, IN_PROGRESS until it ended, then its final
// status (from its last update).
func reconstruct(execs []*store.Execution, j *store.Job, now time.Time) []sample {
	if len(execs) == 0 {
		return nil
	}
	start, end := j.CreatedAt, j.CompletedAt
	if end.IsZero() {
		end = now
		last := time.Time{}
		for _, e := range execs {
			if e.LastUpdatedAt.After(last) {
				last = e.LastUpdatedAt
			}
		}
		if !last.IsZero() && last.Before(end) {
			end = last
		}
	}
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	byThing := map[string][]*store.Execution{}
	for _, e := range execs {
		byThing[e.ThingName] = append(byThing[e.ThingName], e)
	}
	for _, list := range byThing {
		slices.SortFunc(list, func(a, b *store.Execution) int { return int(a.ExecutionNumber - b.ExecutionNumber) })
	}
	const points = 60
	out := make([]sample, 0, points+1)
	for i := 0; i <= points; i++ {
		t := start.Add(time.Duration(float64(end.Sub(start)) * float64(i) / points))
		var p store.ProcessDetails
		for _, list := range byThing {
			var cur *store.Execution
			for _, e := range list {
				if !e.QueuedAt.After(t) {
					cur = e
				}
			}
			if cur == nil {
				continue
			}
			switch {
			case cur.Status.Terminal() && !cur.LastUpdatedAt.After(t):
				p.Add(cur.Status, 1)
			case !cur.StartedAt.IsZero() && !cur.StartedAt.After(t):
				p.Add(store.StatusInProgress, 1)
			default:
				p.Add(store.StatusQueued, 1)
			}
		}
		out = append(out, sample{At: t, Counts: countsOf(&p)})
	}
	return out
}

// ---- a thing ----

type thingBody struct {
	Name       string
	Thing      *store.Thing
	Groups     []string
	Clients    []string
	Listening  bool
	Tracked    bool // the node can tell whether it is connected
	Pending    *store.PendingExecutions
	Executions []*store.Execution
	Next, This string
	Traffic    []traffic.Entry
	Recording  bool
	Limits     traffic.Options
}

func (c *Console) thingByName(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.URL.Query().Get("name"))
	if name == "" {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Prefix+"things/"+pathEscape(name), http.StatusSeeOther)
}

func pathEscape(s string) string { return url.PathEscape(s) }

func (c *Console) thingPage(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("thingName")
	if err := store.ValidateThingName(name); err != nil {
		c.errorPage(w, r, s, http.StatusNotFound, "“"+name+"” is not a thing name: thing names are 1-128 characters from a-z, A-Z, 0-9, :, _ and -.")
		return
	}
	this := r.URL.Query().Get("next")
	build := func(ctx context.Context) (*page, error) {
		body := &thingBody{Name: name, This: this, Recording: c.opts.Traffic != nil, Tracked: c.opts.Clients != nil}
		if t, err := c.opts.Store.DescribeThing(ctx, name); err == nil {
			body.Thing = t
			if g, err := c.opts.Store.ListThingGroupsForThing(ctx, name, &store.PageInput{MaxResults: store.MaxListResults}); err == nil {
				for _, grp := range g.Groups {
					body.Groups = append(body.Groups, grp.Name)
				}
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if c.opts.Clients != nil {
			body.Clients = c.opts.Clients(name)
		}
		if c.opts.Listening != nil {
			body.Listening = c.opts.Listening(name)
		}
		var err error
		if body.Pending, err = c.opts.Store.GetPendingJobExecutions(ctx, name); err != nil {
			return nil, err
		}
		execs, err := c.opts.Store.ListJobExecutionsForThing(ctx, &store.ListExecutionsInput{ThingName: name, MaxResults: listPage, NextToken: this})
		if err != nil {
			return nil, err
		}
		body.Executions, body.Next = execs.Executions, execs.NextToken
		if c.opts.Traffic != nil {
			body.Limits = c.opts.Traffic.Limits()
			body.Traffic = c.opts.Traffic.Recent(name)
			slices.Reverse(body.Traffic)
		}
		p := c.newPage(r, s, "things", "Thing "+name, body)
		p.Live = true
		return p, nil
	}
	c.serve(w, r, s, "thing", time.Second, build, "thing-state", "thing-executions", "thing-traffic")
}

// ---- serving pages and their streams ----

// keyed is a page body that can tell cheaply whether it would render as
// before: its key changes whenever what the page shows may have.
type keyed interface {
	key(now time.Time) string
}

func (b *jobsBody) key(time.Time) string {
	var k strings.Builder
	fmt.Fprintf(&k, "%s|%s|", b.Next, b.Note)
	for _, r := range b.Rows {
		fmt.Fprintf(&k, "%s %d %s %v %d %v;", r.Job.JobID, r.Job.Seq, r.Job.Status, r.Job.IsConcurrent, r.Job.LastUpdatedAt.UnixNano(), countsOf(&r.Job.ProcessDetails))
	}
	return k.String()
}

func (b *jobBody) key(now time.Time) string {
	j := b.Job
	var k strings.Builder
	fmt.Fprintf(&k, "%d %s %v %v %s %s %d %v|%s|%s|%s|%d|", j.Seq, j.Status, j.IsConcurrent, j.ForceCanceled, j.ReasonCode, j.Comment,
		j.LastUpdatedAt.UnixNano(), countsOf(&j.ProcessDetails), b.Pace, b.Backlog, b.Next, len(b.Chart.Bands))
	if b.Live {
		fmt.Fprintf(&k, "%d|", now.Unix()/5) // the chart's time axis moves on
	}
	for _, e := range b.Executions {
		fmt.Fprintf(&k, "%s %d %s %d %d;", e.ThingName, e.ExecutionNumber, e.Status, e.VersionNumber, e.LastUpdatedAt.UnixNano())
	}
	return k.String()
}

// serve renders a page, or streams its live parts when the browser asks.
func (c *Console) serve(w http.ResponseWriter, r *http.Request, s *session, name string, refresh time.Duration,
	build func(ctx context.Context) (*page, error), parts ...string) {
	if wantsStream(r) {
		var last string
		c.stream(w, r, refresh, func(ctx context.Context) (map[string]string, error) {
			p, err := build(ctx)
			if errors.Is(err, store.ErrNotFound) {
				return nil, errGone
			}
			if err != nil {
				return nil, err
			}
			// Rendering costs more than reading: a page whose data is
			// as it was is not rendered again.
			if k, ok := p.Body.(keyed); ok {
				key := k.key(c.opts.Clock.Now())
				if key == last {
					return nil, nil
				}
				last = key
			}
			return c.parts(name, p, parts...)
		})
		return
	}
	p, err := build(r.Context())
	if err != nil {
		c.storeError(w, r, s, err, "")
		return
	}
	c.write(w, http.StatusOK, name, p)
}

// storeError shows a failed read.
func (c *Console) storeError(w http.ResponseWriter, r *http.Request, s *session, err error, what string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		msg := err.Error()
		if what != "" {
			msg = "There is no " + what + ". It may have been deleted."
		}
		c.errorPage(w, r, s, http.StatusNotFound, msg)
	case errors.Is(err, store.ErrInvalidRequest):
		c.errorPage(w, r, s, http.StatusBadRequest, err.Error())
	default:
		c.log.Error("console: read failed", "path", r.URL.Path, "error", err)
		c.errorPage(w, r, s, http.StatusServiceUnavailable, "The store could not be read just now. Try again in a moment.")
	}
}
