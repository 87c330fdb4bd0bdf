package console_test

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/jobsbroker/jobsbroker/broker"
	"github.com/jobsbroker/jobsbroker/broker/brokertest"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

// These tests drive the console in a real headless Chromium (Debian's
// chromium package) through the DevTools protocol (chromedp). They skip
// where no Chromium is installed, and fail under CI=true.

//go:embed testdata/axe/axe.min.js
var axeSource string

// chromiumPath returns the installed Chromium, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium on PATH: the console's browser tests need one (Debian: apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile, for the
// test's length. The flags keep it off the network: this machine has
// none, and Chromium's background services would otherwise keep trying.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// run runs browser actions with a deadline.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval runs JavaScript for its effect.
func eval(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](expr)(ctx, tg)
		return err
	})
}

// artifacts is where screenshots go: $JOBSBROKER_ARTIFACTS/console/TEST
// when set (CI keeps it), else a temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if base := os.Getenv("JOBSBROKER_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, "console", strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// viewport saves what the window shows (the README's picture).
func viewport(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// valueOf evaluates a JavaScript expression in the page.
func valueOf[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition in the page.
func waitFor(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if valueOf[bool](t, ctx, cond) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is still false after 20s", what, cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The whole story of a rollout: the job is created in the form, simulated
// devices (real MQTT clients) run it, and the page's progress bar reaches
// 100% without a reload. The broker runs on the wall clock so that the
// chart spreads over time; job-rolling-out.png is the README's picture.
func TestBrowserCreateAJobAndWatchItComplete(t *testing.T) {
	b := brokertest.Start(t, func(c *broker.Config) { c.Clock = clock.Real{} })
	ctx := newBrowser(t)
	dir := artifacts(t)
	var things []string
	for i := range 12 {
		things = append(things, fmt.Sprintf("pump-%02d", i+1))
	}
	base := b.APIURL() + "/console/"

	run(t, ctx, "fill in the create form",
		chromedp.Navigate(base+"jobs/new"),
		chromedp.WaitVisible(chromedp.ID("jobId")),
		chromedp.SendKeys(chromedp.ID("jobId"), "fw-2-1"),
		chromedp.SendKeys(chromedp.ID("description"), "Firmware 2.1 for the pumps"),
		chromedp.SendKeys(chromedp.ID("targets"), strings.Join(things, "\n")),
		chromedp.SetValue(chromedp.ID("document"), `{"operation":"install","version":"2.1"}`),
		chromedp.SendKeys(chromedp.ID("retryFailed"), "1"),
	)
	screenshot(t, ctx, dir, "create-form")
	run(t, ctx, "submit the form",
		chromedp.Click(chromedp.CSS(`button[type="submit"].primary`)),
		chromedp.WaitVisible(chromedp.ID("job-summary")),
	)
	if url := valueOf[string](t, ctx, "location.pathname"); url != "/console/jobs/fw-2-1" {
		t.Fatalf("after create the browser is at %s", url)
	}
	waitFor(t, ctx, "the stream is open", `document.getElementById("live-state").dataset.state === "live"`)
	run(t, ctx, "mark the page", eval(`window.__sameDocument = true`))
	bar := `document.querySelector("#job-summary [role=progressbar]").getAttribute("aria-valuenow")`
	if v := valueOf[string](t, ctx, bar); v != "0" {
		t.Fatalf("before the devices run the bar is at %s%%", v)
	}
	for i, th := range things {
		switch i {
		case 3:
			finishDevice(t, b, th, "FAILED")
		case 2:
			finishDevice(t, b, th, "REJECTED")
		default:
			runDevice(t, b, th)
		}
		time.Sleep(150 * time.Millisecond) // spreads the chart; the test waits on conditions, never on this
		if i == 5 {
			waitFor(t, ctx, "the bar moves", `Number(`+bar+`) >= 40`)
			screenshot(t, ctx, dir, "job-rolling-out")
			viewport(t, ctx, dir, "readme-job")
		}
	}
	// The FAILED thing was given a retry (retryFailed 1); it succeeds.
	waitFor(t, ctx, "the retry is queued", `document.querySelector("#job-summary [role=progressbar]").getAttribute("aria-valuetext").includes("1 queued")`)
	runDevice(t, b, things[3])
	waitFor(t, ctx, "the bar reaches 100%", bar+` === "100"`)
	waitFor(t, ctx, "the retry is counted", `document.querySelector("#job-summary [role=progressbar]").getAttribute("aria-valuetext").includes("11 succeeded, 1 rejected")`)
	waitFor(t, ctx, "the job shows completed", `document.querySelector("#job-summary .status-line").textContent.includes("Completed")`)
	if !valueOf[bool](t, ctx, `window.__sameDocument === true`) {
		t.Error("the page was reloaded")
	}
	if n := valueOf[string](t, ctx, `document.body.dataset.updates`); n == "" || n == "0" {
		t.Error("no live update arrived")
	}
	screenshot(t, ctx, dir, "job-completed")

	run(t, ctx, "open the jobs list", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.ID("jobs-list")))
	waitFor(t, ctx, "the list's bar is full", `document.querySelector("#jobs-list [role=progressbar]").getAttribute("aria-valuenow") === "100"`)
	screenshot(t, ctx, dir, "jobs")
	run(t, ctx, "open a thing", chromedp.Navigate(base+"things/"+things[0]), chromedp.WaitVisible(chromedp.ID("thing-traffic")))
	waitFor(t, ctx, "the thing's traffic is shown", `document.getElementById("thing-traffic").textContent.includes("/jobs/fw-2-1/update/accepted")`)
	screenshot(t, ctx, dir, "thing")
	run(t, ctx, "open the broker page", chromedp.Navigate(base+"broker"), chromedp.WaitVisible(chromedp.ID("broker-figures")))
	waitFor(t, ctx, "the rates are measured", `!document.getElementById("broker-figures").textContent.includes("measuring")`)
	screenshot(t, ctx, dir, "broker")
}

func TestBrowserCancelAJob(t *testing.T) {
	b := brokertest.Start(t)
	ctx := newBrowser(t)
	dir := artifacts(t)
	createJob(t, b, "reboot-9", brokertest.ThingARN("r-1"), brokertest.ThingARN("r-2"))
	d := brokertest.Connect5(t, b.MQTTAddr(), "r-1")
	d.Subscribe("$aws/things/r-1/jobs/notify", 1)
	d.MustAccept("$aws/things/r-1/jobs/start-next", map[string]any{})

	run(t, ctx, "open the job and ask to cancel it",
		chromedp.Navigate(b.APIURL()+"/console/jobs/reboot-9"),
		chromedp.WaitVisible(chromedp.ID("job-summary")),
		chromedp.Click(chromedp.Search(`//a[normalize-space()="Cancel…"]`)),
		chromedp.WaitVisible(chromedp.ID("force")),
	)
	screenshot(t, ctx, dir, "confirm-cancel")
	run(t, ctx, "confirm with force",
		chromedp.Click(chromedp.ID("force")),
		chromedp.SendKeys(chromedp.ID("comment"), "wrong build"),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Cancel the job"]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if msg := valueOf[string](t, ctx, `document.querySelector(".flash").textContent`); msg != "The job was canceled." {
		t.Errorf("flash: %q", msg)
	}
	waitFor(t, ctx, "the page shows the job canceled", `document.querySelector("#job-summary .status-line").textContent.includes("Canceled")`)
	waitFor(t, ctx, "both executions are canceled", `document.querySelector("#job-summary [role=progressbar]").getAttribute("aria-valuetext").includes("2 canceled")`)
	j, err := b.Store.DescribeJob(context.Background(), "reboot-9")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != store.JobCanceled || !j.ForceCanceled || j.Comment != "wrong build" {
		t.Errorf("stored: %s forced %v comment %q", j.Status, j.ForceCanceled, j.Comment)
	}
	d.ExpectContaining("$aws/things/r-1/jobs/notify", `"jobs":{}`) // the device is told
	screenshot(t, ctx, dir, "job-canceled")
}

func TestBrowserShowsAValidationErrorNextToItsField(t *testing.T) {
	b := brokertest.Start(t)
	ctx := newBrowser(t)
	dir := artifacts(t)
	run(t, ctx, "submit a job id the API refuses",
		chromedp.Navigate(b.APIURL()+"/console/jobs/new"),
		chromedp.WaitVisible(chromedp.ID("jobId")),
		chromedp.SendKeys(chromedp.ID("jobId"), "no spaces please"),
		chromedp.SendKeys(chromedp.ID("targets"), "dev-1"),
		chromedp.Click(chromedp.CSS(`button[type="submit"].primary`)),
		chromedp.WaitVisible(chromedp.ID("jobId-error")),
	)
	msg := valueOf[string](t, ctx, `document.getElementById("jobId-error").textContent`)
	if !strings.Contains(msg, `jobId "no spaces please" must be 1-64 characters`) {
		t.Errorf("the error next to the job id says %q", msg)
	}
	if !valueOf[bool](t, ctx, `document.getElementById("jobId-error").closest(".field").contains(document.getElementById("jobId"))`) {
		t.Error("the error is not next to its field")
	}
	if !valueOf[bool](t, ctx, `document.getElementById("jobId").getAttribute("aria-invalid") === "true" && document.getElementById("jobId").getAttribute("aria-describedby").includes("jobId-error")`) {
		t.Error("the field is not marked invalid with its error as description")
	}
	if v := valueOf[string](t, ctx, `document.getElementById("targets").value`); v != "dev-1" {
		t.Errorf("the form lost what was typed: targets %q", v)
	}
	if focused := valueOf[string](t, ctx, `document.activeElement.id`); focused != "error-summary" {
		t.Errorf("focus is on %q, want the error summary", focused)
	}
	screenshot(t, ctx, dir, "create-form-error")
}

// axeResult is what axe.run reports.
type axeResult struct {
	Violations []struct {
		ID     string `json:"id"`
		Impact string `json:"impact"`
		Help   string `json:"help"`
		Nodes  []struct {
			Target []any  `json:"target"`
			HTML   string `json:"html"`
		} `json:"nodes"`
	} `json:"violations"`
	Passes []struct {
		ID string `json:"id"`
	} `json:"passes"`
}

// audit runs axe-core (vendored in testdata/axe) on the page: the WCAG 2.1
// A and AA rules and axe's best practices.
func audit(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	run(t, ctx, "load axe into "+name, eval(axeSource))
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	raw, err := chromedp.Run(tctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}).then(r => JSON.stringify(r))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run axe on %s: %v", name, err)
	}
	var res axeResult
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("axe result: %v", err)
	}
	for _, v := range res.Violations {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target)+" "+n.HTML)
		}
		t.Errorf("%s: axe %s (%s): %s\n  %s", name, v.ID, v.Impact, v.Help, strings.Join(where, "\n  "))
	}
	if len(res.Passes) == 0 {
		t.Errorf("%s: axe checked nothing", name)
	}
}

