// Package faults makes a jobsbroker misbehave on purpose, the way AWS IoT
// and real networks do, so that a test can check what device code does
// about it: a notify-next that never arrives, a VersionMismatch, a reply
// that comes late or twice, a connection dropped after an update was
// committed, a CONNECT refused.
//
// A Set holds the faults in force. jobshook asks it about every request it
// serves and every notification it publishes, and the broker's connect
// hook about every CONNECT; each Fault says which messages it acts on (a
// thing or all, an operation or a notification topic), how often (the
// next Count, or each with a Probability) and what it does. Draws come
// from a generator per fault seeded from the plan's seed, so the same
// seed and the same device behaviour give the same faults.
//
// While no fault can fire, asking costs one atomic load: jobshook runs on
// the publishing client's read goroutine, and a broker without faults must
// not pay for them.
package faults

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobsbroker/jobsbroker/topics"
)

// Kind names what a fault does.
type Kind string

// The kinds of faults.
const (
	// Drop runs the request and sends no reply, or drops a notification.
	Drop Kind = "drop"
	// Delay sends the reply, or the notification, Delay late.
	Delay Kind = "delay"
	// Duplicate sends the reply, or the notification, twice.
	Duplicate Kind = "duplicate"
	// Reject answers the request with Code without running it.
	Reject Kind = "reject"
	// Disconnect runs the request, then closes the client's connection
	// instead of sending the reply: the change is committed and the
	// device is never told.
	Disconnect Kind = "disconnect"
	// RefuseConnect refuses a client's CONNECT.
	RefuseConnect Kind = "refuse-connect"
)

// Kinds lists every kind, for metrics that start each at zero.
var Kinds = []Kind{Drop, Delay, Duplicate, Reject, Disconnect, RefuseConnect}

// RejectionCodes are the codes a Reject fault may answer with: the
// RejectedErrorCode values of the MQTT Jobs API (jobshook's list, which a
// test keeps equal).
var RejectionCodes = []string{
	"InvalidTopic", "InvalidJson", "InvalidRequest", "InvalidStateTransition", "ResourceNotFound",
	"VersionMismatch", "InternalError", "RequestThrottled", "TerminalStateReached",
}

// ConnectCodes are the CONNACK refusals a RefuseConnect fault may answer
// with; without a code the connection is closed with no CONNACK, as AWS
// IoT closes a connection it does not accept.
var ConnectCodes = []string{"NotAuthorized", "ServerUnavailable"}

// The operations a fault may name, by their request topics' words; the
// AWS API names (UpdateJobExecution ...) are accepted too.
var operations = map[string]topics.Operation{
	"get-pending": topics.OpGetPending,
	"start-next":  topics.OpStartNext,
	"describe":    topics.OpDescribe,
	"update":      topics.OpUpdate,
}

// The notification topics a fault may name.
var notifications = map[string]topics.Kind{"notify": topics.KindNotify, "notify-next": topics.KindNotifyNext}

// Fault is one rule: which messages it acts on and what it does to them.
type Fault struct {
	// ID names the fault in transcripts and in /admin/faults (default
	// f1, f2 ... in the order faults are added).
	ID string `json:"id,omitempty" yaml:"id"`
	// Kind is what the fault does.
	Kind Kind `json:"kind" yaml:"kind"`
	// Thing limits the fault to one thing ("" or "*": every thing). For
	// RefuseConnect it is the client id, which devices set to their
	// thing's name.
	Thing string `json:"thing,omitempty" yaml:"thing"`
	// Client limits the fault to one MQTT client id ("": every client).
	Client string `json:"client,omitempty" yaml:"client"`
	// Operation limits a request fault to one operation: get-pending,
	// start-next, describe or update ("": every request).
	Operation string `json:"operation,omitempty" yaml:"operation"`
	// Topic makes a Drop, Delay or Duplicate fault act on notifications
	// of that topic, notify or notify-next, instead of replies.
	Topic string `json:"topic,omitempty" yaml:"topic"`
	// Skip lets that many matching messages through before the fault
	// starts: disconnect after the third update reply is skip 2, count 1.
	Skip int `json:"skip,omitempty" yaml:"skip"`
	// Count is how many times the fault fires before it is spent (0: no
	// limit).
	Count int `json:"count,omitempty" yaml:"count"`
	// Probability, between 0 and 1, is the chance that the fault fires
	// on each matching message (0: always).
	Probability float64 `json:"probability,omitempty" yaml:"probability"`
	// Code is a Reject fault's rejection code (one of RejectionCodes), or
	// a RefuseConnect fault's CONNACK (one of ConnectCodes; "": no
	// CONNACK).
	Code string `json:"code,omitempty" yaml:"code"`
	// Message is a Reject fault's message (default: one that says a fault
	// answered).
	Message string `json:"message,omitempty" yaml:"message"`
	// Delay is how late a Delay fault sends.
	Delay Duration `json:"delay,omitempty" yaml:"delay"`
}

