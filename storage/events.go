package storage

import (
	"context"
	"database/sql"
	"fmt"

	"deployer/onboard"
)

// AppendEvent stores the event with the next sequence number and applies it
// to the onboarding, in one transaction.
func (db *DB) AppendEvent(ctx context.Context, e onboard.Event) (onboard.Event, error) {
	var stored onboard.Event
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		stored, err = appendEvent(ctx, tx, e)
		return err
	})
	return stored, err
}

func appendEvent(ctx context.Context, tx *sql.Tx, e onboard.Event) (onboard.Event, error) {
	ts := formatTime(e.Time)
	switch e.Kind {
	case onboard.EventResume:
		if err := restartOnboarding(ctx, tx, e.OnboardingID, ts); err != nil {
			return e, err
		}
	case onboard.EventCancel:
		if err := requestCancel(ctx, tx, e.OnboardingID); err != nil {
			return e, err
		}
	}
	err := tx.QueryRowContext(ctx, `UPDATE onboardings SET last_seq = last_seq + 1, updated_at = ?
		WHERE id = ? RETURNING last_seq`, ts, e.OnboardingID).Scan(&e.Seq)
	if err == sql.ErrNoRows {
		return e, notFound("Onboarding %s was not found.", e.OnboardingID)
	}
	if err != nil {
		return e, fmt.Errorf("number event of onboarding %s: %w", e.OnboardingID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (onboarding_id, seq, kind, stage, status, message, code, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.OnboardingID, e.Seq, e.Kind, e.Stage, e.Status, e.Message, e.Code, ts); err != nil {
		return e, fmt.Errorf("insert event of onboarding %s: %w", e.OnboardingID, err)
	}
	e.Time = parseTime(ts)

	switch e.Kind {
	case onboard.EventStage:
		_, err = tx.ExecContext(ctx, `UPDATE onboarding_stages SET status = ?1, message = ?2,
			started_at = CASE WHEN ?1 = 'running' AND started_at = '' THEN ?3 ELSE started_at END,
			finished_at = CASE WHEN ?1 IN ('pending', 'running') THEN '' ELSE ?3 END
			WHERE onboarding_id = ?4 AND name = ?5`, e.Status, e.Message, ts, e.OnboardingID, e.Stage)
	case onboard.EventLog:
		_, err = tx.ExecContext(ctx, `UPDATE onboarding_stages SET message = ? WHERE onboarding_id = ? AND name = ?`,
			e.Message, e.OnboardingID, e.Stage)
	case onboard.EventFinish:
		cockpit := ""
		if e.Status == onboard.StatusSucceeded {
			cockpit = e.Message
		}
		_, err = tx.ExecContext(ctx, `UPDATE onboardings SET status = ?, error_code = ?, error_message = ?,
			cockpit_url = ?, finished_at = ?, lease_owner = '', lease_expires_at = '' WHERE id = ?`,
			e.Status, e.Code, errorMessage(e), cockpit, ts, e.OnboardingID)
	}
	if err != nil {
		return e, fmt.Errorf("apply %s event to onboarding %s: %w", e.Kind, e.OnboardingID, err)
	}
	return e, nil
}

// restartOnboarding starts a new attempt of a failed or canceled onboarding:
// it runs again, and its failed, canceled and pending stages are pending.
func restartOnboarding(ctx context.Context, tx *sql.Tx, id, ts string) error {
	res, err := tx.ExecContext(ctx, `UPDATE onboardings SET status = 'running', attempt = attempt + 1,
		error_code = '', error_message = '', cancel_requested = 0, finished_at = ''
		WHERE id = ? AND status IN ('failed', 'canceled')`, id)
	if isUniqueViolation(err) {
		return onboard.Errorf(onboard.EConflict, "Another onboarding is running for this tester. Open it instead.")
	}
	if err := checkAffected(res, err, "Failed or canceled onboarding "+id); err != nil {
		return onboard.Errorf(onboard.EConflict, "Onboarding %s is not failed or canceled, so it cannot be resumed.", id)
	}
	_, err = tx.ExecContext(ctx, `UPDATE onboarding_stages SET status = 'pending', message = '', started_at = '',
		finished_at = '' WHERE onboarding_id = ? AND status IN ('failed', 'canceled', 'pending')`, id)
	return err
}

// requestCancel marks a running onboarding for its worker to cancel. It
// returns EConflict when the onboarding is no longer running, and
// onboard.ErrCancelPending when its cancel was already requested, so that
// concurrent requests store one cancel event.
func requestCancel(ctx context.Context, tx *sql.Tx, id string) error {
	var status string
	var requested bool
	err := tx.QueryRowContext(ctx, "SELECT status, cancel_requested FROM onboardings WHERE id = ?", id).
		Scan(&status, &requested)
	switch {
	case err == sql.ErrNoRows:
		return notFound("Onboarding %s was not found.", id)
	case err != nil:
		return fmt.Errorf("read onboarding %s before its cancel: %w", id, err)
	case status != onboard.StatusRunning:
		return onboard.Errorf(onboard.EConflict, "Onboarding %s is no longer running, so there is nothing to cancel.", id)
	case requested:
		return onboard.ErrCancelPending
	}
	if _, err := tx.ExecContext(ctx, "UPDATE onboardings SET cancel_requested = 1 WHERE id = ?", id); err != nil {
		return fmt.Errorf("record cancel of onboarding %s: %w", id, err)
	}
	return nil
}

func errorMessage(e onboard.Event) string {
	if e.Status == onboard.StatusSucceeded {
		return ""
	}
	return e.Message
}

// Events returns the onboarding's events after the sequence number, oldest
// first, at most limit of them.
func (db *DB) Events(ctx context.Context, id string, after int64, limit int) ([]onboard.Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.read.QueryContext(ctx, `SELECT seq, kind, stage, status, message, code, created_at FROM events
		WHERE onboarding_id = ? AND seq > ? ORDER BY seq LIMIT ?`, id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list events of onboarding %s: %w", id, err)
	}
	defer rows.Close()
	var events []onboard.Event
	for rows.Next() {
		e := onboard.Event{OnboardingID: id}
		var ts string
		if err := rows.Scan(&e.Seq, &e.Kind, &e.Stage, &e.Status, &e.Message, &e.Code, &ts); err != nil {
			return nil, fmt.Errorf("list events of onboarding %s: %w", id, err)
		}
		e.Time = parseTime(ts)
		events = append(events, e)
	}
	return events, rows.Err()
}

// AppendLog stores one log line of a step run and, when e is not nil, the
// event that carries it to the streams, in one transaction.
func (db *DB) AppendLog(ctx context.Context, runID, username string, l onboard.LogLine, e *onboard.Event) (onboard.Event, error) {
	var stored onboard.Event
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO stage_logs (run_id, username, onboarding_id, attempt, stage, line, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, runID, username, l.OnboardingID, l.Attempt, l.Stage, l.Line, formatTime(l.Time))
		if err != nil || e == nil {
			return err
		}
		stored, err = appendEvent(ctx, tx, *e)
		return err
	})
	return stored, err
}

