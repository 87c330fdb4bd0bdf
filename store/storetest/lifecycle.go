package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// GroupARN returns a target ARN for a thing group.
func GroupARN(group string) string { return "arn:aws:iot:us-east-1:123456789012:thinggroup/" + group }

func (h *Harness) mustRegister(things ...string) {
	h.T.Helper()
	for _, th := range things {
		if _, err := h.Store.CreateThing(h.Ctx, &store.CreateThingInput{ThingName: th}); err != nil {
			h.T.Fatalf("CreateThing %s: %v", th, err)
		}
	}
}

func (h *Harness) mustGroup(name, parent string, things ...string) {
	h.T.Helper()
	if _, err := h.Store.CreateThingGroup(h.Ctx, &store.CreateThingGroupInput{Name: name, ParentName: parent}); err != nil {
		h.T.Fatalf("CreateThingGroup %s: %v", name, err)
	}
	for _, th := range things {
		h.mustRegister(th)
		if err := h.Store.AddThingToThingGroup(h.Ctx, &store.MembershipInput{ThingGroupName: name, ThingName: th}); err != nil {
			h.T.Fatalf("AddThingToThingGroup %s %s: %v", name, th, err)
		}
	}
}

func (h *Harness) executions(thing, job string) []string {
	h.T.Helper()
	page, err := h.Store.ListJobExecutionsForThing(h.Ctx, &store.ListExecutionsInput{ThingName: thing, JobID: job})
	if err != nil {
		h.T.Fatal(err)
	}
	var out []string
	for _, e := range page.Executions {
		out = append(out, fmt.Sprintf("%d:%s:r%d", e.ExecutionNumber, e.Status, e.RetryAttempt))
	}
	return out
}