// Notification reports whether the fault acts on notifications.
func (f *Fault) Notification() bool { return f.Topic != "" }

// RejectMessage is the message of a Reject fault's rejection.
func (f *Fault) RejectMessage() string {
	if f.Message != "" {
		return f.Message
	}
	return "rejected by fault " + f.ID + " (jobsbroker fault injection)"
}

// Check reports what is wrong with the fault, naming the field.
func (f *Fault) Check() error {
	if !slices.Contains(Kinds, f.Kind) {
		return fieldError("kind", "%q must be one of %s", f.Kind, joinKinds())
	}
	if f.Thing == "*" {
		f.Thing = ""
	}
	if op, ok := canonicalOperation(f.Operation); ok {
		f.Operation = op
	} else {
		return fieldError("operation", "%q must be get-pending, start-next, describe or update", f.Operation)
	}
	if _, ok := notifications[f.Topic]; !ok && f.Topic != "" {
		return fieldError("topic", "%q must be notify or notify-next", f.Topic)
	}
	switch {
	case f.Topic != "" && f.Operation != "":
		return fieldError("topic", "a fault acts on replies to an operation or on notifications of a topic, not both")
	case f.Topic != "" && f.Kind != Drop && f.Kind != Delay && f.Kind != Duplicate:
		return fieldError("topic", "only drop, delay and duplicate act on notifications")
	case f.Kind == RefuseConnect && f.Operation != "":
		return fieldError("operation", "refuse-connect acts on CONNECTs, not on requests")
	case f.Skip < 0:
		return fieldError("skip", "%d must not be negative", f.Skip)
	case f.Count < 0:
		return fieldError("count", "%d must not be negative", f.Count)
	case f.Probability < 0 || f.Probability > 1:
		return fieldError("probability", "%v must be between 0 and 1", f.Probability)
	case f.Delay < 0:
		return fieldError("delay", "%v must not be negative", time.Duration(f.Delay))
	case f.Kind == Delay && f.Delay == 0:
		return fieldError("delay", "a delay fault needs a delay such as 2s")
	case f.Kind != Delay && f.Delay != 0:
		return fieldError("delay", "only a delay fault takes a delay")
	case f.Kind == Delay && time.Duration(f.Delay) > MaxDelay:
		return fieldError("delay", "%v is longer than %v", time.Duration(f.Delay), MaxDelay)
	}
	switch f.Kind {
	case Reject:
		if !slices.Contains(RejectionCodes, f.Code) {
			return fieldError("code", "%q must be one of %s", f.Code, strings.Join(RejectionCodes, ", "))
		}
	case RefuseConnect:
		if f.Code != "" && !slices.Contains(ConnectCodes, f.Code) {
			return fieldError("code", "%q must be one of %s, or absent to close the connection without a CONNACK", f.Code, strings.Join(ConnectCodes, ", "))
		}
	default:
		if f.Code != "" {
			return fieldError("code", "only reject and refuse-connect faults take a code")
		}
	}
	if f.Message != "" && f.Kind != Reject {
		return fieldError("message", "only a reject fault takes a message")
	}
	return nil
}

