// Package cluster makes the nodes of a jobsbroker cluster one MQTT broker,
// over NATS (a clustered message system each node is a client of). It
// owns the node's NATS connection and what travels on it:
//
//   - Publishes. A node sends what its clients publish to NATS, on a
//     subject made of the topic (see subject.go), and subscribes on NATS
//     to the filters its own clients (and the persistent sessions it
//     holds) subscribe to, so that a publish reaches only the nodes that
//     want it. A node delivers what it receives to its local subscribers
//     through mochi, once (a publish that matches several of the node's
//     NATS subscriptions arrives once per subscription; the copies are
//     dropped), and never sends it on again. A QoS 1 publish is
//     acknowledged to its publisher after NATS took it and a node that
//     wanted it delivered it (and wrote it for the persistent sessions it
//     holds), or NATS said no node wanted it; and, when persistent
//     sessions held by other nodes subscribe to it, once each of those
//     nodes did, or the sessions of one that did not answer were made to
//     owe it through the store (see held.go).
//   - Which node holds each persistent session, and its filters.
//   - Retained messages, which go to every node whatever its interest.
//   - Client IDs. A node that accepts a connection tells the others, and a
//     node where a client with the same ID is connected closes it (MQTT 5:
//     DISCONNECT 0x8E, session taken over; MQTT 3.1.1: closing), and
//     forgets the session, which the new node claimed from the shared
//     store.
//   - Node identity: a node whose node ID another running node has
//     refuses to start.
//   - Change hints of the jobs store (see Hints).
//
// Jobs requests and replies do not travel: jobshook answers the
// requesting connection, and notifications reach other nodes' devices
// through the change hints.
package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/nats-io/nats.go"
)

// Defaults of Options.
const (
	// DefaultSubject is the first token of every subject the cluster uses.
	DefaultSubject = "jobsbroker"
	// DefaultAckTimeout bounds how long a QoS 1 publish waits for the
	// node that delivers it.
	DefaultAckTimeout = 5 * time.Second
)

// Options configures a Node.
type Options struct {
	// URL is the NATS server, or a comma-separated list of a NATS
	// cluster's servers.
	URL string
	// NodeID is this node's identity; no two running nodes may share it.
	NodeID string
	// Subject is the first token of the cluster's subjects (default
	// DefaultSubject): clusters that share a NATS server need their own.
	Subject string
	// AckTimeout bounds the wait of a QoS 1 publish for the node that
	// delivers it (default DefaultAckTimeout); past it the publish is
	// acknowledged, NATS having taken it.
	AckTimeout time.Duration
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Release forgets, without touching the store, the session of a
	// client that connected to another node (see sessions.Hook.Release).
	Release func(clientID string)
	// OnNodeGone runs when a node that was heard from falls silent for a
	// few seconds: it may have stopped, and its sessions want a node.
	OnNodeGone func(node string)
	// OnReconnect runs after the NATS connection came back: whatever
	// travelled meanwhile was missed, and what the store holds (retained
	// messages, jobs state) is read again.
	OnReconnect func()
}

// Stats are the node's counters.
type Stats struct {
	Sent        atomic.Int64 // publishes sent to NATS
	Received    atomic.Int64 // publishes received and delivered
	Duplicates  atomic.Int64 // copies of a received publish dropped
	Unconfirmed atomic.Int64 // QoS 1 publishes acknowledged after AckTimeout without a node's word
	Refused     atomic.Int64 // publishes refused because NATS did not take them
	TakenOver   atomic.Int64 // local clients closed because they connected to another node
	Undecodable atomic.Int64 // messages from NATS that did not decode
	HintsSent   atomic.Int64 // change hints published
	HintsIn     atomic.Int64 // change hints received
	Rescued     atomic.Int64 // QoS 1 publishes acknowledged after the sessions of a node that did not answer were made to owe them
}

// Node is this broker's member of the cluster.
type Node struct {
	opts Options
	log  *slog.Logger
	nc   *nats.Conn
	boot [8]byte // this run's identity: a restarted node is another sender
	seq  atomic.Uint64

	stats Stats
	hook  *Hook

	mu      sync.Mutex
	fixed   []*nats.Subscription // the node's own subjects
	seen    map[string]time.Time // other nodes, when last heard from
	closed  bool
	stopped chan struct{}
}

// ErrDuplicateNode is returned by Connect when another running node has
// the same node ID.
var ErrDuplicateNode = errors.New("another running node has this node ID")