func testThingGroups(t *testing.T, h *Harness) {
	h.mustGroup("fleet", "")
	h.mustGroup("pumps", "fleet", "p1", "p2")
	h.mustGroup("valves", "fleet", "v1")
	h.mustGroup("big-pumps", "pumps", "bp1")
	g, err := h.Store.DescribeThingGroup(h.Ctx, "big-pumps")
	if err != nil || strings.Join(g.Ancestors, "/") != "fleet/pumps" || g.ParentName != "pumps" {
		t.Fatalf("big-pumps = %+v, %v", g, err)
	}
	names, err := h.Store.ListThingsInThingGroup(h.Ctx, &store.ListThingsInGroupInput{ThingGroupName: "fleet", Recursive: true})
	if err != nil || strings.Join(names.Names, ",") != "bp1,p1,p2,v1" {
		t.Fatalf("recursive things of fleet = %+v, %v", names, err)
	}
	names, _ = h.Store.ListThingsInThingGroup(h.Ctx, &store.ListThingsInGroupInput{ThingGroupName: "pumps"})
	equal(t, "direct things of pumps", strings.Join(names.Names, ","), "p1,p2")
	groups, err := h.Store.ListThingGroups(h.Ctx, &store.ListThingGroupsInput{ParentGroup: "fleet", Recursive: true})
	if err != nil || len(groups.Groups) != 3 {
		t.Fatalf("descendants of fleet = %+v, %v", groups, err)
	}
	groups, _ = h.Store.ListThingGroups(h.Ctx, &store.ListThingGroupsInput{NamePrefixFilter: "p"})
	equal(t, "prefix p", len(groups.Groups), 1)
	groups, _ = h.Store.ListThingGroupsForThing(h.Ctx, "p1", &store.PageInput{})
	equal(t, "groups of p1", len(groups.Groups), 1)

	// A job for the parent group reaches every thing below it.
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "fleet-fw", Targets: []string{GroupARN("fleet")}}})
	for _, th := range []string{"p1", "p2", "v1", "bp1"} {
		equal(t, th+" has the job", h.Describe(th, "fleet-fw").Status, store.StatusQueued)
	}
	equal(t, "counts", Counts(h.Job("fleet-fw").ProcessDetails), "q4 i0 s0 f0 r0 c0 rm0 t0")
	list, err := h.Store.ListJobs(h.Ctx, &store.ListJobsInput{ThingGroupName: "fleet"})
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].JobID != "fleet-fw" {
		t.Fatalf("ListJobs thingGroupName=fleet = %+v, %v", list, err)
	}
	if list, _ = h.Store.ListJobs(h.Ctx, &store.ListJobsInput{ThingGroupName: "pumps"}); len(list.Jobs) != 0 {
		t.Fatalf("ListJobs thingGroupName=pumps lists a job that targets fleet")
	}

	// Errors.
	_, err = h.Store.CreateThingGroup(h.Ctx, &store.CreateThingGroupInput{Name: "orphan", ParentName: "none"})
	ExpectError(t, err, store.ErrNotFound)
	_, err = h.Store.CreateThingGroup(h.Ctx, &store.CreateThingGroupInput{Name: "pumps", Description: "other"})
	ExpectError(t, err, store.ErrAlreadyExists)
	err = h.Store.AddThingToThingGroup(h.Ctx, &store.MembershipInput{ThingGroupName: "pumps", ThingName: "unregistered"})
	ExpectError(t, err, store.ErrNotFound)
	err = h.Store.DeleteThingGroup(h.Ctx, &store.DeleteThingGroupInput{Name: "pumps"})
	ExpectError(t, err, store.ErrInvalidRequest) // it has a child group
	err = h.Store.DeleteThingGroup(h.Ctx, &store.DeleteThingGroupInput{Name: "valves", ExpectedVersion: ptr(int64(9))})
	ExpectError(t, err, store.ErrVersionConflict)
	_, err = h.Store.CreateJob(h.Ctx, &store.CreateJobInput{Job: store.Job{JobID: "x", Targets: []string{GroupARN("none")}}, Document: "{}"})
	ExpectError(t, err, store.ErrNotFound)
	depth := "fleet"
	for i := range store.MaxGroupDepth {
		name := fmt.Sprintf("level-%d", i)
		_, err = h.Store.CreateThingGroup(h.Ctx, &store.CreateThingGroupInput{Name: name, ParentName: depth})
		depth = name
	}
	ExpectError(t, err, store.ErrInvalidRequest)
	if err := h.Store.DeleteThingGroup(h.Ctx, &store.DeleteThingGroupInput{Name: "valves"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.DescribeThingGroup(h.Ctx, "valves"); err == nil {
		t.Fatal("deleted group still described")
	}
}

func testContinuousJob(t *testing.T, h *Harness) {
	h.mustGroup("fleet", "")
	h.mustGroup("pumps", "fleet", "p1")
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "cont", TargetSelection: store.Continuous,
		Targets: []string{GroupARN("fleet")}}})
	equal(t, "p1 queued", h.Describe("p1", "cont").Status, store.StatusQueued)
	h.Update("p1", "cont", store.StatusSucceeded)
	equal(t, "continuous jobs never complete", h.Job("cont").Status, store.JobInProgress)

	// A thing added to a child group later gets an execution at once.
	h.mustRegister("p2")
	h.TakeChanges("p2")
	if err := h.Store.AddThingToThingGroup(h.Ctx, &store.MembershipInput{ThingGroupName: "pumps", ThingName: "p2"}); err != nil {
		t.Fatal(err)
	}
	equal(t, "p2 joined", h.Describe("p2", "cont").Status, store.StatusQueued)
	if cs := h.TakeChanges("p2"); len(cs) != 1 || !cs[0].Notify || !cs[0].NotifyNext {
		t.Fatalf("p2 changes = %+v", cs)
	}
	// Leaving sets its pending execution REMOVED.
	if err := h.Store.RemoveThingFromThingGroup(h.Ctx, &store.MembershipInput{ThingGroupName: "pumps", ThingName: "p2"}); err != nil {
		t.Fatal(err)
	}
	e := h.Describe("p2", "cont")
	equal(t, "p2 left", e.Status, store.StatusRemoved)
	equal(t, "removed version", e.VersionNumber, int64(2))
	if cs := h.TakeChanges("p2"); len(cs) != 1 || !cs[0].Notify || cs[0].Next != nil {
		t.Fatalf("p2 changes after leaving = %+v", cs)
	}
	// Re-joining starts a new execution.
	if err := h.Store.AddThingToThingGroup(h.Ctx, &store.MembershipInput{ThingGroupName: "fleet", ThingName: "p2"}); err != nil {
		t.Fatal(err)
	}
	equalSlice(t, "p2 executions", h.executions("p2", "cont"), []string{"1:REMOVED:r0", "2:QUEUED:r0"})
	if err := h.Store.RemoveThingFromThingGroup(h.Ctx, &store.MembershipInput{ThingGroupName: "fleet", ThingName: "p2"}); err != nil {
		t.Fatal(err)
	}
	equal(t, "p2 removed again", h.Describe("p2", "cont").Status, store.StatusRemoved)
	equal(t, "counts", Counts(h.Job("cont").ProcessDetails), "q0 i0 s1 f0 r0 c0 rm1 t0")

	// AssociateTargetsWithJob adds a thing and a group.
	h.mustGroup("valves", "", "v1")
	job, err := h.Store.AssociateTargetsWithJob(h.Ctx, &store.AssociateTargetsInput{JobID: "cont",
		Targets: []string{ThingARN("solo"), GroupARN("valves")}, Comment: ptr("more")})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "targets", len(job.Targets), 3)
	equal(t, "solo", h.Describe("solo", "cont").Status, store.StatusQueued)
	equal(t, "v1", h.Describe("v1", "cont").Status, store.StatusQueued)
	h.mustRegister("v2")
	if err := h.Store.AddThingToThingGroup(h.Ctx, &store.MembershipInput{ThingGroupName: "valves", ThingName: "v2"}); err != nil {
		t.Fatal(err)
	}
	equal(t, "v2 via the associated group", h.Describe("v2", "cont").Status, store.StatusQueued)
	h.CreateJob("snap", "z")
	_, err = h.Store.AssociateTargetsWithJob(h.Ctx, &store.AssociateTargetsInput{JobID: "snap", Targets: []string{ThingARN("y")}})
	ExpectError(t, err, store.ErrInvalidRequest)

	// Deleting a thing removes its pending executions, whatever the job.
	h.mustRegister("z")
	if err := h.Store.DeleteThing(h.Ctx, &store.DeleteThingInput{ThingName: "v1"}); err != nil {
		t.Fatal(err)
	}
	equal(t, "v1 deleted", h.Describe("v1", "cont").Status, store.StatusRemoved)
	if err := h.Store.DeleteThing(h.Ctx, &store.DeleteThingInput{ThingName: "z"}); err != nil {
		t.Fatal(err)
	}
	equal(t, "snapshot execution removed", h.Describe("z", "snap").Status, store.StatusRemoved)
	equal(t, "snapshot job completes", h.Job("snap").Status, store.JobCompleted)
}

