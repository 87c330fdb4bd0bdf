package badger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/engine"
)

// AWS IoT commands live beside the jobs, written through the same
// committer. Command ids, execution ids, thing names and client tokens
// never hold 0x00; client IDs are MQTT strings, which never do either.
//
//	c<command>                         command record (JSON)
//	y<execution>                       command execution record (JSON)
//	Y<command>0<seq:8>                 executions of a command, by creation
//	Z<kind>0<target>0<seq:8>           executions of a target, by creation
//	W<deadline:8><execution>           armed execution timers, by deadline
//	K<clientToken>                     execution a StartCommandExecution token created
const (
	prefixCommand       = 'c'
	prefixCmdExec       = 'y'
	prefixCmdExecByCmd  = 'Y'
	prefixCmdExecByDev  = 'Z'
	prefixCmdTimer      = 'W'
	prefixCmdToken      = 'K'
	commandTimerKeyHead = 1 + 8
)

var (
	_ engine.CommandTx      = (*wtx)(nil)
	_ engine.CommandReader  = (*rtx)(nil)
	_ engine.CommandBackend = backend{}
	_ store.CommandStore    = (*Store)(nil)
)

func commandKey(id string) []byte { return key(prefixCommand, id) }
func cmdExecKey(id string) []byte { return key(prefixCmdExec, id) }
func cmdTokenKey(t string) []byte { return key(prefixCmdToken, t) }

func cmdByCommandPrefix(cmd string) []byte { return append(key(prefixCmdExecByCmd, cmd), 0) }

func cmdByTargetPrefix(t store.CommandTarget) []byte {
	return append(key(prefixCmdExecByDev, t.Kind, t.ID), 0)
}

func seqKey(prefix []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(prefix), seq)
}

func cmdTimerKey(deadline time.Time, id string) []byte {
	b := binary.BigEndian.AppendUint64([]byte{prefixCmdTimer}, uint64(deadline.UnixNano()))
	return append(b, id...)
}

// CommandUpdate runs fn in the committer.
func (b backend) CommandUpdate(ctx context.Context, _ string, fn func(tx engine.CommandTx) error) error {
	return b.s.submit(ctx, func(w *wtx) error { return fn(w) })
}

// CommandView runs fn in a Badger read transaction.
func (b backend) CommandView(ctx context.Context, _ string, fn func(r engine.CommandReader) error) error {
	return b.s.view(ctx, func(r *rtx) error { return fn(r) })
}

// DueCommandTimers reads the timer index.
func (b backend) DueCommandTimers(ctx context.Context, now time.Time, limit int) ([]engine.CommandTimer, time.Time, error) {
	var due []engine.CommandTimer
	var next time.Time
	err := b.s.view(ctx, func(r *rtx) error {
		due, next = nil, time.Time{}
		return r.eachKey([]byte{prefixCmdTimer}, nil, false, func(k []byte) (bool, error) {
			if len(k) <= commandTimerKeyHead {
				return true, nil
			}
			at := time.Unix(0, int64(binary.BigEndian.Uint64(k[1:commandTimerKeyHead])))
			if at.After(now) {
				next = at
				return false, nil
			}
			due = append(due, engine.CommandTimer{ExecutionID: string(k[commandTimerKeyHead:]), Deadline: at})
			return len(due) < limit, nil
		})
	})
	return due, next, err
}

// Command reads a command.
func (r *rtx) Command(id string) (*store.Command, error) {
	var c store.Command
	ok, err := r.getOptJSON(commandKey(id), &c)
	if err != nil || !ok {
		return nil, err
	}
	return &c, nil
}

// EachCommand walks the commands by id.
func (r *rtx) EachCommand(fn func(*store.Command) (bool, error)) error {
	return r.each([]byte{prefixCommand}, nil, false, func(k, v []byte) (bool, error) {
		var c store.Command
		if err := json.Unmarshal(v, &c); err != nil {
			return false, fmt.Errorf("decode command %q: %w", k[1:], err)
		}
		return fn(&c)
	})
}

// CommandExecution reads an execution (the committer is the only writer:
// there is nothing to lock).
func (r *rtx) CommandExecution(id string, _ bool) (*store.CommandExecution, error) {
	var x store.CommandExecution
	ok, err := r.getOptJSON(cmdExecKey(id), &x)
	if err != nil || !ok {
		return nil, err
	}
	return &x, nil
}

// EachCommandExecution walks an index of executions by creation.
func (r *rtx) EachCommandExecution(cmd string, target *store.CommandTarget, after uint64, desc bool, fn func(*store.CommandExecution) (bool, error)) error {
	prefix := cmdByCommandPrefix(cmd)
	if target != nil {
		prefix = cmdByTargetPrefix(*target)
	}
	var start []byte
	switch {
	case after > 0 && desc:
		if after == 1 {
			return nil
		}
		start = seqKey(prefix, after-1)
	case after > 0:
		start = seqKey(prefix, after+1)
	}
	return r.each(prefix, start, desc, func(_, v []byte) (bool, error) {
		x, err := r.CommandExecution(string(v), false)
		if err != nil || x == nil {
			return err == nil, err
		}
		return fn(x)
	})
}

// CommandToken reads the execution a client token created.
func (r *rtx) CommandToken(token string) (string, error) {
	v, err := r.get(cmdTokenKey(token))
	if errors.Is(err, errMissing) {
		return "", nil
	}
	return string(v), err
}

// PutCommand writes a command.
func (w *wtx) PutCommand(_, cur *store.Command) error {
	return w.setJSON(commandKey(cur.CommandID), cur)
}

// DeleteCommand removes a command.
func (w *wtx) DeleteCommand(id string) error { return w.del(commandKey(id)) }

// PutCommandExecution writes an execution and its index entries.
func (w *wtx) PutCommandExecution(old, cur *store.CommandExecution) error {
	if old == nil {
		id := []byte(cur.ExecutionID)
		if err := w.set(seqKey(cmdByCommandPrefix(cur.CommandID), cur.Seq), id); err != nil {
			return err
		}
		if err := w.set(seqKey(cmdByTargetPrefix(cur.Target), cur.Seq), id); err != nil {
			return err
		}
		if cur.ClientToken != "" {
			if err := w.set(cmdTokenKey(cur.ClientToken), id); err != nil {
				return err
			}
		}
	}
	if old != nil && !old.Deadline.IsZero() && !old.Deadline.Equal(cur.Deadline) {
		if err := w.del(cmdTimerKey(old.Deadline, old.ExecutionID)); err != nil {
			return err
		}
	}
	if !cur.Deadline.IsZero() && (old == nil || !old.Deadline.Equal(cur.Deadline)) {
		if err := w.set(cmdTimerKey(cur.Deadline, cur.ExecutionID), nil); err != nil {
			return err
		}
	}
	return w.setJSON(cmdExecKey(cur.ExecutionID), cur)
}

// DeleteCommandExecution removes an execution and its index entries.
func (w *wtx) DeleteCommandExecution(x *store.CommandExecution) error {
	keys := [][]byte{cmdExecKey(x.ExecutionID), seqKey(cmdByCommandPrefix(x.CommandID), x.Seq), seqKey(cmdByTargetPrefix(x.Target), x.Seq)}
	if x.ClientToken != "" {
		keys = append(keys, cmdTokenKey(x.ClientToken))
	}
	if !x.Deadline.IsZero() {
		keys = append(keys, cmdTimerKey(x.Deadline, x.ExecutionID))
	}
	for _, k := range keys {
		if err := w.del(k); err != nil {
			return err
		}
	}
	return nil
}
