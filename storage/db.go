// Package storage keeps the deployer's state in one SQLite file through
// modernc.org/sqlite, which needs no cgo. It implements onboard.Store, the
// admin store and the simulated grid's state.
package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"deployer/onboard"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// timeFormat stores UTC times with fixed-width nanoseconds, so that text
// order is time order and SQLite's date functions read them.
const timeFormat = "2006-01-02T15:04:05.000000000Z"

// DB is an open deployer database with one connection for writes and a
// pool for reads, which WAL lets run beside the writer. One goroutine owns
// the write connection, so writers queue in Go instead of meeting
// SQLITE_BUSY, and the writes queued together share a commit. DB is safe
// for concurrent use.
type DB struct {
	path   string
	write  *sql.DB
	writer *writer
	read   *sql.DB
}

// dsn returns the connection string for path. Pragmas sit in the DSN so that
// every pooled connection gets them: WAL lets readers run beside the writer,
// busy_timeout makes a connection wait for a lock instead of failing at
// once, foreign_keys is off by default in SQLite, and synchronous=NORMAL is
// durable across process crashes in WAL mode. Write transactions begin
// IMMEDIATE, taking the write lock before their first read, so that a
// transaction that reads and then writes cannot fail halfway on a lock.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens or creates the database at path and applies pending migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	// The database holds password hashes, so a new file is readable by its
	// owner alone; SQLite gives the -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create database %s: %w", path, err)
	}
	write, err := openPool(dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	db := &DB{path: path, write: write, writer: startWriter(write)}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}

	read, err := openPool(dsn(path, true))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	db.read = read
	if err := read.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	return db, nil
}

// Close stops the writer, which returns an error to the writes still
// queued, and closes both pools.
func (db *DB) Close() error {
	db.writer.close()
	var errs []error
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	errs = append(errs, db.write.Close())
	return errors.Join(errs...)
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Ping checks that both pools can run a query.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("read pool: %w", err)
	}
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("write pool: %w", err)
	}
	return nil
}

// Backup writes a consistent copy of the database to path, which must not
// exist, while the server keeps running. It copies through a connection of
// its own, as BackupFile does, because the read pool is query_only, which
// rejects VACUUM INTO, and the write pool has one connection, which the copy
// would hold for its whole duration.
func (db *DB) Backup(ctx context.Context, path string) error {
	return BackupFile(ctx, db.path, path)
}

// migrate applies the embedded migrations that are not yet recorded, each in
// its own transaction, in file name order.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (
		name TEXT PRIMARY KEY, applied_at TEXT NOT NULL) STRICT`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		if err := db.applyMigration(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, name string) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM migrations WHERE name = ?", name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("apply migration %s: %w", name, err)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
			name, formatTime(time.Now()))
		return err
	})
}

// update runs fn in an immediate write transaction through the writer; see
// writer.update.
func (db *DB) update(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return db.writer.update(ctx, fn)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY failure.
func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		code := e.Code()
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// isForeignKeyViolation reports whether err is a FOREIGN KEY failure.
func isForeignKeyViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// notFound returns the ENotFound error for a missing row.
func notFound(format string, args ...any) error {
	return onboard.Errorf(onboard.ENotFound, format, args...)
}

// checkAffected turns an update that touched no row into ENotFound.
func checkAffected(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("%s was not found.", what)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// placeholders returns "?, ?, …" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// ConnectionPragmas returns foreign_keys and busy_timeout as set on one
// pooled read connection, for checks that the DSN applies them everywhere.
func (db *DB) ConnectionPragmas(ctx context.Context) (foreignKeys, busyTimeout int, err error) {
	conn, err := db.read.Conn(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&foreignKeys); err != nil {
		return 0, 0, err
	}
	err = conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busyTimeout)
	return foreignKeys, busyTimeout, err
}
