package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tx is one database transaction of an operation, on one pooled
// connection. Statements that return nothing the operation needs (BEGIN,
// writes, notifications, COMMIT) are queued and sent in the same round
// trip as the next read (a pgx batch, which the server runs in order), so
// a read always sees the transaction's own writes and most operations
// cost a few round trips.
type tx struct {
	ctx   context.Context
	s     *Store
	conn  *pgxpool.Conn
	batch pgx.Batch
	// sent counts the statements the server has run.
	sent int
}

// queue queues a statement whose result is not needed.
func (t *tx) queue(sql string, args ...any) { t.batch.Queue(sql, args...) }

// batchRows are the rows of the last statement of a batch; closing them
// finishes the batch.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

// Close closes the rows and finishes the batch.
func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		if err := r.br.Close(); err != nil && r.err == nil {
			r.err = err
		}
		r.br = nil
	}
}

// Err returns the rows' error, or the batch's.
func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// sendQueued sends the queued statements followed by sql, and returns the
// rows of sql.
func (t *tx) sendQueued(sql string, args []any) (pgx.Rows, error) {
	if t.batch.Len() == 0 {
		t.sent++
		t.s.stats.RoundTrips.Add(1)
		return t.conn.Query(t.ctx, sql, args...)
	}
	t.batch.Queue(sql, args...)
	b := t.batch
	t.batch = pgx.Batch{}
	t.s.stats.RoundTrips.Add(1)
	br := t.conn.SendBatch(t.ctx, &b)
	for range b.Len() - 1 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
		t.sent++
	}
	t.sent++
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// batchQuery is one query of queryMany and what to do with its rows.
type batchQuery struct {
	sql  string
	args []any
	scan func(rows pgx.Rows) error
}

// queryMany sends the queued statements and several queries in one round
// trip; the server runs them in order.
func (t *tx) queryMany(qs ...batchQuery) error {
	for _, q := range qs {
		t.batch.Queue(q.sql, q.args...)
	}
	b := t.batch
	t.batch = pgx.Batch{}
	t.s.stats.RoundTrips.Add(1)
	br := t.conn.SendBatch(t.ctx, &b)
	defer br.Close()
	for range b.Len() - len(qs) {
		if _, err := br.Exec(); err != nil {
			return err
		}
		t.sent++
	}
	for _, q := range qs {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		t.sent++
		err = q.scan(rows)
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return err
		}
	}
	return br.Close()
}

// flush sends the queued statements.
func (t *tx) flush() error {
	if t.batch.Len() == 0 {
		return nil
	}
	b := t.batch
	t.batch = pgx.Batch{}
	t.s.stats.RoundTrips.Add(1)
	br := t.conn.SendBatch(t.ctx, &b)
	for range b.Len() {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		t.sent++
	}
	return br.Close()
}

// flushThen sends the queued statements, which end the transaction, and
// after them, in the same round trip, the query after, which the server
// runs once the transaction has ended, in a snapshot that sees it. err is
// the failure of the queued statements; afterErr that of after, which does
// not undo them.
func (t *tx) flushThen(after batchQuery) (err, afterErr error) {
	n := t.batch.Len()
	t.batch.Queue(after.sql, after.args...)
	b := t.batch
	t.batch = pgx.Batch{}
	t.s.stats.RoundTrips.Add(1)
	br := t.conn.SendBatch(t.ctx, &b)
	for range n {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err, nil
		}
		t.sent++
	}
	rows, err := br.Query()
	if err == nil {
		t.sent++
		err = after.scan(rows)
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return nil, err
}

// query sends the queued statements and runs a query.
func (t *tx) query(sql string, args ...any) (pgx.Rows, error) { return t.sendQueued(sql, args) }

// queryRow sends the queued statements and runs a one-row query; it
// returns pgx.ErrNoRows when there is none.
func (t *tx) queryRow(sql string, args []any, dest ...any) error {
	rows, err := t.sendQueued(sql, args)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// execNow sends the queued statements and runs one more at once,
// returning the rows it affected.
func (t *tx) execNow(sql string, args ...any) (int64, error) {
	rows, err := t.sendQueued(sql, args)
	if err != nil {
		return 0, err
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return rows.CommandTag().RowsAffected(), nil
}

func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func decode[T any](b []byte, what string) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, nil
}
