// Package auth owns who may connect to the MQTT listeners and what each
// client may publish and subscribe to. It is the broker's only mochi hook
// that answers OnConnectAuthenticate and OnACLCheck (mochi ORs those
// answers across hooks, so a single hook must make the decision).
//
// A client's identity is a thing name. How it is established is the Mode:
// ModeNone takes the client ID and checks nothing (a local test broker),
// ModeMTLS takes the common name of the verified client certificate and
// requires the client ID to equal it, ModePassword checks the MQTT
// username and password against a file of bcrypt hashes and requires the
// client ID to belong to that thing (see Passwords.Owner). Under ModeMTLS
// and ModePassword a thing may publish only its own jobs request topics,
// subscribe only within its own $aws/things/{thing}/jobs/ prefix, use the
// extra topics the configured rules give it, and only operators may
// subscribe to $aws/events/#.
//
// What mochi publishes on a client's behalf passes the same decision: a
// will is checked when the client connects (a will the client could not
// publish itself refuses the connection) and again when it is sent.
package auth

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/broker/logsample"
	"github.com/jobsbroker/jobsbroker/topics"
)

// Mode is how clients are identified.
type Mode string

// The identity modes.
const (
	// ModeNone accepts any client; its thing is its client ID, and no
	// topic rule applies.
	ModeNone Mode = "none"
	// ModeMTLS identifies a client by the common name (CN) of its verified
	// client certificate; its MQTT client ID must equal it.
	ModeMTLS Mode = "mtls"
	// ModePassword identifies a client by its MQTT username, checked with
	// its password against the password file.
	ModePassword Mode = "password"
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeNone, ModeMTLS, ModePassword:
		return m, nil
	case "":
		return ModeNone, nil
	}
	return "", fmt.Errorf("identity %q: must be none, mtls or password", s)
}

// Default limits and rules.
const (
	// DefaultMaxTopicLength is AWS IoT's limit on a topic name, in bytes.
	DefaultMaxTopicLength = 256
	// DefaultMaxConnections is how many connections one identity may hold
	// at once (distinct client IDs; a reconnect with the same client ID
	// takes the old connection over and does not count twice).
	DefaultMaxConnections = 10
)

// DefaultTopicRules are the topics a thing may use beyond its jobs topics:
// everything under things/{thing}/.
var DefaultTopicRules = []string{"things/{thing}/#"}

// Options configures the hook.
type Options struct {
	// Mode is how clients are identified (default ModeNone).
	Mode Mode
	// Passwords checks ModePassword logins; required in that mode.
	Passwords *Passwords
	// Operators are the identities that may subscribe to $aws/events/#.
	Operators []string
	// TopicRules are topic filters a thing may publish and subscribe to
	// besides its jobs topics; "{thing}" stands for its own name. nil means
	// DefaultTopicRules; an empty slice allows none.
	TopicRules []string
	// MaxTopicLength refuses longer topic names and filters (default
	// DefaultMaxTopicLength).
	MaxTopicLength int
	// MaxConnections is how many connections one identity may hold
	// (default DefaultMaxConnections; negative means no limit).
	MaxConnections int
	// LoginBackoff is the longest an identity, or a source address, must
	// wait before its next login is checked after repeated failed
	// password logins (default DefaultLoginBackoff; negative: no waits).
	LoginBackoff time.Duration
	// OnLoginFailure, if set, is told about every refused password login:
	// reason is "bad_login" (unknown thing, wrong password, no username)
	// or "backoff" (refused unchecked, to make the client wait).
	OnLoginFailure func(reason string)
	// Logger receives refusals at debug level and failures at warn.
	Logger *slog.Logger
}

