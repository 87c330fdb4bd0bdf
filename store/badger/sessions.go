package badger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/jobsbroker/jobsbroker/store"
)

// MQTT session state (store.SessionStore) lives beside the jobs, written
// through the same committer: a PUBACK that waits for a queued message
// waits for the same group commit as a jobs request. Client IDs, topic
// filters and topic names are MQTT UTF-8 strings, which never hold 0x00.
//
//	S<client>                    persistent session record (JSON)
//	U<client>0<filter>           its subscription (JSON)
//	Q<client>0<seq:8>            a message it is owed (the broker's encoding)
//	R<topic>                     retained message (the broker's encoding)
const (
	prefixSession      = 'S'
	prefixSubscription = 'U'
	prefixQueued       = 'Q'
	prefixRetained     = 'R'
)

var _ store.SessionStore = (*Store)(nil)

func sessionKey(client string) []byte { return key(prefixSession, client) }

func subscriptionPrefix(client string) []byte { return append(key(prefixSubscription, client), 0) }

func subscriptionKey(client, filter string) []byte {
	return append(subscriptionPrefix(client), filter...)
}

func queuedPrefix(client string) []byte { return append(key(prefixQueued, client), 0) }

func queuedKey(client string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(queuedPrefix(client), seq)
}

func retainedKey(topic string) []byte { return key(prefixRetained, topic) }

// clientOf returns the client ID of a U or Q key and what follows it.
func clientOf(k []byte) (client string, rest []byte, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 1 {
		return "", nil, false
	}
	return string(k[1:i]), k[i+1:], true
}