// tabThrough presses Tab through the page and checks that it reaches
// every control in document order, each with an accessible name and a
// visible focus indicator.
func tabThrough(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	const tabbable = `Array.from(document.querySelectorAll('a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, textarea, [tabindex]:not([tabindex="-1"])'))
		.filter(e => e.getClientRects().length > 0 || e.classList.contains("skip"))
		.filter(e => !(e.type === "radio" && !e.checked && document.querySelector('input[type=radio][name="' + e.name + '"]:checked')))`
	want := valueOf[int](t, ctx, tabbable+".length")
	run(t, ctx, "focus the page's start", eval(`document.body.setAttribute("tabindex", "-1"); document.body.focus(); document.body.removeAttribute("tabindex"); window.scrollTo(0, 0); window.__seen = []`))
	for i := 0; i < want+1; i++ {
		run(t, ctx, "press Tab", chromedp.KeyEvent(kb.Tab))
		run(t, ctx, "note the focus", eval(`(() => {
			const e = document.activeElement;
			if (!e || e === document.body) return true;
			const style = getComputedStyle(e);
			window.__seen.push({el: e, outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0});
			return true;
		})()`))
	}
	type focusCheck struct {
		Missing   []string `json:"missing"`
		NoOutline []string `json:"noOutline"`
		Order     bool     `json:"order"`
		First     string   `json:"first"`
	}
	fc := valueOf[focusCheck](t, ctx, `(() => {
		const all = `+tabbable+`;
		const seen = window.__seen.map(s => s.el);
		const describe = e => e.outerHTML.slice(0, 120);
		const order = seen.slice(0, all.length).every((e, i) => e === all[i]);
		return {
			missing: all.filter(e => !seen.includes(e)).map(describe),
			noOutline: window.__seen.filter(s => !s.outline).map(s => describe(s.el)),
			order: order,
			first: seen.length ? (seen[0].className || seen[0].tagName) : ""
		};
	})()`)
	for _, m := range fc.Missing {
		t.Errorf("%s: Tab never reaches %s", name, m)
	}
	for _, m := range fc.NoOutline {
		t.Errorf("%s: no visible focus on %s", name, m)
	}
	if !fc.Order {
		t.Errorf("%s: Tab does not follow the document order", name)
	}
	if fc.First != "skip" {
		t.Errorf("%s: the first Tab lands on %q, want the skip link", name, fc.First)
	}
}