// Hook is the broker's authentication and access-control hook.
type Hook struct {
	mqtt.HookBase
	opts      Options
	passwords atomic.Pointer[Passwords]
	operators map[string]bool
	log       *slog.Logger
	// refusedLog bounds the lines of refused connections, which a client
	// may cause as fast as it connects.
	refusedLog *logsample.Sampler
	// slowLeaveLog bounds the lines of connections that waited for their
	// client ID's previous connection in vain.
	slowLeaveLog *logsample.Sampler

	backoff *loginBackoff

	// A client is recorded when OnConnectAuthenticate accepts it, before
	// mochi answers CONNACK, not later when its session is established:
	// a client that reconnects as soon as it has its CONNACK must find its
	// previous connection recorded, or it would be refused for the limit
	// instead of taking that connection over.
	mu    sync.Mutex
	conns map[*mqtt.Client]*conn  // authenticated clients (pending or established)
	byID  map[string]*mqtt.Client // the latest authenticated client of each client ID
	// pending holds the clients that passed OnConnectAuthenticate and
	// are not yet established; count includes them, so that two clients
	// connecting at once cannot both take an identity's last place.
	pending map[*mqtt.Client]struct{}
	sweepAt int            // sweep pending when it grows to this size
	count   map[string]int // established and pending connections per identity
	// leaving holds, by client ID, the connection that left without a
	// successor and whose client mochi has still to remove (see
	// OnDisconnect): the channel closes when mochi has finished with it.
	leaving   map[string]<-chan struct{}
	leavingAt int // sweep leaving when it grows to this size
}

// conn is what the hook knows of an authenticated client.
type conn struct {
	identity string
	// displaced is the client that had the client ID before this one,
	// given the ID back if this one goes away before its session is
	// established (and so before it took that client over).
	displaced *mqtt.Client
	// settled is closed once the client is established or gone.
	settled chan struct{}
}

// settle closes c.settled once. Called with h.mu held.
func (c *conn) settle() {
	select {
	case <-c.settled:
	default:
		close(c.settled)
	}
}

// takeoverWait bounds how long a client that was taken over waits for its
// successor in OnDisconnect, and how long a new connection waits until
// mochi has finished with the previous connection of its client ID.
const takeoverWait = 5 * time.Second

// doner is a connection that says when mochi has finished with it: the
// broker's listeners (mqttlisten) close the channel once mochi's
// EstablishConnection has returned, so everything mochi does when the
// client leaves is done.
type doner interface{ Done() <-chan struct{} }

// ID returns the hook's ID.
func (h *Hook) ID() string { return "jobsbroker-auth" }

// Provides reports the hook methods the hook answers.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnWill,
	}, []byte{b})
}

