package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"deployer/onboard"
)

// openWriter starts a writer on a fresh file with an empty table of names.
func openWriter(t *testing.T) (*writer, *sql.DB) {
	t.Helper()
	pool, err := openPool(dsn(filepath.Join(t.TempDir(), "writer.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	pool.SetMaxOpenConns(1)
	if _, err := pool.Exec("CREATE TABLE names (name TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	w := startWriter(pool)
	t.Cleanup(func() {
		w.close()
		pool.Close()
	})
	return w, pool
}

func insertName(name string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO names (name) VALUES (?)", name)
		return err
	}
}

// checkStored checks that the table holds exactly the names in want.
func checkStored(t *testing.T, pool *sql.DB, want ...string) {
	t.Helper()
	rows, err := pool.Query("SELECT name FROM names ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		// A long name is shown by its start and length.
		if len(name) > 20 {
			name = fmt.Sprintf("%s… (%d bytes)", name[:20], len(name))
		}
		got = append(got, name)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("stored names %q, want %q", got, want)
	}
}

// queueBehindBlockedWrite holds the writer in a write that waits for
// release, then queues fns from goroutines of their own and waits until
// every one is handed over or blocked handing over. It returns the callers'
// errors once release has been closed and all have returned.
func queueBehindBlockedWrite(t *testing.T, w *writer, fns ...func(context.Context, *sql.Tx) error) (release chan struct{}, wait func() []error) {
	t.Helper()
	release = make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := w.update(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
			close(started)
			<-release
			return insertName("first")(ctx, tx)
		})
		if err != nil {
			t.Errorf("blocking write: %v", err)
		}
	})
	<-started
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Go(func() { errs[i] = w.update(context.Background(), fn) })
	}
	synctest.Wait()
	return release, func() []error { wg.Wait(); return errs }
}

func TestQueuedWritesShareOneCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, pool := openWriter(t)
		var fns []func(context.Context, *sql.Tx) error
		for i := range 10 {
			fns = append(fns, insertName(fmt.Sprint("name-", i)))
		}
		release, wait := queueBehindBlockedWrite(t, w, fns...)
		close(release)
		for i, err := range wait() {
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}
		checkStored(t, pool, "first", "name-0", "name-1", "name-2", "name-3", "name-4", "name-5", "name-6",
			"name-7", "name-8", "name-9")
		// The blocked write commits alone; the ten queued behind it, together.
		if n := w.commits.Load(); n != 2 {
			t.Fatalf("%d commits for the blocked write and the ten queued behind it, want 2", n)
		}
	})
}

func TestFailedWriteIsUndoneAloneInItsBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, pool := openWriter(t)
		failing := func(ctx context.Context, tx *sql.Tx) error {
			if err := insertName("half-made")(ctx, tx); err != nil {
				return err
			}
			return errors.New("body gave up")
		}
		release, wait := queueBehindBlockedWrite(t, w,
			insertName("before"), failing, insertName("first"), insertName("after"))
		close(release)
		errs := wait()
		if errs[0] != nil {
			t.Errorf("write before the failures: %v", errs[0])
		}
		if errs[1] == nil || errs[1].Error() != "body gave up" {
			t.Errorf("failing body: err = %v, want its own error", errs[1])
		}
		if !isUniqueViolation(errs[2]) {
			t.Errorf("duplicate name: err = %v, want a unique violation", errs[2])
		}
		if errs[3] != nil {
			t.Errorf("write after the failures: %v", errs[3])
		}
		checkStored(t, pool, "first", "before", "after")
	})
}

func TestPanickingWriteReachesItsCaller(t *testing.T) {
	w, pool := openWriter(t)
	func() {
		defer func() {
			if p := recover(); p != "broken body" {
				t.Fatalf("recovered %v, want the body's panic", p)
			}
		}()
		w.update(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
			if err := insertName("from-panic")(ctx, tx); err != nil {
				return err
			}
			panic("broken body")
		})
		t.Fatal("update returned after its body panicked")
	}()
	if err := w.update(context.Background(), insertName("after-panic")); err != nil {
		t.Fatalf("write after a panic: %v", err)
	}
	checkStored(t, pool, "after-panic")
}

func TestCanceledCallerDoesNotInterruptItsWrite(t *testing.T) {
	w, pool := openWriter(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := w.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// The caller gives up while its body runs; the body's statements
		// still run, since an interrupt would undo the whole batch.
		cancel()
		return insertName("kept")(ctx, tx)
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := w.update(ctx, insertName("never")); !errors.Is(err, context.Canceled) {
		t.Fatalf("update with a canceled context: err = %v, want context.Canceled", err)
	}
	checkStored(t, pool, "kept")
}

func TestWritesAfterCloseAreRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, pool := openWriter(t)
		release, wait := queueBehindBlockedWrite(t, w, insertName("queued"))
		closed := make(chan struct{})
		go func() {
			w.close()
			close(closed)
		}()
		synctest.Wait()
		close(release)
		<-closed
		if errs := wait(); !errors.Is(errs[0], errClosed) {
			t.Fatalf("write queued at close: err = %v, want errClosed", errs[0])
		}
		late := w.update(context.Background(), insertName("late"))
		if !errors.Is(late, errClosed) {
			t.Fatalf("write after close: err = %v, want errClosed", late)
		}
		if code := onboard.ErrorCode(late); code != onboard.EUnavailable {
			t.Errorf("write after close has code %q, want %q so that the admin retries", code, onboard.EUnavailable)
		}
		// Only the write that ran before close is stored.
		checkStored(t, pool, "first")
	})
}

func TestFullDiskFailsOnlyLargeWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, pool := openWriter(t)
		var pages int
		if err := pool.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		// A few pages of room: enough for short names, far too few for the
		// large one, whose failure makes SQLite roll back the whole
		// transaction it shares with the others.
		if _, err := pool.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages+3)); err != nil {
			t.Fatal(err)
		}
		release, wait := queueBehindBlockedWrite(t, w,
			insertName("before"), insertName(strings.Repeat("x", 400_000)), insertName("after"))
		close(release)
		errs := wait()

		if errs[0] != nil {
			t.Errorf("short write before the large one: %v, want nil, since it fits", errs[0])
		}
		if errs[1] == nil || !strings.Contains(errs[1].Error(), "full") {
			t.Errorf("large write: err = %v, want database or disk is full", errs[1])
		}
		if errs[2] != nil {
			t.Errorf("short write after the large one: %v, want nil, since it fits", errs[2])
		}
		checkStored(t, pool, "first", "before", "after")
	})
}

func TestGoexitInWriteEndsOnlyItsCaller(t *testing.T) {
	w, pool := openWriter(t)
	exited := make(chan struct{})
	returned := false
	go func() {
		defer close(exited)
		w.update(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
			if err := insertName("gone")(ctx, tx); err != nil {
				return err
			}
			runtime.Goexit()
			return nil
		})
		returned = true
	}()
	<-exited
	if returned {
		t.Fatal("update returned to a caller whose body called runtime.Goexit")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.update(ctx, insertName("next")); err != nil {
		t.Fatalf("write after a body's Goexit: %v", err)
	}
	checkStored(t, pool, "next")
}
