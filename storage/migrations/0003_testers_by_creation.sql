-- The testers list shows the newest first.
CREATE INDEX testers_by_creation ON testers (created_at DESC, username);
