// Package sessions is the mochi hook that makes MQTT state durable: the
// persistent sessions of clients that connect with clean session off (MQTT
// 3.1.1) or a session expiry interval (MQTT 5), with their subscriptions
// and the QoS 1 messages they are owed, and the broker's retained
// messages. It writes them through a store.SessionStore (the Badger store's
// group commit, or PostgreSQL) and puts them back into mochi when the
// broker starts, so that a restart, a crash or an upgrade does not cut
// devices off.
//
// What is acknowledged is on disk first: a QoS 1 publish that a persistent
// session is owed, and a retained message, are written before mochi sends
// the publisher its PUBACK; a subscription before the SUBACK. Bookkeeping
// nobody waits for (a message delivered and acknowledged, a session that
// disconnected) is written in the background, in order, through the same
// writer, so that a later write never overtakes an earlier one.
//
// mochi keeps a session's state in memory in the Client of its last
// connection, which stays in the server's client list while the session
// lives. This hook keeps, beside it, the sequence numbers of the messages
// the session is owed; the messages themselves are read back from the store
// when the client returns, delivered in order with at most a window of them
// unacknowledged at once.
//
// Add it after the hooks that consume publishes (jobshook), with Options.
package sessions

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
)

// Defaults of Options.
const (
	// DefaultExpiry is how long a persistent session outlives its
	// connection: AWS IoT's default persistent session expiry period.
	DefaultExpiry = time.Hour
	// DefaultQueueLimit is how many messages one session is owed at most
	// before the oldest are dropped.
	DefaultQueueLimit = 1000
	// DefaultRetainedLimit is how many retained messages are kept: AWS IoT's
	// default quota of retained messages per account.
	DefaultRetainedLimit = 500_000
	// DefaultRetainedMaxBytes is the largest retained payload: AWS IoT's
	// largest publish payload, 128 KB.
	DefaultRetainedMaxBytes = 128 << 10
	// deliveryWindow is how many messages read back for a returning client
	// may be unacknowledged at once (AWS IoT allows 100 unacknowledged
	// outbound publishes per client); an MQTT 5 client's Receive Maximum
	// lowers it.
	deliveryWindow = 100
	// writeTimeout bounds a write an MQTT packet waits for.
	writeTimeout = 10 * time.Second
)

// ErrMissingDependency is returned by Init without a server or a store.
var ErrMissingDependency = errors.New("sessions needs Options with a Server and a Store")

// Options configures the hook.
type Options struct {
	// Server is the broker the hook is added to.
	Server *mqtt.Server
	// Store keeps the state.
	Store store.SessionStore
	// Claim asks the store, when a client connects, for a session this
	// node does not hold: set it for a store shared by several nodes.
	Claim bool
	// Expiry is how long a persistent session outlives its connection: an
	// MQTT 3.1.1 session's lifetime, and the most an MQTT 5 client may ask
	// for (default DefaultExpiry). The broker's capabilities must carry the
	// same maximum (MaximumSessionExpiryInterval).
	Expiry time.Duration
	// QueueLimit is how many messages one session is owed at most; beyond
	// it the oldest are dropped (default DefaultQueueLimit; negative: no
	// limit).
	QueueLimit int
	// RetainedLimit is how many retained messages are kept; a new one
	// beyond it is refused (default DefaultRetainedLimit; negative: no
	// limit).
	RetainedLimit int
	// RetainedMaxBytes is the largest payload a retained message may have
	// (default DefaultRetainedMaxBytes; negative: no limit).
	RetainedMaxBytes int
	// Identity, if set, returns the identity a client authenticated as and
	// whether it is enforced. A session made under one enforced identity
	// is not resumed under another.
	Identity func(cl *mqtt.Client) (string, bool)
	// Replica, if set, reports whether cl brings in the publishes of
	// another node of a cluster: the retained messages it sets are in the
	// shared store already, and are not written again.
	Replica func(cl *mqtt.Client) bool
	// Restored, if set, is told of each session the hook puts into the
	// server without its client connecting (Adopt): the cluster subscribes
	// to its filters.
	Restored func(cl *mqtt.Client)
	// Send, if set, sends a stored message the hook has put in the
	// client's in-flight map (it may hold it back while the client has
	// its MQTT 5 Receive Maximum unacknowledged); nil means writing it at
	// once.
	Send func(cl *mqtt.Client, pk packets.Packet) error
	// Sent, if set, reports whether a message in cl's in-flight map that
	// mochi marked held back (expiry -1) was written to cl all the same
	// (the flow hook writes such messages itself); nil means it was.
	Sent func(cl *mqtt.Client, pk packets.Packet) bool
	// Clock times session expiry; nil means the wall clock.
	Clock clock.Clock
	// Logger receives the hook's logs; nil means the one mochi gives
	// hooks.
	Logger *slog.Logger
}

