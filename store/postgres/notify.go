package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
)

// Cross-node delivery.
//
// A transaction that produces notifications (store.Change) sends, inside
// itself, pg_notify on the store's channel with the names of the things
// concerned; PostgreSQL delivers it to the listening nodes when, and only
// if, the transaction commits. Everything here is per queue: a thing has
// one for jobs without a namespace and one per job namespace it has had
// (a queueKey), each with its own revisions. A notification is a hint,
// never the truth: the node that receives it re-reads the head of the
// queue and its revisions, compares them with what it last delivered for
// the queue (its baseline: the rev, the members_rev, which moves whenever
// an execution joins or leaves the queue, and the head), and hands the
// handler a Change only when the members (notify) or the head
// (notify-next) differ. A read older than the baseline is ignored, so
// hints may arrive late, twice, or out of order. A queue without a
// baseline (nothing delivered for it yet) takes the notify and
// notify-next flags the origin sent with the hint.
//
// Baselines are kept for the queues of the things of the node's Interest
// only: every change this node commits for such a queue moves its
// baseline, every remote change it delivers too, and a periodic sweep
// gives baselines to the things that became interesting meanwhile. After the listening
// connection drops, the node reconnects, listens again and then re-reads
// every thing of its Interest, delivering whatever changed while it was
// deaf.
//
// Event messages travel in the notification itself (they are not in any
// table): best effort. An event whose encoding exceeds what a
// notification carries (8,000 bytes, a job event of a job with very many
// targets) is not sent to the other nodes, and events committed while a
// node's listening connection is down are lost for that node.

// interestBox holds the node's store.Interest.
type interestBox struct{ store.Interest }

// SetInterest installs the node's view of which things it serves (see
// store.Shared). Without one, the store delivers only its own changes.
func (s *Store) SetInterest(i store.Interest) {
	if i == nil {
		s.interest.Store(nil)
		return
	}
	s.interest.Store(&interestBox{i})
	s.resyncMu.Lock()
	s.needSweep = true
	s.resyncMu.Unlock()
}

// queueKey names one of a thing's queues: that of jobs without a
// namespace (ns ""), or that of a job namespace.
type queueKey struct{ thing, ns string }

// String is the key as hints carry it: the thing, then "/" and the
// namespace for a namespaced queue ('/' is in neither a thing name nor a
// namespace).
func (k queueKey) String() string {
	if k.ns == "" {
		return k.thing
	}
	return k.thing + "/" + k.ns
}

func parseQueueKey(s string) queueKey {
	thing, ns, _ := strings.Cut(s, "/")
	return queueKey{thing, ns}
}

// seenState is what a node last delivered for a queue.
type seenState struct {
	rev     int64
	members int64   // members_rev
	head    headKey // the head of the queue
	// swept marks a baseline read by a sweep rather than delivered: hints
	// that arrive for it later, for revisions up to rev, name changes
	// nobody delivered, and are handed over by their flags (floor is the
	// highest such revision handled).
	swept bool
	floor int64
}

// headKey names the head of a queue ("" when it is empty).
type headKey struct {
	job string
	n   int64
}

func headOf(p *store.PendingExecution) headKey {
	if p == nil {
		return headKey{}
	}
	return headKey{p.JobID, p.ExecutionNumber}
}

// hint is one queue named in a notification, with the flags its origin
// computed.
type hint struct {
	queue        queueKey
	rev          int64 // the queue's revision after the change
	notify, next bool
	flagged      bool // the origin's flags are known
}

const (
	maxPayload  = 7800
	kindThings  = 'T'
	kindEvent   = 'E'
	kindTimers  = 'W'
	kindTasks   = 'K'
	kindConfig  = 'C'
	flagNotify  = 'n'
	flagNext    = 'x'
	flagBoth    = 'b'
	sweepPeriod = 2 * time.Second
	readChunk   = 500
)

// queueState returns the transaction's state of a delivered queue.
func (w *wtx) queueState(k queueKey) *queueState { return w.things[k.thing].queue(k.ns) }