// WriteSessions applies ops in one operation of the committer.
func (s *Store) WriteSessions(ctx context.Context, ops []store.SessionOp) error {
	if len(ops) == 0 {
		return nil
	}
	return s.submit(ctx, func(w *wtx) error {
		for i := range ops {
			if err := w.sessionOp(&ops[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w *wtx) sessionOp(op *store.SessionOp) error {
	switch op.Kind {
	case store.PutSession:
		return w.setJSON(sessionKey(op.Session.ClientID), op.Session)
	case store.DeleteSession:
		for _, prefix := range [][]byte{subscriptionPrefix(op.ClientID), queuedPrefix(op.ClientID)} {
			if err := w.delPrefix(prefix); err != nil {
				return err
			}
		}
		return w.del(sessionKey(op.ClientID))
	case store.PutSubscription:
		return w.setJSON(subscriptionKey(op.ClientID, op.Subscription.Filter), op.Subscription)
	case store.DeleteSubscription:
		return w.del(subscriptionKey(op.ClientID, op.Topic))
	case store.PutMessage:
		return w.set(queuedKey(op.ClientID, op.Message.Seq), op.Message.Data)
	case store.DeleteMessage:
		return w.del(queuedKey(op.ClientID, op.Message.Seq))
	case store.PutRetained:
		return w.set(retainedKey(op.Retained.Topic), op.Retained.Data)
	case store.DeleteRetained:
		return w.del(retainedKey(op.Topic))
	}
	return fmt.Errorf("unknown session operation %d", op.Kind)
}

// cursor walks one key prefix alongside another walk.
type cursor struct {
	it     *badgerdb.Iterator
	prefix []byte
}

func newCursor(txn *badgerdb.Txn, prefix byte, values bool) *cursor {
	opts := badgerdb.DefaultIteratorOptions
	opts.Prefix = []byte{prefix}
	opts.PrefetchValues = values
	c := &cursor{it: txn.NewIterator(opts), prefix: opts.Prefix}
	c.it.Rewind()
	return c
}

func (c *cursor) valid() bool { return c.it.ValidForPrefix(c.prefix) }

// client is the client ID of the current key, "" for a malformed key.
func (c *cursor) client() string {
	client, _, _ := clientOf(c.it.Item().Key())
	return client
}

// LoadSessions walks the session records in client order, and the
// subscriptions and messages beside them; what belongs to no session, or
// to an expired one, is deleted afterwards.
func (s *Store) LoadSessions(ctx context.Context, now time.Time, fn func(*store.StoredSession) error) (*store.SessionLoad, error) {
	res := &store.SessionLoad{}
	var dead [][]byte
	err := s.view(ctx, func(r *rtx) error {
		subs := newCursor(r.txn, prefixSubscription, true)
		defer subs.it.Close()
		msgs := newCursor(r.txn, prefixQueued, true)
		defer msgs.it.Close()
		// skip moves c past the keys of clients before client, which have
		// no session.
		skip := func(c *cursor, client string) {
			for ; c.valid() && c.client() < client; c.it.Next() {
				dead = append(dead, c.it.Item().KeyCopy(nil))
			}
		}
		err := r.each([]byte{prefixSession}, nil, false, func(k, v []byte) (bool, error) {
			client := string(k[1:])
			st := &store.StoredSession{}
			if err := json.Unmarshal(v, &st.Session); err != nil {
				return false, fmt.Errorf("decode session %q: %w", client, err)
			}
			st.Session.ClientID = client
			expired := st.Session.ExpiresAt != 0 && st.Session.ExpiresAt <= now.Unix()
			if expired {
				dead = append(dead, k)
				res.Expired++
			}
			skip(subs, client)
			for ; subs.valid() && subs.client() == client; subs.it.Next() {
				item := subs.it.Item()
				if expired {
					dead = append(dead, item.KeyCopy(nil))
					continue
				}
				_, filter, _ := clientOf(item.Key())
				sub := store.Subscription{Filter: string(filter)}
				if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &sub) }); err != nil {
					return false, fmt.Errorf("decode subscription %q: %w", item.Key(), err)
				}
				st.Subscriptions = append(st.Subscriptions, sub)
			}
			skip(msgs, client)
			for ; msgs.valid() && msgs.client() == client; msgs.it.Next() {
				item := msgs.it.Item()
				if expired {
					dead = append(dead, item.KeyCopy(nil))
					continue
				}
				_, rest, _ := clientOf(item.Key())
				if len(rest) != 8 {
					dead = append(dead, item.KeyCopy(nil))
					continue
				}
				m := store.QueuedMessage{Seq: binary.BigEndian.Uint64(rest)}
				var err error
				if m.Data, err = valueOf(item); err != nil {
					return false, err
				}
				res.NextSeq = max(res.NextSeq, m.Seq+1)
				st.Messages = append(st.Messages, m)
			}
			if expired {
				return true, nil
			}
			res.Sessions++
			return true, fn(st)
		})
		if err != nil {
			return err
		}
		skip(subs, "\xff\xff\xff\xff")
		skip(msgs, "\xff\xff\xff\xff")
		return nil
	})
	if err != nil {
		return nil, err
	}
	for len(dead) > 0 {
		n := min(len(dead), 1000)
		chunk := dead[:n]
		dead = dead[n:]
		err := s.submit(ctx, func(w *wtx) error {
			for _, k := range chunk {
				if err := w.del(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("delete expired sessions: %w", err)
		}
	}
	return res, nil
}

// RetainedMessages reads every retained message.
func (s *Store) RetainedMessages(ctx context.Context) ([]store.RetainedMessage, error) {
	var out []store.RetainedMessage
	err := s.view(ctx, func(r *rtx) error {
		return r.each([]byte{prefixRetained}, nil, false, func(k, v []byte) (bool, error) {
			out = append(out, store.RetainedMessage{Topic: string(k[1:]), Data: v})
			return true, nil
		})
	})
	return out, err
}

// ClaimSession has nothing to claim: one node holds every session of a
// Badger store and loads them all at start.
func (s *Store) ClaimSession(context.Context, string, time.Time) (*store.StoredSession, error) {
	return nil, nil
}

// SweepSessions has nothing to do: the one node that holds a Badger
// store's sessions expires them itself.
func (s *Store) SweepSessions(context.Context, time.Time) (int, error) { return 0, nil }

// QueuedMessages reads the messages kept for client, in order.
func (s *Store) QueuedMessages(ctx context.Context, client string) ([]store.QueuedMessage, error) {
	var out []store.QueuedMessage
	err := s.view(ctx, func(r *rtx) error {
		prefix := queuedPrefix(client)
		return r.each(prefix, nil, false, func(k, v []byte) (bool, error) {
			if len(k) != len(prefix)+8 {
				return true, nil
			}
			out = append(out, store.QueuedMessage{Seq: binary.BigEndian.Uint64(k[len(prefix):]), Data: v})
			return true, nil
		})
	})
	return out, err
}

// SessionUsage counts the session keys and their sizes.
func (s *Store) SessionUsage(ctx context.Context) (*store.SessionUsage, error) {
	u := &store.SessionUsage{}
	err := s.view(ctx, func(r *rtx) error {
		for _, p := range []struct {
			prefix byte
			n      *int64
		}{{prefixSession, &u.Sessions}, {prefixSubscription, &u.Subscriptions}, {prefixQueued, &u.Messages}, {prefixRetained, &u.Retained}} {
			opts := badgerdb.DefaultIteratorOptions
			opts.Prefix = []byte{p.prefix}
			opts.PrefetchValues = false
			it := r.txn.NewIterator(opts)
			for it.Rewind(); it.ValidForPrefix(opts.Prefix); it.Next() {
				item := it.Item()
				*p.n++
				u.Bytes += int64(len(item.Key())) + item.ValueSize()
			}
			it.Close()
		}
		return nil
	})
	return u, err
}