// Init configures the hook with *Options.
func (h *Hook) Init(config any) error {
	o, ok := config.(*Options)
	if !ok {
		return mqtt.ErrInvalidConfigType
	}
	h.opts = *o
	h.refusedLog = logsample.New()
	h.slowLeaveLog = logsample.New()
	if h.opts.Mode == "" {
		h.opts.Mode = ModeNone
	}
	if _, err := ParseMode(string(h.opts.Mode)); err != nil {
		return err
	}
	if h.opts.Mode == ModePassword && h.opts.Passwords == nil {
		return errors.New("identity password needs a password file")
	}
	if h.opts.TopicRules == nil {
		h.opts.TopicRules = DefaultTopicRules
	}
	for _, r := range h.opts.TopicRules {
		if err := ValidateTopicRule(r); err != nil {
			return err
		}
	}
	if h.opts.MaxTopicLength <= 0 {
		h.opts.MaxTopicLength = DefaultMaxTopicLength
	}
	if h.opts.MaxConnections == 0 {
		h.opts.MaxConnections = DefaultMaxConnections
	}
	if h.opts.LoginBackoff == 0 {
		h.opts.LoginBackoff = DefaultLoginBackoff
	}
	h.backoff = newLoginBackoff(h.opts.LoginBackoff)
	h.log = h.opts.Logger
	if h.log == nil {
		h.log = h.Log
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.passwords.Store(h.opts.Passwords)
	h.operators = map[string]bool{}
	for _, op := range h.opts.Operators {
		h.operators[op] = true
	}
	h.conns = map[*mqtt.Client]*conn{}
	h.byID = map[string]*mqtt.Client{}
	h.count = map[string]int{}
	h.pending = map[*mqtt.Client]struct{}{}
	h.leaving = map[string]<-chan struct{}{}
	return nil
}

// SetPasswords replaces the password file's contents (on SIGHUP);
// connected clients stay connected.
func (h *Hook) SetPasswords(p *Passwords) { h.passwords.Store(p) }

// Mode returns the identity mode.
func (h *Hook) Mode() Mode { return h.opts.Mode }

// Identity returns the thing a client is authenticated as. enforced is
// false under ModeNone, where the client ID is taken on trust and topic
// rules do not apply.
func (h *Hook) Identity(cl *mqtt.Client) (thing string, enforced bool) {
	switch h.opts.Mode {
	case ModeMTLS:
		return cl.ID, true // OnConnectAuthenticate made sure it is the certificate's CN
	case ModePassword:
		return string(cl.Properties.Username), true
	}
	return cl.ID, false
}

// OnConnectAuthenticate establishes the client's identity and refuses the
// connection when it cannot, when the client ID is not the identity's,
// when the client's will is one it could not publish itself, or when the
// identity holds too many connections already. A refusal is answered with
// the CONNACK reason that says why (see refuse). An accepted client whose
// client ID's previous connection is still being removed by mochi waits
// until that is done (see OnDisconnect).
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	identity, ref := h.authenticate(cl, pk)
	if ref != nil {
		return h.refuse(cl, ref)
	}
	if ref := h.checkWill(cl, identity, pk); ref != nil {
		return h.refuse(cl, ref)
	}
	ok, leaving := h.admit(cl, identity)
	if ok && leaving != nil {
		h.awaitLeaving(cl, leaving)
	}
	return ok
}

// admit records an authenticated client unless its identity is at its
// limit, and returns what it must wait for before mochi looks its client
// ID up: the leaving connection of the same client ID, if any.
func (h *Hook) admit(cl *mqtt.Client, identity string) (bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pending) >= h.sweepAt {
		h.sweepPending()
	}
	// A connection with a client ID that is connected already takes that
	// one over, which then leaves: it is not refused for the limit. Only
	// a connection of the same identity may do so.
	prev, takeover := h.byID[cl.ID]
	if takeover {
		if c := h.conns[prev]; c != nil && c.identity != identity {
			return h.refuse(cl, &refusal{code: packets.ErrClientIdentifierNotValid,
				err: fmt.Errorf("client ID %q is connected as identity %s", cl.ID, c.identity)}), nil
		}
	}
	if limit := h.opts.MaxConnections; limit > 0 && !takeover && h.count[identity] >= limit {
		h.sweepPending() // a place held by a client that has gone is free
		if n := h.count[identity]; n >= limit {
			return h.refuse(cl, &refusal{code: packets.ErrQuotaExceeded,
				err: fmt.Errorf("identity %s already has %d connections (limit %d)", identity, n, limit)}), nil
		}
	}
	h.conns[cl] = &conn{identity: identity, displaced: prev, settled: make(chan struct{})}
	h.byID[cl.ID] = cl
	h.pending[cl] = struct{}{}
	h.count[identity]++
	return true, h.leaving[cl.ID]
}

// awaitLeaving waits, at most takeoverWait, until mochi has finished with
// the connection that left the client ID to cl.
func (h *Hook) awaitLeaving(cl *mqtt.Client, leaving <-chan struct{}) {
	select {
	case <-leaving:
	default:
		h.log.Debug("a connection waits until its client ID's previous connection is removed", "client", cl.ID)
		t := time.NewTimer(takeoverWait)
		defer t.Stop()
		select {
		case <-leaving:
		case <-t.C:
			h.slowLeaveLog.Log(h.log, slog.LevelWarn, "the previous connection of a client ID was not removed in time; the new connection goes ahead",
				"client", cl.ID, "waited", takeoverWait)
			return
		}
	}
	h.mu.Lock()
	if h.leaving[cl.ID] == leaving {
		delete(h.leaving, cl.ID)
	}
	h.mu.Unlock()
}

