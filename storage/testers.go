package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"deployer/onboard"
)

var _ onboard.Store = (*DB)(nil)

const testerColumns = `username, full_name, email, account, password_hash, deployment_state, node_id,
	project, gateway, vm_address, deployment_error, deployment_onboarding_id, install_state,
	install_error, cockpit_url, created_at, updated_at`

type rowScanner interface {
	Scan(dest ...any) error
}

func scanTester(row rowScanner) (*onboard.Tester, error) {
	var t onboard.Tester
	var created, updated string
	d := &t.Deployment
	err := row.Scan(&t.Username, &t.FullName, &t.Email, &t.Account, &t.PasswordHash, &d.State, &d.NodeID,
		&d.Project, &d.Gateway, &d.VMAddress, &d.Error, &d.OnboardingID, &t.InstallState,
		&t.InstallError, &t.CockpitURL, &created, &updated)
	if err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = parseTime(created), parseTime(updated)
	return &t, nil
}

// CreateTester inserts t and reports whether it did.
func (db *DB) CreateTester(ctx context.Context, t *onboard.Tester) (bool, error) {
	var created bool
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		created, err = insertTester(ctx, tx, t)
		return err
	})
	return created, err
}

func insertTester(ctx context.Context, tx *sql.Tx, t *onboard.Tester) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO testers (username, full_name, email, account, password_hash,
		deployment_state, install_state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING`,
		t.Username, t.FullName, t.Email, t.Account, t.PasswordHash, onboard.DeploymentNone,
		onboard.InstallNone, formatTime(t.CreatedAt), formatTime(t.UpdatedAt))
	if err != nil {
		return false, fmt.Errorf("insert tester %s: %w", t.Username, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// FindTester returns the tester with its contracts, or ENotFound.
func (db *DB) FindTester(ctx context.Context, username string) (*onboard.Tester, error) {
	t, err := scanTester(db.read.QueryRowContext(ctx,
		"SELECT "+testerColumns+" FROM testers WHERE username = ?", username))
	if err == sql.ErrNoRows {
		return nil, notFound("Tester %s was not found.", username)
	}
	if err != nil {
		return nil, fmt.Errorf("find tester %s: %w", username, err)
	}
	contracts, err := db.contracts(ctx, "WHERE username = ?", username)
	if err != nil {
		return nil, err
	}
	t.Deployment.Contracts = contracts[username]
	return t, nil
}

// ListTesters returns every tester with its contracts, ordered by username.
func (db *DB) ListTesters(ctx context.Context) ([]*onboard.Tester, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT "+testerColumns+" FROM testers ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("list testers: %w", err)
	}
	defer rows.Close()
	var testers []*onboard.Tester
	for rows.Next() {
		t, err := scanTester(rows)
		if err != nil {
			return nil, fmt.Errorf("list testers: %w", err)
		}
		testers = append(testers, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list testers: %w", err)
	}
	contracts, err := db.contracts(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, t := range testers {
		t.Deployment.Contracts = contracts[t.Username]
	}
	return testers, nil
}

// SearchTesters returns one page of testers whose username, full name or
// email contains text, newest first, and how many match in all.
func (db *DB) SearchTesters(ctx context.Context, text string, offset, limit int) ([]*onboard.Tester, int, error) {
	where, args := "", []any{}
	if text != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(strings.ToLower(text)) + "%"
		where = `WHERE username LIKE ?1 ESCAPE '\' OR lower(full_name) LIKE ?1 ESCAPE '\' OR lower(email) LIKE ?1 ESCAPE '\'`
		args = append(args, like)
	}
	var total int
	if err := db.read.QueryRowContext(ctx, "SELECT count(*) FROM testers "+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count testers: %w", err)
	}
	rows, err := db.read.QueryContext(ctx, "SELECT "+testerColumns+" FROM testers "+where+
		fmt.Sprintf(" ORDER BY created_at DESC, username LIMIT %d OFFSET %d", limit, offset), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("search testers: %w", err)
	}
	defer rows.Close()
	var testers []*onboard.Tester
	var names []any
	for rows.Next() {
		t, err := scanTester(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("search testers: %w", err)
		}
		testers = append(testers, t)
		names = append(names, t.Username)
	}
	if err := rows.Err(); err != nil || len(names) == 0 {
		return testers, total, err
	}
	contracts, err := db.contracts(ctx, "WHERE username IN ("+placeholders(len(names))+")", names...)
	if err != nil {
		return nil, 0, err
	}
	for _, t := range testers {
		t.Deployment.Contracts = contracts[t.Username]
	}
	return testers, total, nil
}

