package mail_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"deployer/grid"
	"deployer/internal/smtptest"
	"deployer/internal/testkit"
	"deployer/mail"
	"deployer/onboard"
	"deployer/stack"
	"deployer/storage"

	"golang.org/x/crypto/bcrypt"
)

const password = "s3cret-smtp-password"

// flow is a service, runner and outbox over a real SQLite file, the
// simulated grid and installer, delivering through an SMTP sender.
type flow struct {
	sim    *grid.Sim
	svc    *onboard.Service
	runner *onboard.Runner
	outbox *onboard.Outbox
	logs   *testkit.LogBuffer
}

func startFlow(tb testing.TB, sender onboard.Mailer) *flow {
	tb.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(tb.TempDir(), "deployer.db"))
	if err != nil {
		tb.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	sim := grid.NewSim(db, 0, 16)
	if err := sim.EnsureNode(ctx, "1"); err != nil {
		tb.Fatal(err)
	}
	svc := onboard.NewService(db, sim, stack.NewSim(sim, 0), onboard.NewHub(), log,
		onboard.Options{BcryptCost: bcrypt.MinCost})
	runner := onboard.NewRunner(svc)
	if err := runner.Start(ctx); err != nil {
		tb.Fatal(err)
	}

	outbox := onboard.NewOutbox(svc, sender)
	outbox.FirstRetry = 50 * time.Millisecond
	outbox.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		outbox.Shutdown(ctx)
		runner.Shutdown(ctx)
		svc.Shutdown(ctx)
		db.Close()
	})
	return &flow{sim: sim, svc: svc, runner: runner, outbox: outbox, logs: logs}
}

// onboard runs the one-click flow for a tester and waits for its end.
func (f *flow) onboard(tb testing.TB, username, fullName string) *onboard.Onboarding {
	tb.Helper()
	res, err := f.runner.StartOnboarding(context.Background(), onboard.StartInput{NodeID: "1",
		TesterInput: onboard.TesterInput{Username: username, FullName: fullName, Email: username + "@example.org"}})
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, err := f.runner.Onboarding(context.Background(), res.Onboarding.ID)
		if err != nil {
			tb.Fatal(err)
		}
		if o.Finished() {
			return o
		}
		if time.Now().After(deadline) {
			tb.Fatalf("onboarding of %s still running", username)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *flow) messages(tb testing.TB) []onboard.Message {
	tb.Helper()
	list, err := f.outbox.Messages(context.Background(), 10)
	if err != nil {
		tb.Fatal(err)
	}
	return list
}

func newSender(tb testing.TB, cfg mail.SMTPConfig) *mail.SMTPSender {
	tb.Helper()
	if cfg.From == "" {
		cfg.From = "Deployer <deployer@example.org>"
	}
	cfg.Timeout = 5 * time.Second
	s, err := mail.NewSMTPSender(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestWelcomeEmailArrivesOverStartTLS(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{TLS: true, User: "deployer", Password: password})
	sender := newSender(t, mail.SMTPConfig{Host: server.Host, Port: server.Port, User: "deployer",
		Password: password, TLS: mail.TLSStartTLS,
		TLSConfig: &tls.Config{RootCAs: server.Pool, ServerName: "127.0.0.1"}})
	f := startFlow(t, sender)

	if o := f.onboard(t, "alice", "Alice Example"); o.Status != onboard.StatusSucceeded {
		t.Fatalf("onboarding %s: %s", o.Status, o.ErrorMessage)
	}
	waitFor(t, "the welcome email", func() bool { return len(server.Messages()) == 1 })
	tester, err := f.svc.Tester(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}

	msg := server.Messages()[0]
	if len(msg.To) != 1 || msg.To[0] != "alice@example.org" {
		t.Errorf("recipients = %q, want alice@example.org", msg.To)
	}
	if msg.From != "deployer@example.org" {
		t.Errorf("sender = %q", msg.From)
	}
	for _, want := range []string{tester.CockpitURL, "Alice Example", "Subject: Your test environment is ready"} {
		if !strings.Contains(msg.Data, want) {
			t.Errorf("message lacks %q:\n%s", want, msg.Data)
		}
	}
	if server.Logins() != 1 {
		t.Errorf("logins = %d, want 1", server.Logins())
	}
	waitFor(t, "the message marked sent", func() bool {
		list := f.messages(t)
		return len(list) == 1 && list[0].Status == onboard.MessageSent
	})
}

func TestWelcomeEmailOverImplicitTLS(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{Implicit: true})
	sender := newSender(t, mail.SMTPConfig{Host: server.Host, Port: server.Port, TLS: mail.TLSImplicit,
		TLSConfig: &tls.Config{RootCAs: server.Pool, ServerName: "127.0.0.1"}})
	f := startFlow(t, sender)
	f.onboard(t, "bob", "Bob Example")
	waitFor(t, "the welcome email", func() bool { return len(server.Messages()) == 1 })
}

func TestWelcomeEmailRetriedUntilServerUp(t *testing.T) {
	// Take a free port and leave it closed, so the first attempts fail.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	sender := newSender(t, mail.SMTPConfig{Host: "127.0.0.1", Port: addr.Port, TLS: mail.TLSNone})
	f := startFlow(t, sender)

	f.onboard(t, "carol", "Carol Example")
	waitFor(t, "a failed attempt", func() bool {
		list := f.messages(t)
		return len(list) == 1 && list[0].Attempts >= 1 && list[0].Status != onboard.MessageSent
	})
	if list := f.messages(t); !strings.Contains(list[0].LastErr, "connection refused") {
		t.Errorf("last error = %q, want the refused connection", list[0].LastErr)
	}

	server := smtptest.Start(t, smtptest.Options{Addr: addr.String()})
	waitFor(t, "the retried email", func() bool { return len(server.Messages()) == 1 })
	if !strings.Contains(server.Messages()[0].Data, "Carol Example") {
		t.Errorf("message lacks the tester's name:\n%s", server.Messages()[0].Data)
	}
	if !strings.Contains(f.logs.String(), "will retry") {
		t.Errorf("the log does not show the retry:\n%s", f.logs.String())
	}
}

func TestInstallFailureSendsNoEmail(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{})
	f := startFlow(t, newSender(t, mail.SMTPConfig{Host: server.Host, Port: server.Port, TLS: mail.TLSNone}))
	if err := f.sim.SetFault(context.Background(), onboard.StageInstalling, 1, ""); err != nil {
		t.Fatal(err)
	}

	o := f.onboard(t, "dave", "Dave Example")
	if o.Status != onboard.StatusFailed || o.ErrorCode != onboard.EInstallFailed {
		t.Fatalf("onboarding %s with %q, want failed with %q", o.Status, o.ErrorCode, onboard.EInstallFailed)
	}
	// Give a wrongly queued message time to go out before checking.
	time.Sleep(300 * time.Millisecond)
	if n := len(server.Messages()); n != 0 {
		t.Errorf("the server got %d messages after a failed install, want 0", n)
	}
	if list := f.messages(t); len(list) != 0 {
		t.Errorf("the outbox holds %+v after a failed install, want nothing", list)
	}
}

