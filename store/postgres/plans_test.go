package postgres

import (
	"context"
	"strings"
	"testing"
)

// TestHotStatementsIndexedInAnyPlan checks that the statements every
// device operation runs are index lookups in the generic plan PostgreSQL
// makes on an empty, never analyzed schema. PostgreSQL caches a
// statement's generic plan once it has run a few times; one made while
// the tables were small and kept as they grow scanned a whole table on
// every operation (the late check over "= ANY($1)" scanned 12,000 jobs a
// commit in a benchmark).
func TestHotStatementsIndexedInAnyPlan(t *testing.T) {
	url, schema := freshSchema(t)
	s := openNode(t, url, schema, "plans", nil, 0)
	ctx := context.Background()
	conn, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "RESET plan_cache_mode") // the connection goes back to the store's pool
	for _, c := range []struct {
		name, sql, types, args string
	}{
		{"lockThing", lockThing, "text", "'t'"},
		{"viewsOne", viewsOne, "text", "'t'"},
		{"lateOne", lateOne, "text", "'j'"},
		{"jobCounts", jobCountsQuery + " WHERE j.job_id = $1 AND j.rev = $2", "text, bigint", "'j', 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := "plan_" + strings.ToLower(c.name)
			if _, err := conn.Exec(ctx, "PREPARE "+name+" ("+c.types+") AS "+c.sql); err != nil {
				t.Fatalf("prepare: %v", err)
			}
			defer conn.Exec(ctx, "DEALLOCATE "+name)
			rows, err := conn.Query(ctx, "EXPLAIN (COSTS OFF) EXECUTE "+name+" ("+c.args+")")
			if err != nil {
				t.Fatalf("explain: %v", err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if text := strings.Join(plan, "\n"); strings.Contains(text, "Seq Scan") {
				t.Errorf("the generic plan scans a table:\n%s", text)
			}
		})
	}
}
