package storage_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/onboard"
	"deployer/storage"

	_ "modernc.org/sqlite"
)

func mustOpenDB(tb testing.TB) (*storage.DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "deployer.db")
	db, err := storage.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, path
}

func newTester(name string) *onboard.Tester {
	now := time.Now()
	return &onboard.Tester{Username: name, FullName: "T " + name, Email: name + "@example.org",
		Account: onboard.AccountCreated, PasswordHash: []byte("hash"), CreatedAt: now, UpdatedAt: now}
}

func newOnboarding(id, username string) *onboard.Onboarding {
	now := time.Now()
	o := &onboard.Onboarding{ID: id, Username: username, NodeID: "1", Status: onboard.StatusRunning, Attempt: 1,
		CreatedAt: now, UpdatedAt: now}
	for _, name := range onboard.Stages {
		o.Stages = append(o.Stages, onboard.Stage{Name: name, Status: onboard.StagePending})
	}
	return o
}

func TestMigrationsAreRecordedAndReopenable(t *testing.T) {
	db, path := mustOpenDB(t)
	db.Close()
	again, err := storage.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()

	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n int
	if err := raw.QueryRow("SELECT count(*) FROM migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("no migration recorded")
	}
	var mode string
	raw.QueryRow("PRAGMA journal_mode").Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal mode %q, want wal", mode)
	}
}

func TestTimesAreUTCAndReadableBySQLite(t *testing.T) {
	db, path := mustOpenDB(t)
	ctx := context.Background()
	tester := newTester("abe")
	tester.CreatedAt = time.Date(2026, 3, 1, 12, 30, 0, 123456789, time.FixedZone("CET", 3600))
	if _, err := db.CreateTester(ctx, tester); err != nil {
		t.Fatal(err)
	}
	raw, _ := sql.Open("sqlite", "file:"+path+"?mode=ro")
	defer raw.Close()
	var stored, parsed string
	if err := raw.QueryRow("SELECT created_at, datetime(created_at) FROM testers").Scan(&stored, &parsed); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(stored, "Z") || !strings.HasPrefix(stored, "2026-03-01T11:30:00.123456789") {
		t.Errorf("stored %q, want UTC with nanoseconds", stored)
	}
	if parsed != "2026-03-01 11:30:00" {
		t.Errorf("datetime() read %q, want 2026-03-01 11:30:00", parsed)
	}
	got, _ := db.FindTester(ctx, "abe")
	if !got.CreatedAt.Equal(tester.CreatedAt) {
		t.Errorf("read back %s, want %s", got.CreatedAt, tester.CreatedAt)
	}
}

func TestOneRunningOnboardingPerTester(t *testing.T) {
	db, _ := mustOpenDB(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]*onboard.Onboarding, 10)
	created := make([]bool, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := newOnboarding(string(rune('a'+i))+"-id", "bea")
			ok, active, err := db.CreateOnboarding(ctx, o, newTester("bea"), nil)
			if err != nil {
				t.Error(err)
				return
			}
			created[i] = ok
			results[i] = active
		}()
	}
	wg.Wait()
	running, err := db.ListRunningOnboardings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(running) != 1 {
		t.Fatalf("%d running onboardings, want 1", len(running))
	}
	accounts := 0
	for i, r := range results {
		if created[i] {
			accounts++
		}
		if r != nil && r.ID != running[0].ID {
			t.Errorf("a refused start pointed at %s, want %s", r.ID, running[0].ID)
		}
	}
	if accounts != 1 {
		t.Errorf("%d starts created the account, want 1", accounts)
	}
}