// queueHints queues the transaction's notifications to the other nodes.
func (w *wtx) queueHints() {
	if w.s.hintBus.Load() == nil && !w.silent {
		w.silent = w.s.peers.enter()
	}
	prefix := func(kind byte) string { return string(kind) + "|" + w.s.node + "|" }
	var b strings.Builder
	send := func() {
		if b.Len() > 0 {
			w.notify(b.String())
			b.Reset()
		}
	}
	for _, k := range w.delivered {
		q := w.queueState(k)
		if !q.notify && !q.next {
			continue
		}
		name := k.String()
		if b.Len()+len(name)+24 > maxPayload {
			send()
		}
		if b.Len() == 0 {
			b.WriteString(prefix(kindThings))
		} else {
			b.WriteByte(',')
		}
		switch {
		case q.notify && q.next:
			b.WriteByte(flagBoth)
		case q.notify:
			b.WriteByte(flagNotify)
		default:
			b.WriteByte(flagNext)
		}
		b.WriteString(strconv.FormatInt(q.rev, 10))
		b.WriteByte(':')
		b.WriteString(name)
	}
	send()
	for _, c := range w.changes {
		if c.Event == nil {
			continue
		}
		enc, err := encodeEvent(c.Event)
		if err != nil || len(enc)+len(w.s.node)+3 > maxPayload {
			w.s.stats.HintsDropped.Add(1)
			w.s.log.Warn("event too large to send to the other nodes", "op", "notify", "event", c.Event.Operation, "bytes", len(enc))
			continue
		}
		w.notify(prefix(kindEvent) + string(enc))
	}
	if w.timersChanged {
		w.notify(prefix(kindTimers))
	}
	if w.tasksChanged {
		w.notify(prefix(kindTasks))
	}
	if w.configChanged {
		w.notify(prefix(kindConfig))
	}
}

// notify sends a hint to the other nodes: on the hint bus after the
// commit when there is one, else with pg_notify in the transaction (which
// PostgreSQL delivers only if it commits, but which takes a database-wide
// lock held through the commit's WAL flush), unless no other node listens
// (peers.go).
func (w *wtx) notify(payload string) {
	if w.s.hintBus.Load() != nil {
		w.hints = append(w.hints, payload)
		return
	}
	if w.silent {
		w.quiet.keep(payload)
		return
	}
	w.queue("SELECT pg_notify($1, $2)", w.s.channel, payload)
}

// sendHints hands a committed transaction's hints to the bus.
func (s *Store) sendHints(w *wtx) {
	if len(w.hints) == 0 {
		return
	}
	bus := s.hintBus.Load()
	if bus == nil {
		return
	}
	for _, h := range w.hints {
		(*bus).Publish([]byte(h))
	}
}

// SetHintBus sends the store's change hints on bus from now on, in place
// of PostgreSQL's NOTIFY (see store.HintRouter). The listening connection
// stays: hints of nodes that still notify arrive on it, and its loss is
// what tells the other nodes (SweepSessions) that this node stopped.
func (s *Store) SetHintBus(bus store.HintBus) {
	if bus == nil {
		s.hintBus.Store(nil)
		return
	}
	s.hintBus.Store(&bus)
}

// Hint acts on a hint another node sent on the hint bus.
func (s *Store) Hint(payload []byte) {
	ctx, cancel := s.loopContext()
	defer cancel()
	s.handleNotification(ctx, string(payload))
}

// Resync re-reads every thing of the Interest and has the loops look for
// work: the hint bus lost touch with the other nodes for a while.
func (s *Store) Resync() {
	s.markDirty(nil, true)
	s.wakeTimers()
	s.wakeTasks()
	ctx, cancel := s.loopContext()
	defer cancel()
	if err := s.loadEvents(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("reload event configuration", "op", "resync", "error", err)
	}
}

// deliveredThings lists the things whose delivery order the commit must
// keep: those whose queues it changed.
func (w *wtx) deliveredThings() []string {
	things := make([]string, 0, len(w.delivered))
	for _, k := range w.delivered {
		if len(things) == 0 || things[len(things)-1] != k.thing {
			things = append(things, k.thing)
		}
	}
	return things
}

