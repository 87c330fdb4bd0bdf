package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// waitAlone polls until s's checks say it is alone (or not), failing the
// test after crossNode.
func waitAlone(t *testing.T, s *Store, alone bool) {
	t.Helper()
	deadline := time.Now().Add(crossNode)
	for s.Alone() != alone {
		if time.Now().After(deadline) {
			t.Fatalf("%s: Alone() stayed %v", s, !alone)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPeersAloneCommitsSilently: a node alone on its schema commits
// without NOTIFY, although nodes of other schemas of the database run; a
// second node on the schema makes both notify, and once it is gone the
// first commits silently again.
func TestPeersAloneCommitsSilently(t *testing.T) {
	url, schema := freshSchema(t)
	_, other := freshSchema(t)
	clk := clock.NewFake(storetest.Epoch)
	elsewhere := openNode(t, url, other, "node-a", clk, 16)
	a := openNode(t, url, schema, "node-a", clk, 16)
	if !a.Alone() || !elsewhere.Alone() {
		t.Fatalf("Alone() = %v, %v with one node on each schema", a.Alone(), elsewhere.Alone())
	}
	ctx := context.Background()
	create := func(s *Store, job string) {
		t.Helper()
		in := store.CreateJobInput{Job: store.Job{JobID: job, Targets: []string{storetest.ThingARN("dev-1")}}, Document: "{}"}
		if _, err := s.CreateJob(ctx, &in); err != nil {
			t.Fatalf("CreateJob %s: %v", job, err)
		}
	}
	create(a, "j1")
	if a.Stats().SilentCommits.Load() == 0 {
		t.Fatal("a node alone notified")
	}

	b := openNode(t, url, schema, "node-b", clk, 16)
	if b.Alone() {
		t.Fatal("a node that starts beside another takes itself for alone")
	}
	waitAlone(t, a, false)
	silent := a.Stats().SilentCommits.Load()
	create(a, "j2")
	if a.Stats().SilentCommits.Load() != silent {
		t.Fatal("a node committed silently while another listened")
	}

	b.Close()
	waitAlone(t, a, true)
	create(a, "j3")
	if a.Stats().SilentCommits.Load() == silent {
		t.Fatal("a node alone again still notified")
	}
}

// TestPeersJoinerHearsSilentCommits: what a node committed silently, in
// the moments before it saw a node that has just started, reaches that
// node (the replayed hints), and so does what it commits afterwards.
func TestPeersJoinerHearsSilentCommits(t *testing.T) {
	url, schema := freshSchema(t)
	clk := clock.NewFake(storetest.Epoch)
	a := openNode(t, url, schema, "node-a", clk, 16)
	ctx := context.Background()
	c := &cluster{a: a, clk: clk, url: url, schema: schema, ctx: ctx, ra: newRecorder("dev-1")}
	a.SetInterest(c.ra)
	a.SetChangeHandler(c.ra.handle)

	// B starts; until A's next check, A commits silently.
	c.b = openNode(t, url, schema, "node-b", clk, 16)
	c.rb = newRecorder("dev-1")
	c.b.SetInterest(c.rb)
	c.b.SetChangeHandler(c.rb.handle)
	if !a.Alone() {
		t.Skip("A saw B before it committed; nothing to replay")
	}
	c.createJob(t, a, store.CreateJobInput{Job: store.Job{JobID: "j1"}}, "dev-1")
	if a.Stats().SilentCommits.Load() == 0 {
		t.Fatal("A did not commit silently")
	}
	got := c.rb.waitFor(t, "B hears of j1", crossNode, nextIs("dev-1", "j1"))
	if !got.Notify || len(got.Pending) != 1 {
		t.Fatalf("B's change = %+v", got)
	}
	waitAlone(t, a, false)
	c.createJob(t, a, store.CreateJobInput{Job: store.Job{JobID: "j2"}}, "dev-2", "dev-1")
	c.rb.waitFor(t, "B hears of j2", crossNode, func(ch store.Change) bool {
		return ch.ThingName == "dev-1" && ch.Notify && len(ch.Pending) == 2
	})
	if n := len(c.rb.matching(nextIs("dev-1", "j1"))); n != 1 {
		t.Fatalf("B handed j1's notify-next over %d times", n)
	}
}

// TestPeersOlderBuild: a node of a build without the presence lock (its
// node lock and its listening connection's name only) counts as another
// node of its schema; one of another schema does not.
func TestPeersOlderBuild(t *testing.T) {
	url, schema := freshSchema(t)
	_, other := freshSchema(t)
	a := openNode(t, url, schema, "node-a", nil, 16)
	ctx := context.Background()
	old := func(schema string) *pgx.Conn {
		t.Helper()
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["application_name"] = listenAppPrefix + "node-old"
		cfg.RuntimeParams["search_path"] = schema
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext(current_schema() || '|' || $2))", lockClassNode, "node-old"); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	old(other)
	if found, err := a.otherNodes(ctx); err != nil || found {
		t.Fatalf("an older node of another schema: otherNodes = %v, %v", found, err)
	}
	old(schema)
	if found, err := a.otherNodes(ctx); err != nil || !found {
		t.Fatalf("an older node of the schema: otherNodes = %v, %v", found, err)
	}
}

// TestPeerGateReplay: the gate replays the hints of the silent commits it
// kept (those older than replayKeep, or beyond replayMax bytes, dropped),
// events only from shortly before its last check that found it alone, and
// nothing when no transaction ran silently.
func TestPeerGateReplay(t *testing.T) {
	var g peerGate
	g.init()
	t0 := time.Unix(1_000_000, 0)
	if _, start := g.seen(false, t0); start {
		t.Fatal("a node alone announced")
	}
	if !g.enter() {
		t.Fatal("a node alone notified")
	}
	g.leave(silentHints{things: []string{"T|a|n1:old"}, events: []string{"E|a|old"}}, t0)
	g.seen(false, t0.Add(replayKeep))
	for i, at := range []time.Duration{replayKeep + time.Second, replayKeep + 2*time.Second} {
		if !g.enter() {
			t.Fatal("a node alone notified")
		}
		g.leave(silentHints{things: []string{"T|a|n" + strconv.Itoa(i) + ":x"}, events: []string{"E|a|" + strconv.Itoa(i)}}, t0.Add(at))
	}
	replay, start := g.seen(true, t0.Add(replayKeep+3*time.Second))
	if !start || strings.Join(replay, " ") != "T|a|n0:x E|a|0 T|a|n1:x E|a|1" {
		t.Fatalf("replay %q, %v", replay, start)
	}
	if g.enter() {
		t.Fatal("a node with peers committed silently")
	}
	if _, start := g.seen(true, t0); start {
		t.Fatal("announced twice")
	}

	// Alone again; a transaction runs silently; hints beyond the byte bound
	// are dropped, oldest first.
	g.seen(false, t0)
	big := strings.Repeat("x", replayMax/2)
	for i := range 3 {
		g.enter()
		g.leave(silentHints{things: []string{"T|a|" + strconv.Itoa(i) + big}}, t0)
	}
	if g.kept > replayMax {
		t.Fatalf("kept %d bytes, bound %d", g.kept, replayMax)
	}
	replay, _ = g.seen(true, t0)
	if len(replay) != 1 || !strings.HasPrefix(replay[0], "T|a|2") {
		t.Fatalf("replayed %d hints after the bound", len(replay))
	}

	// Alone again, and nothing ran silently: nothing to announce.
	g.seen(false, t0)
	if _, start := g.seen(true, t0); start {
		t.Fatal("announced without silent commits")
	}
}
