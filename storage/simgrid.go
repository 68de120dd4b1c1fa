package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"deployer/grid"
	"deployer/onboard"
)

var _ grid.SimState = (*DB)(nil)

// SimEnsureNode creates the simulated node, or sets its total slots.
func (db *DB) SimEnsureNode(ctx context.Context, nodeID string, totalSlots int, now time.Time) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sim_nodes (node_id, total_slots, online, updated_at) VALUES (?, ?, 1, ?)
			ON CONFLICT (node_id) DO UPDATE SET total_slots = excluded.total_slots, updated_at = excluded.updated_at`,
			nodeID, totalSlots, formatTime(now))
		return err
	})
}

func simNode(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, nodeID string) (grid.SimNode, error) {
	n := grid.SimNode{NodeID: nodeID}
	var online int
	err := q.QueryRowContext(ctx, `SELECT total_slots, online,
		(SELECT coalesce(sum(slots), 0) FROM sim_contracts WHERE node_id = ?1 AND state = 'created')
		FROM sim_nodes WHERE node_id = ?1`, nodeID).Scan(&n.TotalSlots, &online, &n.UsedSlots)
	if err == sql.ErrNoRows {
		return n, notFound("Node %s is not on the simulated grid. Add it in the simulated grid panel of the testers page, "+
			"or with POST /api/sim/node.", nodeID)
	}
	if err != nil {
		return n, fmt.Errorf("read simulated node %s: %w", nodeID, err)
	}
	n.Online = online == 1
	return n, nil
}

// SimNode returns a simulated node with its used slots, or ENotFound.
func (db *DB) SimNode(ctx context.Context, nodeID string) (grid.SimNode, error) {
	return simNode(ctx, db.read, nodeID)
}

// SimSetNode changes a simulated node, creating it when missing.
func (db *DB) SimSetNode(ctx context.Context, nodeID string, online *bool, totalSlots *int, defaultSlots int,
	now time.Time) (grid.SimNode, error) {
	var n grid.SimNode
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sim_nodes (node_id, total_slots, online, updated_at)
			VALUES (?, ?, 1, ?) ON CONFLICT (node_id) DO NOTHING`, nodeID, defaultSlots, formatTime(now)); err != nil {
			return err
		}
		if online != nil {
			if _, err := tx.ExecContext(ctx, "UPDATE sim_nodes SET online = ?, updated_at = ? WHERE node_id = ?",
				boolInt(*online), formatTime(now), nodeID); err != nil {
				return err
			}
		}
		if totalSlots != nil {
			if _, err := tx.ExecContext(ctx, "UPDATE sim_nodes SET total_slots = ?, updated_at = ? WHERE node_id = ?",
				*totalSlots, formatTime(now), nodeID); err != nil {
				return err
			}
		}
		var err error
		n, err = simNode(ctx, tx, nodeID)
		return err
	})
	return n, err
}

func (db *DB) simContracts(ctx context.Context, where string, args ...any) ([]onboard.Contract, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, node_id, project, kind, name, state FROM sim_contracts `+where+
		` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list simulated contracts: %w", err)
	}
	defer rows.Close()
	var list []onboard.Contract
	for rows.Next() {
		var c onboard.Contract
		if err := rows.Scan(&c.ID, &c.NodeID, &c.Project, &c.Kind, &c.Name, &c.State); err != nil {
			return nil, fmt.Errorf("list simulated contracts: %w", err)
		}
		list = append(list, c)
	}
	return list, rows.Err()
}

// SimProject returns the live contracts of a project on a node.
func (db *DB) SimProject(ctx context.Context, nodeID, project string) ([]onboard.Contract, error) {
	return db.simContracts(ctx, "WHERE node_id = ? AND project = ? AND state = 'created'", nodeID, project)
}

// SimContracts returns every live simulated contract.
func (db *DB) SimContracts(ctx context.Context) ([]onboard.Contract, error) {
	return db.simContracts(ctx, "WHERE state = 'created'")
}

