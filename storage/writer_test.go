package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
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

func storedNames(t *testing.T, pool *sql.DB) map[string]bool {
	t.Helper()
	rows, err := pool.Query("SELECT name FROM names")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	names := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names[n] = true
	}
	return names
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
		if got := storedNames(t, pool); len(got) != 11 {
			t.Fatalf("stored %d names, want 11: %v", len(got), got)
		}
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
		if errs[0] != nil || errs[3] != nil {
			t.Fatalf("writes around the failures: %v, %v; want nil", errs[0], errs[3])
		}
		if errs[1] == nil || errs[1].Error() != "body gave up" {
			t.Fatalf("failing body: err = %v, want its own error", errs[1])
		}
		if !isUniqueViolation(errs[2]) {
			t.Fatalf("duplicate name: err = %v, want a unique violation", errs[2])
		}
		got := storedNames(t, pool)
		if !got["before"] || !got["after"] || !got["first"] || got["half-made"] || len(got) != 3 {
			t.Fatalf("stored %v, want first, before and after only", got)
		}
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
	if got := storedNames(t, pool); got["from-panic"] || !got["after-panic"] {
		t.Fatalf("stored %v, want after-panic only", got)
	}
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
	if got := storedNames(t, pool); !got["kept"] || got["never"] {
		t.Fatalf("stored %v, want kept only", got)
	}
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
		if got := storedNames(t, pool); !got["first"] || len(got) != 1 {
			t.Fatalf("stored %v, want only the write that ran before close", got)
		}
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

		if errs[0] != nil || errs[2] != nil {
			t.Errorf("short writes in the batch: %v, %v; want nil, since they fit", errs[0], errs[2])
		}
		if errs[1] == nil || !strings.Contains(errs[1].Error(), "full") {
			t.Errorf("large write: err = %v, want database or disk is full", errs[1])
		}
		got := storedNames(t, pool)
		if !got["first"] || !got["before"] || !got["after"] || len(got) != 3 {
			t.Errorf("stored %d names (first, before, after: %v, %v, %v), want those three only",
				len(got), got["first"], got["before"], got["after"])
		}
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
	if got := storedNames(t, pool); got["gone"] || !got["next"] {
		t.Fatalf("stored %v, want next only", got)
	}
}
