package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// AWS IoT commands live in the commands and command_executions tables
// (migration 0010). A write that decides on an execution reads its row
// FOR UPDATE, so that of two nodes timing the same execution out, or a
// device update racing the timeout, one waits for the other and sees its
// result.

var (
	_ engine.CommandTx      = (*wtx)(nil)
	_ engine.CommandReader  = (*wtx)(nil)
	_ engine.CommandBackend = backend{}
	_ engine.CommandFeed    = backend{}
	_ store.CommandStore    = (*Store)(nil)
)

// CommandUpdate runs fn in a write transaction, again after a
// serialization failure or a unique violation (two requests inserting the
// same command or client token at once: the retry sees the winner).
func (b backend) CommandUpdate(ctx context.Context, op string, fn func(tx engine.CommandTx) error) error {
	var err error
	for range 3 {
		err = b.s.update(ctx, op, func(w *wtx) error { return fn(w) })
		if !uniqueViolation(err) {
			return err
		}
	}
	return err
}

func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// CommandView runs fn in a read-only transaction.
func (b backend) CommandView(ctx context.Context, op string, fn func(r engine.CommandReader) error) error {
	return b.s.view(ctx, op, func(w *wtx) error { return fn(w) })
}

// DueCommandTimers reads the armed timers.
func (b backend) DueCommandTimers(ctx context.Context, now time.Time, limit int) ([]engine.CommandTimer, time.Time, error) {
	var due []engine.CommandTimer
	var next time.Time
	err := b.s.view(ctx, "command timers", func(w *wtx) error {
		due, next = nil, time.Time{}
		rows, err := w.query(`SELECT execution_id, deadline_ns FROM command_executions WHERE deadline_ns IS NOT NULL
			ORDER BY deadline_ns LIMIT $1`, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var ns int64
			if err := rows.Scan(&id, &ns); err != nil {
				return err
			}
			at := time.Unix(0, ns)
			if at.After(now) {
				next = at
				break
			}
			if len(due) < limit {
				due = append(due, engine.CommandTimer{ExecutionID: id, Deadline: at})
			}
		}
		return rows.Err()
	})
	return due, next, err
}

// Command reads a command.
func (w *wtx) Command(id string) (*store.Command, error) {
	return record[store.Command](w, "SELECT record FROM commands WHERE command_id = $1", id, "command")
}

// EachCommand walks the commands by id.
func (w *wtx) EachCommand(fn func(*store.Command) (bool, error)) error {
	return eachRecord(w, "SELECT record FROM commands WHERE command_id > $1 ORDER BY command_id LIMIT $2", "",
		"command", func(c *store.Command) string { return c.CommandID }, fn)
}

// CommandExecution reads an execution, with lock FOR UPDATE.
func (w *wtx) CommandExecution(id string, lock bool) (*store.CommandExecution, error) {
	sql := "SELECT record FROM command_executions WHERE execution_id = $1"
	if lock {
		sql += " FOR UPDATE"
	}
	return record[store.CommandExecution](w, sql, id, "command execution")
}

// EachCommandExecution walks the executions of a command or a target by
// creation.
func (w *wtx) EachCommandExecution(cmd string, target *store.CommandTarget, after uint64, desc bool, fn func(*store.CommandExecution) (bool, error)) error {
	where, args := "command_id = $1", []any{cmd}
	if target != nil {
		where, args = "target_kind = $1 AND target_id = $2", []any{target.Kind, target.ID}
	}
	cmp, order := ">", "ASC"
	if desc {
		cmp, order = "<", "DESC"
	}
	n := len(args)
	sql := fmt.Sprintf("SELECT record FROM command_executions WHERE %s AND ($%d = 0 OR seq %s $%d) ORDER BY seq %s LIMIT $%d",
		where, n+1, cmp, n+1, order, n+2)
	cursor := int64(after)
	return walk(w, "command execution", func(last *store.CommandExecution) (pgx.Rows, error) {
		if last != nil {
			cursor = int64(last.Seq)
		}
		return w.query(sql, append(args[:n:n], cursor, listChunk)...)
	}, fn)
}

// CommandToken reads the execution a client token created.
func (w *wtx) CommandToken(token string) (string, error) {
	var id string
	err := w.queryRow("SELECT execution_id FROM command_executions WHERE client_token = $1", []any{token}, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// PutCommand writes a command; a new one that another transaction
// inserted meanwhile fails with a unique violation, and the operation
// runs again.
func (w *wtx) PutCommand(old, cur *store.Command) error {
	rec, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("encode command %s: %w", cur.CommandID, err)
	}
	if old == nil {
		w.queue("INSERT INTO commands (command_id, record) VALUES ($1, $2)", cur.CommandID, rec)
	} else {
		w.queue("UPDATE commands SET record = $2 WHERE command_id = $1", cur.CommandID, rec)
	}
	w.writes++
	return nil
}

// DeleteCommand removes a command.
func (w *wtx) DeleteCommand(id string) error {
	w.queue("DELETE FROM commands WHERE command_id = $1", id)
	w.writes++
	return nil
}

func deadlineNs(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ns := t.UnixNano()
	return &ns
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// PutCommandExecution writes an execution; its columns are its indexes.
func (w *wtx) PutCommandExecution(old, cur *store.CommandExecution) error {
	rec, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("encode command execution %s: %w", cur.ExecutionID, err)
	}
	if old == nil {
		w.queue(`INSERT INTO command_executions (execution_id, seq, command_id, target_kind, target_id, deadline_ns, client_token,
			node, created_ns, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, cur.ExecutionID, int64(cur.Seq), cur.CommandID,
			cur.Target.Kind, cur.Target.ID, deadlineNs(cur.Deadline), nullString(cur.ClientToken), w.s.node, cur.CreatedAt.UnixNano(), rec)
	} else {
		w.queue("UPDATE command_executions SET deadline_ns = $2, record = $3 WHERE execution_id = $1",
			cur.ExecutionID, deadlineNs(cur.Deadline), rec)
	}
	w.writes++
	return nil
}

// DeleteCommandExecution removes an execution.
func (w *wtx) DeleteCommandExecution(x *store.CommandExecution) error {
	w.queue("DELETE FROM command_executions WHERE execution_id = $1", x.ExecutionID)
	w.writes++
	return nil
}

// OtherNodesCommandExecutions lists the executions other nodes created
// since since (by their creation time).
func (b backend) OtherNodesCommandExecutions(ctx context.Context, since time.Time) ([]*store.CommandExecution, error) {
	var out []*store.CommandExecution
	err := b.s.view(ctx, "command feed", func(w *wtx) error {
		out = nil
		rows, err := w.query(`SELECT record FROM command_executions WHERE created_ns >= $1 AND node <> $2 ORDER BY created_ns LIMIT 1024`,
			since.UnixNano(), b.s.node)
		if err != nil {
			return err
		}
		recs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return err
		}
		for _, rec := range recs {
			x, err := decode[store.CommandExecution](rec, "command execution")
			if err != nil {
				return err
			}
			out = append(out, x)
		}
		return nil
	})
	return out, err
}