// leave records that the connection of client ID id, done once mochi has
// finished with it, has left without a successor. Entries whose connection
// mochi has finished with are swept when leaving has doubled since the
// last sweep. Called with h.mu held.
func (h *Hook) leave(id string, done <-chan struct{}) {
	if len(h.leaving) >= h.leavingAt {
		for k, d := range h.leaving {
			select {
			case <-d:
				delete(h.leaving, k)
			default:
			}
		}
		h.leavingAt = max(64, 2*len(h.leaving))
	}
	h.leaving[id] = done
}

// sweepPending forgets the clients that were authenticated but closed
// before their session was established (mochi calls no hook when, say,
// the CONNACK cannot be written), giving back their places and client
// IDs. It runs when an identity is at its limit and whenever pending has
// doubled since the last sweep, so that during a connection storm each
// connection costs O(1) amortized. Called with h.mu held.
func (h *Hook) sweepPending() {
	for cl := range h.pending {
		if cl.Closed() {
			h.forget(cl)
		}
	}
	h.sweepAt = max(64, 2*len(h.pending))
}

// forget removes a client from the records and gives back its place.
// Called with h.mu held.
func (h *Hook) forget(cl *mqtt.Client) {
	c, ok := h.conns[cl]
	if !ok {
		return
	}
	delete(h.conns, cl)
	delete(h.pending, cl)
	c.settle()
	if h.byID[cl.ID] == cl {
		delete(h.byID, cl.ID)
		// The client it displaced is still the holder of the ID if it
		// was not taken over.
		if d := c.displaced; d != nil && !d.Closed() {
			if _, known := h.conns[d]; known {
				h.byID[cl.ID] = d
			}
		}
	}
	if h.count[c.identity]--; h.count[c.identity] <= 0 {
		delete(h.count, c.identity)
	}
}

// authenticate returns the client's identity, or why it is refused.
func (h *Hook) authenticate(cl *mqtt.Client, pk packets.Packet) (string, *refusal) {
	switch h.opts.Mode {
	case ModeMTLS:
		cn, err := certificateName(cl)
		if err != nil {
			return "", &refusal{code: packets.ErrBadUsernameOrPassword, err: err}
		}
		if cl.ID != cn {
			return "", &refusal{code: packets.ErrClientIdentifierNotValid,
				err: fmt.Errorf("client ID %q is not the certificate's thing %q", cl.ID, cn)}
		}
		return cn, nil
	case ModePassword:
		user, ref := h.checkPassword(cl, pk)
		if ref != nil {
			return "", ref
		}
		return user, h.checkClientID(cl, pk, user)
	}
	return cl.ID, nil
}

// checkPassword checks a password login, after the waits that failed
// logins of the same identity or from the same address impose.
func (h *Hook) checkPassword(cl *mqtt.Client, pk packets.Packet) (string, *refusal) {
	user := string(pk.Connect.Username)
	if w := h.backoff.wait(user, cl.Net.Remote); w > 0 {
		h.loginFailed("backoff")
		return "", &refusal{code: packets.ErrConnectionRateExceeded, quiet: true,
			err: fmt.Errorf("too many failed logins for %q or from this address: retry in %v", user, w.Round(time.Second))}
	}
	var err error
	switch {
	case !pk.Connect.UsernameFlag || user == "":
		err = errors.New("no username")
	case !topics.ValidThingName(user):
		err = fmt.Errorf("username %q is not a thing name", user)
	default:
		err = h.passwords.Load().Check(user, pk.Connect.Password)
	}
	if err != nil {
		h.backoff.failed(user, cl.Net.Remote)
		h.loginFailed("bad_login")
		return "", &refusal{code: packets.ErrBadUsernameOrPassword, err: err}
	}
	h.backoff.succeeded(user, cl.Net.Remote)
	return user, nil
}

