package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"deployer/onboard"
)

const onboardingColumns = `id, username, node_id, status, attempt, coalesce(form_key, ''), cockpit_url,
	error_code, error_message, created_account, lease_owner, lease_expires_at, cancel_requested,
	started_by, last_seq, created_at, updated_at, finished_at`

func scanOnboarding(row rowScanner) (*onboard.Onboarding, error) {
	var o onboard.Onboarding
	var createdAccount, cancel int
	var lease, created, updated, finished string
	err := row.Scan(&o.ID, &o.Username, &o.NodeID, &o.Status, &o.Attempt, &o.FormKey, &o.CockpitURL,
		&o.ErrorCode, &o.ErrorMessage, &createdAccount, &o.LeaseOwner, &lease, &cancel,
		&o.StartedBy, &o.LastSeq, &created, &updated, &finished)
	if err != nil {
		return nil, err
	}
	o.CreatedAccount, o.CancelRequest = createdAccount == 1, cancel == 1
	o.LeaseExpiresAt, o.CreatedAt = parseTime(lease), parseTime(created)
	o.UpdatedAt, o.FinishedAt = parseTime(updated), parseTime(finished)
	return &o, nil
}

// queryOnboardings returns the onboardings selected by where, with stages.
func (db *DB) queryOnboardings(ctx context.Context, where string, args ...any) ([]*onboard.Onboarding, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT "+onboardingColumns+" FROM onboardings "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list onboardings: %w", err)
	}
	defer rows.Close()
	var list []*onboard.Onboarding
	byID := map[string]*onboard.Onboarding{}
	for rows.Next() {
		o, err := scanOnboarding(rows)
		if err != nil {
			return nil, fmt.Errorf("list onboardings: %w", err)
		}
		list = append(list, o)
		byID[o.ID] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list onboardings: %w", err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	ids := make([]any, 0, len(list))
	for _, o := range list {
		ids = append(ids, o.ID)
	}
	stageRows, err := db.read.QueryContext(ctx, `SELECT onboarding_id, name, status, message, started_at, finished_at
		FROM onboarding_stages WHERE onboarding_id IN (`+placeholders(len(ids))+`) ORDER BY onboarding_id, position`, ids...)
	if err != nil {
		return nil, fmt.Errorf("list onboarding stages: %w", err)
	}
	defer stageRows.Close()
	for stageRows.Next() {
		var id, started, finished string
		var s onboard.Stage
		if err := stageRows.Scan(&id, &s.Name, &s.Status, &s.Message, &started, &finished); err != nil {
			return nil, fmt.Errorf("list onboarding stages: %w", err)
		}
		s.StartedAt, s.FinishedAt = parseTime(started), parseTime(finished)
		byID[id].Stages = append(byID[id].Stages, s)
	}
	return list, stageRows.Err()
}

func (db *DB) findOnboarding(ctx context.Context, what, where string, args ...any) (*onboard.Onboarding, error) {
	list, err := db.queryOnboardings(ctx, where+" LIMIT 1", args...)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, notFound("%s was not found.", what)
	}
	return list[0], nil
}

// FindOnboarding returns one onboarding with its stages, or ENotFound.
func (db *DB) FindOnboarding(ctx context.Context, id string) (*onboard.Onboarding, error) {
	return db.findOnboarding(ctx, "Onboarding "+id, "WHERE id = ?", id)
}

// FindOnboardingByFormKey returns the onboarding the form started, or ENotFound.
func (db *DB) FindOnboardingByFormKey(ctx context.Context, key string) (*onboard.Onboarding, error) {
	return db.findOnboarding(ctx, "Onboarding for this form", "WHERE form_key = ?", key)
}

// ActiveOnboarding returns the tester's running onboarding, or ENotFound.
func (db *DB) ActiveOnboarding(ctx context.Context, username string) (*onboard.Onboarding, error) {
	return db.findOnboarding(ctx, "Running onboarding of "+username, "WHERE username = ? AND status = 'running'", username)
}

