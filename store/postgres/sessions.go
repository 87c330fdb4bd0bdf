package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
)

// MQTT session state lives in the mqtt_* tables (migration 0002). A
// session belongs to one node at a time: every write for it checks, in the
// statement, that this node still holds it, so a node that lost a session
// to another (its client connected there) changes nothing of it any more.
// Retained messages belong to every node.

var _ store.SessionStore = (*Store)(nil)

// listenApp is the application_name of a node's listening connection,
// as pg_stat_activity shows it (PostgreSQL keeps 63 bytes of it): a node
// without one has stopped.
const listenApp = "left('jobsbroker listen ' || %s, 63)"

// WriteSessions applies ops in one transaction, sent in one round trip.
func (s *Store) WriteSessions(ctx context.Context, ops []store.SessionOp) error {
	if len(ops) == 0 {
		return nil
	}
	return s.update(ctx, "sessions", func(w *wtx) error {
		for i := range ops {
			if err := w.sessionOp(&ops[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

const mine = "EXISTS (SELECT 1 FROM mqtt_sessions WHERE client_id = $1 AND node = $2)"

func (w *wtx) sessionOp(op *store.SessionOp) error {
	node := w.s.node
	switch op.Kind {
	case store.PutSession:
		rec, err := json.Marshal(op.Session)
		if err != nil {
			return fmt.Errorf("encode session %s: %w", op.Session.ClientID, err)
		}
		w.queue(`INSERT INTO mqtt_sessions (client_id, node, expires_at, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (client_id) DO UPDATE SET expires_at = EXCLUDED.expires_at, record = EXCLUDED.record
			WHERE mqtt_sessions.node = EXCLUDED.node`, op.Session.ClientID, node, expiresAt(op.Session.ExpiresAt), rec)
	case store.DeleteSession:
		w.queue(`DELETE FROM mqtt_sessions WHERE client_id = $1 AND node = $2`, op.ClientID, node)
	case store.PutSubscription:
		rec, err := json.Marshal(op.Subscription)
		if err != nil {
			return fmt.Errorf("encode subscription %s: %w", op.Subscription.Filter, err)
		}
		w.queue(`INSERT INTO mqtt_subscriptions (client_id, filter, record) SELECT $1, $3, $4 WHERE `+mine+`
			ON CONFLICT (client_id, filter) DO UPDATE SET record = EXCLUDED.record`, op.ClientID, node, op.Subscription.Filter, rec)
	case store.DeleteSubscription:
		w.queue(`DELETE FROM mqtt_subscriptions WHERE client_id = $1 AND filter = $3 AND `+mine, op.ClientID, node, op.Topic)
	case store.PutMessage:
		w.queue(`INSERT INTO mqtt_messages (client_id, seq, data) SELECT $1, $3, $4 WHERE `+mine+`
			ON CONFLICT (client_id, seq) DO UPDATE SET data = EXCLUDED.data`, op.ClientID, node, int64(op.Message.Seq), op.Message.Data)
	case store.DeleteMessage:
		w.queue(`DELETE FROM mqtt_messages WHERE client_id = $1 AND seq = $3 AND `+mine, op.ClientID, node, int64(op.Message.Seq))
	case store.PutRetained:
		w.queue(`INSERT INTO mqtt_retained (topic, data) VALUES ($1, $2)
			ON CONFLICT (topic) DO UPDATE SET data = EXCLUDED.data`, op.Retained.Topic, op.Retained.Data)
	case store.DeleteRetained:
		w.queue(`DELETE FROM mqtt_retained WHERE topic = $1`, op.Topic)
	default:
		return fmt.Errorf("unknown session operation %d", op.Kind)
	}
	w.writes++
	return nil
}

func expiresAt(t int64) *int64 {
	if t == 0 {
		return nil
	}
	return &t
}

// LoadSessions hands over the sessions this node holds, in client order,
// after deleting the expired sessions of every node.
func (s *Store) LoadSessions(ctx context.Context, now time.Time, fn func(*store.StoredSession) error) (*store.SessionLoad, error) {
	res := &store.SessionLoad{}
	var err error
	if res.Expired, err = s.SweepSessions(ctx, now); err != nil {
		return nil, err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, s.mapErr("load sessions", err)
	}
	defer tx.Rollback(context.Background())
	var sessions []*store.StoredSession
	rows, err := tx.Query(ctx, `SELECT client_id, expires_at, record FROM mqtt_sessions WHERE node = $1 ORDER BY client_id`, s.node)
	if err != nil {
		return nil, s.mapErr("load sessions", err)
	}
	for rows.Next() {
		st := &store.StoredSession{}
		var exp *int64
		var rec []byte
		if err := rows.Scan(&st.Session.ClientID, &exp, &rec); err != nil {
			rows.Close()
			return nil, s.mapErr("load sessions", err)
		}
		if err := sessionRecord(st, exp, rec); err != nil {
			rows.Close()
			return nil, err
		}
		sessions = append(sessions, st)
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapErr("load sessions", err)
	}
	byClient := make(map[string]*store.StoredSession, len(sessions))
	for _, st := range sessions {
		byClient[st.Session.ClientID] = st
	}
	if err := scanSubscriptions(ctx, tx, `SELECT u.client_id, u.filter, u.record FROM mqtt_subscriptions u
		JOIN mqtt_sessions m USING (client_id) WHERE m.node = $1`, byClient, s.node); err != nil {
		return nil, s.mapErr("load sessions", err)
	}
	// Messages stream in client order beside the sessions: each session
	// is handed over once the stream has passed it.
	rows, err = tx.Query(ctx, `SELECT q.client_id, q.seq, q.data FROM mqtt_messages q
		JOIN mqtt_sessions m USING (client_id) WHERE m.node = $1 ORDER BY q.client_id, q.seq`, s.node)
	if err != nil {
		return nil, s.mapErr("load sessions", err)
	}
	defer rows.Close()
	next := 0
	emitUpTo := func(client string, inclusive bool) error {
		for ; next < len(sessions); next++ {
			id := sessions[next].Session.ClientID
			if id > client || (id == client && !inclusive) {
				return nil
			}
			res.Sessions++
			if err := fn(sessions[next]); err != nil {
				return err
			}
			sessions[next] = nil // the messages' data goes with it
		}
		return nil
	}
	for rows.Next() {
		var client string
		var m store.QueuedMessage
		var seq int64
		if err := rows.Scan(&client, &seq, &m.Data); err != nil {
			return nil, s.mapErr("load sessions", err)
		}
		m.Seq = uint64(seq)
		if err := emitUpTo(client, false); err != nil {
			return nil, err
		}
		if st := byClient[client]; st != nil {
			st.Messages = append(st.Messages, m)
			res.NextSeq = max(res.NextSeq, m.Seq+1)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapErr("load sessions", err)
	}
	if err := emitUpTo("\xff", true); err != nil {
		return nil, err
	}
	return res, nil
}

func sessionRecord(st *store.StoredSession, exp *int64, rec []byte) error {
	id := st.Session.ClientID
	if err := json.Unmarshal(rec, &st.Session); err != nil {
		return fmt.Errorf("decode session %s: %w", id, err)
	}
	st.Session.ClientID = id
	st.Session.ExpiresAt = 0
	if exp != nil {
		st.Session.ExpiresAt = *exp
	}
	return nil
}

func scanSubscriptions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, byClient map[string]*store.StoredSession, args ...any) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var client string
		var sub store.Subscription
		var rec []byte
		if err := rows.Scan(&client, &sub.Filter, &rec); err != nil {
			return err
		}
		filter := sub.Filter
		if err := json.Unmarshal(rec, &sub); err != nil {
			return fmt.Errorf("decode subscription %s of %s: %w", filter, client, err)
		}
		sub.Filter = filter
		if st := byClient[client]; st != nil {
			st.Subscriptions = append(st.Subscriptions, sub)
		}
	}
	return rows.Err()
}

// SweepSessions starts the expiry of sessions marked connected by nodes
// that have no listening connection any more (they stopped without
// saying so), and deletes every expired session.
func (s *Store) SweepSessions(ctx context.Context, now time.Time) (int, error) {
	var deleted int64
	err := s.update(ctx, "sweep sessions", func(w *wtx) error {
		if _, err := w.execNow(`UPDATE mqtt_sessions SET expires_at = $1 + (record->>'expiryInterval')::bigint
			WHERE expires_at IS NULL AND node <> $2 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
				WHERE a.datname = current_database() AND a.application_name = `+fmt.Sprintf(listenApp, "mqtt_sessions.node")+`)`,
			now.Unix(), w.s.node); err != nil {
			return err
		}
		n, err := w.execNow(`DELETE FROM mqtt_sessions WHERE expires_at IS NOT NULL AND expires_at <= $1`, now.Unix())
		deleted = n
		return err
	})
	return int(deleted), err
}

// ClaimSession moves a session to this node: it deletes it instead when
// it has expired.
func (s *Store) ClaimSession(ctx context.Context, clientID string, now time.Time) (*store.StoredSession, error) {
	return s.claimSession(ctx, clientID, now, false)
}

// claimSession is ClaimSession; adopted claims only a session this node
// holds already (AdoptSessions moved it here), so that one its client
// claimed on another node meanwhile stays there.
func (s *Store) claimSession(ctx context.Context, clientID string, now time.Time, adopted bool) (*store.StoredSession, error) {
	var st *store.StoredSession
	err := s.update(ctx, "claim session", func(w *wtx) error {
		st = nil
		if _, err := w.execNow(`DELETE FROM mqtt_sessions WHERE client_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2`,
			clientID, now.Unix()); err != nil {
			return err
		}
		var rec []byte
		err := w.queryRow(`UPDATE mqtt_sessions SET node = $2, expires_at = NULL WHERE client_id = $1 AND (NOT $3 OR node = $2) RETURNING record`,
			[]any{clientID, w.s.node, adopted}, &rec)
		if err == pgx.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		st = &store.StoredSession{Session: store.Session{ClientID: clientID}}
		if err := sessionRecord(st, nil, rec); err != nil {
			return err
		}
		rows, err := w.query(`SELECT filter, record FROM mqtt_subscriptions WHERE client_id = $1 ORDER BY filter`, clientID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var sub store.Subscription
			var b []byte
			if err := rows.Scan(&sub.Filter, &b); err != nil {
				rows.Close()
				return err
			}
			filter := sub.Filter
			if err := json.Unmarshal(b, &sub); err != nil {
				rows.Close()
				return fmt.Errorf("decode subscription %s of %s: %w", filter, clientID, err)
			}
			sub.Filter = filter
			st.Subscriptions = append(st.Subscriptions, sub)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		st.Messages, err = queuedMessages(w.query, clientID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// QueuedMessages reads the messages kept for clientID, in order.
func (s *Store) QueuedMessages(ctx context.Context, clientID string) ([]store.QueuedMessage, error) {
	ms, err := queuedMessages(func(sql string, args ...any) (pgx.Rows, error) { return s.pool.Query(ctx, sql, args...) }, clientID)
	return ms, s.mapErr("queued messages", err)
}

func queuedMessages(query func(string, ...any) (pgx.Rows, error), clientID string) ([]store.QueuedMessage, error) {
	rows, err := query(`SELECT seq, data FROM mqtt_messages WHERE client_id = $1 ORDER BY seq`, clientID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.QueuedMessage
	for rows.Next() {
		var seq int64
		var m store.QueuedMessage
		if err := rows.Scan(&seq, &m.Data); err != nil {
			return nil, err
		}
		m.Seq = uint64(seq)
		out = append(out, m)
	}
	return out, rows.Err()
}

// RetainedMessages reads every retained message.
func (s *Store) RetainedMessages(ctx context.Context) ([]store.RetainedMessage, error) {
	rows, err := s.pool.Query(ctx, `SELECT topic, data FROM mqtt_retained ORDER BY topic`)
	if err != nil {
		return nil, s.mapErr("retained messages", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.RetainedMessage, error) {
		var m store.RetainedMessage
		err := r.Scan(&m.Topic, &m.Data)
		return m, err
	})
	return out, s.mapErr("retained messages", err)
}

// SessionUsage counts the rows of the mqtt_* tables and their sizes.
func (s *Store) SessionUsage(ctx context.Context) (*store.SessionUsage, error) {
	u := &store.SessionUsage{}
	var b [4]int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM mqtt_sessions), (SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM mqtt_sessions t),
		(SELECT count(*) FROM mqtt_subscriptions), (SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM mqtt_subscriptions t),
		(SELECT count(*) FROM mqtt_messages), (SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM mqtt_messages t),
		(SELECT count(*) FROM mqtt_retained), (SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM mqtt_retained t)`).
		Scan(&u.Sessions, &b[0], &u.Subscriptions, &b[1], &u.Messages, &b[2], &u.Retained, &b[3])
	if err != nil {
		return nil, s.mapErr("session usage", err)
	}
	for _, n := range b {
		u.Bytes += n
	}
	return u, nil
}

var _ store.SessionAdopter = (*Store)(nil)

// AdoptSessions moves the sessions of node, if it has stopped (its
// listening connection, which holds its node lock, is gone), to this
// node: each is claimed as its client's connection would claim it.
func (s *Store) AdoptSessions(ctx context.Context, node string, now time.Time) ([]*store.StoredSession, error) {
	if node == s.node {
		return nil, nil
	}
	var ids []string
	err := s.update(ctx, "adopt sessions", func(w *wtx) error {
		ids = nil
		var running bool
		if err := w.queryRow(`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND classid = $1 AND objsubid = 2
				AND objid = (hashtext(current_schema() || '|' || $2)::bigint & 4294967295)::oid)`,
			[]any{lockClassNode, node}, &running); err != nil {
			return err
		}
		if running {
			return nil
		}
		rows, err := w.query(`UPDATE mqtt_sessions SET node = $1 WHERE node = $2 RETURNING client_id`, s.node, node)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []*store.StoredSession
	for _, id := range ids {
		st, err := s.claimSession(ctx, id, now, true)
		if err != nil {
			return out, err
		}
		if st != nil {
			out = append(out, st)
		}
	}
	return out, nil
}

var _ store.SessionLocator = (*Store)(nil)

// SessionHolders returns the node holding each of ids' sessions.
func (s *Store) SessionHolders(ctx context.Context, ids []string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT client_id, node FROM mqtt_sessions WHERE client_id = ANY($1)`, ids)
	if err != nil {
		return nil, s.mapErr("session holders", err)
	}
	defer rows.Close()
	out := make(map[string]string, len(ids))
	for rows.Next() {
		var id, node string
		if err := rows.Scan(&id, &node); err != nil {
			return nil, s.mapErr("session holders", err)
		}
		out[id] = node
	}
	return out, s.mapErr("session holders", rows.Err())
}

// HeldSubscriptions lists every persistent session's subscriptions with
// the node holding the session.
func (s *Store) HeldSubscriptions(ctx context.Context) ([]store.HeldSubscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT u.client_id, m.node, u.filter, coalesce((u.record->>'qos')::int, 0)
		FROM mqtt_subscriptions u JOIN mqtt_sessions m USING (client_id)`)
	if err != nil {
		return nil, s.mapErr("held subscriptions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.HeldSubscription, error) {
		var h store.HeldSubscription
		var qos int
		err := r.Scan(&h.ClientID, &h.Node, &h.Filter, &qos)
		h.QoS = byte(qos)
		return h, err
	})
	return out, s.mapErr("held subscriptions", err)
}

// OweMessages writes PutMessage ops for the sessions this node holds and
// returns the client IDs written for. Each locks its session's row, so
// that a claim of the session by another node comes after it (and reads
// the message) or before it (and the write does not take).
func (s *Store) OweMessages(ctx context.Context, ops []store.SessionOp) ([]string, error) {
	var written []string
	err := s.update(ctx, "owe messages", func(w *wtx) error {
		written = written[:0]
		for _, op := range ops {
			if op.Kind != store.PutMessage {
				return fmt.Errorf("owe messages: operation %d is not PutMessage", op.Kind)
			}
			var id string
			err := w.queryRow(`WITH held AS (SELECT client_id FROM mqtt_sessions WHERE client_id = $1 AND node = $2 FOR UPDATE)
				INSERT INTO mqtt_messages (client_id, seq, data) SELECT client_id, $3, $4 FROM held
				ON CONFLICT (client_id, seq) DO UPDATE SET data = EXCLUDED.data RETURNING client_id`,
				[]any{op.ClientID, w.s.node, int64(op.Message.Seq), op.Message.Data}, &id)
			if err == pgx.ErrNoRows {
				continue
			}
			if err != nil {
				return err
			}
			written = append(written, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return written, nil
}
