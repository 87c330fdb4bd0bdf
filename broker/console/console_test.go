package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/auth"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/broker/console"
	"github.com/jobsbroker/jobsbroker/store"
)

func TestPagesShowTheStore(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "fw-1", brokertest.ThingARN("pump-1"), brokertest.ThingARN("pump-2"))
	runDevice(t, b, "pump-1")
	v := newVisitor(t, b)

	list := v.mustGet("/console/")
	for _, want := range []string{`href="/console/jobs/fw-1"`, `aria-valuenow="50"`, "1 succeeded, 1 queued, of 2"} {
		if !strings.Contains(list, want) {
			t.Errorf("jobs list lacks %q", want)
		}
	}
	job := v.mustGet("/console/jobs/fw-1")
	for _, want := range []string{"&#34;operation&#34;: &#34;install&#34;", `href="/console/things/pump-1"`, "Succeeded", "Executions over time", "<polygon"} {
		if !strings.Contains(job, want) {
			t.Errorf("job page lacks %q", want)
		}
	}
	thing := v.mustGet("/console/things/pump-1")
	for _, want := range []string{"$aws/things/pump-1/jobs/start-next", "$aws/things/pump-1/jobs/fw-1/update/accepted", "from the device", "to the device", `href="/console/jobs/fw-1"`} {
		if !strings.Contains(thing, want) {
			t.Errorf("thing page lacks %q", want)
		}
	}
	if pending := v.mustGet("/console/things/pump-2"); !strings.Contains(pending, "Pending queue") || !strings.Contains(pending, `href="/console/jobs/fw-1"`) {
		t.Errorf("pump-2's page does not show its queued job: %s", excerpt(pending))
	}
	brokerPage := v.mustGet("/console/broker")
	for _, want := range []string{"Connected devices", "Commit latency", "Things by the status of their latest execution"} {
		if !strings.Contains(brokerPage, want) {
			t.Errorf("broker page lacks %q", want)
		}
	}
	if status, _, body := v.get("/console/jobs/nope"); status != http.StatusNotFound || !strings.Contains(body, "There is no job nope") {
		t.Errorf("a missing job: %d %s", status, excerpt(body))
	}
	if status, loc, _ := v.get("/console/things?name=pump-2"); status != http.StatusSeeOther || loc != "/console/things/pump-2" {
		t.Errorf("thing lookup: %d to %q", status, loc)
	}
}

func TestJobsFilterAndSearch(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "alpha-1", brokertest.ThingARN("a"))
	createJob(t, b, "beta-1", brokertest.ThingARN("b"))
	if _, err := b.IoT().CancelJob(context.Background(), &iot.CancelJobInput{JobId: aws.String("beta-1")}); err != nil {
		t.Fatal(err)
	}
	v := newVisitor(t, b)
	canceled := v.mustGet("/console/?status=CANCELED")
	if !strings.Contains(canceled, "/console/jobs/beta-1") || strings.Contains(canceled, "/console/jobs/alpha-1") {
		t.Errorf("status filter: %s", excerpt(canceled))
	}
	found := v.mustGet("/console/?q=ALPHA")
	if !strings.Contains(found, "/console/jobs/alpha-1") || strings.Contains(found, "/console/jobs/beta-1") {
		t.Errorf("search: %s", excerpt(found))
	}
}

func TestStreamFollowsARolloutWithoutReload(t *testing.T) {
	b := brokertest.Start(t)
	things := []string{"s-1", "s-2", "s-3"}
	var arns []string
	for _, th := range things {
		arns = append(arns, brokertest.ThingARN(th))
	}
	createJob(t, b, "live-1", arns...)
	v := newVisitor(t, b)
	s := v.openStream("/console/jobs/live-1")
	s.waitPart(t, "job-summary", `aria-valuenow="0"`)
	list := v.openStream("/console/")
	list.waitPart(t, "jobs-list", `aria-valuenow="0"`)
	for _, th := range things {
		runDevice(t, b, th)
	}
	s.waitPart(t, "job-summary", `aria-valuenow="100"`)
	s.waitPart(t, "job-summary", "Completed")
	s.waitPart(t, "job-executions", "Succeeded")
	list.waitPart(t, "jobs-list", `aria-valuenow="100"`)
	th := v.openStream("/console/things/s-1")
	th.waitPart(t, "thing-traffic", "/jobs/live-1/update/accepted")
}

