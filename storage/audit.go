package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"deployer/onboard"
)

// RecordAudit appends an entry to the audit log.
func (db *DB) RecordAudit(ctx context.Context, e onboard.AuditEntry) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (actor, action, tester, node_id, outcome, detail, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, e.Actor, e.Action, e.Tester, e.NodeID, e.Outcome, e.Detail, formatTime(e.Time))
		return err
	})
}

// ListAudit returns entries matching the filter, newest first.
func (db *DB) ListAudit(ctx context.Context, f onboard.AuditFilter) ([]onboard.AuditEntry, error) {
	var conds []string
	var args []any
	for _, c := range []struct{ column, value string }{
		{"actor", f.Actor}, {"action", f.Action}, {"tester", f.Tester}, {"node_id", f.NodeID},
	} {
		if c.value != "" {
			conds = append(conds, c.column+" = ?")
			args = append(args, c.value)
		}
	}
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	args = append(args, f.Limit)
	rows, err := db.read.QueryContext(ctx, `SELECT id, actor, action, tester, node_id, outcome, detail, created_at
		FROM audit_log `+where+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	defer rows.Close()
	var list []onboard.AuditEntry
	for rows.Next() {
		var e onboard.AuditEntry
		var ts string
		if err := rows.Scan(&e.ID, &e.Actor, &e.Action, &e.Tester, &e.NodeID, &e.Outcome, &e.Detail, &ts); err != nil {
			return nil, fmt.Errorf("list audit log: %w", err)
		}
		e.Time = parseTime(ts)
		list = append(list, e)
	}
	return list, rows.Err()
}
