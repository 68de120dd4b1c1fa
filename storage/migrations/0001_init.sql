-- Testers, their deployments and contracts. Times are UTC text in the form
-- 2006-01-02T15:04:05.000000000Z, which SQLite's date functions read.
CREATE TABLE testers (
	username                 TEXT PRIMARY KEY,
	full_name                TEXT NOT NULL DEFAULT '',
	email                    TEXT NOT NULL DEFAULT '',
	account                  TEXT NOT NULL CHECK (account IN ('created', 'existing')),
	password_hash            BLOB,
	deployment_state         TEXT NOT NULL DEFAULT 'none',
	node_id                  TEXT NOT NULL DEFAULT '',
	project                  TEXT NOT NULL DEFAULT '',
	gateway                  TEXT NOT NULL DEFAULT '',
	vm_address               TEXT NOT NULL DEFAULT '',
	deployment_error         TEXT NOT NULL DEFAULT '',
	deployment_onboarding_id TEXT NOT NULL DEFAULT '',
	install_state            TEXT NOT NULL DEFAULT 'none',
	install_error            TEXT NOT NULL DEFAULT '',
	cockpit_url              TEXT NOT NULL DEFAULT '',
	created_at               TEXT NOT NULL,
	updated_at               TEXT NOT NULL
) STRICT;

CREATE TABLE contracts (
	id         INTEGER PRIMARY KEY, -- the grid's contract id
	username   TEXT NOT NULL REFERENCES testers (username) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	node_id    TEXT NOT NULL,
	project    TEXT NOT NULL,
	created_at TEXT NOT NULL
) STRICT;
CREATE INDEX contracts_by_tester ON contracts (username);

-- Slots held by provisions in flight. A reservation lands when its VM
-- contract is recorded, because the grid's figures count the VM from then on.
CREATE TABLE reservations (
	username      TEXT PRIMARY KEY REFERENCES testers (username) ON DELETE CASCADE,
	node_id       TEXT NOT NULL,
	slots         INTEGER NOT NULL CHECK (slots > 0),
	onboarding_id TEXT NOT NULL DEFAULT '',
	landed        INTEGER NOT NULL DEFAULT 0,
	created_at    TEXT NOT NULL
) STRICT;
CREATE INDEX reservations_by_node ON reservations (node_id);

-- Per node: the epoch that moves when a reservation lands, and the health
-- that marks a node degraded after provision failures in a row.
CREATE TABLE nodes (
	node_id         TEXT PRIMARY KEY,
	epoch           INTEGER NOT NULL DEFAULT 0,
	degraded        INTEGER NOT NULL DEFAULT 0,
	degraded_reason TEXT NOT NULL DEFAULT '',
	failures        INTEGER NOT NULL DEFAULT 0,
	updated_at      TEXT NOT NULL
) STRICT;

CREATE TABLE onboardings (
	id               TEXT PRIMARY KEY,
	username         TEXT NOT NULL REFERENCES testers (username) ON DELETE CASCADE,
	node_id          TEXT NOT NULL,
	status           TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'canceled')),
	attempt          INTEGER NOT NULL DEFAULT 1,
	form_key         TEXT,
	cockpit_url      TEXT NOT NULL DEFAULT '',
	error_code       TEXT NOT NULL DEFAULT '',
	error_message    TEXT NOT NULL DEFAULT '',
	created_account  INTEGER NOT NULL DEFAULT 0,
	lease_owner      TEXT NOT NULL DEFAULT '',
	lease_expires_at TEXT NOT NULL DEFAULT '',
	cancel_requested INTEGER NOT NULL DEFAULT 0,
	started_by       TEXT NOT NULL DEFAULT '',
	last_seq         INTEGER NOT NULL DEFAULT 0,
	created_at       TEXT NOT NULL,
	updated_at       TEXT NOT NULL,
	finished_at      TEXT NOT NULL DEFAULT ''
) STRICT;
-- One active onboarding per tester: a second start finds the first.
CREATE UNIQUE INDEX onboardings_one_running ON onboardings (username) WHERE status = 'running';
CREATE UNIQUE INDEX onboardings_by_form_key ON onboardings (form_key) WHERE form_key IS NOT NULL;
CREATE INDEX onboardings_by_tester ON onboardings (username, created_at);
CREATE INDEX onboardings_by_status ON onboardings (status);