// Stats are the hook's counters and gauges.
type Stats struct {
	Sessions        atomic.Int64 // persistent sessions held
	Connected       atomic.Int64 // of which connected
	Queued          atomic.Int64 // messages sessions are owed
	Dropped         atomic.Int64 // messages dropped because a session's queue was full
	ExpiredMessages atomic.Int64 // queued messages whose MQTT 5 expiry passed
	Expired         atomic.Int64 // sessions ended by expiry
	Delivered       atomic.Int64 // queued messages delivered to a returning client
	WriteErrors     atomic.Int64 // writes to the store that failed
	Refused         atomic.Int64 // publishes refused: retained limits, or a failed write
}

// Hook is the storage hook.
type Hook struct {
	mqtt.HookBase
	opts   Options
	server *mqtt.Server
	st     store.SessionStore
	clock  clock.Clock

	mu       sync.RWMutex
	sessions map[string]*session

	seq     atomic.Uint64 // the next message sequence number
	w       writer
	fanouts fanouts
	lazy    lazySet

	retainMu       sync.Mutex          // orders retained writes as mochi applied them
	retainedTopics map[string]struct{} // the topics with a stored retained message

	stats Stats
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// ID returns the hook's identifier.
func (h *Hook) ID() string { return "jobsbroker-sessions" }

// Provides lists the hook methods the hook answers.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnPublish,
		mqtt.OnPublished,
		mqtt.OnRetainMessage,
		mqtt.OnRetainedExpired,
		mqtt.OnQosPublish,
		mqtt.OnQosComplete,
		mqtt.OnQosDropped,
		mqtt.OnClientExpired,
	}, []byte{b})
}

// Init checks the options, loads the stored sessions and retained
// messages into the server, and starts the writer and the expiry loop. It
// runs when the hook is added, before the server serves.
func (h *Hook) Init(config any) error {
	opts, ok := config.(*Options)
	if !ok && config != nil {
		return mqtt.ErrInvalidConfigType
	}
	if opts == nil || opts.Server == nil || opts.Store == nil {
		return ErrMissingDependency
	}
	h.opts = *opts
	if h.opts.Expiry <= 0 {
		h.opts.Expiry = DefaultExpiry
	}
	if h.opts.QueueLimit == 0 {
		h.opts.QueueLimit = DefaultQueueLimit
	}
	if h.opts.RetainedLimit == 0 {
		h.opts.RetainedLimit = DefaultRetainedLimit
	}
	if h.opts.RetainedMaxBytes == 0 {
		h.opts.RetainedMaxBytes = DefaultRetainedMaxBytes
	}
	h.clock = h.opts.Clock
	if h.clock == nil {
		h.clock = clock.Real{}
	}
	if h.opts.Logger != nil {
		h.Log = h.opts.Logger
	}
	if h.Log == nil {
		h.Log = slog.New(slog.DiscardHandler)
	}
	h.server, h.st = h.opts.Server, h.opts.Store
	h.sessions = map[string]*session{}
	h.fanouts.init()
	h.stop = make(chan struct{})
	h.w.init(h.st, h.Log, &h.stats)
	if err := h.load(); err != nil {
		return err
	}
	go h.w.run()
	h.wg.Add(1)
	go h.expiryLoop()
	return nil
}

// Stop ends the expiry loop and writes out everything queued for the
// store. mochi calls it after the listeners have closed their clients.
func (h *Hook) Stop() error {
	h.once.Do(func() {
		if h.stop == nil {
			return
		}
		close(h.stop)
		h.wg.Wait()
		h.w.close()
	})
	return nil
}

// Stats returns the hook's counters.
func (h *Hook) Stats() *Stats { return &h.stats }

// Flush waits until every write queued so far is in the store.
func (h *Hook) Flush(ctx context.Context) error { return h.w.flush(ctx) }

// expiry returns how long cl's session outlives its connection, and
// whether it does at all: the configured expiry for MQTT 3.1.1 without
// clean session, the client's own interval (up to it) for MQTT 5.
func (h *Hook) expiry(cl *mqtt.Client) (time.Duration, bool) {
	if cl.Properties.ProtocolVersion < 5 {
		return h.opts.Expiry, !cl.Properties.Clean
	}
	sei := time.Duration(cl.Properties.Props.SessionExpiryInterval) * time.Second
	return min(sei, h.opts.Expiry), sei > 0
}

// identity returns the enforced identity of cl, "" when none is.
func (h *Hook) identity(cl *mqtt.Client) string {
	if h.opts.Identity == nil {
		return ""
	}
	if id, enforced := h.opts.Identity(cl); enforced {
		return id
	}
	return ""
}

func (h *Hook) session(id string) *session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.sessions[id]
}

// ctx bounds a write that an MQTT packet waits for.
func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), writeTimeout)
}
