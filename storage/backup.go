package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
)

// BackupFile writes a consistent copy of the database at src to dst while a
// deployer may be running on src. It opens src read-only, runs no
// migrations and takes no lock file, so it works beside a running server:
// VACUUM INTO copies one read transaction's snapshot, and in WAL mode that
// read never blocks the server's writes. The copy is written to a temporary
// file beside dst, synced, and then linked to dst, so dst never holds half a
// copy. BackupFile returns an error wrapping fs.ErrExist when dst exists and
// fs.ErrNotExist when src does not.
//
// NOTE: when no server has src open, SQLite creates src's -wal and -shm files
// for the read, owned by the user that runs the backup, and leaves them. Run
// backups as the service's user, so that the server can open them later.
func BackupFile(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("back up %s: %w", src, err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("back up to %s: %w; choose a new file name", dst, fs.ErrExist)
	}

	tmp, err := tempName(dst)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := vacuumInto(ctx, src, tmp); err != nil {
		return err
	}
	// The copy holds password hashes; only its owner may read it.
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("back up to %s: %w", dst, err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	// A hard link fails when dst appeared meanwhile, where a rename would
	// replace it.
	if err := os.Link(tmp, dst); err != nil {
		return fmt.Errorf("back up to %s: %w", dst, err)
	}
	return syncFile(filepath.Dir(dst))
}

// tempName returns an unused file name in dst's folder.
func tempName(dst string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("back up to %s: %w", dst, err)
	}
	name := f.Name()
	f.Close()
	// VACUUM INTO writes only to a file that does not exist or is empty;
	// removing it keeps the unique name without relying on the latter.
	if err := os.Remove(name); err != nil {
		return "", fmt.Errorf("back up to %s: %w", dst, err)
	}
	return name, nil
}

// vacuumInto copies src into the new file dst through a read-only
// connection, which cannot change src even by mistake.
func vacuumInto(ctx context.Context, src, dst string) error {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+src+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("back up %s: %w", src, err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// BackupReport is the result of CheckBackup.
type BackupReport struct {
	// Rows counts the rows of each table.
	Rows map[string]int
}

// CheckBackup opens a copy read-only, runs SQLite's integrity check and
// counts the rows of every table. It returns an error when the check finds
// anything wrong.
func CheckBackup(ctx context.Context, path string) (BackupReport, error) {
	if _, err := os.Stat(path); err != nil {
		return BackupReport{}, fmt.Errorf("check backup: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return BackupReport{}, fmt.Errorf("open backup %s: %w", path, err)
	}
	defer db.Close()

	var result string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check(1)").Scan(&result); err != nil {
		return BackupReport{}, fmt.Errorf("check backup %s: %w", path, err)
	}
	if result != "ok" {
		return BackupReport{}, fmt.Errorf("backup %s failed the integrity check: %s", path, result)
	}
	rows, err := countRows(ctx, db)
	if err != nil {
		return BackupReport{}, fmt.Errorf("check backup %s: %w", path, err)
	}
	return BackupReport{Rows: rows}, nil
}

func countRows(ctx context.Context, db *sql.DB) (map[string]int, error) {
	list, err := db.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
	if err != nil {
		return nil, err
	}
	var tables []string
	for list.Next() {
		var name string
		if err := list.Scan(&name); err != nil {
			list.Close()
			return nil, err
		}
		tables = append(tables, name)
	}
	list.Close()
	if err := list.Err(); err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		return nil, errors.New("no tables; this is not a deployer database")
	}

	counts := map[string]int{}
	for _, table := range tables {
		var n int
		// The name comes from sqlite_schema, not from input, and is quoted.
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "`+table+`"`).Scan(&n); err != nil {
			return nil, err
		}
		counts[table] = n
	}
	return counts, nil
}