func TestEventsNumberedPerOnboarding(t *testing.T) {
	db, _ := mustOpenDB(t)
	ctx := context.Background()
	for _, id := range []string{"one", "two"} {
		if _, _, err := db.CreateOnboarding(ctx, newOnboarding(id, "u"+id), newTester("u"+id), nil); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := []string{"one", "two"}[i%2]
			if _, err := db.AppendEvent(ctx, onboard.Event{OnboardingID: id, Kind: onboard.EventLog,
				Stage: onboard.StageProvisioning, Status: onboard.StageRunning, Time: time.Now()}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, id := range []string{"one", "two"} {
		events, err := db.Events(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range events {
			if e.Seq != int64(i+1) {
				t.Fatalf("onboarding %s event %d has seq %d", id, i, e.Seq)
			}
		}
		if len(events) != 20 {
			t.Errorf("onboarding %s has %d events, want 20", id, len(events))
		}
		after, _ := db.Events(ctx, id, 15, 0)
		if len(after) != 5 || after[0].Seq != 16 {
			t.Errorf("events after 15: %d starting at %d, want 5 starting at 16", len(after), after[0].Seq)
		}
	}
}

func TestReservationCheckedAndTakenAtomically(t *testing.T) {
	db, _ := mustOpenDB(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		name := "res" + string(rune('a'+i))
		if _, err := db.CreateTester(ctx, newTester(name)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.BeginProvision(ctx, onboard.ProvisionStart{Username: name, NodeID: "1",
				Project: onboard.ProjectName(name), Slots: 2, GridFree: 4}, time.Now())
		}()
	}
	wg.Wait()
	ok, full := 0, 0
	for _, err := range errs {
		switch onboard.ErrorCode(err) {
		case "":
			ok++
		case onboard.ENodeFull:
			full++
		default:
			t.Errorf("begin provision: %v", err)
		}
	}
	if ok != 2 || full != 4 {
		t.Errorf("%d reservations and %d refusals with room for 2, want 2 and 4", ok, full)
	}
	hold, _ := db.NodeHold(ctx, "1")
	if hold.ReservedSlots != 4 {
		t.Errorf("reserved %d slots, want 4", hold.ReservedSlots)
	}
}

func TestSlotsLandedDuringAGridReadCountAsUsed(t *testing.T) {
	db, _ := mustOpenDB(t)
	ctx := context.Background()
	for _, name := range []string{"ely", "fox"} {
		db.CreateTester(ctx, newTester(name))
	}
	// Room for exactly one more bundle besides ely's.
	before, _ := db.NodeLandedSlots(ctx, "1")
	if err := db.BeginProvision(ctx, onboard.ProvisionStart{Username: "ely", NodeID: "1", Project: "deployer-ely",
		Slots: 2, GridFree: 4, LandedBefore: before}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// fox reads the counter and the grid, which does not show ely's VM yet.
	foxBefore, _ := db.NodeLandedSlots(ctx, "1")
	const foxGridFree = 4
	// ely's VM lands before fox's reservation, so the reservation no longer
	// counts and the grid figure fox read is stale by two slots.
	if err := db.RecordContract(ctx, "ely", onboard.Contract{ID: 7, Kind: onboard.ContractVM, NodeID: "1", Project: "deployer-ely"}); err != nil {
		t.Fatal(err)
	}
	if hold, _ := db.NodeHold(ctx, "1"); hold.ReservedSlots != 0 {
		t.Errorf("a landed reservation still counts %d slots, want 0", hold.ReservedSlots)
	}
	after, _ := db.NodeLandedSlots(ctx, "1")
	if after-foxBefore != 2 {
		t.Errorf("the landed counter moved by %d, want 2", after-foxBefore)
	}
	err := db.BeginProvision(ctx, onboard.ProvisionStart{Username: "fox", NodeID: "1", Project: "deployer-fox", Slots: 2,
		GridFree: foxGridFree, LandedBefore: foxBefore}, time.Now())
	if err != nil {
		t.Fatalf("fox, with room for one after ely: %v", err)
	}

	// A third start that read the same stale figure finds the node full.
	db.CreateTester(ctx, newTester("gil"))
	err = db.BeginProvision(ctx, onboard.ProvisionStart{Username: "gil", NodeID: "1", Project: "deployer-gil", Slots: 2,
		GridFree: foxGridFree, LandedBefore: foxBefore}, time.Now())
	if onboard.ErrorCode(err) != onboard.ENodeFull {
		t.Errorf("a start on the stale figure: %v, want node_full", err)
	}
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	db, path := mustOpenDB(t)
	ctx := context.Background()
	if err := db.RecordAudit(ctx, onboard.AuditEntry{Actor: "admin", Action: "tester.provision", Outcome: "ok", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	raw, _ := sql.Open("sqlite", "file:"+path)
	defer raw.Close()
	if _, err := raw.Exec("UPDATE audit_log SET outcome = 'forged'"); err == nil {
		t.Error("an audit entry could be changed")
	}
	if _, err := raw.Exec("DELETE FROM audit_log"); err == nil {
		t.Error("an audit entry could be deleted")
	}
	entries, _ := db.ListAudit(ctx, onboard.AuditFilter{Limit: 10})
	if len(entries) != 1 || entries[0].Outcome != "ok" {
		t.Errorf("entries %+v, want the one recorded", entries)
	}
}

func TestEveryPooledConnectionHasThePragmas(t *testing.T) {
	db, _ := mustOpenDB(t)
	ctx := context.Background()
	// Hold several read connections at once, so the pool opens new ones.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fk, busy, err := db.ConnectionPragmas(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if fk != 1 || busy < 1000 {
				t.Errorf("connection has foreign_keys %d and busy_timeout %d, want 1 and at least 1000", fk, busy)
			}
		}()
	}
	wg.Wait()
}

func TestNewDatabaseFilesAreOwnerOnly(t *testing.T) {
	db, path := mustOpenDB(t)
	if _, err := db.CreateTester(context.Background(), newTester("ora")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", filepath.Base(f), mode)
		}
	}
	backup := filepath.Join(t.TempDir(), "copy.db")
	if err := storage.BackupFile(context.Background(), path, backup); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(backup); err != nil || info.Mode().Perm()&0o077 != 0 {
		t.Errorf("backup mode %v (%v), want no access for group and others", info.Mode().Perm(), err)
	}
}

func TestCancelEventOnlyForRunningOnboarding(t *testing.T) {
	db, _ := mustOpenDB(t)
	ctx := context.Background()
	if _, _, err := db.CreateOnboarding(ctx, newOnboarding("ob", "umay"), newTester("umay"), nil); err != nil {
		t.Fatal(err)
	}
	cancel := onboard.Event{OnboardingID: "ob", Kind: onboard.EventCancel, Stage: onboard.StageProvisioning,
		Status: onboard.StatusRunning, Message: "Cancel requested by root.", Time: time.Now()}
	if _, err := db.AppendEvent(ctx, cancel); err != nil {
		t.Fatalf("cancel of a running onboarding: %v", err)
	}
	o, err := db.FindOnboarding(ctx, "ob")
	if err != nil {
		t.Fatal(err)
	}
	if !o.CancelRequest {
		t.Error("the stored onboarding has no cancel request after the cancel event")
	}

	if _, err := db.AppendEvent(ctx, onboard.Event{OnboardingID: "ob", Kind: onboard.EventFinish,
		Stage: onboard.StageProvisioning, Status: onboard.StatusCanceled, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, err = db.AppendEvent(ctx, cancel)
	if onboard.ErrorCode(err) != onboard.EConflict {
		t.Fatalf("cancel of a finished onboarding: err = %v, want a conflict", err)
	}
	events, err := db.Events(ctx, "ob", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; last.Kind != onboard.EventFinish {
		t.Errorf("the refused cancel left a %s event after the finish", last.Kind)
	}
}
