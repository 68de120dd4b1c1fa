package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"deployer/onboard"
)

var _ onboard.AdminStore = (*DB)(nil)

// CreateAdmin inserts an admin and reports whether it did.
func (db *DB) CreateAdmin(ctx context.Context, a onboard.Admin) (bool, error) {
	var ok bool
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO admins (username, password_hash, created_at, updated_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (username) DO NOTHING`,
			a.Username, a.PasswordHash, formatTime(a.CreatedAt), formatTime(a.UpdatedAt))
		if err != nil {
			return fmt.Errorf("insert admin %s: %w", a.Username, err)
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	return ok, err
}

// FindAdmin returns one admin, or ENotFound.
func (db *DB) FindAdmin(ctx context.Context, username string) (*onboard.Admin, error) {
	var a onboard.Admin
	var created, updated string
	err := db.read.QueryRowContext(ctx, `SELECT username, password_hash, created_at, updated_at FROM admins
		WHERE username = ?`, username).Scan(&a.Username, &a.PasswordHash, &created, &updated)
	if err == sql.ErrNoRows {
		return nil, notFound("Admin %s was not found.", username)
	}
	if err != nil {
		return nil, fmt.Errorf("find admin: %w", err)
	}
	a.CreatedAt, a.UpdatedAt = parseTime(created), parseTime(updated)
	return &a, nil
}

// ListAdmins returns every admin, without password hashes.
func (db *DB) ListAdmins(ctx context.Context) ([]onboard.Admin, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT username, created_at, updated_at FROM admins ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	defer rows.Close()
	var list []onboard.Admin
	for rows.Next() {
		var a onboard.Admin
		var created, updated string
		if err := rows.Scan(&a.Username, &created, &updated); err != nil {
			return nil, fmt.Errorf("list admins: %w", err)
		}
		a.CreatedAt, a.UpdatedAt = parseTime(created), parseTime(updated)
		list = append(list, a)
	}
	return list, rows.Err()
}

// SetAdminPassword stores a new hash and ends the admin's sessions.
func (db *DB) SetAdminPassword(ctx context.Context, username string, hash []byte, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE admins SET password_hash = ?, updated_at = ? WHERE username = ?",
			hash, formatTime(now), username)
		if err := checkAffected(res, err, "Admin "+username); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM sessions WHERE admin = ?", username)
		return err
	})
}

// CreateSession stores a session by the hash of its id.
func (db *DB) CreateSession(ctx context.Context, s onboard.Session) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (id_hash, admin, created_at, last_seen_at) VALUES (?, ?, ?, ?)`,
			s.IDHash, s.Admin, formatTime(s.CreatedAt), formatTime(s.LastSeenAt))
		return err
	})
}

// FindSession returns the session with the id hash, or ENotFound.
func (db *DB) FindSession(ctx context.Context, idHash string) (*onboard.Session, error) {
	var s onboard.Session
	var created, seen string
	err := db.read.QueryRowContext(ctx, `SELECT id_hash, admin, created_at, last_seen_at FROM sessions WHERE id_hash = ?`,
		idHash).Scan(&s.IDHash, &s.Admin, &created, &seen)
	if err == sql.ErrNoRows {
		return nil, notFound("Session was not found.")
	}
	if err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	s.CreatedAt, s.LastSeenAt = parseTime(created), parseTime(seen)
	return &s, nil
}

// TouchSession records that the session was used.
func (db *DB) TouchSession(ctx context.Context, idHash string, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", formatTime(now), idHash)
		return err
	})
}

// DeleteSession removes a session.
func (db *DB) DeleteSession(ctx context.Context, idHash string) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE id_hash = ?", idHash)
		return err
	})
}

// DeleteIdleSessions removes sessions last seen before the cutoff.
func (db *DB) DeleteIdleSessions(ctx context.Context, before time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE last_seen_at < ?", formatTime(before))
		return err
	})
}