// MaxDelay is the longest a Delay fault may hold a message back.
const MaxDelay = 10 * time.Minute

func canonicalOperation(op string) (string, bool) {
	if op == "" {
		return "", true
	}
	if _, ok := operations[op]; ok {
		return op, true
	}
	for name, o := range operations {
		if o.String() == op {
			return name, true
		}
	}
	return "", false
}

func joinKinds() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// FieldError is a problem with one field of a fault.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldError(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Duration is a time.Duration written as text ("2s", "150ms").
type Duration time.Duration

// MarshalText writes the duration as time.Duration does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as 2s or 150ms.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 2s or 150ms", b)
	}
	*d = Duration(v)
	return nil
}

// Plan is a fault file: the seed of the draws and the faults in order.
type Plan struct {
	// Seed seeds each fault's draws (faults with a Probability); the same
	// seed gives the same draws for the same messages.
	Seed uint64 `json:"seed" yaml:"seed"`
	// Faults are the rules. A message is acted on by the first fault
	// that fires on it; later ones do not see it.
	Faults []Fault `json:"faults" yaml:"faults"`
}

// Event is one fault firing, as transcripts record it.
type Event struct {
	Thing    string
	ClientID string
	// Topic is the reply or notification topic acted on (the request
	// topic for Reject; empty for RefuseConnect).
	Topic string
	Fault Fault
	// Payload is the message acted on: the reply withheld, delayed or
	// sent twice, the rejection sent instead, the notification dropped.
	Payload []byte
}

// Status is a fault with what it has done so far, as /admin/faults shows
// it.
type Status struct {
	Fault
	// Matched counts the messages the fault matched; Fired those it
	// acted on.
	Matched int `json:"matched"`
	Fired   int `json:"fired"`
	// Spent is set once Count is reached.
	Spent bool `json:"spent"`
}

// Set is the faults in force. The zero value is not usable: use New.
type Set struct {
	armed atomic.Bool // some fault can still fire
	mu    sync.Mutex
	seed  uint64
	rules []*rule
	added uint64 // faults ever added, for ids and generator streams

	fired    map[Kind]*atomic.Int64
	observer atomic.Pointer[func(Event)]
}

type rule struct {
	Fault
	matched, fired int
	rng            *rand.Rand
}

func (r *rule) spent() bool { return r.Count > 0 && r.fired >= r.Count }

// New returns an empty set.
func New() *Set {
	s := &Set{fired: map[Kind]*atomic.Int64{}}
	for _, k := range Kinds {
		s.fired[k] = new(atomic.Int64)
	}
	return s
}

// Armed reports whether some fault can still fire: one atomic load, the
// whole cost of a set with nothing to do.
func (s *Set) Armed() bool { return s != nil && s.armed.Load() }

// Replace puts plan in force instead of the faults there were. It checks
// every fault first and changes nothing when one is invalid.
func (s *Set) Replace(plan Plan) error {
	if err := checkAll(plan.Faults); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seed, s.rules, s.added = plan.Seed, nil, 0
	s.addLocked(plan.Faults)
	return nil
}

// Add appends faults to those in force, checking them all first.
func (s *Set) Add(faults ...Fault) error {
	if err := checkAll(faults); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(faults)
	return nil
}

// Remove takes the fault with id out of force; it reports false when
// there is none.
func (s *Set) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.rules, func(r *rule) bool { return r.ID == id })
	if i < 0 {
		return false
	}
	s.rules = slices.Delete(s.rules, i, i+1)
	s.rearm()
	return true
}

// Clear takes every fault out of force (the seed stays).
func (s *Set) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
	s.rearm()
}

func checkAll(faults []Fault) error {
	for i := range faults {
		if err := faults[i].Check(); err != nil {
			return &IndexError{Index: i, Err: err}
		}
	}
	return nil
}

