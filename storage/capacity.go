package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"deployer/onboard"
)

// ensureNode creates the node's row when it is missing.
func ensureNode(ctx context.Context, tx *sql.Tx, nodeID string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO nodes (node_id, updated_at) VALUES (?, ?)
		ON CONFLICT (node_id) DO NOTHING`, nodeID, formatTime(now))
	return err
}

// reservedSlots returns the slots held on the node by reservations whose VM
// the grid does not count yet.
func reservedSlots(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, nodeID string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx,
		"SELECT coalesce(sum(slots), 0) FROM reservations WHERE node_id = ? AND landed = 0", nodeID).Scan(&n)
	return n, err
}

// NodeHold returns the node's unlanded reservations and health.
func (db *DB) NodeHold(ctx context.Context, nodeID string) (onboard.NodeHold, error) {
	var h onboard.NodeHold
	var err error
	if h.ReservedSlots, err = reservedSlots(ctx, db.read, nodeID); err != nil {
		return h, fmt.Errorf("read reservations of node %s: %w", nodeID, err)
	}
	var degraded int
	err = db.read.QueryRowContext(ctx, "SELECT degraded, degraded_reason, failures FROM nodes WHERE node_id = ?",
		nodeID).Scan(&degraded, &h.DegradedReason, &h.Failures)
	if err != nil && err != sql.ErrNoRows {
		return h, fmt.Errorf("read health of node %s: %w", nodeID, err)
	}
	h.Degraded = degraded == 1
	return h, nil
}

// HeldSlots returns the tester's unlanded reservation on the node.
func (db *DB) HeldSlots(ctx context.Context, username, nodeID string) (int, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT coalesce(sum(slots), 0) FROM reservations
		WHERE username = ? AND node_id = ? AND landed = 0`, username, nodeID).Scan(&n)
	return n, err
}

// NodeLandedSlots returns the node's counter of landed reservation slots;
// 0 for a node never used.
func (db *DB) NodeLandedSlots(ctx context.Context, nodeID string) (int64, error) {
	var landed int64
	err := db.read.QueryRowContext(ctx, "SELECT landed_slots FROM nodes WHERE node_id = ?", nodeID).Scan(&landed)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return landed, err
}

// BeginProvision checks the room and reserves in one immediate transaction.
func (db *DB) BeginProvision(ctx context.Context, p onboard.ProvisionStart, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := ensureNode(ctx, tx, p.NodeID, now); err != nil {
			return err
		}
		var landed int64
		var degraded int
		var reason string
		if err := tx.QueryRowContext(ctx, "SELECT landed_slots, degraded, degraded_reason FROM nodes WHERE node_id = ?",
			p.NodeID).Scan(&landed, &degraded, &reason); err != nil {
			return err
		}
		if degraded == 1 {
			return onboard.Errorf(onboard.ENodeOffline, "Node %s is degraded (%s). Nothing was created; "+
				"clear the mark on the node once it works again.", p.NodeID, reason)
		}
		// Slots that landed after the grid was read left the reservations
		// but may be missing from the grid's figure; count them as used. The
		// body works on a copy of p, because it may run twice.
		start := p
		start.GridFree -= int(landed - p.LandedBefore)

		var state string
		if err := tx.QueryRowContext(ctx, "SELECT deployment_state FROM testers WHERE username = ?",
			p.Username).Scan(&state); err != nil {
			if err == sql.ErrNoRows {
				return notFound("Tester %s was not found.", p.Username)
			}
			return err
		}
		switch state {
		case onboard.DeploymentNone, onboard.DeploymentFailed, onboard.DeploymentProvisioning:
		default:
			return onboard.Errorf(onboard.EConflict, "%s already has a deployment (%s).", p.Username, state)
		}

		if p.Slots > 0 {
			if err := reserve(ctx, tx, start, now); err != nil {
				return err
			}
		}
		return updateTesterTx(ctx, tx, p.Username, `deployment_state = ?, node_id = ?, project = ?,
			deployment_error = '', deployment_onboarding_id = ?`,
			onboard.DeploymentProvisioning, p.NodeID, p.Project, p.OnboardingID, formatTime(now))
	})
}