// SimCreateContract creates a contract; a VM needs free slots on the node.
func (db *DB) SimCreateContract(ctx context.Context, c onboard.Contract, slots int, now time.Time) (onboard.Contract, error) {
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		n, err := simNode(ctx, tx, c.NodeID)
		if err != nil {
			return err
		}
		if slots > 0 && n.TotalSlots-n.UsedSlots < slots {
			return fmt.Errorf("node %s lacks the memory for %s: %d slots free, %d needed",
				c.NodeID, c.Name, n.TotalSlots-n.UsedSlots, slots)
		}
		return tx.QueryRowContext(ctx, `INSERT INTO sim_contracts (node_id, project, kind, name, slots, state, created_at)
			VALUES (?, ?, ?, ?, ?, 'created', ?) RETURNING id`,
			c.NodeID, c.Project, c.Kind, c.Name, slots, formatTime(now)).Scan(&c.ID)
	})
	c.State = "created"
	return c, err
}

// SimCancelProject deletes the project's live contracts.
func (db *DB) SimCancelProject(ctx context.Context, nodeID, project string, now time.Time) (int, error) {
	var n int64
	err := db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sim_contracts SET state = 'deleted', deleted_at = ?
			WHERE node_id = ? AND project = ? AND state = 'created'`, formatTime(now), nodeID, project)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// SimSetFault sets the pending fault of a stage.
func (db *DB) SimSetFault(ctx context.Context, f grid.SimFault) error {
	return db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sim_faults (stage, remaining, mode) VALUES (?, ?, ?)
			ON CONFLICT (stage) DO UPDATE SET remaining = excluded.remaining, mode = excluded.mode`,
			f.Stage, f.Remaining, f.Mode)
		return err
	})
}

// SimFaults returns the stages with pending faults.
func (db *DB) SimFaults(ctx context.Context) ([]grid.SimFault, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT stage, remaining, mode FROM sim_faults WHERE remaining > 0 ORDER BY stage")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []grid.SimFault
	for rows.Next() {
		var f grid.SimFault
		if err := rows.Scan(&f.Stage, &f.Remaining, &f.Mode); err != nil {
			return nil, err
		}
		list = append(list, f)
	}
	return list, rows.Err()
}

// SimDrawFault takes a pending fault for a new run, or repeats the answer
// given to the run before.
func (db *DB) SimDrawFault(ctx context.Context, stage, runID string, now time.Time) (string, bool, error) {
	// Most runs meet no fault; a read tells so without taking the write lock.
	var pending int
	err := db.read.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM sim_faults WHERE stage = ? AND remaining > 0) +
		(SELECT count(*) FROM sim_faulted_runs WHERE run_id = ?)`, stage, runID).Scan(&pending)
	if err != nil {
		return "", false, err
	}
	if pending == 0 {
		return "", false, nil
	}
	var mode string
	var faulted bool
	err = db.update(ctx, func(ctx context.Context, tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "SELECT mode FROM sim_faulted_runs WHERE run_id = ?", runID).Scan(&mode)
		if err == nil {
			faulted = true
			return nil
		}
		if err != sql.ErrNoRows {
			return err
		}
		err = tx.QueryRowContext(ctx, `UPDATE sim_faults SET remaining = remaining - 1
			WHERE stage = ? AND remaining > 0 RETURNING mode`, stage).Scan(&mode)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		faulted = true
		_, err = tx.ExecContext(ctx, "INSERT INTO sim_faulted_runs (run_id, stage, mode, created_at) VALUES (?, ?, ?, ?)",
			runID, stage, mode, formatTime(now))
		return err
	})
	return mode, faulted, err
}

// SimNodes returns every simulated node with its used slots.
func (db *DB) SimNodes(ctx context.Context) ([]grid.SimNode, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT n.node_id, n.total_slots, n.online,
		(SELECT coalesce(sum(slots), 0) FROM sim_contracts c WHERE c.node_id = n.node_id AND c.state = 'created')
		FROM sim_nodes n ORDER BY CAST(n.node_id AS INTEGER)`)
	if err != nil {
		return nil, fmt.Errorf("list simulated nodes: %w", err)
	}
	defer rows.Close()
	var list []grid.SimNode
	for rows.Next() {
		var n grid.SimNode
		var online int
		if err := rows.Scan(&n.NodeID, &n.TotalSlots, &online, &n.UsedSlots); err != nil {
			return nil, fmt.Errorf("list simulated nodes: %w", err)
		}
		n.Online = online == 1
		list = append(list, n)
	}
	return list, rows.Err()
}