func testRetries(t *testing.T, h *Harness) {
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "flaky",
		TimeoutConfig: &store.TimeoutConfig{InProgressTimeoutInMinutes: ptr(int64(5))},
		RetryConfig: &store.RetryConfig{CriteriaList: []store.RetryCriteria{
			{FailureType: "FAILED", NumberOfRetries: 2}, {FailureType: "TIMED_OUT", NumberOfRetries: 1}}}}}, "d")
	h.StartNext("d")
	h.TakeChanges("d")
	h.Update("d", "flaky", store.StatusFailed)
	equalSlice(t, "after one failure", h.executions("d", "flaky"), []string{"1:FAILED:r0", "2:QUEUED:r1"})
	cs := h.TakeChanges("d")
	if len(cs) != 1 || !cs[0].Notify || len(cs[0].Pending) != 1 || cs[0].Pending[0].ExecutionNumber != 2 {
		t.Fatalf("the retry must be announced: %+v", cs)
	}
	equal(t, "counts follow the latest execution", Counts(h.Job("flaky").ProcessDetails), "q1 i0 s0 f0 r0 c0 rm0 t0")
	// A timeout retries once.
	h.StartNext("d")
	h.Clock.Advance(6 * time.Minute)
	h.Eventually("timed out", func() error {
		if e := h.Describe("d", "flaky"); e.ExecutionNumber != 3 {
			return fmt.Errorf("latest is %d %s", e.ExecutionNumber, e.Status)
		}
		return nil
	})
	equalSlice(t, "after a timeout", h.executions("d", "flaky"), []string{"1:FAILED:r0", "2:TIMED_OUT:r1", "3:QUEUED:r2"})
	// The second FAILED retry, then no more.
	h.Update("d", "flaky", store.StatusFailed)
	h.Update("d", "flaky", store.StatusFailed)
	equalSlice(t, "retries exhausted", h.executions("d", "flaky"),
		[]string{"1:FAILED:r0", "2:TIMED_OUT:r1", "3:FAILED:r2", "4:FAILED:r3"})
	equal(t, "job completes", h.Job("flaky").Status, store.JobCompleted)
	// REJECTED is never retried; ALL covers both failure types.
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "all",
		RetryConfig: &store.RetryConfig{CriteriaList: []store.RetryCriteria{{FailureType: "ALL", NumberOfRetries: 1}}}}}, "e", "f")
	h.Update("e", "all", store.StatusRejected)
	equalSlice(t, "rejected", h.executions("e", "all"), []string{"1:REJECTED:r0"})
	h.Update("f", "all", store.StatusFailed)
	h.Update("f", "all", store.StatusFailed)
	equalSlice(t, "ALL", h.executions("f", "all"), []string{"1:FAILED:r0", "2:FAILED:r1"})
}

