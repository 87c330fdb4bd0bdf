package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// visitor is a browser without JavaScript: an HTTP client with a cookie
// jar that fills in forms the way a browser submits them.
type visitor struct {
	t    testing.TB
	base string
	c    *http.Client
}

func newVisitor(t testing.TB, b *brokertest.Instance) *visitor {
	jar, _ := cookiejar.New(nil)
	c := b.HTTPClient(nil)
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &visitor{t: t, base: b.APIURL(), c: c}
}

// get fetches a console path and returns the status, the Location header
// and the body.
func (v *visitor) get(path string) (int, string, string) {
	v.t.Helper()
	resp, err := v.c.Get(v.base + path)
	if err != nil {
		v.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// mustGet fetches a page and fails unless it is 200.
func (v *visitor) mustGet(path string) string {
	v.t.Helper()
	status, loc, body := v.get(path)
	if status != http.StatusOK {
		v.t.Fatalf("GET %s: %d (location %q): %s", path, status, loc, excerpt(body))
	}
	return body
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// submit fetches the page holding a form, then posts values to action
// with the page's CSRF token, as a browser would.
func (v *visitor) submit(page, action string, values url.Values) (int, string, string) {
	v.t.Helper()
	m := csrfField.FindStringSubmatch(v.mustGet(page))
	if m == nil {
		v.t.Fatalf("%s has no CSRF field", page)
	}
	values.Set("csrf", m[1])
	return v.post(action, values, nil)
}

// post sends a form with extra headers.
func (v *visitor) post(action string, values url.Values, header http.Header) (int, string, string) {
	v.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, v.base+action, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := v.c.Do(req)
	if err != nil {
		v.t.Fatalf("POST %s: %v", action, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func excerpt(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}

// event is one Server-Sent Event.
type event struct {
	Name  string
	Parts map[string]string
	At    time.Time
}

// stream is an open live stream of a console page.
type stream struct {
	mu     sync.Mutex
	events []event
	cancel context.CancelFunc
	done   chan struct{}
	status int
}

// openStream opens the live stream of a page, as the page's script does.
func (v *visitor) openStream(path string) *stream {
	v.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.base+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	c := *v.c
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		v.t.Fatalf("open stream %s: %v", path, err)
	}
	s := &stream{cancel: cancel, done: make(chan struct{}), status: resp.StatusCode}
	v.t.Cleanup(s.close)
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		var name, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && name != "":
				e := event{Name: name, At: time.Now()}
				json.Unmarshal([]byte(data), &e.Parts)
				s.mu.Lock()
				s.events = append(s.events, e)
				s.mu.Unlock()
				name, data = "", ""
			}
		}
	}()
	return s
}

func (s *stream) close() {
	s.cancel()
	<-s.done
}

// all returns the events so far.
func (s *stream) all() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...)
}

// latest returns the last HTML sent for a part, "" if none.
func (s *stream) latest(part string) string {
	evs := s.all()
	for i := len(evs) - 1; i >= 0; i-- {
		if html, ok := evs[i].Parts[part]; ok {
			return html
		}
	}
	return ""
}

// waitPart waits until the last HTML of a part contains want.
func (s *stream) waitPart(t testing.TB, part, want string) {
	t.Helper()
	brokertest.Eventually(t, fmt.Sprintf("the stream's %s shows %q", part, want), func() error {
		if html := s.latest(part); !strings.Contains(html, want) {
			return fmt.Errorf("latest %s: %s", part, excerpt(html))
		}
		return nil
	})
}

// createJob creates a job through the AWS SDK.
func createJob(t testing.TB, b *brokertest.Instance, id string, targets ...string) {
	t.Helper()
	_, err := b.IoT().CreateJob(context.Background(), &iot.CreateJobInput{
		JobId: aws.String(id), Targets: targets, Document: aws.String(`{"operation":"install"}`),
	})
	if err != nil {
		t.Fatalf("create job %s: %v", id, err)
	}
}

// runDevice connects a device for thing, and has it start and succeed its
// next job.
func runDevice(t testing.TB, b *brokertest.Instance, thing string) {
	t.Helper()
	finishDevice(t, b, thing, "SUCCEEDED")
}

// finishDevice connects a device for thing, and has it start its next job
// and report status.
func finishDevice(t testing.TB, b *brokertest.Instance, thing, status string) {
	t.Helper()
	d := brokertest.Connect5(t, b.MQTTAddr(), thing)
	defer d.Close()
	prefix := "$aws/things/" + thing + "/jobs/"
	out := d.MustAccept(prefix+"start-next", map[string]any{})
	exec, _ := out["execution"].(map[string]any)
	if exec == nil {
		t.Fatalf("%s: nothing to start: %v", thing, out)
	}
	d.MustAccept(prefix+exec["jobId"].(string)+"/update", map[string]any{"status": status})
}
