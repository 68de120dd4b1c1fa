package storage

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// openCachedPool opens a one-connection pool on a fresh file with a table
// of the numbers 1 to 5.
func openCachedPool(t *testing.T) *sql.DB {
	t.Helper()
	pool, err := openPool(dsn(filepath.Join(t.TempDir(), "cache.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	pool.SetMaxOpenConns(1)
	t.Cleanup(func() { pool.Close() })
	for _, q := range []string{
		"CREATE TABLE numbers (n INTEGER PRIMARY KEY)",
		"INSERT INTO numbers (n) VALUES (1), (2), (3), (4), (5)",
	} {
		if _, err := pool.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return pool
}

// kept returns the statements the pool's one connection keeps, by text.
func kept(t *testing.T, pool *sql.DB) map[string]*cachedStmt {
	t.Helper()
	conn, err := pool.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out := map[string]*cachedStmt{}
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*cachingConn)
		if !ok {
			return fmt.Errorf("connection is a %T, not a caching one", dc)
		}
		for q, el := range c.bySQL {
			out[q] = el.Value.(*cachedStmt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStatementIsCompiledOnceAndReused(t *testing.T) {
	pool := openCachedPool(t)
	const q = "SELECT count(*) FROM numbers WHERE n > ?"
	var first *cachedStmt
	for i := range 5 {
		var n int
		if err := pool.QueryRow(q, i).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 5-i {
			t.Fatalf("count above %d = %d, want %d", i, n, 5-i)
		}
		s := kept(t, pool)[q]
		if s == nil {
			t.Fatalf("the connection keeps no statement for %q", q)
		}
		if first == nil {
			first = s
		} else if s != first {
			t.Fatal("the statement was compiled again instead of reused")
		}
		if s.inUse {
			t.Fatal("a statement whose rows were read is still marked in use")
		}
	}
}

func TestStatementRunAgainWhileItsRowsAreOpen(t *testing.T) {
	pool := openCachedPool(t)
	const q = "SELECT n FROM numbers WHERE n > ? ORDER BY n"
	tx, err := pool.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	rows, err := tx.Query(q, 0)
	if err != nil {
		t.Fatal(err)
	}

	var outer, inner []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, n)
		// The same text while the outer rows are open gets a statement of
		// its own, so the outer iteration is not reset.
		var m int
		if err := tx.QueryRow(q, n).Scan(&m); err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
		inner = append(inner, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()

	if fmt.Sprint(outer) != "[1 2 3 4 5]" || fmt.Sprint(inner) != "[2 3 4 5 0]" {
		t.Fatalf("outer rows %v, inner first rows %v; want [1 2 3 4 5] and [2 3 4 5 0]", outer, inner)
	}
}

func TestFailedStatementIsReusable(t *testing.T) {
	pool := openCachedPool(t)
	const q = "INSERT INTO numbers (n) VALUES (?)"
	if _, err := pool.Exec(q, 3); !isUniqueViolation(err) {
		t.Fatalf("inserting a taken key: err = %v, want a unique violation", err)
	}
	if _, err := pool.Exec(q, 6); err != nil {
		t.Fatalf("inserting after the failure: %v", err)
	}
	var n int
	if err := pool.QueryRow("SELECT max(n) FROM numbers").Scan(&n); err != nil || n != 6 {
		t.Fatalf("max = %d, %v; want 6", n, err)
	}
}

func TestKeptStatementsFollowSchemaChanges(t *testing.T) {
	pool := openCachedPool(t)
	const q = "SELECT * FROM numbers WHERE n = ?"
	var n int
	if err := pool.QueryRow(q, 2).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec("ALTER TABLE numbers ADD COLUMN word TEXT NOT NULL DEFAULT 'none'"); err != nil {
		t.Fatal(err)
	}
	var word string
	if err := pool.QueryRow(q, 2).Scan(&n, &word); err != nil {
		t.Fatalf("kept statement after a new column: %v", err)
	}
	if n != 2 || word != "none" {
		t.Fatalf("row = (%d, %q), want (2, \"none\")", n, word)
	}
}

func TestStatementCacheIsBounded(t *testing.T) {
	pool := openCachedPool(t)
	for i := range stmtCacheSize + 40 {
		var n int
		if err := pool.QueryRow(fmt.Sprintf("SELECT %d + count(*) FROM numbers", i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != i+5 {
			t.Fatalf("query %d returned %d, want %d", i, n, i+5)
		}
	}
	got := kept(t, pool)
	if len(got) != stmtCacheSize {
		t.Fatalf("the connection keeps %d statements, want the bound %d", len(got), stmtCacheSize)
	}
	if _, ok := got["SELECT 0 + count(*) FROM numbers"]; ok {
		t.Fatal("the least recently used statement was kept over newer ones")
	}
	if _, ok := got[fmt.Sprintf("SELECT %d + count(*) FROM numbers", stmtCacheSize+39)]; !ok {
		t.Fatal("the newest statement was not kept")
	}
}
