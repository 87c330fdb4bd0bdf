package engine

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// AWS IoT commands run beside the jobs model, over records of their own: a
// backend that implements CommandBackend gives the engine (and so its
// Store) the operations of store.CommandStore. Commands share nothing with
// jobs but the backend's transactions, sequence numbers and commit path.

// CommandBackend is what a backend gives the engine for commands.
type CommandBackend interface {
	// CommandUpdate runs fn in one write transaction and commits it, as
	// Backend.Update does (fn may run more than once; a *store.Error is a
	// rejection and what fn wrote before it is kept).
	CommandUpdate(ctx context.Context, op string, fn func(tx CommandTx) error) error
	// CommandView runs fn in a read-only transaction.
	CommandView(ctx context.Context, op string, fn func(r CommandReader) error) error
	// DueCommandTimers returns up to limit armed execution timers whose
	// deadline is not after now, earliest first, and the earliest
	// deadline after now (zero when none is armed).
	DueCommandTimers(ctx context.Context, now time.Time, limit int) ([]CommandTimer, time.Time, error)
}

// CommandFeed is implemented by backends that several broker nodes share:
// a node finds there the executions the other nodes started, to send
// their requests to the devices connected to it.
type CommandFeed interface {
	// OtherNodesCommandExecutions lists the executions other nodes
	// created at or after since, oldest first.
	OtherNodesCommandExecutions(ctx context.Context, since time.Time) ([]*store.CommandExecution, error)
}

// commandFeedWindow is how far back a node looks for executions other
// nodes started: a commit that takes longer than this to become visible
// is not delivered by the other nodes.
const commandFeedWindow = 30 * time.Second

// CommandTimer is an entry of the command timer index: an execution that
// times out at Deadline unless it changed since.
type CommandTimer struct {
	ExecutionID string
	Deadline    time.Time
}

// CommandReader reads command records; missing records are nil.
type CommandReader interface {
	// Command returns a command, or nil.
	Command(id string) (*store.Command, error)
	// EachCommand calls fn for every command, in creation order, until
	// fn returns false.
	EachCommand(fn func(c *store.Command) (bool, error)) error
	// CommandExecution returns an execution, or nil; lock holds its row
	// for the rest of a write transaction (where the backend has rows).
	CommandExecution(id string, lock bool) (*store.CommandExecution, error)
	// EachCommandExecution calls fn for the executions of a command
	// (commandID set) or of a target, by Seq after the cursor after (0:
	// from the first), in descending order with desc, until fn returns
	// false.
	EachCommandExecution(commandID string, target *store.CommandTarget, after uint64, desc bool, fn func(e *store.CommandExecution) (bool, error)) error
	// CommandToken returns the execution a client token created, or "".
	CommandToken(token string) (string, error)
}

// CommandTx is one write transaction over command records.
type CommandTx interface {
	CommandReader
	// Now is the transaction's time.
	Now() time.Time
	// NextSeq hands out the next sequence number.
	NextSeq() (uint64, error)
	// PutCommand writes a command; old is its previous record, nil for a
	// new one (which fails with a retryable error if another
	// transaction inserted it meanwhile).
	PutCommand(old, cur *store.Command) error
	// DeleteCommand removes a command.
	DeleteCommand(id string) error
	// PutCommandExecution writes an execution with its index entries (by
	// command, by target, its timer when Deadline is set, its client
	// token); old is its previous state, nil for a new one.
	PutCommandExecution(old, cur *store.CommandExecution) error
	// DeleteCommandExecution removes an execution with its index entries.
	DeleteCommandExecution(e *store.CommandExecution) error
	// AfterCommit runs f once the transaction has committed.
	AfterCommit(f func())
}

// commands is the engine's state for commands.
type commands struct {
	b       CommandBackend
	handler store.Handoff[store.CommandChange]
	wake    chan struct{}
	stop    context.CancelFunc
	done    sync.WaitGroup
	fired   atomic.Int64
	// seen holds the executions of other nodes this node has delivered,
	// until they fall out of the feed's window; timer loop only.
	seen map[string]time.Time
}

var errNoCommands = store.Errorf(store.ErrInvalidRequest, "this store does not support commands")

func (e *Engine) cmdBackend() (CommandBackend, error) {
	if e.cmd == nil || e.cmd.b == nil {
		return nil, errNoCommands
	}
	return e.cmd.b, nil
}

