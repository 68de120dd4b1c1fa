package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"deployer/storage"
)

// runBackupCommand runs `deployer backup` on db and returns its output.
func runBackupCommand(t *testing.T, db, dst string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "backup", "--db", db, dst).CombinedOutput()
	return string(out), err
}

func TestBackupWhileOnboardingsRun(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "deployer.db")
	// Stages of 2 to 6 s keep the onboardings running while the backup
	// command starts and copies, even on a loaded machine.
	p := startBinary(t, db, 2*time.Second)
	var ids []string
	for _, name := range []string{"ansel", "berit", "cosmo", "dagny"} {
		ids = append(ids, p.start(t, name))
	}
	p.waitStage(t, ids[len(ids)-1], "provisioning", "running")

	dst := filepath.Join(dir, "backup.db")
	out, err := runBackupCommand(t, db, dst)
	if err != nil {
		t.Fatalf("backup while the server runs: %v\n%s", err, out)
	}
	if !strings.Contains(out, "integrity ok") {
		t.Errorf("backup output %q does not report the integrity check", out)
	}
	running := 0
	for _, id := range ids {
		if p.onboarding(t, id).Status == "running" {
			running++
		}
	}
	if running == 0 {
		t.Fatal("every onboarding finished before the backup did; the test needs some still running")
	}

	copyDB, err := sql.Open("sqlite", "file:"+dst+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close()
	var integrity string
	if err := copyDB.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil {
		t.Fatal(err)
	}
	if integrity != "ok" {
		t.Errorf("integrity_check of the backup: %q", integrity)
	}
	rows, err := copyDB.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("the backup has rows that break a foreign key")
	}
	rows.Close()

	for table, want := range map[string]int{"testers": 4, "onboardings": 4, "onboarding_stages": 16} {
		if got := countRows(t, copyDB, table); got != want {
			t.Errorf("backup has %d rows in %s, want %d", got, table, want)
		}
	}
	// Each onboarding stored its two adding events before the backup began.
	backedUp := countRows(t, copyDB, "events")
	if backedUp < 8 {
		t.Errorf("backup has %d events, want at least the 8 of the adding stages", backedUp)
	}
	for _, id := range ids {
		if o := p.waitFinished(t, id); o.Status != "succeeded" {
			t.Errorf("onboarding %s after the backup: %s %+v", id, o.Status, o.Error)
		}
	}
	report, err := storage.CheckBackup(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if live := report.Rows["events"]; live <= backedUp {
		t.Errorf("the live database has %d events after the onboardings finished, the backup %d; want more", live, backedUp)
	}
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM %s", table)).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestBackupRestoresToAWorkingDeployer(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "deployer.db")
	p := startBinary(t, db, 0)
	id := p.start(t, "eskil")
	if o := p.waitFinished(t, id); o.Status != "succeeded" {
		t.Fatalf("onboarding: %s %+v", o.Status, o.Error)
	}
	dst := filepath.Join(dir, "backup.db")
	if out, err := runBackupCommand(t, db, dst); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}

	restored := filepath.Join(t.TempDir(), "deployer.db")
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(restored, data, 0o600); err != nil {
		t.Fatal(err)
	}
	again := startBinary(t, restored, 0)
	o := again.onboarding(t, id)
	if o.Status != "succeeded" || o.Username != "eskil" {
		t.Errorf("restored onboarding: %s of %q, want succeeded of eskil", o.Status, o.Username)
	}
	if status := again.api(t, http.MethodGet, "/api/testers/eskil", nil, nil); status != http.StatusOK {
		t.Errorf("restored tester: status %d", status)
	}
}

func TestBackupRejectsExistingFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "deployer.db")
	p := startBinary(t, db, 0)
	p.start(t, "frode")
	dst := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(dst, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := runBackupCommand(t, db, dst)
	if err == nil {
		t.Fatalf("backup over an existing file succeeded:\n%s", out)
	}
	if !strings.Contains(out, "already exists") {
		t.Errorf("output %q does not say why", out)
	}
	if data, _ := os.ReadFile(dst); string(data) != "keep me" {
		t.Errorf("the existing file now holds %d bytes, want it unchanged", len(data))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".backup.db.tmp-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestBackupMissingFolder(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "deployer.db")
	p := startBinary(t, db, 0)
	p.start(t, "gert")
	folder := filepath.Join(dir, "missing")
	out, err := runBackupCommand(t, db, filepath.Join(folder, "backup.db"))
	if err == nil {
		t.Fatalf("backup into a missing folder succeeded:\n%s", out)
	}
	if !strings.Contains(out, "folder "+folder+" not found") {
		t.Errorf("output %q does not say the folder is missing", out)
	}
	if strings.Contains(out, "database") {
		t.Errorf("output %q blames the database, which exists", out)
	}
}

func TestBackupMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "missing.db")
	out, err := runBackupCommand(t, db, filepath.Join(dir, "backup.db"))
	if err == nil {
		t.Fatalf("backup of a missing database succeeded:\n%s", out)
	}
	if !strings.Contains(out, "not found") {
		t.Errorf("output %q does not say the database is missing", out)
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("backup created the missing database")
	}
}
