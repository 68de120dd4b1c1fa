package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"deployer/onboard"
)

func insertMessage(ctx context.Context, tx *sql.Tx, m onboard.Message) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (tester, to_addr, to_name, subject, body, status, next_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, m.Tester, m.To, m.ToName, m.Subject, m.Body, onboard.MessagePending,
		formatTime(m.NextAt), formatTime(m.Created))
	if err != nil {
		return fmt.Errorf("queue message to %s: %w", m.Tester, err)
	}
	return nil
}

const messageColumns = `id, tester, to_addr, to_name, subject, body, status, attempts, last_error, next_at, sent_at, created_at`

func (db *DB) messages(ctx context.Context, where string, args ...any) ([]onboard.Message, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT "+messageColumns+" FROM outbox "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	defer rows.Close()
	var list []onboard.Message
	for rows.Next() {
		var m onboard.Message
		var next, sent, created string
		if err := rows.Scan(&m.ID, &m.Tester, &m.To, &m.ToName, &m.Subject, &m.Body, &m.Status, &m.Attempts,
			&m.LastErr, &next, &sent, &created); err != nil {
			return nil, fmt.Errorf("list outbox: %w", err)
		}
		m.NextAt, m.SentAt, m.Created = parseTime(next), parseTime(sent), parseTime(created)
		list = append(list, m)
	}
	return list, rows.Err()
}

// DueMessages returns pending messages whose next attempt is due.
func (db *DB) DueMessages(ctx context.Context, now time.Time, limit int) ([]onboard.Message, error) {
	return db.messages(ctx, "WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?", formatTime(now), limit)
}

// ListMessages returns the newest messages first.
func (db *DB) ListMessages(ctx context.Context, limit int) ([]onboard.Message, error) {
	return db.messages(ctx, "ORDER BY id DESC LIMIT ?", limit)
}

// MarkMessageSent records a delivery.
func (db *DB) MarkMessageSent(ctx context.Context, id int64, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET status = 'sent', attempts = attempts + 1, last_error = '',
			sent_at = ? WHERE id = ?`, formatTime(now), id)
		return checkAffected(res, err, fmt.Sprintf("Message %d", id))
	})
}

// MarkMessageFailed records a failed attempt; a zero next fails it for good.
func (db *DB) MarkMessageFailed(ctx context.Context, id int64, reason string, next time.Time) error {
	status := onboard.MessagePending
	if next.IsZero() {
		status = onboard.MessageFailed
	}
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?,
			next_at = ? WHERE id = ?`, status, reason, formatTime(next), id)
		return checkAffected(res, err, fmt.Sprintf("Message %d", id))
	})
}

// CountMessages returns how many outbox messages have each status: pending
// (the backlog still to deliver), sent and failed. A status without messages
// has no entry.
func (db *DB) CountMessages(ctx context.Context) (map[string]int, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT status, count(*) FROM outbox GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("count outbox messages: %w", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("count outbox messages: %w", err)
		}
		counts[status] = n
	}
	return counts, rows.Err()
}