// ListOnboardings returns onboardings newest first.
func (db *DB) ListOnboardings(ctx context.Context, username string, limit int) ([]*onboard.Onboarding, error) {
	if limit <= 0 {
		limit = 100
	}
	if username == "" {
		return db.queryOnboardings(ctx, "ORDER BY created_at DESC, id LIMIT ?", limit)
	}
	return db.queryOnboardings(ctx, "WHERE username = ? ORDER BY created_at DESC, id LIMIT ?", username, limit)
}

// ListRunningOnboardings returns every running onboarding, oldest first.
func (db *DB) ListRunningOnboardings(ctx context.Context) ([]*onboard.Onboarding, error) {
	return db.queryOnboardings(ctx, "WHERE status = 'running' ORDER BY created_at")
}

// CreateOnboarding stores the onboarding, the new account and the first
// events in one transaction.
func (db *DB) CreateOnboarding(ctx context.Context, o *onboard.Onboarding, newTester *onboard.Tester,
	events []onboard.Event) (created bool, active *onboard.Onboarding, err error) {
	conflict := false
	err = db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if newTester != nil {
			if created, err = insertTester(ctx, tx, newTester); err != nil {
				return err
			}
		}
		var formKey any
		if o.FormKey != "" {
			formKey = o.FormKey
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO onboardings (id, username, node_id, status, attempt, form_key,
			created_account, started_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.Username, o.NodeID, o.Status, o.Attempt, formKey, boolInt(created), o.StartedBy,
			formatTime(o.CreatedAt), formatTime(o.UpdatedAt))
		if isUniqueViolation(err) {
			conflict = true
			return err
		}
		if isForeignKeyViolation(err) {
			return onboard.Errorf(onboard.EConflict, "Tester %s was deleted while this start ran. Start again to add it anew.",
				o.Username)
		}
		if err != nil {
			return fmt.Errorf("insert onboarding: %w", err)
		}
		for i, s := range o.Stages {
			if _, err := tx.ExecContext(ctx, `INSERT INTO onboarding_stages (onboarding_id, position, name, status)
				VALUES (?, ?, ?, ?)`, o.ID, i, s.Name, s.Status); err != nil {
				return err
			}
		}
		for _, e := range events {
			e.OnboardingID = o.ID
			if _, err := appendEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if conflict {
		// A unique index held: the tester has a running onboarding, or the
		// form was submitted before. Nothing was stored.
		if o.FormKey != "" {
			existing, err := db.FindOnboardingByFormKey(ctx, o.FormKey)
			if err == nil && existing.Username != o.Username {
				return false, nil, onboard.FormKeyUsed(existing.Username, o.Username)
			}
			if err == nil {
				return false, existing, nil
			}
		}
		existing, err := db.ActiveOnboarding(ctx, o.Username)
		return false, existing, err
	}
	return created, nil, err
}

// ClaimOnboarding takes the lease of a running onboarding.
func (db *DB) ClaimOnboarding(ctx context.Context, id, owner string, until time.Time, takeover bool) (bool, error) {
	now := formatTime(time.Now())
	cond := "(lease_owner = '' OR lease_owner = ? OR lease_expires_at < ?)"
	if takeover {
		cond = "(1 OR lease_owner = ? OR lease_expires_at < ?)"
	}
	var ok bool
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE onboardings SET lease_owner = ?, lease_expires_at = ?
			WHERE id = ? AND status = 'running' AND `+cond, owner, formatTime(until), id, owner, now)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	return ok, err
}

// RenewLease extends the owner's lease.
func (db *DB) RenewLease(ctx context.Context, id, owner string, until time.Time) (bool, error) {
	var ok bool
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE onboardings SET lease_expires_at = ?
			WHERE id = ? AND lease_owner = ? AND status = 'running'`, formatTime(until), id, owner)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	return ok, err
}

// ReleaseLease gives up the owner's lease, if it still holds it.
func (db *DB) ReleaseLease(ctx context.Context, id, owner string) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE onboardings SET lease_owner = '', lease_expires_at = ''
			WHERE id = ? AND lease_owner = ?`, id, owner)
		return err
	})
}