// A rollout of thousands of executions commits in many batches; the
// stream coalesces them: never more than one message per MinInterval (250
// ms), whatever the number of changes.
func TestStreamCoalescesChanges(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	const n = 3000
	if _, err := b.IoT().CreateThingGroup(ctx, &iot.CreateThingGroupInput{ThingGroupName: aws.String("fleet")}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("c-%05d", i)
		if _, err := b.Store.CreateThing(ctx, &store.CreateThingInput{ThingName: name}); err != nil {
			t.Fatal(err)
		}
		if err := b.Store.AddThingToThingGroup(ctx, &store.MembershipInput{ThingGroupName: "fleet", ThingName: name}); err != nil {
			t.Fatal(err)
		}
	}
	v := newVisitor(t, b)
	list := v.openStream("/console/")
	list.waitPart(t, "jobs-list", "No jobs yet")
	start := time.Now()
	createJob(t, b, "big-1", "arn:aws:iot:us-east-1:123456789012:thinggroup/fleet")
	job := v.openStream("/console/jobs/big-1")
	job.waitPart(t, "job-summary", "of 3,000")
	list.waitPart(t, "jobs-list", "of 3,000")
	elapsed := time.Since(start)
	for _, s := range []*stream{list, job} {
		evs := s.all()
		limit := int(elapsed/console.DefaultMinInterval) + 2
		if len(evs) > limit {
			t.Errorf("%d messages in %v: more than one per %v", len(evs), elapsed, console.DefaultMinInterval)
		}
	}
}

func TestCreateJobShowsTheAPIsErrorsByField(t *testing.T) {
	b := brokertest.Start(t)
	v := newVisitor(t, b)
	for _, tc := range []struct {
		name   string
		values url.Values
		field  string
		want   string
	}{
		{"bad id", url.Values{"jobId": {"bad id!"}, "targets": {"pump-1"}, "document": {`{}`}}, "jobId", `jobId &#34;bad id!&#34; must be 1-64 characters`},
		{"not json", url.Values{"jobId": {"j1"}, "targets": {"pump-1"}, "document": {`{"a":`}}, "document", "document must be a JSON object"},
		{"no targets", url.Values{"jobId": {"j2"}, "document": {`{}`}}, "targets", "targets must list at least one"},
		{"missing group", url.Values{"jobId": {"j3"}, "targets": {"thinggroup/nowhere"}, "document": {`{}`}}, "targets", "nowhere"},
		{"rate zero", url.Values{"jobId": {"j4"}, "targets": {"pump-1"}, "document": {`{}`}, "maximumPerMinute": {"0"}}, "maximumPerMinute", "maximumPerMinute 0 must be at least 1"},
		{"rate word", url.Values{"jobId": {"j5"}, "targets": {"pump-1"}, "document": {`{}`}, "maximumPerMinute": {"fast"}}, "maximumPerMinute", "must be a whole number"},
		{"timeout", url.Values{"jobId": {"j6"}, "targets": {"pump-1"}, "document": {`{}`}, "inProgressTimeout": {"10081"}}, "inProgressTimeout", "inProgressTimeoutInMinutes 10081"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.values.Set("source", "document")
			status, _, body := v.submit("/console/jobs/new", "/console/jobs/new", tc.values)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", status, excerpt(body))
			}
			errID := `id="` + tc.field + `-error"`
			i := strings.Index(body, errID)
			if i < 0 {
				t.Fatalf("no error next to %s: %s", tc.field, excerpt(body[strings.Index(body, "<main"):]))
			}
			if p := body[i:min(len(body), i+400)]; !strings.Contains(p, tc.want) {
				t.Errorf("error next to %s = %s, want %q", tc.field, p, tc.want)
			}
			if !strings.Contains(body, `id="`+tc.field+`" name="`+tc.field+`"`) && !strings.Contains(body, `aria-invalid="true"`) {
				t.Errorf("the field is not marked invalid")
			}
		})
	}
	if _, err := b.Store.DescribeJob(context.Background(), "j1"); err == nil {
		t.Error("a refused form created a job")
	}
	// The same request through the AWS SDK gets the same message.
	_, err := b.IoT().CreateJob(context.Background(), &iot.CreateJobInput{JobId: aws.String("j4"), Targets: []string{brokertest.ThingARN("pump-1")},
		Document: aws.String(`{}`), JobExecutionsRolloutConfig: &iotRollout})
	if err == nil || !strings.Contains(err.Error(), "maximumPerMinute 0 must be at least 1") {
		t.Errorf("the API answers %v", err)
	}
}