// Every page passes an accessibility audit, and every control on it is
// reached by the keyboard with a visible focus.
func TestBrowserEveryPageIsAccessible(t *testing.T) {
	b := brokertest.Start(t)
	ctx := newBrowser(t)
	dir := artifacts(t)
	createJob(t, b, "a11y-1", brokertest.ThingARN("k-1"), brokertest.ThingARN("k-2"))
	runDevice(t, b, "k-1")
	if _, err := chromedp.Call(ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
		t.Fatalf("let axe run despite the CSP: %v", err)
	}
	base := b.APIURL() + "/console/"
	for _, p := range []struct{ name, path, ready string }{
		{"jobs", "", "#jobs-list"},
		{"job", "jobs/a11y-1", "#job-summary"},
		{"confirm-delete", "jobs/a11y-1/delete", "#force"},
		{"confirm-rollout", "jobs/a11y-1/rollout", "#maximumPerMinute"},
		{"thing", "things/k-1", "#thing-traffic"},
		{"create", "jobs/new", "#jobId"},
		{"broker", "broker", "#broker-figures"},
		{"login", "login", "main"},
		{"not-found", "jobs/none", "main"},
	} {
		run(t, ctx, "open "+p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		audit(t, ctx, p.name)
		tabThrough(t, ctx, p.name)
		screenshot(t, ctx, dir, p.name)
	}
	run(t, ctx, "submit a bad form",
		chromedp.Navigate(base+"jobs/new"), chromedp.WaitVisible(chromedp.ID("jobId")),
		chromedp.SendKeys(chromedp.ID("maximumPerMinute"), "0"),
		chromedp.Click(chromedp.CSS(`button[type="submit"].primary`)),
		chromedp.WaitVisible(chromedp.ID("error-summary")))
	audit(t, ctx, "create with errors")
	tabThrough(t, ctx, "create with errors")
	// The skip link takes the keyboard to the content.
	run(t, ctx, "use the skip link", chromedp.Navigate(base+"jobs/a11y-1"), chromedp.WaitVisible(chromedp.ID("job-summary")),
		chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter))
	waitFor(t, ctx, "focus moves to the content", `document.activeElement.id === "main"`)
}
