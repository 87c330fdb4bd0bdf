package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// pageNames are the page templates; each is parsed with layout.html and
// parts.html.
var pageNames = []string{"jobs", "job", "confirm", "thing", "new", "broker", "login", "error"}

// statusInfo is how the console shows an execution status: its order in
// the stacked bar and its words.
type statusInfo struct {
	Status store.ExecutionStatus
	Label  string
	Class  string
}

// barOrder is the order of the stacked progress bar and of the legends:
// finished outcomes first, then what is still to come.
var barOrder = []statusInfo{
	{store.StatusSucceeded, "Succeeded", "succeeded"},
	{store.StatusFailed, "Failed", "failed"},
	{store.StatusRejected, "Rejected", "rejected"},
	{store.StatusTimedOut, "Timed out", "timed-out"},
	{store.StatusCanceled, "Canceled", "canceled"},
	{store.StatusRemoved, "Removed", "removed"},
	{store.StatusInProgress, "In progress", "in-progress"},
	{store.StatusQueued, "Queued", "queued"},
}

var funcs = template.FuncMap{
	"when":     when,
	"ago":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"num":      num,
	"json":     prettyJSON,
	"pathq":    url.PathEscape,
	"query":    url.QueryEscape,
	"statuses": func() []statusInfo { return barOrder },
	"lower":    strings.ToLower,
	"label":    statusLabel,
	"class":    statusClass,
	"deref":    func(p *int64) int64 { return *p },
	"add":      func(a, b int) int { return a + b },
	"list":     func(v ...string) []string { return v },
	"barOf":    func(label string, b bar) labeledBar { return labeledBar{Label: label, Bar: b} },
	"field":    newField,
}

// labeledBar is a progress bar with its accessible name.
type labeledBar struct {
	Label string
	Bar   bar
}

// fieldView is one text input of a form, with its hint and error.
type fieldView struct {
	Name, Label, Type, Value, Hint, Error, Inputmode, Described string
}

func newField(f *form, name, label, typ, hint string) fieldView {
	v := fieldView{Name: name, Label: label, Type: typ, Value: f.Get(name), Hint: hint, Error: f.Err(name)}
	var ids []string
	if hint != "" {
		ids = append(ids, name+"-hint")
	}
	if v.Error != "" {
		ids = append(ids, name+"-error")
	}
	v.Described = strings.Join(ids, " ")
	return v
}

func statusLabel(s any) string {
	str := fmt.Sprint(s)
	for _, b := range barOrder {
		if string(b.Status) == str {
			return b.Label
		}
	}
	if str == "" {
		return ""
	}
	return strings.ReplaceAll(str[:1]+strings.ToLower(str[1:]), "_", " ")
}

func statusClass(s any) string {
	return strings.ReplaceAll(strings.ToLower(fmt.Sprint(s)), "_", "-")
}

// when renders a time for people: UTC to the second, empty when zero.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// num renders an integer with thousands separators.
func num(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1e15 {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		n = int64(x)
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func prettyJSON(s string) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "  "); err != nil {
		return s
	}
	return buf.String()
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// assetVersion is a hash of the static files, put in their URLs so that
// browsers may cache them for good.
func assetVersion(static fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil))[:12], err
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string // the navigation entry of this page
	S      *session
	Login  bool // logins are in force (show who and a log-out button)
	AssetV string
	Flash  string
	Live   bool // the page has live parts
	Node   string
	Body   any
}

func (c *Console) newPage(r *http.Request, s *session, nav, title string, body any) *page {
	return &page{Title: title, Nav: nav, S: s, Login: c.authRequired(), AssetV: c.assetV,
		Flash: flashText(r.URL.Query().Get("done")), Node: c.opts.NodeID, Body: body}
}

// render writes a whole page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, title string, body any) {
	nav := name
	c.write(w, status, name, c.newPage(r, s, nav, title, body))
}

func (c *Console) write(w http.ResponseWriter, status int, name string, p *page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console: render page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fragment renders one live part of a page.
func (c *Console) fragment(name, part string, p *page) (string, error) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, part, p); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// parts renders several live parts.
func (c *Console) parts(name string, p *page, ids ...string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		html, err := c.fragment(name, id, p)
		if err != nil {
			return nil, err
		}
		out[id] = html
	}
	return out, nil
}

type errorBody struct{ Message string }

func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	if wantsStream(r) {
		http.Error(w, msg, status)
		return
	}
	c.render(w, r, status, "error", s, http.StatusText(status), errorBody{Message: msg})
}

// flashText is the message shown after an action redirected to a page.
func flashText(done string) string {
	switch done {
	case "created":
		return "The job was created."
	case "canceled":
		return "The job was canceled."
	case "deleted":
		return "The job is being deleted."
	case "rollout":
		return "The rollout rate was updated."
	}
	return ""
}
