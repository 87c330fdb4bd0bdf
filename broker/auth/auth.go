// Package auth owns who may connect to the MQTT listeners and what each
// client may publish and subscribe to. It is the broker's only mochi hook
// that answers OnConnectAuthenticate and OnACLCheck (mochi ORs those
// answers across hooks, so a single hook must make the decision).
//
// A client's identity is a thing name. How it is established is the Mode:
// ModeNone takes the client ID and checks nothing (a local test broker),
// ModeMTLS takes the common name of the verified client certificate and
// requires the client ID to equal it, ModePassword checks the MQTT
// username and password against a file of bcrypt hashes. Under ModeMTLS
// and ModePassword a thing may publish only its own jobs request topics,
// subscribe only within its own $aws/things/{thing}/jobs/ prefix, use the
// extra topics the configured rules give it, and only operators may
// subscribe to $aws/events/#.
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

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

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

	mu    sync.Mutex
	conns map[*mqtt.Client]string // established clients and their identities
	byID  map[string]*mqtt.Client // the established client of each client ID
	// pending holds the clients that passed OnConnectAuthenticate and
	// are not yet established; count includes them, so that two clients
	// connecting at once cannot both take an identity's last place.
	pending map[*mqtt.Client]string
	sweepAt int            // sweep pending when it grows to this size
	count   map[string]int // established and pending connections per identity
}

// ID returns the hook's ID.
func (h *Hook) ID() string { return "jobsbroker-auth" }

// Provides reports the hook methods the hook answers.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
	}, []byte{b})
}

// Init configures the hook with *Options.
func (h *Hook) Init(config any) error {
	o, ok := config.(*Options)
	if !ok {
		return mqtt.ErrInvalidConfigType
	}
	h.opts = *o
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
	h.conns = map[*mqtt.Client]string{}
	h.byID = map[string]*mqtt.Client{}
	h.count = map[string]int{}
	h.pending = map[*mqtt.Client]string{}
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
// connection when it cannot, or when the identity holds too many
// connections already.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	identity, err := h.authenticate(cl, pk)
	if err != nil {
		h.log.Info("refused an MQTT connection", "client", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener, "error", err)
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pending) >= h.sweepAt {
		h.sweepPending()
	}
	// A connection with a client ID that is connected already takes that
	// one over, which then leaves: it is not refused for the limit.
	_, takeover := h.byID[cl.ID]
	if limit := h.opts.MaxConnections; limit > 0 && !takeover && h.count[identity] >= limit {
		h.sweepPending() // a place held by a client that has gone is free
		if n := h.count[identity]; n >= limit {
			h.log.Info("refused an MQTT connection", "client", cl.ID, "remote", cl.Net.Remote,
				"error", fmt.Sprintf("identity %s already has %d connections (limit %d)", identity, n, limit))
			return false
		}
	}
	h.pending[cl] = identity
	h.count[identity]++
	return true
}

// sweepPending releases the places of clients that were authenticated
// but closed before their session was established (mochi calls no hook
// when, say, the CONNACK cannot be written). It runs when an identity is
// at its limit and whenever pending has doubled since the last sweep, so
// that during a connection storm each connection costs O(1) amortized.
// Called with h.mu held.
func (h *Hook) sweepPending() {
	for cl, id := range h.pending {
		if cl.Closed() {
			delete(h.pending, cl)
			h.release(id)
		}
	}
	h.sweepAt = max(64, 2*len(h.pending))
}

// release gives back one of identity's places. Called with h.mu held.
func (h *Hook) release(identity string) {
	if h.count[identity]--; h.count[identity] <= 0 {
		delete(h.count, identity)
	}
}

func (h *Hook) authenticate(cl *mqtt.Client, pk packets.Packet) (string, error) {
	switch h.opts.Mode {
	case ModeMTLS:
		cn, err := certificateName(cl)
		if err != nil {
			return "", err
		}
		if cl.ID != cn {
			return "", fmt.Errorf("client ID %q is not the certificate's thing %q", cl.ID, cn)
		}
		return cn, nil
	case ModePassword:
		user := string(pk.Connect.Username)
		if !pk.Connect.UsernameFlag || user == "" {
			return "", errors.New("no username")
		}
		if !topics.ValidThingName(user) {
			return "", fmt.Errorf("username %q is not a thing name", user)
		}
		if err := h.passwords.Load().Check(user, pk.Connect.Password); err != nil {
			return "", err
		}
		return user, nil
	}
	return cl.ID, nil
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

// OnSessionEstablished records the client as connected under its
// identity, which OnConnectAuthenticate counted it against already.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.pending[cl]
	if ok {
		delete(h.pending, cl)
	} else {
		id, _ = h.Identity(cl)
		h.count[id]++ // swept as closed meanwhile: OnDisconnect follows
	}
	h.conns[cl] = id
	h.byID[cl.ID] = cl
}

// OnDisconnect releases the client's place.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.conns[cl]
	if !ok {
		return
	}
	delete(h.conns, cl)
	if h.byID[cl.ID] == cl {
		delete(h.byID, cl.ID)
	}
	h.release(id)
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
	ok := h.allowed(thing, topic, write)
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
