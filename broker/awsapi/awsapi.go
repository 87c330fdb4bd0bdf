// Package awsapi holds what the two AWS-shaped HTTP APIs share: the
// rest-json error format (status, x-amzn-ErrorType header, __type and
// message in the body), request ids, JSON bodies and epoch-second
// timestamps.
package awsapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// MaxBodyBytes bounds request bodies: a 32 KB job document, JSON escaping
// and the other fields fit well within it.
const MaxBodyBytes = 1 << 20

// Error is an AWS error response.
type Error struct {
	Status  int            // HTTP status
	Type    string         // exception name, e.g. ResourceNotFoundException
	Message string         // human readable
	Extra   map[string]any // extra body members (resourceId, resourceArn ...)
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// Errorf returns an *Error.
func Errorf(status int, typ, message string) *Error {
	return &Error{Status: status, Type: typ, Message: message}
}

// maxMessageBytes bounds an error message: messages may quote what a
// request sent (a field name, a status), and a refused value is never
// echoed back whole.
const maxMessageBytes = 1024

// WriteError writes e the way AWS rest-json services do: the exception
// name both in the x-amzn-ErrorType header and in the body's __type, so
// that every SDK generation reads the same type (PROTOCOL.md §10.3).
func WriteError(w http.ResponseWriter, e *Error) {
	msg := e.Message
	if len(msg) > maxMessageBytes {
		msg = strings.ToValidUTF8(msg[:maxMessageBytes-len("...")], "") + "..."
	}
	body := map[string]any{"__type": e.Type, "message": msg}
	for k, v := range e.Extra {
		body[k] = v
	}
	w.Header().Set("x-amzn-ErrorType", e.Type)
	WriteJSON(w, e.Status, body)
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.Header().Set("x-amzn-ErrorType", "InternalFailureException")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"__type":"InternalFailureException","message":"the response could not be encoded"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// WriteEmpty writes a 200 response without members.
func WriteEmpty(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "{}")
}

// DecodeBody reads a JSON request body into v. An empty body decodes as
// {}. Malformed JSON and values of the wrong type are returned as an
// InvalidRequestException (invalidStatus) naming the problem.
func DecodeBody(r *http.Request, v any) *Error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Errorf(http.StatusRequestEntityTooLarge, "InvalidRequestException", "the request body is larger than 1 MiB")
		}
		return Errorf(http.StatusBadRequest, "InvalidRequestException", "the request body could not be read")
	}
	if len(body) == 0 {
		return nil
	}
	if exact, err := exactMembers(body, reflect.TypeOf(v)); err == nil {
		body = exact
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return Errorf(http.StatusBadRequest, "InvalidRequestException", typeErr.Field+" has the wrong type: expected "+typeErr.Type.String()+", got a JSON "+typeErr.Value)
		}
		return Errorf(http.StatusBadRequest, "InvalidRequestException", "the request body is not valid JSON: "+err.Error())
	}
	return nil
}

// NewRequestID returns a random request id in the UUID layout AWS uses.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// WithRequestID sets x-amzn-RequestId on every response and logs each
// request at debug level.
func WithRequestID(log *slog.Logger, api string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := NewRequestID()
		w.Header().Set("x-amzn-RequestId", id)
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if !canonicalPath(r.URL.EscapedPath()) {
			// http.ServeMux would answer with an HTML redirect to the
			// cleaned path; AWS answers that no operation matches. Like
			// the mux, look at the path as sent: an escaped slash
			// (%2F) stays inside its label.
			WriteError(rec, Errorf(http.StatusNotFound, "UnknownOperationException",
				"no operation matches "+r.Method+" "+r.URL.Path))
		} else {
			next.ServeHTTP(rec, r)
		}
		log.Debug("api request", "api", api, "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"request_id", id, "duration", time.Since(start))
	})
}

// canonicalPath reports whether p is absolute and has no empty, "." or
// ".." segments (a trailing slash is allowed, but "//" is an empty
// segment, not the root with a trailing slash).
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	return clean == p || (clean != "/" && clean+"/" == p)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// EpochSeconds is a control-plane timestamp: a JSON number of seconds
// since the epoch, with millisecond precision (AWS timestamp shapes).
type EpochSeconds time.Time

// MarshalJSON renders seconds with up to three decimals.
func (t EpochSeconds) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

// UnmarshalJSON reads a number of seconds.
func (t *EpochSeconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	sec, frac := math.Modf(f)
	*t = EpochSeconds(time.Unix(int64(sec), int64(math.Round(frac*1e9))))
	return nil
}

// Epoch returns a pointer to t as EpochSeconds, or nil when t is zero.
func Epoch(t time.Time) *EpochSeconds {
	if t.IsZero() {
		return nil
	}
	e := EpochSeconds(t)
	return &e
}

// QueryBool parses a boolean query parameter; absent is false.
func QueryBool(r *http.Request, name string) (bool, *Error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, Errorf(http.StatusBadRequest, "InvalidRequestException", name+" must be true or false")
	}
	return b, nil
}

// QueryInt parses an integer query parameter; absent is nil.
func QueryInt(r *http.Request, name string) (*int64, *Error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "InvalidRequestException", name+" must be an integer")
	}
	return &n, nil
}

