package postgres

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// A node alone sends no NOTIFY.
//
// pg_notify in a transaction takes a lock on the whole database at commit
// and holds it until the commit's WAL record is flushed: every notifying
// commit of the database waits for the one before it. Hints are only of
// use to other nodes, so a node that sees none on its schema commits
// without them ("silently").
//
// Every node's listening connection holds, besides its node lock, a
// shared presence lock named by the schema, taken after it LISTENs. Once
// a second (peerPoll) a node reads pg_locks: another holder of the
// presence lock is a node that hears hints. A node of a build older than
// the presence lock is recognised by its node lock and the node ID in its
// listening connection's application_name.
//
// A node that starts misses the hints of the commits its peers made
// silently before they saw it. So a node keeps the hints of its silent
// commits of the last replayKeep (up to replayMax bytes); when it first
// sees another node, it waits for the silent transactions still
// committing, then sends those hints (they are idempotent: a node ignores
// what it already has), the
// event messages committed since shortly before its last check that found
// it alone (when the other node was not there yet), and a resync notice,
// on which the other nodes re-read their things and look for timers and
// tasks. From then on it notifies, until a check finds it alone again.

const (
	lockClassPresence = 0x6a70 // "jp": shared, held by every node's listening connection, keyed by the schema
	peerPoll          = time.Second
	replayKeep        = 10 * peerPoll
	replayMax         = 16 << 20 // bytes of hints kept for a replay
	replaySkew        = time.Second
	kindResync        = 'R'
	listenAppPrefix   = "jobsbroker listen "
)

// peerGate decides, per transaction, whether its hints go out, and keeps
// those of the silent ones for a node that appears.
type peerGate struct {
	mu   sync.Mutex
	cond sync.Cond
	// peers is what the last check said: another node listens. It starts
	// true, so that a node whose first check failed notifies.
	peers bool
	// silent counts the transactions that chose not to notify and have not
	// finished.
	silent    int
	recent    []silentHints // hints of silent commits, oldest first
	kept      int           // bytes of the hints in recent
	lastAlone time.Time     // when a check last found no other node
	quiet     bool          // a silent transaction ran since the last replay
}

// silentHints are the hints a silent transaction did not send.
type silentHints struct {
	at     time.Time // when it ended
	things []string  // hints naming things
	events []string  // event messages
}

func (h silentHints) len() int { return len(h.things) + len(h.events) }

// size is the hints' bytes.
func (h silentHints) size() int {
	n := 0
	for _, p := range h.things {
		n += len(p)
	}
	for _, p := range h.events {
		n += len(p)
	}
	return n
}

func (g *peerGate) init() {
	g.cond.L = &g.mu
	g.peers = true
}

// enter reports whether a transaction may leave its hints out; if so, the
// caller must call leave once it has committed or failed.
func (g *peerGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.peers {
		return false
	}
	g.silent++
	return true
}

// leave ends a silent transaction. Its hints are kept for a replay even
// when its commit failed, as its outcome may be unknown: a hint of what
// did not happen only makes a node re-read a thing.
func (g *peerGate) leave(h silentHints, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.silent--
	g.quiet = true
	if h.len() > 0 {
		h.at = now
		g.recent = append(g.recent, h)
		g.kept += h.size()
	}
	drop := 0
	for drop < len(g.recent) && (g.kept > replayMax || now.Sub(g.recent[drop].at) > replayKeep) {
		g.kept -= g.recent[drop].size()
		drop++
	}
	if drop > 0 {
		g.recent = append(g.recent[:0], g.recent[drop:]...)
	}
	if g.silent == 0 {
		g.cond.Broadcast()
	}
}

// seen records a check's answer, made at now. When it is the first to
// see another node and transactions ran silently, it waits for those in
// flight and returns the hints to replay (start is then true).
func (g *peerGate) seen(peers bool, now time.Time) (replay []string, start bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !peers || g.peers {
		g.peers = peers
		if !peers {
			g.lastAlone = now
		}
		return nil, false
	}
	g.peers = true
	for g.silent > 0 {
		g.cond.Wait()
	}
	if !g.quiet {
		return nil, false
	}
	g.quiet = false
	cut := g.lastAlone.Add(-replaySkew)
	for _, r := range g.recent {
		replay = append(replay, r.things...)
		if !r.at.Before(cut) {
			replay = append(replay, r.events...)
		}
	}
	g.recent, g.kept = nil, 0
	return replay, true
}

