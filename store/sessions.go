package store

import (
	"context"
	"time"
)

// SessionStore keeps what MQTT promises to remember for a client with a
// persistent session (clean session off in MQTT 3.1.1, a session expiry
// interval in MQTT 5): the session itself, its subscriptions and the QoS 1
// messages it is owed, and the broker's retained messages. It is apart from
// Store because it is the broker's state, not the jobs model: the two share
// a backend (and, in the Badger store, its group commit), not operations.
//
// Messages are opaque to the store: the broker encodes a PUBLISH as it sees
// fit and gets the same bytes back.
type SessionStore interface {
	// WriteSessions applies ops in order, all or none, and returns once
	// they are durable (as durable as the backend's writes are
	// configured to be). Writes that arrive together share one commit.
	WriteSessions(ctx context.Context, ops []SessionOp) error
	// LoadSessions calls fn with each session this node holds, its
	// subscriptions and its messages in sequence order. Sessions whose
	// ExpiresAt is not after now are deleted instead, and so is whatever
	// the store finds for a client without a session. fn must not keep
	// the messages' Data.
	LoadSessions(ctx context.Context, now time.Time, fn func(*StoredSession) error) (*SessionLoad, error)
	// RetainedMessages returns every retained message.
	RetainedMessages(ctx context.Context) ([]RetainedMessage, error)
	// ClaimSession moves the session of clientID to this node and marks it
	// connected, for a client that connects to this node while another
	// node (or an earlier run of this one) held its session. It returns
	// nil when there is no such session or it has expired. A store used
	// by one node only loads every session at start, so it has nothing to
	// claim and returns nil.
	ClaimSession(ctx context.Context, clientID string, now time.Time) (*StoredSession, error)
	// SweepSessions deletes the sessions, of any node, whose expiry has
	// passed, and starts the expiry of sessions still marked connected by
	// a node that has stopped. A store used by one node, whose sessions the
	// broker expires itself, does nothing.
	SweepSessions(ctx context.Context, now time.Time) (int, error)
	// QueuedMessages returns the messages kept for clientID, in sequence
	// order.
	QueuedMessages(ctx context.Context, clientID string) ([]QueuedMessage, error)
	// SessionUsage counts what the store holds for sessions and retained
	// messages.
	SessionUsage(ctx context.Context) (*SessionUsage, error)
}

// SessionAdopter is implemented by session stores that several nodes
// share. The sessions a node held when it stopped (killed, or shut down)
// are taken over by a running node, so that they go on being owed the
// messages published for them until their clients come back.
type SessionAdopter interface {
	// AdoptSessions moves to this node the sessions node holds, if node has
	// stopped (it holds no connection to the store), as ClaimSession does
	// for one, and returns them; none while node runs.
	AdoptSessions(ctx context.Context, node string, now time.Time) ([]*StoredSession, error)
}

// Session is a persistent session's own record.
type Session struct {
	ClientID string `json:"-"`
	// Username is the one the client last connected with; Listener the
	// listener it came through.
	Username []byte `json:"username,omitempty"`
	Listener string `json:"listener,omitempty"`
	// ProtocolVersion is 4 (MQTT 3.1.1) or 5.
	ProtocolVersion byte `json:"protocolVersion"`
	// ExpiryInterval is how many seconds the session outlives its
	// client's connection.
	ExpiryInterval uint32 `json:"expiryInterval"`
	// ExpiresAt is when the session ends unless its client comes back, in
	// Unix seconds; 0 while the client is connected.
	ExpiresAt int64 `json:"expiresAt,omitempty"`
}

// Subscription is one topic filter of a persistent session, with the QoS
// the broker granted and the MQTT 5 options.
type Subscription struct {
	Filter            string `json:"-"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"noLocal,omitempty"`
	RetainAsPublished bool   `json:"retainAsPublished,omitempty"`
	RetainHandling    byte   `json:"retainHandling,omitempty"`
	Identifier        int    `json:"identifier,omitempty"`
}

// QueuedMessage is a message a session is owed: Seq orders a session's
// messages (and is never reused by a store), Data is the broker's
// encoding.
type QueuedMessage struct {
	Seq  uint64
	Data []byte
}

// RetainedMessage is the retained message of a topic, in the broker's
// encoding.
type RetainedMessage struct {
	Topic string
	Data  []byte
}

// StoredSession is a session with its subscriptions and messages.
type StoredSession struct {
	Session       Session
	Subscriptions []Subscription
	Messages      []QueuedMessage
}

// SessionLoad sums up what LoadSessions read.
type SessionLoad struct {
	// Sessions counts the sessions handed to fn.
	Sessions int
	// NextSeq is above the sequence number of every message handed to fn.
	NextSeq uint64
	// Expired counts the sessions found expired and deleted.
	Expired int
}

// SessionUsage is what the store holds for sessions: a session's
// subscriptions, messages and record all count.
type SessionUsage struct {
	Sessions      int64
	Subscriptions int64
	Messages      int64
	Retained      int64
	// Bytes is the size of the keys and values (or rows) of all of it.
	Bytes int64
}

// SessionOpKind says what a SessionOp does.
type SessionOpKind uint8

// The session operations.
const (
	// PutSession writes Session (for Session.ClientID).
	PutSession SessionOpKind = iota + 1
	// DeleteSession deletes ClientID's session with its subscriptions and
	// messages.
	DeleteSession
	// PutSubscription writes Subscription for ClientID.
	PutSubscription
	// DeleteSubscription deletes ClientID's subscription to Topic (the
	// filter).
	DeleteSubscription
	// PutMessage writes Message for ClientID.
	PutMessage
	// DeleteMessage deletes ClientID's message Message.Seq.
	DeleteMessage
	// PutRetained writes Retained.
	PutRetained
	// DeleteRetained deletes the retained message of Topic.
	DeleteRetained
)

// SessionOp is one change of session state.
type SessionOp struct {
	Kind         SessionOpKind
	ClientID     string
	Topic        string
	Session      *Session
	Subscription *Subscription
	Message      *QueuedMessage
	Retained     *RetainedMessage
}

// SessionLocator is implemented by session stores that several nodes
// share. It lets a node that published a message make sure the message is
// owed to every persistent session subscribed to it, wherever the session
// is held, also while the node that held it has just stopped.
type SessionLocator interface {
	// SessionHolders returns the node holding each of ids' sessions; an
	// id without a session is left out.
	SessionHolders(ctx context.Context, ids []string) (map[string]string, error)
	// HeldSubscriptions lists the subscriptions of every node's
	// persistent sessions, with the node holding each.
	HeldSubscriptions(ctx context.Context) ([]HeldSubscription, error)
	// OweMessages applies PutMessage ops, in one transaction, to the
	// sessions this node holds, and returns the client IDs they were
	// written for; an op for a session held elsewhere (or by nobody) is
	// left out. Unlike WriteSessions, it says which writes took.
	OweMessages(ctx context.Context, ops []SessionOp) ([]string, error)
}

// HeldSubscription is one subscription of a persistent session and the
// node holding the session.
type HeldSubscription struct {
	ClientID string
	Node     string
	Filter   string
	QoS      byte
}