// measure fixes, before the commit, the changes of the queues whose
// baselines are older than what the transaction found locked: another
// node changed them, and this node has not delivered that yet. Such a
// queue gets one change, measured from its baseline: notify when its
// members_rev moved since, notify-next when its head is another. The
// caller holds the things' stripes, so the baselines stay as measured
// until deliverLocal moves them.
func (s *Store) measure(w *wtx) error {
	ix := s.interest.Load()
	if ix == nil {
		return nil
	}
	for _, k := range w.delivered {
		q := w.queueState(k)
		prev := s.stripes[stripeOf(k.thing)].seen[k]
		if !ix.Has(k.thing) || prev == nil || prev.rev >= q.lockedRev {
			continue
		}
		c := store.Change{ThingName: k.thing, Namespace: k.ns, At: w.now, After: store.NotifyAfter(w.ctx),
			Notify: prev.members != q.membersRev, NotifyNext: prev.head != headOf(q.head)}
		kept := w.changes[:0]
		for _, old := range w.changes {
			if old.ThingName != k.thing || old.Namespace != k.ns || old.Event != nil {
				kept = append(kept, old)
			}
		}
		w.changes = kept
		if !c.Notify && !c.NotifyNext {
			continue
		}
		if c.Notify {
			list, err := w.Queue(k.thing, k.ns, nil, store.MaxPendingListed)
			if err != nil {
				return err
			}
			c.Pending = list
		}
		if h := q.head; c.NotifyNext && h != nil {
			e, err := w.Execution(k.thing, h.JobID, h.ExecutionNumber)
			if err != nil {
				return err
			}
			if c.Next = e; e != nil {
				if c.NextDocument, err = s.document(w.ctx, h.JobID, h.JobSeq); err != nil {
					return err
				}
			}
		}
		w.changes = append(w.changes, c)
	}
	return nil
}

// deliverLocal hands a committed transaction's changes to the handler and
// moves the baselines of the queues it changed. The caller holds their
// stripes.
func (s *Store) deliverLocal(w *wtx) {
	if ix := s.interest.Load(); ix != nil {
		for _, k := range w.delivered {
			if ix.Has(k.thing) {
				q := w.queueState(k)
				s.stripes[stripeOf(k.thing)].seen[k] = &seenState{rev: q.rev, members: q.membersRev, head: headOf(q.head)}
			}
		}
	}
	s.hand(w.changes)
}

// parseHints reads the queues of a notification.
func parseHints(data string) []hint {
	var out []hint
	for _, e := range strings.Split(data, ",") {
		if len(e) < 2 {
			continue
		}
		revText, name, ok := strings.Cut(e[1:], ":")
		rev, err := strconv.ParseInt(revText, 10, 64)
		if !ok || err != nil {
			continue
		}
		h := hint{queue: parseQueueKey(name), rev: rev, flagged: true}
		switch e[0] {
		case flagNotify:
			h.notify = true
		case flagNext:
			h.next = true
		case flagBoth:
			h.notify, h.next = true, true
		}
		out = append(out, h)
	}
	return out
}

// handleNotification acts on one notification from another node.
func (s *Store) handleNotification(ctx context.Context, payload string) {
	kind, rest, ok := strings.Cut(payload, "|")
	if !ok || len(kind) != 1 {
		return
	}
	origin, data, _ := strings.Cut(rest, "|")
	if origin == s.node {
		return
	}
	switch kind[0] {
	case kindThings:
		ix := s.interest.Load()
		if ix == nil {
			return
		}
		var mine []hint
		for _, h := range parseHints(data) {
			if ix.Has(h.queue.thing) {
				mine = append(mine, h)
			}
		}
		s.markDirty(mine, false)
	case kindEvent:
		ev, err := decodeEvent([]byte(data))
		if err != nil {
			s.log.Warn("undecodable event from another node", "op", "notify", "error", err)
			return
		}
		thing := ""
		if ev.Execution != nil {
			thing = ev.Execution.ThingName
		}
		s.stats.RemoteChanges.Add(1)
		s.hand([]store.Change{{ThingName: thing, Event: ev, At: ev.At}})
	case kindTimers:
		s.wakeTimers()
	case kindTasks:
		s.wakeTasks()
	case kindConfig:
		if err := s.loadEvents(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reload event configuration", "op", "notify", "error", err)
		}
	case kindResync:
		// The origin committed without notifying until it saw this node.
		s.Resync()
	}
}

