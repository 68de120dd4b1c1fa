package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"time"

	"deployer/onboard"
	"deployer/storage"
)

// adminUsage is the synopsis of the admin command.
const adminUsage = `usage: deployer admin add|password [--db FILE] NAME

add creates the admin NAME; password sets the password of the admin NAME
and ends its sessions, for an admin who forgot it. The password is read
from DEPLOYER_NEW_ADMIN_PASSWORD, or else from the first line of standard
input, which must not be a terminal, because the terminal would show it.`

// runAdmin adds an admin or resets an admin's password in the database
// named by --db or DEPLOYER_DB, and records it in the audit log. It works
// while a server runs on the database.
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader,
	stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" && args[0] != "password" {
		return errors.New(adminUsage)
	}
	verb := args[0]
	flags := flag.NewFlagSet("deployer admin "+verb, flag.ContinueOnError)
	flags.SetOutput(stderr)
	dbPath := defaultConfig().DB
	if v := getenv("DEPLOYER_DB"); v != "" {
		dbPath = v
	}
	flags.StringVar(&dbPath, "db", dbPath, "SQLite database `file` of the deployer (DEPLOYER_DB)")
	flags.Usage = func() { fmt.Fprintln(stderr, adminUsage) }
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return errors.New(adminUsage)
	}
	name := strings.ToLower(strings.TrimSpace(flags.Arg(0)))

	// storage.Open would create a missing database, and an admin in a new
	// file would not let anyone into the deployer.
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("database %s not found; set --db or DEPLOYER_DB to the deployer's database", dbPath)
	}
	password, err := readNewPassword(getenv, stdin)
	if err != nil {
		return err
	}
	db, err := storage.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer db.Close()

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	auth := onboard.NewAuth(db, onboard.AuthOptions{}, log)
	action := "admin.add"
	if verb == "add" {
		err = auth.AddAdmin(ctx, name, password)
	} else {
		action = "admin.reset_password"
		err = auth.ResetPassword(ctx, name, password)
	}
	recordCommand(ctx, db, log, action, name, err)
	if err != nil {
		return errors.New(onboard.ErrorMessage(err))
	}
	if verb == "add" {
		fmt.Fprintf(stdout, "Admin %s added.\n", name)
	} else {
		fmt.Fprintf(stdout, "Password of admin %s set; its sessions have ended.\n", name)
	}
	return nil
}

// readNewPassword returns the password from DEPLOYER_NEW_ADMIN_PASSWORD or
// the first line of stdin.
func readNewPassword(getenv func(string) string, stdin io.Reader) (string, error) {
	if p := getenv("DEPLOYER_NEW_ADMIN_PASSWORD"); p != "" {
		return p, nil
	}
	if f, ok := stdin.(*os.File); ok {
		if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
			return "", errors.New("standard input is a terminal, which would show the password; " +
				"pipe the password in or set DEPLOYER_NEW_ADMIN_PASSWORD")
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password given: pipe it in or set DEPLOYER_NEW_ADMIN_PASSWORD")
	}
	return line, nil
}

// recordCommand stores the audit entry of an admin command, naming the
// operating system user who ran it.
func recordCommand(ctx context.Context, db *storage.DB, log *slog.Logger, action, admin string, err error) {
	actor := "command line"
	if u, uerr := user.Current(); uerr == nil {
		actor += " (" + u.Username + ")"
	}
	outcome := "ok"
	if err != nil {
		outcome = onboard.ErrorCode(err)
	}
	e := onboard.AuditEntry{Actor: actor, Action: action, Outcome: outcome, Detail: "admin " + admin, Time: time.Now()}
	if rerr := db.RecordAudit(ctx, e); rerr != nil {
		log.Error("Audit entry not stored", "action", action, "admin", admin, "error", rerr)
	}
}