var iotRollout = iottypes.JobExecutionsRolloutConfig{MaximumPerMinute: aws.Int32(0)}

func TestCreateCancelDeleteThroughTheForms(t *testing.T) {
	b := brokertest.Start(t)
	v := newVisitor(t, b)
	status, loc, body := v.submit("/console/jobs/new", "/console/jobs/new", url.Values{
		"jobId": {"ota-7"}, "targets": {"pump-1\nthing/pump-2"}, "source": {"document"}, "document": {`{"operation":"ota"}`},
		"description": {"firmware 7"}, "maximumPerMinute": {"100"}, "retryFailed": {"2"},
	})
	if status != http.StatusSeeOther || loc != "/console/jobs/ota-7?done=created" {
		t.Fatalf("create: %d to %q: %s", status, loc, excerpt(body))
	}
	j, err := b.Store.DescribeJob(context.Background(), "ota-7")
	if err != nil {
		t.Fatal(err)
	}
	if j.Description != "firmware 7" || len(j.Targets) != 2 || *j.RolloutConfig.MaximumPerMinute != 100 || j.RetryConfig.CriteriaList[0].NumberOfRetries != 2 {
		t.Errorf("created %+v", j)
	}
	if page := v.mustGet(loc); !strings.Contains(page, "The job was created.") {
		t.Error("no confirmation after create")
	}

	status, _, body = v.submit("/console/jobs/ota-7/rollout", "/console/jobs/ota-7/rollout", url.Values{"maximumPerMinute": {"0"}})
	if status != http.StatusBadRequest || !strings.Contains(body, `id="maximumPerMinute-error"`) {
		t.Errorf("rollout 0: %d %s", status, excerpt(body))
	}
	status, _, _ = v.submit("/console/jobs/ota-7/rollout", "/console/jobs/ota-7/rollout", url.Values{"maximumPerMinute": {"500"}})
	if j, _ := b.Store.DescribeJob(context.Background(), "ota-7"); status != http.StatusSeeOther || *j.RolloutConfig.MaximumPerMinute != 500 {
		t.Errorf("rollout 500: %d", status)
	}

	d := brokertest.Connect5(t, b.MQTTAddr(), "pump-1")
	d.MustAccept("$aws/things/pump-1/jobs/start-next", map[string]any{})
	status, _, body = v.submit("/console/jobs/ota-7/cancel", "/console/jobs/ota-7/cancel", url.Values{"reasonCode": {"bad code"}})
	if status != http.StatusBadRequest || !strings.Contains(body, `id="reasonCode-error"`) {
		t.Errorf("cancel with a bad reason code: %d %s", status, excerpt(body))
	}
	status, loc, _ = v.submit("/console/jobs/ota-7/cancel", "/console/jobs/ota-7/cancel", url.Values{"force": {"true"}, "reasonCode": {"RECALL"}})
	if status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", status)
	}
	j, _ = b.Store.DescribeJob(context.Background(), "ota-7")
	if j.Status != store.JobCanceled || !j.ForceCanceled || j.ReasonCode != "RECALL" {
		t.Errorf("after cancel: %s forced %v reason %q", j.Status, j.ForceCanceled, j.ReasonCode)
	}
	if page := v.mustGet(loc); !strings.Contains(page, "The job was canceled.") {
		t.Error("no confirmation after cancel")
	}
	// A second cancel is refused by the API, and the page says why.
	status, _, body = v.submit("/console/jobs/ota-7/cancel", "/console/jobs/ota-7/cancel", url.Values{})
	if status != http.StatusBadRequest || !strings.Contains(body, "error-summary") {
		t.Errorf("second cancel: %d %s", status, excerpt(body))
	}
	status, loc, _ = v.submit("/console/jobs/ota-7/delete", "/console/jobs/ota-7/delete", url.Values{"force": {"true"}})
	if status != http.StatusSeeOther || loc != "/console/?done=deleted" {
		t.Errorf("delete: %d to %q", status, loc)
	}
	brokertest.Eventually(t, "the job is deleted", func() error {
		if _, err := b.Store.DescribeJob(context.Background(), "ota-7"); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

func TestFormsNeedTheirCSRFToken(t *testing.T) {
	b := brokertest.Start(t)
	createJob(t, b, "keep-1", brokertest.ThingARN("pump-1"))
	v := newVisitor(t, b)
	v.mustGet("/console/jobs/keep-1/cancel")
	for name, tc := range map[string]struct {
		values url.Values
		header http.Header
	}{
		"no token":       {url.Values{}, nil},
		"wrong token":    {url.Values{"csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, nil},
		"another site":   {nil, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		"foreign origin": {nil, http.Header{"Origin": {"http://evil.example"}}},
	} {
		values := tc.values
		if values == nil {
			values = url.Values{"csrf": {csrfField.FindStringSubmatch(v.mustGet("/console/jobs/keep-1/cancel"))[1]}}
		}
		status, _, _ := v.post("/console/jobs/keep-1/cancel", values, tc.header)
		if status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, status)
		}
	}
	if j, _ := b.Store.DescribeJob(context.Background(), "keep-1"); j.Status != store.JobInProgress {
		t.Errorf("a refused form canceled the job: %s", j.Status)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoginWithAnAccessKeyOrAConsolePassword(t *testing.T) {
	creds := writeFile(t, "credentials", "[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = s3cret\n")
	line, err := auth.PasswordLine("admin", []byte("console-pw"))
	if err != nil {
		t.Fatal(err)
	}
	users := writeFile(t, "console-users", line+"\n")
	b := brokertest.Start(t, func(c *broker.Config) { c.CredentialsFile, c.ConsolePasswordFile = creds, users })
	v := newVisitor(t, b)

	status, loc, _ := v.get("/console/jobs/x?status=FAILED")
	if status != http.StatusSeeOther || loc != "/console/login?next=%2Fconsole%2Fjobs%2Fx%3Fstatus%3DFAILED" {
		t.Fatalf("unauthenticated page: %d to %q", status, loc)
	}
	if s := v.openStream("/console/"); s.status != http.StatusUnauthorized {
		t.Errorf("unauthenticated stream: %d", s.status)
	}
	status, _, body := v.submit("/console/login", "/console/login", url.Values{"key": {"AKIAOPS"}, "secret": {"wrong"}})
	if status != http.StatusUnauthorized || !strings.Contains(body, "wrong secret") {
		t.Errorf("wrong secret: %d", status)
	}
	status, loc, _ = v.submit("/console/login", "/console/login", url.Values{"key": {"AKIAOPS"}, "secret": {"s3cret"}, "next": {"/console/broker"}})
	if status != http.StatusSeeOther || loc != "/console/broker" {
		t.Fatalf("login: %d to %q", status, loc)
	}
	u, _ := url.Parse(b.APIURL() + "/console/")
	if cks := v.c.Jar.Cookies(u); len(cks) != 1 {
		t.Fatalf("cookies %v", cks)
	}
	if page := v.mustGet("/console/broker"); !strings.Contains(page, "ops</span>") {
		t.Error("the page does not say who is logged in")
	}
	// The cookie's attributes, as the browser receives them.
	resp, err := http.PostForm(b.APIURL()+"/console/login", url.Values{})
	if err == nil {
		resp.Body.Close()
	}
	first, _ := http.Get(b.APIURL() + "/console/login")
	first.Body.Close()
	if sc := first.Header.Get("Set-Cookie"); !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") || !strings.Contains(sc, "Path=/console/") {
		t.Errorf("cookie attributes: %s", sc)
	}

	status, _, _ = v.submit("/console/broker", "/console/logout", url.Values{})
	if status != http.StatusSeeOther {
		t.Errorf("logout: %d", status)
	}
	if status, _, _ := v.get("/console/"); status != http.StatusSeeOther {
		t.Errorf("after logout: %d", status)
	}
	status, loc, _ = v.submit("/console/login", "/console/login", url.Values{"key": {"admin"}, "secret": {"console-pw"}})
	if status != http.StatusSeeOther || loc != "/console/" {
		t.Fatalf("password login: %d to %q", status, loc)
	}
	v.mustGet("/console/")

	// Removing the access key ends its sessions.
	ops := newVisitor(t, b)
	ops.submit("/console/login", "/console/login", url.Values{"key": {"AKIAOPS"}, "secret": {"s3cret"}})
	ops.mustGet("/console/")
	if err := os.WriteFile(creds, []byte("[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := ops.get("/console/"); status != http.StatusSeeOther {
		t.Errorf("a removed key's session still works: %d", status)
	}
}

func TestUnderTLSTheCookieIsSecure(t *testing.T) {
	pki := brokertest.NewPKI(t)
	srv := pki.Server("localhost")
	b := brokertest.Start(t, func(c *broker.Config) { c.TLSCert, c.TLSKey, c.ClientCA = srv.Cert, srv.Key, pki.CAFile })
	resp, err := b.HTTPClient(nil).Get(b.APIURL() + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "Secure") {
		t.Errorf("cookie under TLS: %s", sc)
	}
}

func TestShutdownEndsOpenStreams(t *testing.T) {
	b := brokertest.Start(t)
	v := newVisitor(t, b)
	s := v.openStream("/console/")
	s.waitPart(t, "jobs-list", "No jobs yet")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a console open: %v (after %v)", err, time.Since(start))
	}
	b.Broker = nil
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Error("the stream did not end")
	}
}

func TestJobPageShowsTheBacklogOfAPacedRollout(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	if _, err := b.IoT().CreateThingGroup(ctx, &iot.CreateThingGroupInput{ThingGroupName: aws.String("slow")}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		name := fmt.Sprintf("p-%d", i)
		if _, err := b.Store.CreateThing(ctx, &store.CreateThingInput{ThingName: name}); err != nil {
			t.Fatal(err)
		}
		if err := b.Store.AddThingToThingGroup(ctx, &store.MembershipInput{ThingGroupName: "slow", ThingName: name}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.IoT().CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String("paced-1"), Document: aws.String(`{}`),
		Targets: []string{"arn:aws:iot:us-east-1:123456789012:thinggroup/slow"}, JobExecutionsRolloutConfig: &iottypes.JobExecutionsRolloutConfig{MaximumPerMinute: aws.Int32(1)}})
	if err != nil {
		t.Fatal(err)
	}
	v := newVisitor(t, b)
	s := v.openStream("/console/jobs/paced-1")
	s.waitPart(t, "job-summary", "of the 5 target things still to be given the job")
	s.waitPart(t, "job-summary", "at most 1 a minute")
}