// markDirty queues queues for the refresher; all asks it to re-read every
// thing of the Interest.
func (s *Store) markDirty(hints []hint, all bool) {
	if len(hints) == 0 && !all {
		return
	}
	s.resyncMu.Lock()
	if s.dirty == nil {
		s.dirty = map[queueKey]hint{}
	}
	for _, h := range hints {
		if old, ok := s.dirty[h.queue]; ok {
			h.notify, h.next = h.notify || old.notify, h.next || old.next
			h.flagged = h.flagged || old.flagged
			h.rev = max(h.rev, old.rev)
		}
		s.dirty[h.queue] = h
	}
	if all {
		s.resyncAll = true
	}
	s.resyncMu.Unlock()
	select {
	case s.dirtySig <- struct{}{}:
	default:
	}
}

// listenState is the part of Store that the listener and refresher share.
type listenState struct {
	resyncMu  sync.Mutex
	dirty     map[queueKey]hint
	resyncAll bool
	needSweep bool
	dirtySig  chan struct{}
}

// listen opens the listening connection.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.connCfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	// The node's identity, held as long as the connection: a second node
	// with the same node ID finds it taken.
	var mine bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '|' || $2))",
		lockClassNode, s.node).Scan(&mine); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	if !mine {
		conn.Close(context.Background())
		return nil, fmt.Errorf("%w: node ID %q is held by another connection to the database; give each node its own node ID",
			store.ErrDuplicateNode, s.node)
	}
	// Presence on the schema, taken after LISTEN: a node that sees it
	// notifies from then on (peers.go).
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock_shared($1, hashtext(current_schema()))", lockClassPresence); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	s.listenPID.Store(conn.PgConn().PID())
	s.listening.Store(true)
	return conn, nil
}

// listenLoop receives the other nodes' notifications, reconnecting when
// the connection drops; after each reconnection it has every thing of
// the Interest re-read and the loops look for work.
func (s *Store) listenLoop(conn *pgx.Conn) {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		if conn == nil {
			var err error
			if conn, err = s.listen(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("listen for other nodes' changes", "op", "listen", "error", err)
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
				wait = min(2*wait, 2*time.Second)
				continue
			}
			wait = 50 * time.Millisecond
			s.log.Debug("listening again", "op", "listen")
			s.markDirty(nil, true)
			s.wakeTimers()
			s.wakeTasks()
			if err := s.loadEvents(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reload event configuration", "op", "listen", "error", err)
			}
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			s.listening.Store(false)
			conn.Close(context.Background())
			conn = nil
			if ctx.Err() != nil {
				return
			}
			s.stats.ListenFailures.Add(1)
			s.log.Warn("lost the listening connection; reconnecting", "op", "listen", "error", err)
			continue
		}
		s.handleNotification(ctx, n.Payload)
	}
}

// refreshLoop re-reads the things other nodes changed and hands over
// what differs from their baselines; it also gives baselines to things
// that became interesting, and forgets those that no longer are.
func (s *Store) refreshLoop() {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	tick := time.NewTicker(sweepPeriod)
	defer tick.Stop()
	var fails failures
	for {
		select {
		case <-s.dirtySig:
		case <-tick.C:
			s.resyncMu.Lock()
			s.needSweep = true
			s.resyncMu.Unlock()
		case <-ctx.Done():
			return
		}
		s.resyncMu.Lock()
		batch, all, sweep := s.dirty, s.resyncAll, s.needSweep
		s.dirty, s.resyncAll, s.needSweep = nil, false, false
		s.resyncMu.Unlock()
		ix := s.interest.Load()
		if ix == nil {
			continue
		}
		var err error
		if all {
			s.stats.Resyncs.Add(1)
			err = s.refresh(ctx, ix, ix.Things(), nil, true)
		}
		if err == nil && len(batch) > 0 {
			var names []string
			for k := range batch {
				if !slices.Contains(names, k.thing) {
					names = append(names, k.thing)
				}
			}
			err = s.refresh(ctx, ix, names, batch, true)
		}
		if err == nil && sweep {
			err = s.sweepBaselines(ctx, ix)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := fails.fail(s.log, slog.LevelWarn, "re-read changed things; trying again", "refresh", err)
			var again []hint
			for _, h := range batch {
				again = append(again, h)
			}
			s.markDirty(again, all)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		} else {
			fails.ok()
		}
	}
}

