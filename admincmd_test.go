package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"deployer/onboard"
	"deployer/storage"

	"golang.org/x/crypto/bcrypt"
)

// newAdminDB creates a database with the admin "admin" and returns its path.
func newAdminDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "deployer.db")
	db, err := storage.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	auth := onboard.NewAuth(db, onboard.AuthOptions{Idle: time.Hour, BcryptCost: bcrypt.MinCost}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := auth.Bootstrap(context.Background(), "the first password"); err != nil {
		t.Fatal(err)
	}
	return path
}

// runAdminCommand runs runAdmin with the environment and standard input.
func runAdminCommand(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runAdmin(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &out)
	return out.String(), err
}

// openAuth opens the database and returns an Auth over it.
func openAuth(t *testing.T, path string) (*onboard.Auth, *storage.DB) {
	t.Helper()
	db, err := storage.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return onboard.NewAuth(db, onboard.AuthOptions{Idle: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil))), db
}

func TestAdminCommandAddsAndResets(t *testing.T) {
	ctx := context.Background()
	path := newAdminDB(t)

	out, err := runAdminCommand(t, nil, "ops password one\n", "add", "--db", path, "Ops")
	if err != nil {
		t.Fatalf("admin add: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Admin ops added.") {
		t.Errorf("output %q, want it to confirm", out)
	}
	auth, db := openAuth(t, path)
	session, err := auth.Login(ctx, "ops", "ops password one", "10.0.0.1")
	if err != nil {
		t.Fatalf("login with the added password: %v", err)
	}

	env := map[string]string{"DEPLOYER_DB": path, "DEPLOYER_NEW_ADMIN_PASSWORD": "ops password two"}
	if out, err := runAdminCommand(t, env, "", "password", "ops"); err != nil {
		t.Fatalf("admin password: %v\n%s", err, out)
	}
	if _, err := auth.Session(ctx, session); err == nil {
		t.Error("the admin's session still works after the reset")
	}
	if _, err := auth.Login(ctx, "ops", "ops password one", "10.0.0.1"); err == nil {
		t.Error("the old password still logs in")
	}
	if _, err := auth.Login(ctx, "ops", "ops password two", "10.0.0.1"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}

	entries, err := db.ListAudit(ctx, onboard.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Actor, "command line") || e.Detail != "admin ops" || e.Outcome != "ok" {
			t.Errorf("audit entry %+v, want an ok entry by the command line for admin ops", e)
		}
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "admin.reset_password,admin.add" {
		t.Errorf("audit actions %s, want admin.reset_password,admin.add", got)
	}
	for _, e := range entries {
		if strings.Contains(e.Detail+e.Actor, "password one") || strings.Contains(e.Detail+e.Actor, "password two") {
			t.Error("an audit entry contains the password")
		}
	}
}

func TestAdminCommandRejectsBadInput(t *testing.T) {
	path := newAdminDB(t)
	missing := filepath.Join(t.TempDir(), "missing.db")
	cases := []struct {
		name, stdin, want string
		args              []string
	}{
		{"no verb", "x\n", "usage: deployer admin", nil},
		{"unknown verb", "x\n", "usage: deployer admin", []string{"remove", "--db", path, "ops"}},
		{"no name", "x\n", "usage: deployer admin", []string{"add", "--db", path}},
		{"unknown admin", "a long enough password\n", "Admin nobody was not found", []string{"password", "--db", path, "nobody"}},
		{"taken name", "a long enough password\n", "already exists", []string{"add", "--db", path, "admin"}},
		{"bad name", "a long enough password\n", "Admin username", []string{"add", "--db", path, "no way!"}},
		{"short password", "short\n", "12 to 72 bytes", []string{"password", "--db", path, "admin"}},
		{"no password", "", "no password given", []string{"password", "--db", path, "admin"}},
		{"missing database", "a long enough password\n", "not found", []string{"add", "--db", missing, "ops"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runAdminCommand(t, nil, tc.stdin, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v (output %q), want one that says %q", err, out, tc.want)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("the command created the missing database")
	}
	auth, _ := openAuth(t, path)
	if _, err := auth.Login(context.Background(), "admin", "the first password", "10.0.0.1"); err != nil {
		t.Errorf("the admin's password changed after rejected commands: %v", err)
	}
}

func TestAdminCommandWhileServerRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deployer.db")
	p := startBinary(t, path, 0)

	cmd := exec.Command(binary, "admin", "add", "--db", path, "ops")
	cmd.Stdin = strings.NewReader("a brand new password\n")
	cmd.Env = append(os.Environ(), "DEPLOYER_NEW_ADMIN_PASSWORD=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deployer admin add: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "a brand new password") {
		t.Error("the command printed the password")
	}

	// The running server lets the new admin in.
	form := url.Values{"username": {"ops"}, "password": {"a brand new password"}}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(p.url+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login of the added admin on the running server: status %d, want 303", resp.StatusCode)
	}
}
