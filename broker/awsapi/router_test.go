package awsapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRouterServesSlashLabel sends, over a real HTTP connection, labels
// that decode to "/" alone, which http.ServeMux does not route: the
// operation must still receive them, and paths no template matches must
// still be unknown operations.
func TestRouterServesSlashLabel(t *testing.T) {
	mux := http.NewServeMux()
	rt := Router{Mux: mux, Service: "test", Timeout: time.Second, Log: slog.New(slog.DiscardHandler),
		Errors: func(err error) *Error { return Errorf(http.StatusBadRequest, "InvalidRequestException", err.Error()) }}
	rt.Handle("Get", "GET /things/{thingName}/jobs/{jobId}", func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
		return errors.New("thing=" + r.PathValue("thingName") + " job=" + r.PathValue("jobId"))
	})
	// A literal label wins over a wildcard, as the mux decides.
	rt.Handle("GetNext", "GET /things/{thingName}/jobs/next", func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
		return errors.New("next of thing=" + r.PathValue("thingName"))
	})
	rt.NotFound()
	srv := httptest.NewServer(WithRequestID(slog.New(slog.DiscardHandler), "test", mux))
	defer srv.Close()

	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/things/%2F/jobs/j1", 400, `{"__type":"InvalidRequestException","message":"thing=/ job=j1"}`},
		{"GET", "/things/%2f/jobs/%2F", 400, `{"__type":"InvalidRequestException","message":"thing=/ job=/"}`},
		{"GET", "/things/a%2Fb/jobs/j1", 400, `{"__type":"InvalidRequestException","message":"thing=a/b job=j1"}`},
		{"GET", "/things/%2F/jobs/next", 400, `{"__type":"InvalidRequestException","message":"next of thing=/"}`},
		{"GET", "/things/a/jobs/next", 400, `{"__type":"InvalidRequestException","message":"next of thing=a"}`},
		{"HEAD", "/things/%2F/jobs/j1", 400, ``},
		{"POST", "/things/%2F/jobs/j1", 404, `{"__type":"UnknownOperationException","message":"no operation of the test API matches POST /things///jobs/j1"}`},
		{"GET", "/things/%2F/jobs", 404, `{"__type":"UnknownOperationException","message":"no operation of the test API matches GET /things///jobs"}`},
		{"GET", "/things//jobs/j1", 404, `{"__type":"UnknownOperationException","message":"no operation matches GET /things//jobs/j1"}`},
	} {
		req, err := http.NewRequest(c.method, srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || string(raw) != c.body {
			t.Errorf("%s %s: got %d %s, want %d %s", c.method, c.path, res.StatusCode, raw, c.status, c.body)
		}
	}
}

// TestRouterRefusesPatternsItCannotMap: the fallback maps labels by
// position, so Handle takes only "METHOD /literal/{name}" patterns.
func TestRouterRefusesPatternsItCannotMap(t *testing.T) {
	for _, p := range []string{"/any/{x}", "GET  /x/{a}", "GET /a%2Db/{x}", "GET /files/{rest...}", "GET /jobs/{$}", "GET /jobs/", "GET /jobs//x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%q) did not panic", p)
				}
			}()
			rt := Router{Mux: http.NewServeMux()}
			rt.Handle("X", p, func(context.Context, http.ResponseWriter, *http.Request) error { return nil })
		}()
	}
}