func (h *Hook) loginFailed(reason string) {
	if h.opts.OnLoginFailure != nil {
		h.opts.OnLoginFailure(reason)
	}
}

// checkClientID requires a password client's ID to belong to its thing
// (Passwords.Owner): the thing's name, or the name followed by "-" and
// anything. A client that sent no client ID is given one of that shape.
func (h *Hook) checkClientID(cl *mqtt.Client, pk packets.Packet, thing string) *refusal {
	if pk.Connect.ClientIdentifier == "" {
		// mochi made one up (and tells an MQTT 5 client in CONNACK).
		cl.ID = thing + "-" + cl.ID
		if cl.Properties.Props.AssignedClientID != "" {
			cl.Properties.Props.AssignedClientID = cl.ID
		}
		return nil
	}
	if owner, ok := h.passwords.Load().Owner(cl.ID); !ok || owner != thing {
		return &refusal{code: packets.ErrClientIdentifierNotValid,
			err: fmt.Errorf("client ID %q does not belong to thing %s: use %s or %s-<suffix>", cl.ID, thing, thing, thing)}
	}
	return nil
}

// certificateName returns the CN of the client's verified certificate.
func certificateName(cl *mqtt.Client) (string, error) {
	state, ok := ConnectionState(cl.Net.Conn)
	if !ok {
		return "", errors.New("not a TLS connection: identity mtls needs a client certificate")
	}
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return "", errors.New("no verified client certificate")
	}
	cn := state.PeerCertificates[0].Subject.CommonName
	if !topics.ValidThingName(cn) {
		return "", fmt.Errorf("certificate common name %q is not a thing name", cn)
	}
	return cn, nil
}

// ConnectionState returns the TLS state of a connection the broker
// accepted: a *tls.Conn, or a connection wrapping one that says so with a
// ConnectionState method (the WebSocket listener's).
func ConnectionState(c any) (tls.ConnectionState, bool) {
	if s, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return s.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// OnSessionEstablished marks the client as established: from now on mochi
// calls OnDisconnect when it leaves.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[cl]; !ok {
		// Swept as closed meanwhile: OnDisconnect follows, and releases
		// the place it takes back here.
		id, _ := h.Identity(cl)
		h.conns[cl] = &conn{identity: id, settled: make(chan struct{})}
		h.count[id]++
		if _, taken := h.byID[cl.ID]; !taken {
			h.byID[cl.ID] = cl
		}
	}
	delete(h.pending, cl)
	c := h.conns[cl]
	c.displaced = nil
	c.settle()
}

// OnDisconnect releases the client's place, and keeps mochi's cleanup of a
// clean session (expire) from reaching the client ID's next connection.
//
// After the OnDisconnect hooks, mochi removes such a client unless it was
// taken over: it unsubscribes the client's filters and deletes the client
// from its client table, both by client ID, so that if a newer connection
// with the same client ID has been added by then, that connection loses
// its entry (and with it every message, its subscriptions notwithstanding)
// and the filters it shares with the old one. Two cases:
//
//   - Another connection with the client ID has been authenticated: it is
//     taking this one over. This one waits, at most takeoverWait, until
//     that one is established: mochi marks a client taken over only after
//     it has closed it, and this one's check must see the mark.
//   - None has: this one is recorded as leaving, and a connection with the
//     client ID that comes before mochi has finished with this one waits
//     for that in OnConnectAuthenticate, before mochi looks the client ID
//     up. Otherwise this one's goroutine, delayed between mochi's "taken
//     over?" check and its deletion (a loaded machine does that), deletes
//     the new connection, which is served nothing from then on.
//
// A connection that outlives its session (expire false) is not removed by
// mochi, and a new one takes its session over; nothing waits then.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.mu.Lock()
	var successor chan struct{}
	next := h.byID[cl.ID]
	if c := h.conns[next]; next != cl && c != nil {
		successor = c.settled
	} else if d, ok := cl.Net.Conn.(doner); ok && expire && !cl.IsTakenOver() {
		h.leave(cl.ID, d.Done())
	}
	h.forget(cl)
	h.mu.Unlock()
	if successor == nil {
		return
	}
	// A successor that fails before it is established (its CONNACK
	// cannot be written) calls no hook: look for that too.
	deadline := time.After(takeoverWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-successor:
			return
		case <-deadline:
			return
		case <-tick.C:
			if next.Closed() {
				return
			}
		}
	}
}

