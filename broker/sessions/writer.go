package sessions

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// The writer sends every change of session state to the store from one
// goroutine, in the order the changes were made. It takes whatever has
// queued up while the store was busy with the previous write and sends it
// as one WriteSessions, which the Badger store commits together with the
// jobs operations waiting at that moment: a PUBACK that waits for its
// message waits for one group commit, shared with everything else. Changes
// that an MQTT packet waits for and changes nobody waits for go through the
// same queue, so a later change never overtakes an earlier one (a message
// acknowledged right after it was stored is deleted after it was written).

const (
	maxBatchOps  = 2048    // operations in one WriteSessions at most
	maxBatchSize = 4 << 20 // bytes of messages in one WriteSessions at most
)

// errStopped answers writes made after the hook stopped.
var errStopped = errors.New("the session store writer has stopped")

type writeReq struct {
	ops  []store.SessionOp
	done chan error // nil: nobody waits
}

// writer's queue has no bound, so that queueing never blocks: the hook
// queues while it holds a session's lock, to keep the session's writes in
// the order of its changes. What waits for a write (a PUBACK, a SUBACK)
// holds the producers back.
type writer struct {
	st    store.SessionStore
	log   *slog.Logger
	stats *Stats

	mu     sync.Mutex
	queue  []*writeReq
	closed bool
	wake   chan struct{}
	done   chan struct{}

	failedAt time.Time // last failure logged; writer goroutine only
	failures int       // failures since then
}

func (w *writer) init(st store.SessionStore, log *slog.Logger, stats *Stats) {
	w.st, w.log, w.stats = st, log, stats
	w.wake = make(chan struct{}, 1)
	w.done = make(chan struct{})
}

// send queues a request; it reports false once the writer has stopped.
func (w *writer) send(r *writeReq) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.queue = append(w.queue, r)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// async queues ops; nobody waits for them.
func (w *writer) async(ops ...store.SessionOp) {
	if len(ops) == 0 {
		return
	}
	if !w.send(&writeReq{ops: ops}) {
		w.stats.WriteErrors.Add(1)
		w.log.Warn("session state changed after the broker stopped; not stored", "operations", len(ops))
	}
}

// sync queues ops and waits until they are stored.
func (w *writer) sync(ctx context.Context, ops ...store.SessionOp) error {
	return w.wait(ctx, w.queueReq(ops...))
}

// queueReq queues ops for a later wait; nil once the writer has stopped.
func (w *writer) queueReq(ops ...store.SessionOp) *writeReq {
	r := &writeReq{ops: ops, done: make(chan error, 1)}
	if !w.send(r) {
		return nil
	}
	return r
}

// wait waits until the request queueReq returned is stored.
func (w *writer) wait(ctx context.Context, r *writeReq) error {
	if r == nil {
		return errStopped
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush waits until everything queued before it is stored.
func (w *writer) flush(ctx context.Context) error { return w.sync(ctx) }

// close stops taking requests and waits until run has written what was
// queued.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}

// take removes the next batch from the queue.
func (w *writer) take(batch []*writeReq) ([]*writeReq, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ops, size := 0, 0, 0
	for n < len(w.queue) && ops < maxBatchOps && size < maxBatchSize {
		ops += len(w.queue[n].ops)
		size += opsSize(w.queue[n].ops)
		n++
	}
	batch = append(batch[:0], w.queue[:n]...)
	clear(w.queue[:n])
	w.queue = w.queue[n:]
	if len(w.queue) == 0 {
		w.queue = nil
	}
	return batch, w.closed
}

func (w *writer) run() {
	defer close(w.done)
	var batch []*writeReq
	var ops []store.SessionOp
	for {
		var closed bool
		batch, closed = w.take(batch)
		if len(batch) == 0 {
			if closed {
				return
			}
			<-w.wake
			continue
		}
		ops = ops[:0]
		for _, r := range batch {
			ops = append(ops, r.ops...)
		}
		err := w.write(ops)
		for _, r := range batch {
			if r.done != nil {
				r.done <- err
			}
		}
		clear(ops)
	}
}

func (w *writer) write(ops []store.SessionOp) error {
	if len(ops) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := w.st.WriteSessions(ctx, ops)
	if err == nil {
		return nil
	}
	w.stats.WriteErrors.Add(1)
	// Log the first failure, then at most one line a minute with how many
	// followed.
	w.failures++
	if now := time.Now(); now.Sub(w.failedAt) >= time.Minute {
		w.log.Error("writing session state failed", "error", err, "operations", len(ops), "failures", w.failures)
		w.failedAt, w.failures = now, 0
	}
	return err
}

func opsSize(ops []store.SessionOp) int {
	n := 0
	for _, op := range ops {
		if op.Message != nil {
			n += len(op.Message.Data)
		}
		if op.Retained != nil {
			n += len(op.Retained.Data)
		}
	}
	return n
}
