package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsbroker/jobsbroker/store"
	"github.com/jobsbroker/jobsbroker/store/clock"
	"github.com/jobsbroker/jobsbroker/store/postgres/pgtest"
	"github.com/jobsbroker/jobsbroker/store/storetest"
)

// TestMain stops the throwaway PostgreSQL cluster pgtest may start.
func TestMain(m *testing.M) { pgtest.Main(m) }

// testURL returns the database the tests use (see pgtest).
func testURL(t testing.TB) string { return pgtest.URL(t) }

func testLogger() *slog.Logger {
	if os.Getenv("JOBSBROKER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// freshSchema creates an empty schema for one test and drops it when the
// test ends.
func freshSchema(t testing.TB) (url, schema string) {
	t.Helper()
	url = testURL(t)
	var b [6]byte
	rand.Read(b[:])
	schema = "test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return url, schema
}

// openNode opens a store on schema; it is closed when the test ends.
func openNode(t testing.TB, url, schema, node string, clk clock.Clock, batch int) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{URL: url, Schema: schema, NodeID: node, Clock: clk,
		Logger: testLogger().With("node", node), TaskBatch: batch, MaxConns: 8})
	if err != nil {
		t.Fatalf("open %s: %v", node, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T, clk clock.Clock) store.Store {
		url, schema := freshSchema(t)
		return openNode(t, url, schema, "contract", clk, 4)
	})
}

// TestMigrationsOnce opens several stores on one fresh schema at the same
// time: each migration is applied once, and a reopened store finds the
// schema up to date.
func TestMigrationsOnce(t *testing.T) {
	url, schema := freshSchema(t)
	errs := make(chan error, 4)
	stores := make(chan *Store, 4)
	for i := range 4 {
		go func() {
			s, err := Open(context.Background(), Options{URL: url, Schema: schema, NodeID: "m" + strconv.Itoa(i), Logger: testLogger()})
			errs <- err
			stores <- s
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if s := <-stores; s != nil {
			s.Close()
		}
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+schema+".schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Fatalf("%d migrations recorded, want %d", n, len(files))
	}
	s := openNode(t, url, schema, "again", nil, 0)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// TestClosedStore checks that a closed store reports ErrUnavailable.
func TestClosedStore(t *testing.T) {
	url, schema := freshSchema(t)
	s := openNode(t, url, schema, "closed", clock.NewFake(storetest.Epoch), 0)
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.GetPendingJobExecutions(ctx, "t"); !isUnavailable(err) {
		t.Fatalf("GetPending on a closed store = %v", err)
	}
	if _, err := s.StartNextPendingJobExecution(ctx, &store.StartNextInput{ThingName: "t"}); !isUnavailable(err) {
		t.Fatalf("StartNext on a closed store = %v", err)
	}
	if err := s.Ping(ctx); !isUnavailable(err) {
		t.Fatalf("Ping on a closed store = %v", err)
	}
}

func isUnavailable(err error) bool {
	return err != nil && errors.Is(err, store.ErrUnavailable)
}

// TestPoolSize: without a size in Options or the URL a node's pool holds
// DefaultMaxConns connections; the URL's pool_max_conns, then Options,
// override it.
func TestPoolSize(t *testing.T) {
	url, schema := freshSchema(t)
	// A URL takes the setting as a query parameter, a keyword/value
	// connection string (as pgtest's own server gives) as one more pair.
	sep := " "
	switch {
	case !strings.Contains(url, "://"):
	case strings.Contains(url, "?"):
		sep = "&"
	default:
		sep = "?"
	}
	for i, tc := range []struct {
		url  string
		opt  int32
		want int32
	}{
		{url, 0, DefaultMaxConns},
		{url + sep + "pool_max_conns=3", 0, 3},
		{url + sep + "pool_max_conns=3", 5, 5},
	} {
		s, err := Open(context.Background(), Options{URL: tc.url, Schema: schema, NodeID: "pool-" + strconv.Itoa(i),
			Logger: testLogger(), MaxConns: tc.opt})
		if err != nil {
			t.Fatal(err)
		}
		got := s.Pool().Config().MaxConns
		s.Close()
		if got != tc.want {
			t.Errorf("%s with MaxConns %d: pool of %d, want %d", tc.url, tc.opt, got, tc.want)
		}
	}
}