// undo puts back what seen handed out when it could not be sent: the
// node is taken for alone again, and the next check replays it.
func (g *peerGate) undo(replay []string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.peers, g.quiet = false, true
	var h silentHints
	for _, p := range replay {
		if strings.HasPrefix(p, string(kindThings)+"|") {
			h.things = append(h.things, p)
		} else {
			h.events = append(h.events, p)
		}
	}
	if h.len() > 0 {
		h.at = now
		g.recent = append([]silentHints{h}, g.recent...)
		g.kept += h.size()
	}
}

// Alone reports whether the store's last check saw no other node on its
// schema, so that its commits send no NOTIFY.
func (s *Store) Alone() bool {
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	return !s.peers.peers
}

// otherNodes reports whether another node listens on the store's schema.
func (s *Store) otherNodes(ctx context.Context) (bool, error) {
	var found bool
	err := s.pool.QueryRow(ctx, `WITH l AS (SELECT pid, classid, objid FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND pid <> $1
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
		SELECT EXISTS (SELECT 1 FROM l WHERE classid = $2 AND objid = (hashtext(current_schema())::bigint & 4294967295)::oid)
			OR EXISTS (SELECT 1 FROM l JOIN pg_stat_activity a ON a.pid = l.pid
				WHERE l.classid = $3 AND starts_with(a.application_name, $4)
					AND NOT EXISTS (SELECT 1 FROM l p WHERE p.pid = l.pid AND p.classid = $2)
					AND l.objid = (hashtext(current_schema() || '|' || substr(a.application_name, length($4) + 1))::bigint & 4294967295)::oid)`,
		int64(s.listenPID.Load()), lockClassPresence, lockClassNode, listenAppPrefix).Scan(&found)
	return found, err
}

// checkPeers looks for other nodes and, on first seeing one, replays the
// hints of the silent commits and asks the others to resync.
func (s *Store) checkPeers(ctx context.Context) error {
	found, err := s.otherNodes(ctx)
	if err != nil {
		return err
	}
	replay, start := s.peers.seen(found, time.Now())
	if !start {
		return nil
	}
	if err := s.announce(ctx, replay); err != nil {
		s.peers.undo(replay, time.Now())
		return err
	}
	s.log.Info("another node listens on the store: commits notify", "op", "peers", "replayed", len(replay))
	return nil
}

// announce sends the replayed hints and the resync notice, on the hint
// bus when there is one.
func (s *Store) announce(ctx context.Context, replay []string) error {
	resync := string(kindResync) + "|" + s.node + "|"
	if bus := s.hintBus.Load(); bus != nil {
		for _, p := range append(replay, resync) {
			(*bus).Publish([]byte(p))
		}
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if len(replay) > 0 {
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) p", s.channel, replay); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", s.channel, resync); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// peerLoop checks for other nodes every peerPoll.
func (s *Store) peerLoop() {
	defer s.wg.Done()
	ctx, cancel := s.loopContext()
	defer cancel()
	tick := time.NewTicker(peerPoll)
	defer tick.Stop()
	var fails failures
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if err := s.checkPeers(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			fails.fail(s.log, slog.LevelWarn, "look for other nodes", "peers", err)
			continue
		}
		fails.ok()
	}
}

// keep files a hint of a silent commit for a replay: those naming things
// and event messages; wake-ups are not kept, the resync notice stands for
// them.
func (h *silentHints) keep(payload string) {
	switch {
	case strings.HasPrefix(payload, string(kindThings)+"|"):
		h.things = append(h.things, payload)
	case strings.HasPrefix(payload, string(kindEvent)+"|"):
		h.events = append(h.events, payload)
	}
}
