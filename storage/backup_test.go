package storage_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"deployer/storage"
)

func TestBackupFileCopiesOpenDatabase(t *testing.T) {
	db, path := mustOpenDB(t)
	ctx := context.Background()
	for _, name := range []string{"ada", "bob"} {
		if _, err := db.CreateTester(ctx, newTester(name)); err != nil {
			t.Fatal(err)
		}
	}

	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := storage.BackupFile(ctx, path, dst); err != nil {
		t.Fatalf("backup: %v", err)
	}
	report, err := storage.CheckBackup(ctx, dst)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if got := report.Rows["testers"]; got != 2 {
		t.Errorf("copy has %d testers, want 2", got)
	}
	// The copy opens as a deployer database, with every migration recorded.
	copied, err := storage.Open(ctx, dst)
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer copied.Close()
	if _, err := copied.FindTester(ctx, "bob"); err != nil {
		t.Errorf("find bob in the copy: %v", err)
	}
}

func TestBackupFileRejectsExistingTarget(t *testing.T) {
	_, path := mustOpenDB(t)
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := storage.BackupFile(context.Background(), path, dst)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("backup over an empty existing file: %v, want fs.ErrExist", err)
	}
}

func TestCheckBackupRejectsDamagedCopy(t *testing.T) {
	_, path := mustOpenDB(t)
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := storage.BackupFile(context.Background(), path, dst); err != nil {
		t.Fatal(err)
	}
	// Overwrite everything after the 100-byte header with zeros.
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	clear(data[100:])
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.CheckBackup(context.Background(), dst); err == nil {
		t.Error("a copy with zeroed pages passed the check")
	}
}

func TestDBBackupOnReadPool(t *testing.T) {
	db, _ := mustOpenDB(t)
	ctx := context.Background()
	if _, err := db.CreateTester(ctx, newTester("cyd")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := db.Backup(ctx, dst); err != nil {
		t.Fatalf("backup through the query_only read pool: %v", err)
	}
	report, err := storage.CheckBackup(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got := report.Rows["testers"]; got != 1 {
		t.Errorf("copy has %d testers, want 1", got)
	}
}