// contracts returns recorded contracts by tester.
func (db *DB) contracts(ctx context.Context, where string, args ...any) (map[string][]onboard.Contract, error) {
	rows, err := db.read.QueryContext(ctx,
		"SELECT id, username, kind, name, node_id, project FROM contracts "+where+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("list contracts: %w", err)
	}
	defer rows.Close()
	byTester := map[string][]onboard.Contract{}
	for rows.Next() {
		var c onboard.Contract
		var username string
		if err := rows.Scan(&c.ID, &username, &c.Kind, &c.Name, &c.NodeID, &c.Project); err != nil {
			return nil, fmt.Errorf("list contracts: %w", err)
		}
		c.State = "created"
		byTester[username] = append(byTester[username], c)
	}
	return byTester, rows.Err()
}

// SetPasswordHash replaces the tester's password hash.
func (db *DB) SetPasswordHash(ctx context.Context, username string, hash []byte, now time.Time) error {
	return db.updateTester(ctx, username, "password_hash = ?", hash, formatTime(now))
}

// updateTester sets columns of one tester; set ends before updated_at, whose
// value is the last argument.
func (db *DB) updateTester(ctx context.Context, username, set string, args ...any) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return updateTesterTx(ctx, tx, username, set, args...)
	})
}

func updateTesterTx(ctx context.Context, tx *sql.Tx, username, set string, args ...any) error {
	args = append(args, username)
	res, err := tx.ExecContext(ctx, "UPDATE testers SET "+set+", updated_at = ? WHERE username = ?", args...)
	return checkAffected(res, err, "Tester "+username)
}

// SetInstallState sets the install state and its error text.
func (db *DB) SetInstallState(ctx context.Context, username, state, reason string, now time.Time) error {
	return db.updateTester(ctx, username, "install_state = ?, install_error = ?", state, reason, formatTime(now))
}

// MarkInstalled stores the cockpit URL and queues the welcome email in the
// same transaction, so the email goes out exactly when the tester is ready.
func (db *DB) MarkInstalled(ctx context.Context, username, cockpitURL string, m *onboard.Message, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := updateTesterTx(ctx, tx, username, "install_state = ?, install_error = '', cockpit_url = ?",
			onboard.InstallInstalled, cockpitURL, formatTime(now)); err != nil {
			return err
		}
		if m == nil {
			return nil
		}
		return insertMessage(ctx, tx, *m)
	})
}

// DeleteTester removes the tester; its contracts, reservation, onboardings,
// stages and events go with it through the foreign keys. Log lines and
// outbox messages are not keyed to the tester row and are removed here.
func (db *DB) DeleteTester(ctx context.Context, username string) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM testers WHERE username = ?", username)
		if err := checkAffected(res, err, "Tester "+username); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM stage_logs WHERE username = ?", username); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM outbox WHERE tester = ? AND status = 'pending'", username)
		return err
	})
}

// BeginTeardown marks the deployment as being torn down.
func (db *DB) BeginTeardown(ctx context.Context, username string, now time.Time) error {
	return db.updateTester(ctx, username, "deployment_state = ?, deployment_error = ''",
		onboard.DeploymentTearingDown, formatTime(now))
}

// FailTeardown keeps the contracts and records why the teardown failed.
func (db *DB) FailTeardown(ctx context.Context, username, reason string, now time.Time) error {
	return db.updateTester(ctx, username, "deployment_state = ?, deployment_error = ?",
		onboard.DeploymentTeardownFail, reason, formatTime(now))
}

// FinishTeardown drops the deployment, its contracts and any reservation.
func (db *DB) FinishTeardown(ctx context.Context, username string, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM contracts WHERE username = ?", username); err != nil {
			return err
		}
		if err := releaseReservation(ctx, tx, username); err != nil {
			return err
		}
		return updateTesterTx(ctx, tx, username, `deployment_state = ?, node_id = '', project = '', gateway = '',
			vm_address = '', deployment_error = '', deployment_onboarding_id = '', install_state = ?,
			install_error = '', cockpit_url = ''`,
			onboard.DeploymentNone, onboard.InstallNone, formatTime(now))
	})
}
