package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"deployer/storage"
)

// backupUsage is the synopsis of the backup command.
const backupUsage = "usage: deployer backup [--db FILE] BACKUP_FILE"

// runBackup writes a consistent copy of the database to the file named in
// args and checks the copy. It reads the database from --db or DEPLOYER_DB,
// as the server does, and works while a server runs on it, because it takes
// neither the server's lock file nor a write lock.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("deployer backup", flag.ContinueOnError)
	flags.SetOutput(stderr)
	db := defaultConfig().DB
	if v := getenv("DEPLOYER_DB"); v != "" {
		db = v
	}
	flags.StringVar(&db, "db", db, "SQLite database `file` to back up (DEPLOYER_DB)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, backupUsage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return errors.New(backupUsage)
	}
	dst := flags.Arg(0)
	if _, err := os.Stat(filepath.Dir(dst)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("folder %s not found; create it, or name a backup file in a folder that exists", filepath.Dir(dst))
	}

	start := time.Now()
	err := storage.BackupFile(ctx, db, dst)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s already exists; name a new file, because backup never overwrites one", dst)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("database %s not found; set --db or DEPLOYER_DB to the deployer's database", db)
	case err != nil:
		return err
	}
	report, err := storage.CheckBackup(ctx, dst)
	if err != nil {
		return err
	}
	info, err := os.Stat(dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Backed up %s to %s in %s: %d bytes, integrity ok, %d testers, %d onboardings, %d events\n",
		db, dst, time.Since(start).Round(time.Millisecond), info.Size(),
		report.Rows["testers"], report.Rows["onboardings"], report.Rows["events"])
	return nil
}