// snapshot is a queue as another node left it: its revisions, its first
// entries (as they read) and its head.
type snapshot struct {
	rev, members int64
	list         store.PendingSet
	head         *store.Execution
}

// readSnapshots reads every queue of things in one statement, which sees
// one snapshot of the database. Things that never had an execution are
// absent from the result.
func (s *Store) readSnapshots(ctx context.Context, things []string) (map[queueKey]*snapshot, error) {
	rows, err := s.pool.Query(ctx, `SELECT ts.thing_name, n.ns, n.rev, n.members, q.record, j.seq, j.status, j.force_canceled, j.updated_ns
		FROM thing_state ts
		CROSS JOIN LATERAL (SELECT ''::text AS ns, ts.rev, ts.members_rev AS members
			UNION ALL SELECT key, (value->>0)::bigint, (value->>1)::bigint FROM jsonb_each(ts.ns_state)) n
		LEFT JOIN LATERAL (SELECT e.record, e.job_id FROM executions e
			WHERE e.thing_name = ts.thing_name AND e.namespace_id = n.ns AND e.status IN ('QUEUED', 'IN_PROGRESS')
			ORDER BY (e.status = 'QUEUED'), e.queue_seq LIMIT $2) q ON true
		LEFT JOIN jobs j ON j.job_id = q.job_id
		WHERE ts.thing_name = ANY($1)`, things, 2*store.MaxPendingListed)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[queueKey]*snapshot{}
	heads := map[queueKey][]*store.Execution{}
	for rows.Next() {
		var k queueKey
		var rev, members int64
		var rec []byte
		var seq, updated *int64
		var status *string
		var force *bool
		if err := rows.Scan(&k.thing, &k.ns, &rev, &members, &rec, &seq, &status, &force, &updated); err != nil {
			return nil, err
		}
		if out[k] == nil {
			out[k] = &snapshot{rev: rev, members: members}
		}
		if rec == nil {
			continue
		}
		e, err := decode[store.Execution](rec, "execution")
		if err != nil {
			return nil, err
		}
		var job *store.Job
		if seq != nil {
			job = &store.Job{JobID: e.JobID, Seq: uint64(*seq), Status: store.JobStatus(*status), ForceCanceled: *force, LastUpdatedAt: fromNanos(*updated)}
		}
		if store.JobStateEffect(job, e) == store.EffectNone {
			heads[k] = append(heads[k], e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for k, list := range heads {
		slices.SortFunc(list, func(a, b *store.Execution) int {
			sa, sb := a.Summary(), b.Summary()
			return store.ComparePending(&sa, &sb)
		})
		sn := out[k]
		sn.head = list[0]
		for _, e := range list[:min(len(list), store.MaxPendingListed)] {
			sn.list = append(sn.list, e.Summary())
		}
	}
	return out, nil
}

// refresh re-reads the queues of things and, with emit, hands over their
// changes; it moves their baselines either way.
func (s *Store) refresh(ctx context.Context, ix *interestBox, names []string, hints map[queueKey]hint, emit bool) error {
	for len(names) > 0 {
		chunk := names[:min(readChunk, len(names))]
		names = names[len(chunk):]
		var mine []string
		for _, n := range chunk {
			if ix.Has(n) {
				mine = append(mine, n)
			}
		}
		if len(mine) == 0 {
			continue
		}
		snaps, err := s.readSnapshots(ctx, mine)
		if err != nil {
			return err
		}
		docs := map[uint64]string{}
		if emit {
			for _, sn := range snaps {
				if h := sn.head; h != nil {
					if docs[h.JobSeq], err = s.document(ctx, h.JobID, h.JobSeq); err != nil {
						return err
					}
				}
			}
		}
		// Every queue the snapshot has, a hint names, or a baseline
		// knows; and the plain queue of every thing, which a thing
		// without executions lacks.
		queues := map[queueKey]bool{}
		for _, n := range mine {
			queues[queueKey{thing: n}] = true
		}
		for k := range snaps {
			queues[k] = true
		}
		for k := range hints {
			if slices.Contains(mine, k.thing) {
				queues[k] = true
			}
		}
		for _, k := range slices.SortedFunc(maps.Keys(queues), compareQueueKeys) {
			h, hinted := hints[k]
			s.compare(k, snaps[k], docs, h, hinted && emit, emit)
		}
	}
	return nil
}

func compareQueueKeys(a, b queueKey) int {
	if c := strings.Compare(a.thing, b.thing); c != 0 {
		return c
	}
	return strings.Compare(a.ns, b.ns)
}

// document reads a job's document, through the engine's cache.
func (s *Store) document(ctx context.Context, job string, seq uint64) (string, error) {
	if d, ok := s.Documents().Get(seq); ok {
		return d, nil
	}
	var doc string
	err := s.pool.QueryRow(ctx, "SELECT document FROM jobs WHERE job_id = $1 AND seq = $2", job, int64(seq)).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	s.Documents().Put(seq, doc)
	return doc, nil
}

// compare hands over a queue's change, if any, since its baseline, and
// moves the baseline. Without a baseline, the hint's flags (when it has
// them) say what is due.
func (s *Store) compare(k queueKey, sn *snapshot, docs map[uint64]string, h hint, useFlags, emit bool) {
	cur := &seenState{}
	var list store.PendingSet
	var head *store.Execution
	if sn != nil {
		cur.rev, cur.members, list, head = sn.rev, sn.members, sn.list, sn.head
		if head != nil {
			cur.head = headKey{head.JobID, head.ExecutionNumber}
		}
	}
	st := &s.stripes[stripeOf(k.thing)]
	st.mu.Lock()
	defer st.mu.Unlock()
	prev := st.seen[k]
	var notify, next bool
	switch {
	case !emit:
		if prev == nil {
			cur.swept = true
			st.seen[k] = cur
		}
		return
	case prev != nil && cur.rev <= prev.rev:
		// Nothing newer than the baseline, unless the baseline was swept
		// after a change whose hint comes only now.
		if !prev.swept || !useFlags || !h.flagged || h.rev <= prev.floor || h.rev > prev.rev || cur.rev < prev.rev || sn == nil {
			return
		}
		prev.floor = h.rev
		notify, next = h.notify, h.next
	case prev != nil:
		notify, next = prev.members != cur.members, prev.head != cur.head
		if prev.swept && useFlags && h.flagged && h.rev > prev.floor {
			notify, next = notify || h.notify, next || h.next
		}
		st.seen[k] = cur
	default:
		if useFlags && h.flagged {
			notify, next = h.notify, h.next
		} else {
			// Read without a hint of its own (a refresh of the thing's
			// other queues, a resync): nothing was delivered for it, so
			// hints that come later for what it read are handed over, as
			// after a sweep.
			cur.swept = true
		}
		st.seen[k] = cur
	}
	if !notify && !next {
		return
	}
	c := store.Change{ThingName: k.thing, Namespace: k.ns, At: s.clock.Now()}
	if notify {
		c.Notify, c.Pending = true, list
	}
	if next {
		c.NotifyNext, c.Next = true, head
		if head != nil {
			c.NextDocument = docs[head.JobSeq]
		}
	}
	s.stats.RemoteChanges.Add(1)
	s.hand([]store.Change{c})
}

// sweepBaselines reads the queues of the things of the Interest that have
// no baseline (without handing anything over), and forgets the baselines
// of things that are no longer of interest.
func (s *Store) sweepBaselines(ctx context.Context, ix *interestBox) error {
	var missing []string
	for _, name := range ix.Things() {
		st := &s.stripes[stripeOf(name)]
		st.mu.Lock()
		_, ok := st.seen[queueKey{thing: name}]
		st.mu.Unlock()
		if !ok {
			missing = append(missing, name)
		}
	}
	if err := s.refresh(ctx, ix, missing, nil, false); err != nil {
		return err
	}
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		for k := range st.seen {
			if !ix.Has(k.thing) {
				delete(st.seen, k)
			}
		}
		st.mu.Unlock()
	}
	return nil
}

// ListenerPID returns the backend process id of the connection on which
// the store listens for other nodes' changes (0 while it is down); for
// operators and tests.
func (s *Store) ListenerPID() uint32 {
	if !s.listening.Load() {
		return 0
	}
	return s.listenPID.Load()
}

// Listening reports whether the store currently hears the other nodes.
func (s *Store) Listening() bool { return s.listening.Load() }

// String names the store's schema and node, for logs.
func (s *Store) String() string { return fmt.Sprintf("postgres store %s (node %s)", s.schema, s.node) }
