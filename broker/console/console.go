// Package console serves the broker's web console at /console/ on the API
// listener: the jobs with their rollouts, a job's detail and actions, a
// thing's executions and recent traffic, a form to create a job, and the
// broker's own figures.
//
// Pages are HTML rendered on the server from embedded templates, and work
// without JavaScript. A small embedded script adds live updates: each page
// opens a Server-Sent Events stream on its own URL, and the server sends
// the page's changed parts, rendered by the same templates, at most every
// Options.MinInterval. A stream wakes when this node's store commits a
// change (Console.Changed) and re-reads its page every Options.Refresh
// regardless, which also brings in what other nodes of a cluster changed.
//
// Every action goes through the control-plane API handler (Options.API),
// so the console can do nothing the API would refuse, and its errors are
// the API's, shown next to the form field they concern.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobsbroker/jobsbroker/broker/sigv4"
	"github.com/jobsbroker/jobsbroker/broker/traffic"
	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// Defaults for Options.
const (
	DefaultMinInterval = 250 * time.Millisecond
	DefaultRefresh     = 2 * time.Second
	DefaultMaxStreams  = 64
	DefaultSessionTTL  = 12 * time.Hour
)

// Options configures the console.
type Options struct {
	// Store is read for every page.
	Store store.Store
	// API is the control-plane handler; every action is a call to it.
	API http.Handler
	// Region and Account build the ARNs of targets and templates.
	Region, Account string
	Clock           clock.Clock
	Logger          *slog.Logger
	// Metrics is the registry /metrics serves; the broker page reads it.
	Metrics prometheus.Gatherer
	// Traffic, if set, is shown on thing pages.
	Traffic *traffic.Recorder
	// Clients, if set, lists the MQTT clients of a thing connected to this
	// node (by client id).
	Clients func(thing string) []string
	// Listening, if set, reports whether a client of this node subscribes
	// to the thing's notifications.
	Listening func(thing string) bool
	// Credentials, if set and not returning nil, are the access keys that
	// may log in (the API's credentials file, as reloaded).
	Credentials func() *sigv4.Credentials
	// Users, if set, are console logins by name and password (see
	// LoadUsers; SetUsers replaces them).
	Users *Users
	// Secure marks the session cookie Secure (the listener serves TLS).
	Secure bool
	// NodeID names this node on the broker page.
	NodeID string
	// MinInterval is the least time between two messages of one stream
	// (default 250 ms: at most four a second).
	MinInterval time.Duration
	// Refresh is how often a stream re-reads its page without a change
	// from this node (default 2 s); it bounds how late another node's
	// change shows.
	Refresh time.Duration
	// MaxStreams bounds the live streams served at once (default 64).
	MaxStreams int
	// SessionTTL is how long a login lasts (default 12 h).
	SessionTTL time.Duration
}

// Console is the console's HTTP handler.
type Console struct {
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	assetV   string
	static   http.Handler
	hub      *hub
	streams  atomic.Int64
	logins   *loginLimiter
	users    atomic.Pointer[Users]
	metrics  sampler
	counting sync.Map // job id -> true while its targets are being counted

	ctx    context.Context // ended by Close: streams stop
	cancel context.CancelFunc
	closed sync.Once
}

// New returns the console.
func New(opts Options) (*Console, error) {
	if opts.Store == nil || opts.API == nil {
		return nil, errors.New("console: Options needs a Store and the API handler")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = DefaultMinInterval
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	c := &Console{opts: opts, log: opts.Logger, mux: http.NewServeMux(), hub: newHub(), logins: newLoginLimiter()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.users.Store(opts.Users)
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	if c.assetV, err = assetVersion(static); err != nil {
		return nil, err
	}
	c.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := c.mux
	m.HandleFunc("GET "+Prefix+"static/", c.serveStatic)
	m.HandleFunc("GET "+Prefix+"login", c.loginPage)
	m.HandleFunc("POST "+Prefix+"login", c.login)
	m.HandleFunc("POST "+Prefix+"logout", c.signedIn(c.logout))
	m.HandleFunc("GET "+Prefix+"{$}", c.signedIn(c.jobsPage))
	m.HandleFunc("GET "+Prefix+"jobs/new", c.signedIn(c.newJobPage))
	m.HandleFunc("POST "+Prefix+"jobs/new", c.signedIn(c.createJob))
	m.HandleFunc("GET "+Prefix+"jobs/{jobId}", c.signedIn(c.jobPage))
	m.HandleFunc("GET "+Prefix+"jobs/{jobId}/{action}", c.signedIn(c.confirmPage))
	m.HandleFunc("POST "+Prefix+"jobs/{jobId}/{action}", c.signedIn(c.jobAction))
	m.HandleFunc("GET "+Prefix+"things", c.signedIn(func(w http.ResponseWriter, r *http.Request, _ *session) { c.thingByName(w, r) }))
	m.HandleFunc("GET "+Prefix+"things/{thingName}", c.signedIn(c.thingPage))
	m.HandleFunc("GET "+Prefix+"broker", c.signedIn(c.brokerPage))
	m.HandleFunc("GET "+Prefix+"complete", c.signedIn(c.complete))
	m.HandleFunc(Prefix, c.signedIn(func(w http.ResponseWriter, r *http.Request, _ *session) {
		c.errorPage(w, r, nil, http.StatusNotFound, "There is no console page at "+r.URL.Path+".")
	}))
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// Changed takes note of committed changes: open streams re-read their
// pages. It is a store.ChangeHandler and returns at once.
func (c *Console) Changed([]store.Change) { c.hub.changed() }

// Close ends the live streams, so that the HTTP server's shutdown does not
// wait for them.
func (c *Console) Close() { c.closed.Do(c.cancel) }

func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("v") == c.assetV {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	c.static.ServeHTTP(w, r)
}

func (c *Console) jobArn(id string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:job/%s", c.opts.Region, c.opts.Account, id)
}

func (c *Console) targetArn(kind, name string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:%s/%s", c.opts.Region, c.opts.Account, kind, name)
}

func (c *Console) templateArn(id string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:jobtemplate/%s", c.opts.Region, c.opts.Account, id)
}

// wantsStream reports whether r is an EventSource asking for the page's
// live updates.
func wantsStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}