// OnACLCheck decides whether cl may publish to topic (write) or subscribe
// to the filter or receive a message on the topic (!write).
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if len(topic) > h.opts.MaxTopicLength {
		h.log.Debug("refused a topic over the length limit", "client", cl.ID, "length", len(topic), "limit", h.opts.MaxTopicLength)
		return false
	}
	thing, enforced := h.Identity(cl)
	if !enforced {
		return true
	}
	ok, decided := commandsACL(thing, cl.ID, topic, write)
	if !decided {
		ok = h.allowed(thing, topic, write)
	}
	if !ok {
		h.log.Debug("refused a topic", "client", cl.ID, "thing", thing, "topic", topic, "publish", write)
	}
	return ok
}

// allowed applies the topic rules to an identified thing.
func (h *Hook) allowed(thing, topic string, write bool) bool {
	filter := topic
	if !write {
		filter = stripShare(topic)
	}
	prefix := "$aws/things/" + thing + "/jobs/"
	if write {
		if strings.HasPrefix(topic, prefix) {
			// Only requests: replies and notifications come from the broker.
			// A malformed jobs topic is let through so that the jobs hook can
			// answer it InvalidTopic.
			t, err := topics.Parse(topic)
			return err != nil || t.Kind == topics.KindRequest
		}
	} else if strings.HasPrefix(filter, prefix) {
		return true // wildcards below the thing's own prefix are fine
	} else if h.operators[thing] && Within(filter, "$aws/events/#") {
		return true
	}
	return slices.ContainsFunc(h.opts.TopicRules, func(rule string) bool {
		return Within(filter, strings.ReplaceAll(rule, "{thing}", thing))
	})
}

// stripShare removes the $share/{group}/ prefix of a shared subscription.
func stripShare(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			return f
		}
	}
	return filter
}

// Within reports whether every topic that filter matches is also matched
// by rule. Both are MQTT topic filters; a topic name is a filter without
// wildcards, so Within(topic, rule) is "rule matches topic".
func Within(filter, rule string) bool {
	f := strings.Split(filter, "/")
	r := strings.Split(rule, "/")
	// Topics starting with $ are matched only by filters that spell the
	// first level out.
	if strings.HasPrefix(filter, "$") != strings.HasPrefix(rule, "$") {
		return false
	}
	for i, level := range r {
		if level == "#" {
			return true // "a/#" also matches "a"
		}
		if i >= len(f) {
			return false
		}
		switch {
		case f[i] == "#":
			return false // filter reaches deeper than the rule allows here
		case level == "+":
		case f[i] != level: // also catches f[i] == "+" against a literal
			return false
		}
	}
	return len(f) == len(r)
}

// ValidateTopicRule checks a configured topic rule: a valid MQTT filter in
// which {thing}, if used, is a whole level.
func ValidateTopicRule(rule string) error {
	levels := strings.Split(rule, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("topic rule %q: # must be the last level", rule)
		case strings.Contains(l, "{thing}") && l != "{thing}":
			return fmt.Errorf("topic rule %q: {thing} must be a whole level", rule)
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return fmt.Errorf("topic rule %q: wildcards must be whole levels", rule)
		}
	}
	if rule == "" || strings.HasPrefix(rule, "$") {
		return fmt.Errorf("topic rule %q: must be a non-empty filter outside $ topics", rule)
	}
	return nil
}