// SetCommandHandler installs the function that receives every committed
// change of a command execution. Changes committed before the first one is
// installed (timeouts that came due while the store was closed) are handed
// to it first.
func (e *Engine) SetCommandHandler(h store.CommandHandler) {
	if n := e.cmd.handler.Set(h); n > 0 {
		e.log.Warn("command changes committed before a receiver was installed were dropped", "op", "set command handler", "dropped", n)
	}
}

// CommandTimersFired counts the executions the timer has timed out.
func (e *Engine) CommandTimersFired() int64 { return e.cmd.fired.Load() }

// commandUpdate runs fn in a write transaction and hands the changes it
// emitted to the handler once the transaction has committed.
func (e *Engine) commandUpdate(ctx context.Context, op string, fn func(tx CommandTx, emit func(store.CommandChange)) error) error {
	b, err := e.cmdBackend()
	if err != nil {
		return err
	}
	return b.CommandUpdate(ctx, op, func(tx CommandTx) error {
		var changes []store.CommandChange
		armed := false
		emit := func(c store.CommandChange) {
			c.At = tx.Now()
			changes = append(changes, c)
			if c.Created {
				armed = true
			}
		}
		err := fn(tx, emit)
		if err != nil && !IsRejection(err) {
			return err
		}
		if len(changes) > 0 {
			tx.AfterCommit(func() {
				e.cmd.handler.Deliver(changes)
				if armed {
					e.WakeCommandTimers()
				}
			})
		}
		return err
	})
}

func (e *Engine) commandView(ctx context.Context, op string, fn func(r CommandReader) error) error {
	b, err := e.cmdBackend()
	if err != nil {
		return err
	}
	return b.CommandView(ctx, op, fn)
}

// CreateCommand stores a new command.
func (e *Engine) CreateCommand(ctx context.Context, c *store.Command) (*store.Command, error) {
	var out *store.Command
	err := e.commandUpdate(ctx, "CreateCommand", func(tx CommandTx, _ func(store.CommandChange)) error {
		old, err := tx.Command(c.CommandID)
		if err != nil {
			return err
		}
		if old != nil && !old.Gone(tx.Now()) {
			return store.Errorf(store.ErrConflict, "Command %s already exists.", c.CommandID)
		}
		seq, err := tx.NextSeq()
		if err != nil {
			return err
		}
		n := *c
		n.CreatedAt, n.LastUpdatedAt, n.Seq = tx.Now(), tx.Now(), seq
		n.Deprecated, n.DeprecatedAt, n.PendingDeletion, n.DeleteAt = false, time.Time{}, false, time.Time{}
		if err := tx.PutCommand(old, &n); err != nil {
			return err
		}
		out = &n
		return nil
	})
	return out, err
}

// liveCommand reads a command that has not been deleted.
func liveCommand(r CommandReader, id string, now time.Time) (*store.Command, error) {
	c, err := r.Command(id)
	if err != nil {
		return nil, err
	}
	if c == nil || c.Gone(now) {
		return nil, store.ErrCommandNotFound(id)
	}
	return c, nil
}

// UpdateCommand changes a command's display name, description and
// deprecation. A deprecated command only takes its restoration (with or
// without other changes): anything else is a ConflictException.
func (e *Engine) UpdateCommand(ctx context.Context, in *store.UpdateCommandInput) (*store.Command, error) {
	var out *store.Command
	err := e.commandUpdate(ctx, "UpdateCommand", func(tx CommandTx, _ func(store.CommandChange)) error {
		old, err := liveCommand(tx, in.CommandID, tx.Now())
		if err != nil {
			return err
		}
		if old.PendingDeletion {
			return store.Errorf(store.ErrConflict, "Command %s is pending deletion and cannot be updated.", in.CommandID)
		}
		restoring := in.Deprecated != nil && !*in.Deprecated
		if old.Deprecated && !restoring && (in.DisplayName != nil || in.Description != nil) {
			return store.Errorf(store.ErrConflict, "Command %s is deprecated; restore it before editing it.", in.CommandID)
		}
		n := *old
		if in.DisplayName != nil {
			n.DisplayName = *in.DisplayName
		}
		if in.Description != nil {
			n.Description = *in.Description
		}
		if in.Deprecated != nil && *in.Deprecated != old.Deprecated {
			n.Deprecated = *in.Deprecated
			n.DeprecatedAt = time.Time{}
			if n.Deprecated {
				n.DeprecatedAt = tx.Now()
			}
		}
		n.LastUpdatedAt = tx.Now()
		if err := tx.PutCommand(old, &n); err != nil {
			return err
		}
		out = &n
		return nil
	})
	return out, err
}