func testRolloutRate(t *testing.T, h *Harness) {
	all := things(20)
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "slow",
		RolloutConfig: &store.RolloutConfig{MaximumPerMinute: ptr(int64(6))}}}, all...)
	job := h.Job("slow")
	equal(t, "one thing at once", job.ProcessDetails.Queued, int64(1))
	if !job.IsConcurrent || len(job.ProcessDetails.ProcessingTargets) != 20 {
		t.Fatalf("a rolling-out job is concurrent with processing targets: %+v", job)
	}
	// Six a minute: one every ten seconds.
	for step := 2; step <= 7; step++ {
		h.Clock.Advance(10 * time.Second)
		h.Eventually(fmt.Sprintf("%d queued", step), func() error {
			if q := h.Job("slow").ProcessDetails.Queued; q != int64(step) {
				return fmt.Errorf("%d queued", q)
			}
			return nil
		})
	}
	h.Clock.Advance(5 * time.Second)
	h.CreateJob("probe", "other") // the task loop has run; the count must not move early
	equal(t, "no early thing", h.Job("slow").ProcessDetails.Queued, int64(7))
	// Raising the rate with UpdateJob speeds the rest up.
	if err := h.Store.UpdateJob(h.Ctx, &store.UpdateJobInput{JobID: "slow", RolloutConfig: &store.RolloutConfig{MaximumPerMinute: ptr(int64(600))}}); err != nil {
		t.Fatal(err)
	}
	h.Eventually("rolled out", func() error {
		if j := h.Job("slow"); j.IsConcurrent || j.ProcessDetails.Queued != 20 {
			h.Clock.Advance(time.Second)
			return fmt.Errorf("%d queued", j.ProcessDetails.Queued)
		}
		return nil
	})
}

