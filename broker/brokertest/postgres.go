package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresURL returns a connection string for a fresh schema of the test
// database named by JOBSBROKER_TEST_POSTGRES_URL (`eval "$(.ci/postgres)"`
// starts one); the schema is dropped when the test ends. Without the
// variable the test is skipped, except under CI=true, where it fails.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("JOBSBROKER_TEST_POSTGRES_URL")
	if base == "" {
		msg := "set JOBSBROKER_TEST_POSTGRES_URL to a PostgreSQL database the tests may create schemas in; " +
			`eval "$(.ci/postgres)" starts one`
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "broker_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("JOBSBROKER_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