// reserve inserts the tester's reservation when the node has room for it. A
// reservation the tester already holds, from an interrupted run, is kept.
func reserve(ctx context.Context, tx *sql.Tx, p onboard.ProvisionStart, now time.Time) error {
	var held int
	err := tx.QueryRowContext(ctx, "SELECT count(*) FROM reservations WHERE username = ?", p.Username).Scan(&held)
	if err != nil || held > 0 {
		return err
	}
	reserved, err := reservedSlots(ctx, tx, p.NodeID)
	if err != nil {
		return err
	}
	if p.GridFree-reserved < p.Slots {
		return onboard.Errorf(onboard.ENodeFull, "Node %s has no room for another tester (%d free slots, %d reserved, "+
			"%d needed). Nothing was created; tear down a tester or pick another node.",
			p.NodeID, p.GridFree, reserved, p.Slots)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO reservations (username, node_id, slots, onboarding_id, created_at)
		VALUES (?, ?, ?, ?, ?)`, p.Username, p.NodeID, p.Slots, p.OnboardingID, formatTime(now))
	return err
}

// RecordContract adds a contract; a VM contract lands the reservation.
func (db *DB) RecordContract(ctx context.Context, username string, c onboard.Contract) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO contracts (id, username, kind, name, node_id, project, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			c.ID, username, c.Kind, c.Name, c.NodeID, c.Project, formatTime(time.Now())); err != nil {
			return fmt.Errorf("record contract %d of %s: %w", c.ID, username, err)
		}
		if c.Kind != onboard.ContractVM {
			return nil
		}
		return landReservation(ctx, tx, username)
	})
}

// landReservation marks the tester's reservation as counted by the grid and
// adds its slots to the node's landed counter, so that a check that read the
// grid before the VM existed still counts them.
func landReservation(ctx context.Context, tx *sql.Tx, username string) error {
	var nodeID string
	var slots int
	err := tx.QueryRowContext(ctx, `UPDATE reservations SET landed = 1 WHERE username = ? AND landed = 0
		RETURNING node_id, slots`, username).Scan(&nodeID, &slots)
	if err == sql.ErrNoRows {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "UPDATE nodes SET landed_slots = landed_slots + ? WHERE node_id = ?", slots, nodeID)
	return err
}

// releaseReservation drops the tester's reservation, if any.
func releaseReservation(ctx context.Context, tx *sql.Tx, username string) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM reservations WHERE username = ?", username)
	return err
}

// FinishProvision turns the reservation into an active deployment.
func (db *DB) FinishProvision(ctx context.Context, username string, p onboard.GridProject, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := landReservation(ctx, tx, username); err != nil {
			return err
		}
		if err := releaseReservation(ctx, tx, username); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM contracts WHERE username = ?", username); err != nil {
			return err
		}
		for _, c := range p.Contracts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO contracts (id, username, kind, name, node_id, project, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, c.ID, username, c.Kind, c.Name, c.NodeID, c.Project, formatTime(now)); err != nil {
				return fmt.Errorf("record contract %d of %s: %w", c.ID, username, err)
			}
		}
		return updateTesterTx(ctx, tx, username, "deployment_state = ?, gateway = ?, vm_address = ?, deployment_error = ''",
			onboard.DeploymentActive, p.Gateway, p.VMAddress, formatTime(now))
	})
}

// FailProvision records the failure and releases the reservation.
func (db *DB) FailProvision(ctx context.Context, username, reason string, cleared bool, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := releaseReservation(ctx, tx, username); err != nil {
			return err
		}
		if cleared {
			if _, err := tx.ExecContext(ctx, "DELETE FROM contracts WHERE username = ?", username); err != nil {
				return err
			}
		}
		return updateTesterTx(ctx, tx, username, "deployment_state = ?, deployment_error = ?",
			onboard.DeploymentFailed, reason, formatTime(now))
	})
}

// SetNodeHealth sets or clears the degraded mark and resets the failures.
func (db *DB) SetNodeHealth(ctx context.Context, nodeID string, degraded bool, reason string, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := ensureNode(ctx, tx, nodeID, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE nodes SET degraded = ?, degraded_reason = ?, failures = 0, updated_at = ?
			WHERE node_id = ?`, boolInt(degraded), reason, formatTime(now), nodeID)
		return err
	})
}

// CountNodeFailure adds one failure and degrades the node at threshold.
func (db *DB) CountNodeFailure(ctx context.Context, nodeID string, threshold int, reason string, now time.Time) (int, error) {
	var failures int
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := ensureNode(ctx, tx, nodeID, now); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `UPDATE nodes SET failures = failures + 1, updated_at = ? WHERE node_id = ?
			RETURNING failures`, formatTime(now), nodeID).Scan(&failures)
		if err != nil || failures < threshold {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE nodes SET degraded = 1, degraded_reason = ? WHERE node_id = ?",
			fmt.Sprintf("%d provision failures in a row, the last: %s", failures, reason), nodeID)
		return err
	})
	return failures, err
}