// StageLog returns one stage's log lines of an onboarding's attempt; attempt
// 0 means every attempt.
func (db *DB) StageLog(ctx context.Context, onboardingID, stage string, attempt int) ([]onboard.LogLine, error) {
	return db.logLines(ctx, `WHERE onboarding_id = ? AND stage = ? AND (? = 0 OR attempt = ?) ORDER BY id LIMIT 5000`,
		onboardingID, stage, attempt, attempt)
}

// TesterLog returns the newest log lines of the tester's step runs, oldest
// first.
func (db *DB) TesterLog(ctx context.Context, username string, limit int) ([]onboard.LogLine, error) {
	lines, err := db.logLines(ctx, "WHERE username = ? ORDER BY id DESC LIMIT ?", username, limit)
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	return lines, err
}

func (db *DB) logLines(ctx context.Context, where string, args ...any) ([]onboard.LogLine, error) {
	rows, err := db.read.QueryContext(ctx,
		"SELECT id, onboarding_id, attempt, stage, line, created_at FROM stage_logs "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list log lines: %w", err)
	}
	defer rows.Close()
	var lines []onboard.LogLine
	for rows.Next() {
		var l onboard.LogLine
		var ts string
		if err := rows.Scan(&l.Seq, &l.OnboardingID, &l.Attempt, &l.Stage, &l.Line, &ts); err != nil {
			return nil, fmt.Errorf("list log lines: %w", err)
		}
		l.Time = parseTime(ts)
		lines = append(lines, l)
	}
	return lines, rows.Err()
}