func testExponentialRollout(t *testing.T, h *Harness) {
	all := things(12)
	start := h.Clock.Now()
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "exp", RolloutConfig: &store.RolloutConfig{
		ExponentialRate: &store.ExponentialRate{BaseRatePerMinute: 6, IncrementFactor: 2,
			RateIncreaseCriteria: store.RateIncreaseCriteria{NumberOfNotifiedThings: ptr(int64(4))}}}}}, all...)
	// The clock moves in half seconds, each time only once the store's
	// task loop sleeps again, so the queue times do not depend on how busy
	// the machine is.
	for h.Job("exp").IsConcurrent {
		if h.Clock.Now().Sub(start) > 2*time.Minute {
			t.Fatalf("rollout not over after 2 minutes: %s", Counts(h.Job("exp").ProcessDetails))
		}
		h.Clock.Advance(500 * time.Millisecond)
		h.Eventually("the task loop sleeps again", func() error {
			if h.Clock.Waiters() == 0 && h.Job("exp").IsConcurrent {
				return fmt.Errorf("the task loop has not re-armed its timer")
			}
			return nil
		})
	}
	out, err := h.Store.ListJobExecutionsForJob(h.Ctx, &store.ListExecutionsInput{JobID: "exp", MaxResults: 100})
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Duration
	for _, e := range out.Executions {
		at = append(at, e.QueuedAt.Sub(start))
	}
	slices.Sort(at)
	// 6/min (every 10 s) for the first four things, 12/min (5 s) once four
	// have been notified, 24/min (2.5 s) once eight have.
	want := []float64{0, 10, 20, 30, 35, 40, 45, 50, 52.5, 55, 57.5, 60}
	if len(at) != len(want) {
		t.Fatalf("%d executions queued", len(at))
	}
	for i := range want {
		if d := at[i] - time.Duration(want[i]*float64(time.Second)); d < -500*time.Millisecond || d > 500*time.Millisecond {
			t.Fatalf("queue times %v, want %v seconds", at, want)
		}
	}
}

func testAbort(t *testing.T, h *Harness) {
	all := things(10)
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "risky", AbortConfig: &store.AbortConfig{CriteriaList: []store.AbortCriteria{
		{FailureType: "FAILED", Action: "CANCEL", ThresholdPercentage: 30, MinNumberOfExecutedThings: 5}}}}}, all...)
	h.StartNext(all[9])
	h.Update(all[0], "risky", store.StatusFailed)
	h.Update(all[1], "risky", store.StatusFailed)
	equal(t, "below the threshold", h.Job("risky").Status, store.JobInProgress)
	h.Update(all[2], "risky", store.StatusFailed) // 3 of 10 = 30%
	job := h.Job("risky")
	equal(t, "aborted", job.Status, store.JobCanceled)
	if !strings.Contains(job.Comment, "aborted") {
		t.Fatalf("comment = %q", job.Comment)
	}
	h.Eventually("queued executions canceled", func() error {
		if c := Counts(h.Job("risky").ProcessDetails); c != "q0 i1 s0 f3 r0 c6 rm0 t0" {
			return fmt.Errorf("%s", c)
		}
		return nil
	})
	equal(t, "the running one goes on", h.Describe(all[9], "risky").Status, store.StatusInProgress)
}

func testScheduledJob(t *testing.T, h *Harness) {
	start := schedTime(h.Clock.Now().Add(time.Hour))
	end := schedTime(h.Clock.Now().Add(3 * time.Hour))
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "later", SchedulingConfig: &store.SchedulingConfig{
		StartTime: start, EndTime: end, EndBehavior: "CANCEL"}}}, "d1", "d2")
	equal(t, "scheduled", h.Job("later").Status, store.JobScheduled)
	if _, q := h.Pending("d1"); len(q) != 0 {
		t.Fatalf("a scheduled job has no executions yet: %v", q)
	}
	h.Clock.Advance(time.Hour)
	h.Eventually("started", func() error {
		if j := h.Job("later"); j.Status != store.JobInProgress || j.ProcessDetails.Queued != 2 {
			return fmt.Errorf("%s %s", j.Status, Counts(j.ProcessDetails))
		}
		return nil
	})
	h.Update("d1", "later", store.StatusInProgress)
	h.Clock.Advance(2 * time.Hour)
	h.Eventually("canceled at its end", func() error {
		if j := h.Job("later"); j.Status != store.JobCanceled || Counts(j.ProcessDetails) != "q0 i1 s0 f0 r0 c1 rm0 t0" {
			return fmt.Errorf("%s %s", j.Status, Counts(j.ProcessDetails))
		}
		return nil
	})

	// Validation.
	in := store.CreateJobInput{Job: store.Job{JobID: "soon", Targets: []string{ThingARN("x")},
		SchedulingConfig: &store.SchedulingConfig{StartTime: schedTime(h.Clock.Now().Add(10 * time.Minute))}}, Document: "{}"}
	_, err := h.Store.CreateJob(h.Ctx, &in)
	ExpectError(t, err, store.ErrInvalidRequest)
}