// GetCommand returns a command, pending deletion or not.
func (e *Engine) GetCommand(ctx context.Context, id string) (*store.Command, error) {
	var out *store.Command
	err := e.commandView(ctx, "GetCommand", func(r CommandReader) error {
		var err error
		out, err = liveCommand(r, id, e.clock.Now())
		return err
	})
	return out, err
}

// pageToken encodes a position (a sequence number) as a nextToken.
func pageToken(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString(strconv.AppendUint(nil, seq, 10))
}

func parsePageToken(tok string) (uint64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		var n uint64
		if n, err = strconv.ParseUint(string(b), 10, 64); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, store.Errorf(store.ErrInvalidRequest, "nextToken is not valid")
}

// pageBounds checks a list request's maxResults (0: the default) and
// nextToken, and returns the page size and the position to list after.
func pageBounds(maxResults int, token string) (int, uint64, error) {
	switch {
	case maxResults == 0:
		maxResults = store.DefaultCommandListResults
	case maxResults < 1 || maxResults > store.MaxCommandListResults:
		return 0, 0, store.Errorf(store.ErrInvalidRequest, "maxResults must be between 1 and %d", store.MaxCommandListResults)
	}
	after, err := parsePageToken(token)
	return maxResults, after, err
}

// ListCommands pages the commands by creation time, newest first unless
// Ascending. Commands pending deletion are listed (with pendingDeletion)
// until their deletion.
func (e *Engine) ListCommands(ctx context.Context, in *store.ListCommandsInput) (*store.CommandsPage, error) {
	limit, after, err := pageBounds(in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	var all []*store.Command
	err = e.commandView(ctx, "ListCommands", func(r CommandReader) error {
		all = all[:0]
		return r.EachCommand(func(c *store.Command) (bool, error) {
			if c.Gone(now) || in.Namespace != "" && c.Namespace != in.Namespace {
				return true, nil
			}
			if in.CommandParameterName != "" && !slices.ContainsFunc(c.MandatoryParameters, func(p store.CommandParameter) bool {
				return p.Name == in.CommandParameterName
			}) {
				return true, nil
			}
			all = append(all, c)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b *store.Command) int {
		if in.Ascending {
			return cmpSeq(a.Seq, b.Seq)
		}
		return cmpSeq(b.Seq, a.Seq)
	})
	page := &store.CommandsPage{}
	for _, c := range all {
		if after != 0 && (in.Ascending && c.Seq <= after || !in.Ascending && c.Seq >= after) {
			continue
		}
		if len(page.Commands) == limit {
			page.NextToken = pageToken(page.Commands[limit-1].Seq)
			break
		}
		page.Commands = append(page.Commands, c)
	}
	return page, nil
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DeleteCommand deletes a command that has been deprecated for longer
// than store.CommandDeletionGrace at once, and schedules the deletion of
// any other (pendingDeletion, removed after the grace). Deleting a command
// that does not exist succeeds and deletes nothing.
func (e *Engine) DeleteCommand(ctx context.Context, id string) (bool, error) {
	var now bool
	err := e.commandUpdate(ctx, "DeleteCommand", func(tx CommandTx, _ func(store.CommandChange)) error {
		now = true
		c, err := tx.Command(id)
		if err != nil || c == nil {
			return err
		}
		if c.Gone(tx.Now()) || c.Deprecated && !c.DeprecatedAt.After(tx.Now().Add(-store.CommandDeletionGrace)) {
			return tx.DeleteCommand(id)
		}
		now = false
		if c.PendingDeletion {
			return nil
		}
		n := *c
		n.PendingDeletion, n.DeleteAt, n.LastUpdatedAt = true, tx.Now().Add(store.CommandDeletionGrace), tx.Now()
		return tx.PutCommand(c, &n)
	})
	return now, err
}

// StartCommandExecution creates an execution of a command for a target.
// A request with the client token of an earlier one returns that
// execution when it asks for the same thing, and is a ConflictException
// when it does not.
func (e *Engine) StartCommandExecution(ctx context.Context, in *store.StartCommandExecutionInput) (*store.CommandExecution, error) {
	if err := store.ValidateStartCommandExecution(in); err != nil {
		return nil, err
	}
	if !store.ValidCommandID(in.ExecutionID) {
		return nil, store.Errorf(store.ErrInvalidRequest, "executionId %q is not valid", in.ExecutionID)
	}
	hash := store.CommandRequestHash(in)
	var out *store.CommandExecution
	err := e.commandUpdate(ctx, "StartCommandExecution", func(tx CommandTx, emit func(store.CommandChange)) error {
		out = nil
		now := tx.Now()
		if in.ClientToken != "" {
			id, err := tx.CommandToken(in.ClientToken)
			if err != nil {
				return err
			}
			if id != "" {
				prev, err := tx.CommandExecution(id, false)
				if err != nil {
					return err
				}
				if prev != nil {
					if prev.RequestHash != hash {
						return store.Errorf(store.ErrConflict, "clientToken %s was used by a different request.", in.ClientToken)
					}
					out = prev
					return nil
				}
			}
		}
		c, err := liveCommand(tx, in.CommandID, now)
		if err != nil {
			return err
		}
		if c.PendingDeletion {
			return store.Errorf(store.ErrInvalidRequest, "Command %s is pending deletion and cannot be executed.", in.CommandID)
		}
		if c.Deprecated {
			return store.Errorf(store.ErrInvalidRequest, "Command %s is deprecated and cannot be executed.", in.CommandID)
		}
		params, err := store.ResolveCommandParameters(c, in.Parameters)
		if err != nil {
			return err
		}
		deadline := now.Add(time.Duration(in.ExecutionTimeoutSeconds) * time.Second)
		req, err := store.RenderCommandRequest(c, params, in.ExecutionTimeoutSeconds, deadline)
		if err != nil {
			return err
		}
		seq, err := tx.NextSeq()
		if err != nil {
			return err
		}
		x := &store.CommandExecution{
			ExecutionID: in.ExecutionID, CommandID: c.CommandID, Target: in.Target, Status: store.CommandCreated,
			Parameters: params, ExecutionTimeoutSeconds: in.ExecutionTimeoutSeconds,
			CreatedAt: now, LastUpdatedAt: now, StartedAt: now, TimeToLive: now.Add(store.CommandExecutionRetention),
			Deadline: deadline, ClientToken: in.ClientToken, RequestHash: hash, Seq: seq,
		}
		if err := tx.PutCommandExecution(nil, x); err != nil {
			return err
		}
		emit(store.CommandChange{Execution: x, Created: true, Request: req, StatusChanged: true})
		out = x
		return nil
	})
	return out, err
}

// GetCommandExecution returns one execution of a target.
func (e *Engine) GetCommandExecution(ctx context.Context, id string, target store.CommandTarget) (*store.CommandExecution, error) {
	var out *store.CommandExecution
	err := e.commandView(ctx, "GetCommandExecution", func(r CommandReader) error {
		x, err := r.CommandExecution(id, false)
		if err != nil {
			return err
		}
		if x == nil || x.Target != target {
			return store.ErrCommandExecutionNotFound(id, target)
		}
		out = x
		return nil
	})
	return out, err
}

// ListCommandExecutions pages the executions of a command or a target,
// by creation (startedAt), newest first unless Ascending.
func (e *Engine) ListCommandExecutions(ctx context.Context, in *store.ListCommandExecutionsInput) (*store.CommandExecutionsPage, error) {
	limit, after, err := pageBounds(in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	if (in.CommandID == "") == (in.Target == nil) {
		return nil, store.Errorf(store.ErrInvalidRequest, "give exactly one of commandArn and targetArn")
	}
	in2 := *in
	page := &store.CommandExecutionsPage{}
	err = e.commandView(ctx, "ListCommandExecutions", func(r CommandReader) error {
		page.Executions, page.NextToken = nil, ""
		namespaces := map[string]string{}
		return r.EachCommandExecution(in2.CommandID, in2.Target, after, !in2.Ascending, func(x *store.CommandExecution) (bool, error) {
			if !matchesExecution(&in2, x) {
				return true, nil
			}
			if in2.Namespace != "" {
				ns, ok := namespaces[x.CommandID]
				if !ok {
					c, err := r.Command(x.CommandID)
					if err != nil {
						return false, err
					}
					ns = store.CommandNamespaceIoT
					if c != nil {
						ns = c.Namespace
					}
					namespaces[x.CommandID] = ns
				}
				if ns != in2.Namespace {
					return true, nil
				}
			}
			if len(page.Executions) == limit {
				page.NextToken = pageToken(page.Executions[limit-1].Seq)
				return false, nil
			}
			page.Executions = append(page.Executions, x)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

func matchesExecution(in *store.ListCommandExecutionsInput, x *store.CommandExecution) bool {
	if in.Status != "" && x.Status != in.Status {
		return false
	}
	if !in.StartedAfter.IsZero() && x.StartedAt.Before(in.StartedAfter) ||
		!in.StartedBefore.IsZero() && !x.StartedAt.Before(in.StartedBefore) {
		return false
	}
	if !in.CompletedAfter.IsZero() || !in.CompletedBefore.IsZero() {
		if x.CompletedAt.IsZero() {
			return false
		}
		if !in.CompletedAfter.IsZero() && x.CompletedAt.Before(in.CompletedAfter) ||
			!in.CompletedBefore.IsZero() && !x.CompletedAt.Before(in.CompletedBefore) {
			return false
		}
	}
	return true
}

// DeleteCommandExecution deletes an execution that is no longer waiting
// for its device: a final status, or a timeout. An execution still
// CREATED or IN_PROGRESS is a ConflictException; one that does not exist
// is deleted already.
func (e *Engine) DeleteCommandExecution(ctx context.Context, id string, target store.CommandTarget) error {
	return e.commandUpdate(ctx, "DeleteCommandExecution", func(tx CommandTx, _ func(store.CommandChange)) error {
		x, err := tx.CommandExecution(id, true)
		if err != nil || x == nil || x.Target != target {
			return err
		}
		if x.Status == store.CommandCreated || x.Status == store.CommandInProgress {
			return store.Errorf(store.ErrConflict, "Command execution %s is %s; only a finished execution can be deleted.", id, x.Status)
		}
		return tx.DeleteCommandExecution(x)
	})
}

// UpdateCommandExecution applies a device's status report.
func (e *Engine) UpdateCommandExecution(ctx context.Context, in *store.UpdateCommandExecutionInput) (*store.CommandExecution, error) {
	if err := store.ValidateCommandUpdate(in); err != nil {
		return nil, err
	}
	var out *store.CommandExecution
	err := e.commandUpdate(ctx, "UpdateCommandExecution", func(tx CommandTx, emit func(store.CommandChange)) error {
		out = nil
		x, err := tx.CommandExecution(in.ExecutionID, true)
		if err != nil {
			return err
		}
		if x == nil || x.Target != in.Target {
			return store.ErrCommandExecutionNotFound(in.ExecutionID, in.Target)
		}
		n, err := store.ApplyCommandUpdate(x, in, tx.Now())
		if err != nil {
			return err
		}
		if err := tx.PutCommandExecution(x, n); err != nil {
			return err
		}
		emit(store.CommandChange{Execution: n, StatusChanged: true})
		out = n
		return nil
	})
	return out, err
}

// fireCommandTimer times out the execution of a due timer, if its
// deadline has not moved. Read under the row's lock, so that of several
// nodes sweeping the same timer exactly one times the execution out.
func (e *Engine) fireCommandTimer(ctx context.Context, tm CommandTimer) (bool, error) {
	// The operation may still run after ctx ends (at Close): what it
	// reports goes through an atomic.
	var fired atomic.Bool
	err := e.commandUpdate(ctx, "command timeout", func(tx CommandTx, emit func(store.CommandChange)) error {
		fired.Store(false)
		x, err := tx.CommandExecution(tm.ExecutionID, true)
		if err != nil || x == nil || !x.Deadline.Equal(tm.Deadline) {
			return err
		}
		n := store.TimeOutCommand(x, tx.Now())
		if n == nil {
			n = x.Clone()
			n.Deadline = time.Time{}
			return tx.PutCommandExecution(x, n)
		}
		if err := tx.PutCommandExecution(x, n); err != nil {
			return err
		}
		emit(store.CommandChange{Execution: n, StatusChanged: true, TimedOut: true})
		fired.Store(true)
		return nil
	})
	if err != nil {
		return false, err
	}
	if fired.Load() {
		e.cmd.fired.Add(1)
	}
	return fired.Load(), nil
}

// WakeCommandTimers makes the timer loop look at the index again.
func (e *Engine) WakeCommandTimers() {
	select {
	case e.cmd.wake <- struct{}{}:
	default:
	}
}

// commandTimerPoll bounds how long the timer loop sleeps, so that timers
// armed by other nodes sharing the database are seen.
const commandTimerPoll = time.Second

// StartCommandTimers starts the loop that times executions out. A
// backend calls it once it is open, and StopCommandTimers before it
// closes.
func (e *Engine) StartCommandTimers() {
	if e.cmd.b == nil || e.cmd.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cmd.stop = cancel
	e.cmd.done.Add(1)
	go func() {
		defer e.cmd.done.Done()
		e.commandTimerLoop(ctx)
	}()
}

// StopCommandTimers stops the timer loop and waits for it.
func (e *Engine) StopCommandTimers() {
	if e.cmd.stop != nil {
		e.cmd.stop()
		e.cmd.done.Wait()
	}
}

func (e *Engine) commandTimerLoop(ctx context.Context) {
	const batch = 256
	started := e.clock.Now()
	var polled time.Time // wall time of the last feed read
	for {
		// The feed is read at most every half poll, however often
		// this node's own commits wake the loop.
		if time.Since(polled) >= commandTimerPoll/2 {
			polled = time.Now()
			e.pollCommandFeed(ctx, started)
		}
		due, next, err := e.cmd.b.DueCommandTimers(ctx, e.clock.Now(), batch)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("read command timers", "error", err)
		}
		for _, tm := range due {
			if _, err := e.fireCommandTimer(ctx, tm); err != nil {
				if ctx.Err() != nil {
					return
				}
				if !errors.Is(err, store.ErrUnavailable) {
					e.log.Warn("command timeout", "execution", tm.ExecutionID, "error", err)
				}
			}
		}
		if len(due) == batch {
			continue
		}
		poll := time.NewTimer(commandTimerPoll)
		var at <-chan time.Time
		var timer interface{ Stop() bool }
		if !next.IsZero() && err == nil {
			t := e.clock.TimerAt(next)
			at, timer = t.C(), t
		}
		select {
		case <-ctx.Done():
		case <-e.cmd.wake:
		case <-poll.C:
		case <-at:
		}
		poll.Stop()
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// pollCommandFeed hands the handler, as new, the executions other nodes
// started since the node did (within commandFeedWindow) that are still
// waiting for their device: the hook of this node sends their requests to
// its own subscribers, as the starting node does to its own.
func (e *Engine) pollCommandFeed(ctx context.Context, started time.Time) {
	feed, ok := e.cmd.b.(CommandFeed)
	if !ok {
		return
	}
	now := e.clock.Now()
	since := now.Add(-commandFeedWindow)
	if since.Before(started) {
		since = started
	}
	xs, err := feed.OtherNodesCommandExecutions(ctx, since)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, store.ErrUnavailable) {
			e.log.Warn("read other nodes' command executions", "error", err)
		}
		return
	}
	if e.cmd.seen == nil {
		e.cmd.seen = map[string]time.Time{}
	}
	for id, at := range e.cmd.seen {
		if at.Before(since) {
			delete(e.cmd.seen, id)
		}
	}
	var changes []store.CommandChange
	for _, x := range xs {
		if _, done := e.cmd.seen[x.ExecutionID]; done {
			continue
		}
		e.cmd.seen[x.ExecutionID] = x.CreatedAt
		if x.Status != store.CommandCreated || !x.Deadline.After(now) {
			continue
		}
		var c *store.Command
		if err := e.commandView(ctx, "command feed", func(r CommandReader) error {
			var err error
			c, err = r.Command(x.CommandID)
			return err
		}); err != nil || c == nil {
			continue
		}
		req, err := store.RenderCommandRequest(c, x.Parameters, x.ExecutionTimeoutSeconds, x.Deadline)
		if err != nil {
			continue
		}
		changes = append(changes, store.CommandChange{Execution: x, Created: true, Request: req, At: x.CreatedAt})
	}
	e.cmd.handler.Deliver(changes)
}