func TestSMTPPasswordNeverLogged(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{User: "deployer", Password: "the-right-one"})
	sender := newSender(t, mail.SMTPConfig{Host: server.Host, Port: server.Port, User: "deployer",
		Password: password, TLS: mail.TLSNone})
	f := startFlow(t, sender)

	f.onboard(t, "erin", "Erin Example")
	waitFor(t, "a rejected login", func() bool {
		list := f.messages(t)
		return len(list) == 1 && list[0].Attempts >= 2
	})
	if n := len(server.Messages()); n != 0 {
		t.Fatalf("the server accepted %d messages with a wrong password", n)
	}
	list := f.messages(t)
	if !strings.Contains(list[0].LastErr, "invalid username or password") {
		t.Errorf("last error = %q, want the server's rejection of the login", list[0].LastErr)
	}
	if strings.Contains(list[0].LastErr, password) {
		t.Errorf("the outbox error shows the password: %q", list[0].LastErr)
	}
	if strings.Contains(f.logs.String(), password) {
		t.Errorf("the log shows the password:\n%s", f.logs.String())
	}
	if strings.Contains(sender.Description(), password) {
		t.Errorf("the description shows the password: %q", sender.Description())
	}
}

func TestSMTPCheck(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{TLS: true, User: "deployer", Password: password})
	good := newSender(t, mail.SMTPConfig{Host: server.Host, Port: server.Port, User: "deployer",
		Password: password, TLS: mail.TLSStartTLS,
		TLSConfig: &tls.Config{RootCAs: server.Pool, ServerName: "127.0.0.1"}})
	if err := good.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	if n := len(server.Messages()); n != 0 {
		t.Errorf("Check sent %d messages, want none", n)
	}

	// A certificate the sender does not trust fails the check.
	untrusted := newSender(t, mail.SMTPConfig{Host: server.Host, Port: server.Port, TLS: mail.TLSStartTLS})
	if err := untrusted.Check(context.Background()); err == nil {
		t.Error("Check passed with an untrusted certificate")
	}
}

func TestNewSMTPSenderRejectsBadSettings(t *testing.T) {
	cases := []struct {
		name string
		cfg  mail.SMTPConfig
		want string
	}{
		{"no host", mail.SMTPConfig{Port: 587, From: "a@example.org", TLS: mail.TLSStartTLS}, "DEPLOYER_SMTP_HOST"},
		{"bad from", mail.SMTPConfig{Host: "h", Port: 587, From: "nobody", TLS: mail.TLSStartTLS}, "DEPLOYER_SMTP_FROM"},
		{"bad tls", mail.SMTPConfig{Host: "h", Port: 587, From: "a@example.org", TLS: "ssl"}, "DEPLOYER_SMTP_TLS"},
		{"bad port", mail.SMTPConfig{Host: "h", Port: 0, From: "a@example.org", TLS: mail.TLSNone}, "DEPLOYER_SMTP_PORT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := mail.NewSMTPSender(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v, want one naming %s", err, c.want)
			}
		})
	}
}