func testMaintenanceWindows(t *testing.T, h *Harness) {
	// Epoch is 12:00 UTC; the window opens daily at 14:00 for an hour.
	h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "nightly", SchedulingConfig: &store.SchedulingConfig{
		MaintenanceWindows: []store.MaintenanceWindow{{StartTime: "cron(0 14 * * ? *)", DurationInMinutes: 60}}}}}, "w1", "w2")
	job := h.Job("nightly")
	equal(t, "waits for its window", job.ProcessDetails.Queued, int64(0))
	if len(job.ScheduledRollouts) != 7 || !job.ScheduledRollouts[0].Equal(Epoch.Add(2*time.Hour)) {
		t.Fatalf("scheduledJobRollouts = %v", job.ScheduledRollouts)
	}
	h.Clock.Advance(2 * time.Hour)
	h.Eventually("rolled out in the window", func() error {
		if q := h.Job("nightly").ProcessDetails.Queued; q != 2 {
			return fmt.Errorf("%d", q)
		}
		return nil
	})
}

func schedTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04") }

func testTemplates(t *testing.T, h *Harness) {
	_, err := h.Store.CreateJobTemplate(h.Ctx, &store.CreateJobTemplateInput{Template: store.JobTemplate{
		JobTemplateID: "reboot", Description: "reboot a device",
		Document:      `{"operation":"reboot","delay":"${aws:iot:parameter:delay}"}`,
		TimeoutConfig: &store.TimeoutConfig{InProgressTimeoutInMinutes: ptr(int64(7))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:iot:us-east-1:123456789012:jobtemplate/reboot"
	job := h.CreateJobWith(store.CreateJobInput{Job: store.Job{JobID: "from-tmpl", JobTemplateArn: arn,
		DocumentParameters: map[string]string{"delay": "5"}}}, "d")
	equal(t, "description from the template", job.Description, "reboot a device")
	equal(t, "timeout from the template", *job.TimeoutConfig.InProgressTimeoutInMinutes, int64(7))
	doc, err := h.Store.GetJobDocument(h.Ctx, "from-tmpl", false)
	if err != nil || doc != `{"operation":"reboot","delay":"5"}` {
		t.Fatalf("document = %q, %v", doc, err)
	}
	doc, _ = h.Store.GetJobDocument(h.Ctx, "from-tmpl", true)
	equal(t, "before substitution", doc, `{"operation":"reboot","delay":"${aws:iot:parameter:delay}"}`)
	for _, bad := range []store.CreateJobInput{
		{Job: store.Job{JobID: "a", JobTemplateArn: arn}},
		{Job: store.Job{JobID: "b", JobTemplateArn: arn, DocumentParameters: map[string]string{"delay": "1", "extra": "2"}}},
		{Job: store.Job{JobID: "c", DocumentParameters: map[string]string{"delay": "1"}}, Document: "{}"},
		{Job: store.Job{JobID: "d", JobTemplateArn: arn, DocumentParameters: map[string]string{"delay": "1"}}, Document: "{}"},
	} {
		bad.Job.Targets = []string{ThingARN("x")}
		_, err := h.Store.CreateJob(h.Ctx, &bad)
		ExpectError(t, err, store.ErrInvalidRequest)
	}
	_, err = h.Store.CreateJob(h.Ctx, &store.CreateJobInput{Job: store.Job{JobID: "e", Targets: []string{ThingARN("x")},
		JobTemplateArn: "arn:aws:iot:us-east-1:123456789012:jobtemplate/none"}})
	ExpectError(t, err, store.ErrNotFound)
	// A template copied from a job.
	if _, err := h.Store.CreateJobTemplate(h.Ctx, &store.CreateJobTemplateInput{JobID: "from-tmpl",
		Template: store.JobTemplate{JobTemplateID: "copy", Description: "copy"}}); err != nil {
		t.Fatal(err)
	}
	tmpl, err := h.Store.DescribeJobTemplate(h.Ctx, "copy")
	if err != nil || tmpl.Document != `{"operation":"reboot","delay":"5"}` || *tmpl.TimeoutConfig.InProgressTimeoutInMinutes != 7 {
		t.Fatalf("copied template = %+v, %v", tmpl, err)
	}
	_, err = h.Store.CreateJobTemplate(h.Ctx, &store.CreateJobTemplateInput{Template: store.JobTemplate{JobTemplateID: "copy", Description: "x", Document: "{}"}})
	ExpectError(t, err, store.ErrAlreadyExists)
	page, err := h.Store.ListJobTemplates(h.Ctx, &store.PageInput{MaxResults: 1})
	if err != nil || len(page.Templates) != 1 || page.NextToken == "" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	page, _ = h.Store.ListJobTemplates(h.Ctx, &store.PageInput{NextToken: page.NextToken})
	equal(t, "second page", len(page.Templates), 1)
	if err := h.Store.DeleteJobTemplate(h.Ctx, "copy"); err != nil {
		t.Fatal(err)
	}
	ExpectError(t, h.Store.DeleteJobTemplate(h.Ctx, "copy"), store.ErrNotFound)
}

func testEvents(t *testing.T, h *Harness) {
	cfg, err := h.Store.DescribeEventConfigurations(h.Ctx)
	if err != nil || cfg.Job || cfg.JobExecution {
		t.Fatalf("events are off by default: %+v, %v", cfg, err)
	}
	on := true
	if err := h.Store.UpdateEventConfigurations(h.Ctx, &on, &on); err != nil {
		t.Fatal(err)
	}
	events := func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		var out []string
		for _, c := range h.changes {
			if c.Event != nil {
				id := c.Event.Job.JobID
				if c.Event.Kind == store.EventJobExecution {
					id += "/" + c.Event.Execution.ThingName
				}
				out = append(out, id+":"+c.Event.Operation)
			}
		}
		h.changes = nil
		return out
	}
	// A store may hand events on after the call that caused them returns
	// (PostgreSQL deletes a job's executions in the background), so the
	// events are gathered until as many as wanted have come.
	expect := func(what string, want []string) {
		t.Helper()
		var got []string
		h.Eventually(what, func() error {
			if got = append(got, events()...); len(got) < len(want) {
				return fmt.Errorf("%q so far, want %q", got, want)
			}
			return nil
		})
		equalSlice(t, what, got, want)
	}
	h.CreateJob("j", "a", "b", "c")
	h.Update("a", "j", store.StatusSucceeded)
	h.Update("b", "j", store.StatusRejected)
	h.Update("c", "j", store.StatusFailed)
	expect("execution and job events", []string{"j/a:succeeded", "j/b:rejected", "j/c:failed", "j:completed"})
	h.CreateJob("k", "a", "b")
	if _, err := h.Store.CancelJob(h.Ctx, &store.CancelJobInput{JobID: "k"}); err != nil {
		t.Fatal(err)
	}
	expect("cancel events", []string{"k:cancellation_in_progress", "k/a:canceled", "k/b:canceled", "k:canceled"})
	if err := h.Store.DeleteJob(h.Ctx, &store.DeleteJobInput{JobID: "k"}); err != nil {
		t.Fatal(err)
	}
	expect("delete events", []string{"k:deletion_in_progress", "k/a:deleted", "k/b:deleted", "k:deleted"})
	off := false
	if err := h.Store.UpdateEventConfigurations(h.Ctx, nil, &off); err != nil {
		t.Fatal(err)
	}
	h.CreateJob("m", "a")
	h.Update("a", "m", store.StatusSucceeded)
	expect("job events only", []string{"m:completed"})
}