// Operation is one API operation: it writes its response, or returns an
// error for the Router to write.
type Operation func(ctx context.Context, w http.ResponseWriter, r *http.Request) error

// Router registers the operations of one AWS-shaped API on a ServeMux.
type Router struct {
	Mux     *http.ServeMux
	Service string             // named in the error for an unknown path
	Timeout time.Duration      // bounds one call
	Errors  func(error) *Error // the API's mapping of errors to exceptions
	Log     *slog.Logger
	// Observe, if set, is told about every call: the operation, the HTTP
	// status, the exception ("" on success) and how long it took.
	Observe func(operation string, status int, exception string, took time.Duration)

	operations []string
	templates  map[string]template // by pattern
}

// template is one registered "METHOD /path/{label}" pattern, kept for the
// paths http.ServeMux cannot route (see serveSlashLabel): its labels, and its
// handler.
type template struct {
	segs []string
	h    http.HandlerFunc
}

// Operations lists the names of the operations registered so far.
func (rt *Router) Operations() []string { return slices.Clone(rt.operations) }

// Handle serves the operation called name at pattern. It runs with a
// deadline, and the notifications its changes cause wait until its
// response is written (store.WithNotifyAfter), as they do for an MQTT
// reply.
func (rt *Router) Handle(name, pattern string, op Operation) {
	if !slices.Contains(rt.operations, name) {
		rt.operations = append(rt.operations, name)
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		responded := make(chan struct{})
		defer close(responded)
		ctx, cancel := context.WithTimeout(store.WithNotifyAfter(r.Context(), responded), rt.Timeout)
		defer cancel()
		status, exception := http.StatusOK, ""
		if err := op(ctx, w, r); err != nil {
			e := rt.Errors(err)
			if e.Status >= 500 {
				rt.Log.Error("api request failed", "api", rt.Service, "op", name, "path", r.URL.Path, "error", err)
			}
			WriteError(w, e)
			status, exception = e.Status, e.Type
		}
		if rt.Observe != nil {
			rt.Observe(name, status, exception, time.Since(start))
		}
	}
	rt.Mux.HandleFunc(pattern, h)
	if rt.templates == nil {
		rt.templates = map[string]template{}
	}
	rt.templates[pattern] = template{segs: templateLabels(pattern), h: h}
}

// templateLabels splits an operation's pattern into its path's labels. It
// takes only the forms the APIs use, "METHOD /literal/{name}/...", and
// panics on any other: serveSlashLabel maps labels by position.
func templateLabels(pattern string) []string {
	method, p, ok := strings.Cut(pattern, " ")
	segs := strings.Split(p, "/")
	if !ok || method == "" || strings.ContainsAny(method, " /") || segs[0] != "" || segs[len(segs)-1] == "" {
		panic("awsapi: unsupported operation pattern " + strconv.Quote(pattern))
	}
	for _, s := range segs[1:] {
		name, wild := strings.CutPrefix(s, "{")
		if (wild && (!strings.HasSuffix(name, "}") || len(name) < 2 || strings.ContainsAny(name, "{.$"))) ||
			(!wild && (s == "" || strings.ContainsAny(s, "{}%"))) {
			panic("awsapi: unsupported operation pattern " + strconv.Quote(pattern))
		}
	}
	return segs
}

// NotFound answers every path no operation matches with
// UnknownOperationException.
func (rt *Router) NotFound() {
	rt.Mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if rt.serveSlashLabel(w, r) {
			return
		}
		WriteError(w, Errorf(http.StatusNotFound, "UnknownOperationException",
			"no operation of the "+rt.Service+" API matches "+r.Method+" "+r.URL.Path))
	})
}

// serveSlashLabel serves a request whose path has a label that decodes to
// "/" alone ("%2F"), and reports whether it did. http.ServeMux takes such
// a label for a trailing slash and matches no wildcard with it, while AWS
// passes it to the operation like any other value (which then refuses it
// as a name). So the mux chooses the operation for the path with each
// such label replaced by an escaped double slash (a label it routes like
// any other), and the operation gets the labels as sent, each decoded on
// its own.
func (rt *Router) serveSlashLabel(w http.ResponseWriter, r *http.Request) bool {
	segs := strings.Split(r.URL.EscapedPath(), "/")
	probe := make([]string, len(segs))
	slash := false
	for i, s := range segs {
		probe[i] = s
		if strings.EqualFold(s, "%2F") {
			probe[i], slash = "%2F%2F", true
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		segs[i] = d
	}
	if !slash {
		return false
	}
	u := *r.URL
	u.RawPath = strings.Join(probe, "/")
	u.Path, _ = url.PathUnescape(u.RawPath)
	pr := *r
	pr.URL = &u
	_, pattern := rt.Mux.Handler(&pr)
	t, ok := rt.templates[pattern]
	if !ok || len(t.segs) != len(segs) {
		return false
	}
	for i, s := range t.segs {
		if name, wild := strings.CutPrefix(s, "{"); wild {
			r.SetPathValue(strings.TrimSuffix(name, "}"), segs[i])
		}
	}
	t.h(w, r)
	return true
}