// Connect connects to NATS, retrying with backoff until ctx ends, and
// checks that no running node has the same node ID.
func Connect(ctx context.Context, opts Options) (*Node, error) {
	if opts.URL == "" || opts.NodeID == "" {
		return nil, errors.New("cluster: a NATS URL and a node ID are required")
	}
	if opts.Subject == "" {
		opts.Subject = DefaultSubject
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{opts: opts, log: opts.Logger, stopped: make(chan struct{}), seen: map[string]time.Time{}}
	rand.Read(n.boot[:])
	natsOpts := []nats.Option{
		nats.Name("jobsbroker " + opts.NodeID),
		nats.NoEcho(), // a node delivers its own clients' publishes itself
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(5 * time.Second),
		nats.DrainTimeout(drainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			select {
			case <-n.stopped:
				return // closing
			default:
			}
			n.log.Warn("lost the connection to NATS; publishes between nodes wait for it", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.log.Info("connected to NATS again", "server", nc.ConnectedUrlRedacted())
			if n.opts.OnReconnect != nil {
				go n.opts.OnReconnect()
			}
			if n.hook != nil {
				n.hook.resync()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			n.log.Error("NATS reported an error", "subject", subject, "error", err)
		}),
	}
	err := Retry(ctx, n.log, "NATS", func() error {
		nc, err := nats.Connect(opts.URL, natsOpts...)
		if err != nil {
			return err
		}
		n.nc = nc
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", opts.URL, err)
	}
	if err := n.checkIdentity(ctx); err != nil {
		n.nc.Close()
		return nil, err
	}
	go n.heartbeat()
	return n, nil
}

// subject is the cluster's subject for kind (and the rest).
func (n *Node) subject(kind string) string { return n.opts.Subject + "." + kind }

// probeSubject is where the node with id answers who it is.
func (n *Node) probeSubject(id string) string { return n.subject("node." + token(id)) }

// checkIdentity asks whether a node with this node ID runs, then answers
// that question for others from now on.
func (n *Node) checkIdentity(ctx context.Context) error {
	subj := n.probeSubject(n.opts.NodeID)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := n.nc.RequestWithContext(ctx, subj, n.boot[:])
	switch {
	case err == nil:
		return fmt.Errorf("%w: %q answers on NATS; give each node its own node ID", ErrDuplicateNode, n.opts.NodeID)
	case errors.Is(err, nats.ErrNoResponders):
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		n.log.Warn("could not tell whether another node has this node ID: NATS did not answer", "node", n.opts.NodeID)
	default:
		return fmt.Errorf("check the node ID on NATS: %w", err)
	}
	sub, err := n.nc.Subscribe(subj, func(m *nats.Msg) {
		if m.Reply != "" {
			_ = m.Respond(n.boot[:])
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe on NATS: %w", err)
	}
	n.fixed = append(n.fixed, sub)
	return nil
}

// Connected reports whether the NATS connection is up.
func (n *Node) Connected() bool { return n.nc.IsConnected() }

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Server is the NATS server the node is connected to, "" while it is not.
func (n *Node) Server() string { return n.nc.ConnectedUrlRedacted() }

// Close stops the hook's workers and closes the NATS connection, after
// sending what is buffered.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.stopped)
	n.mu.Unlock()
	if n.hook != nil {
		n.hook.stop()
	}
	// Drain sends what is buffered and closes, in the background: wait
	// for it, a while. A connection that is reconnecting has nothing to
	// send anyone.
	if err := n.nc.Drain(); err != nil {
		n.nc.Close()
		if errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("drain the NATS connection: %w", err)
	}
	deadline := time.Now().Add(drainTimeout + time.Second)
	for !n.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	n.nc.Close()
	return nil
}

// drainTimeout bounds how long closing waits for what is buffered to go
// out.
const drainTimeout = 5 * time.Second

// Retry calls connect until it succeeds or ctx ends, waiting between
// attempts from 100 ms up to 5 s, and logs each failure under what.
func Retry(ctx context.Context, log *slog.Logger, what string, connect func() error) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := connect()
		if err == nil {
			if attempt > 1 {
				log.Info("connected after retrying", "to", what, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		log.Warn("cannot connect; retrying", "to", what, "attempt", attempt, "retry_in", wait, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// Hook returns the mochi hook that routes the server's publishes, to be
// added after the hooks that consume publishes and the sessions hook.
func (n *Node) Hook(server *mqtt.Server) *Hook {
	if n.hook == nil {
		n.hook = newHook(n, server)
	}
	return n.hook
}