// IndexError is a problem with the fault at Index of a list.
type IndexError struct {
	Index int
	Err   error
}

func (e *IndexError) Error() string { return "faults[" + strconv.Itoa(e.Index) + "]: " + e.Err.Error() }
func (e *IndexError) Unwrap() error { return e.Err }

func (s *Set) addLocked(faults []Fault) {
	for _, f := range faults {
		s.added++
		if f.ID == "" {
			f.ID = "f" + strconv.FormatUint(s.added, 10)
		}
		s.rules = append(s.rules, &rule{Fault: f, rng: rand.New(rand.NewPCG(s.seed, s.added))})
	}
	s.rearm()
}

// rearm sets armed to whether some rule can still fire.
func (s *Set) rearm() {
	s.armed.Store(slices.ContainsFunc(s.rules, func(r *rule) bool { return !r.spent() }))
}

// Plan returns the faults in force with their counts, and the seed.
func (s *Set) Plan() (seed uint64, faults []Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	faults = make([]Status, 0, len(s.rules))
	for _, r := range s.rules {
		faults = append(faults, Status{Fault: r.Fault, Matched: r.matched, Fired: r.fired, Spent: r.spent()})
	}
	return s.seed, faults
}

// Request returns the fault that acts on a request of thing's by client
// (and on its reply), or nil.
func (s *Set) Request(thing, client string, op topics.Operation) *Fault {
	return s.decide(func(r *rule) bool {
		return r.Kind != RefuseConnect && r.Topic == "" && r.matches(thing, client) &&
			(r.Operation == "" || operations[r.Operation] == op)
	})
}

// Notification returns the fault that acts on a notification of thing's
// (kind KindNotify or KindNotifyNext), or nil.
func (s *Set) Notification(thing string, kind topics.Kind) *Fault {
	return s.decide(func(r *rule) bool {
		return r.Topic != "" && notifications[r.Topic] == kind && r.matches(thing, "")
	})
}

// Connect returns the fault that refuses a CONNECT of client, or nil.
func (s *Set) Connect(client string) *Fault {
	return s.decide(func(r *rule) bool {
		return r.Kind == RefuseConnect && r.matches(client, client)
	})
}

func (r *rule) matches(thing, client string) bool {
	return (r.Thing == "" || r.Thing == thing) && (r.Client == "" || client == "" || r.Client == client)
}

// decide finds the first live rule that matches and fires.
func (s *Set) decide(match func(*rule) bool) *Fault {
	if !s.Armed() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		if r.spent() || !match(r) {
			continue
		}
		r.matched++
		if r.matched <= r.Skip {
			continue
		}
		if r.Probability > 0 && r.Probability < 1 && r.rng.Float64() >= r.Probability {
			continue
		}
		r.fired++
		if r.spent() {
			s.rearm()
		}
		f := r.Fault
		return &f
	}
	return nil
}

// Observe installs the function told about every fault that fires (the
// broker's transcripts); it must not block.
func (s *Set) Observe(fn func(Event)) { s.observer.Store(&fn) }

// Fired reports a fault acting on a message: it counts it by kind and
// tells the observer. Callers report at the moment the fault acts, so
// that a transcript shows it where the device felt it.
func (s *Set) Fired(ev Event) {
	if c := s.fired[ev.Fault.Kind]; c != nil {
		c.Add(1)
	}
	if fn := s.observer.Load(); fn != nil {
		(*fn)(ev)
	}
}

// FiredCount returns how many times faults of kind have fired.
func (s *Set) FiredCount(kind Kind) int64 {
	if c := s.fired[kind]; c != nil {
		return c.Load()
	}
	return 0
}

// ErrDisconnect is the cause a Disconnect fault stops a client with.
var ErrDisconnect = errors.New("disconnected by a fault (jobsbroker fault injection)")

// ErrRefused is the cause a RefuseConnect fault stops a client with.
var ErrRefused = errors.New("CONNECT refused by a fault (jobsbroker fault injection)")