CREATE TABLE onboarding_stages (
	onboarding_id TEXT NOT NULL REFERENCES onboardings (id) ON DELETE CASCADE,
	position      INTEGER NOT NULL,
	name          TEXT NOT NULL,
	status        TEXT NOT NULL,
	message       TEXT NOT NULL DEFAULT '',
	started_at    TEXT NOT NULL DEFAULT '',
	finished_at   TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (onboarding_id, name)
) STRICT, WITHOUT ROWID;

-- Every change of an onboarding, numbered per onboarding; streams replay
-- from here after a reconnect.
CREATE TABLE events (
	onboarding_id TEXT NOT NULL REFERENCES onboardings (id) ON DELETE CASCADE,
	seq           INTEGER NOT NULL,
	kind          TEXT NOT NULL,
	stage         TEXT NOT NULL,
	status        TEXT NOT NULL,
	message       TEXT NOT NULL DEFAULT '',
	code          TEXT NOT NULL DEFAULT '',
	created_at    TEXT NOT NULL,
	PRIMARY KEY (onboarding_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE stage_logs (
	id            INTEGER PRIMARY KEY,
	run_id        TEXT NOT NULL,
	username      TEXT NOT NULL,
	onboarding_id TEXT NOT NULL DEFAULT '',
	attempt       INTEGER NOT NULL DEFAULT 0,
	stage         TEXT NOT NULL,
	line          TEXT NOT NULL,
	created_at    TEXT NOT NULL
) STRICT;
CREATE INDEX stage_logs_by_onboarding ON stage_logs (onboarding_id, stage, attempt, id);
CREATE INDEX stage_logs_by_tester ON stage_logs (username, id);

CREATE TABLE outbox (
	id         INTEGER PRIMARY KEY,
	tester     TEXT NOT NULL,
	to_addr    TEXT NOT NULL,
	to_name    TEXT NOT NULL DEFAULT '',
	subject    TEXT NOT NULL,
	body       TEXT NOT NULL,
	status     TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	next_at    TEXT NOT NULL,
	sent_at    TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL
) STRICT;
CREATE INDEX outbox_due ON outbox (status, next_at);

-- Append-only: the triggers reject changes to recorded entries.
CREATE TABLE audit_log (
	id         INTEGER PRIMARY KEY,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	tester     TEXT NOT NULL DEFAULT '',
	node_id    TEXT NOT NULL DEFAULT '',
	outcome    TEXT NOT NULL,
	detail     TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_tester ON audit_log (tester, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE admins (
	username      TEXT PRIMARY KEY,
	password_hash BLOB NOT NULL,
	created_at    TEXT NOT NULL,
	updated_at    TEXT NOT NULL
) STRICT;

-- Sessions are stored by the SHA-256 of their id, never the id itself.
CREATE TABLE sessions (
	id_hash      TEXT PRIMARY KEY,
	admin        TEXT NOT NULL REFERENCES admins (username) ON DELETE CASCADE,
	created_at   TEXT NOT NULL,
	last_seen_at TEXT NOT NULL
) STRICT;

-- The simulated grid: nodes, contracts and pending faults.
CREATE TABLE sim_nodes (
	node_id     TEXT PRIMARY KEY,
	total_slots INTEGER NOT NULL CHECK (total_slots >= 0),
	online      INTEGER NOT NULL DEFAULT 1,
	updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE sim_contracts (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	node_id    TEXT NOT NULL,
	project    TEXT NOT NULL,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	slots      INTEGER NOT NULL DEFAULT 0,
	state      TEXT NOT NULL CHECK (state IN ('created', 'deleted')),
	created_at TEXT NOT NULL,
	deleted_at TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX sim_contracts_by_project ON sim_contracts (node_id, project, state);
-- Grid contract ids are large numbers; start the simulated ones alike.
INSERT INTO sqlite_sequence (name, seq) VALUES ('sim_contracts', 100000);

CREATE TABLE sim_faults (
	stage     TEXT PRIMARY KEY,
	remaining INTEGER NOT NULL CHECK (remaining >= 0),
	mode      TEXT NOT NULL DEFAULT 'fail'
) STRICT;

-- Runs that drew a fault, so that retries inside a run fail alike.
CREATE TABLE sim_faulted_runs (
	run_id     TEXT PRIMARY KEY,
	stage      TEXT NOT NULL,
	mode       TEXT NOT NULL,
	created_at TEXT NOT NULL
) STRICT;
