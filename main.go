// Command deployer is an admin web app that onboards testers onto a grid
// node: it adds the tester's account, provisions a VM with a gateway name
// and a login gate, and installs the tester stack, showing each stage live.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"deployer/handlers"
	"deployer/onboard"
	"deployer/storage"
	"deployer/views"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

// shutdownTimeout bounds the whole shutdown, so that SIGTERM ends the
// process within about two seconds.
const shutdownTimeout = 1500 * time.Millisecond

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "deployer: %v\n", err)
		os.Exit(1)
	}
}

// run starts the deployer and serves until ctx ends, then shuts down in
// reverse order: event streams, runner, steps, server, outbox, database.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintf(stdout, "deployer %s\n", version)
		return nil
	}
	if len(args) > 0 && args[0] == "check" {
		return runCheck(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "backup" {
		return runBackup(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "admin" {
		return runAdmin(ctx, args[1:], getenv, os.Stdin, stdout, stderr)
	}
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)

	lock, err := lockDatabase(cfg.DB)
	if err != nil {
		return err
	}
	defer lock.Close()
	db, err := storage.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer db.Close()

	app, err := assemble(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	generated, err := app.auth.Bootstrap(ctx, cfg.Admin)
	if err != nil {
		return fmt.Errorf("set up the admin account: %w", err)
	}
	if err := app.runner.Start(ctx); err != nil {
		return err
	}
	app.outbox.Start()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		app.shutdown(log)
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- app.server.Serve(ln) }()
	announce(stdout, ln.Addr().String(), generated, cfg)
	log.Info("Deployer started", "version", version, "addr", ln.Addr().String(), "db", cfg.DB,
		"grid", cfg.Grid, "installer", cfg.Installer)
	go app.pruneSessions(ctx, log)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			log.Error("Server stopped", "error", err)
		}
	}
	log.Info("Deployer stopping")
	app.shutdown(log)
	log.Info("Deployer stopped")
	return nil
}

// announce prints where to log in and, on first start, the generated admin
// password, once, to the terminal rather than the log.
func announce(w io.Writer, addr, generated string, cfg Config) {
	fmt.Fprintf(w, "Deployer %s is listening on http://%s/\n", version, addr)
	if generated != "" {
		fmt.Fprintf(w, "Log in as admin with the password %s\n", generated)
		fmt.Fprintln(w, "It is shown only now; set DEPLOYER_ADMIN_PASSWORD to choose your own.")
	} else if cfg.Admin != "" {
		fmt.Fprintln(w, "Log in as admin with the password in DEPLOYER_ADMIN_PASSWORD.")
	}
	if cfg.Grid == "sim" {
		fmt.Fprintf(w, "The grid is simulated: node %s has %d slots, and steps take %s to %s.\n",
			cfg.Node, cfg.SimSlots, cfg.SimDelay, 3*cfg.SimDelay)
	}
}

// app is the assembled deployer.
type app struct {
	svc    *onboard.Service
	runner *onboard.Runner
	auth   *onboard.Auth
	outbox *onboard.Outbox
	hub    *onboard.Hub
	server *handlers.Server
}

// assemble picks the backends and builds the services and the server.
func assemble(ctx context.Context, cfg Config, db *storage.DB, log *slog.Logger) (*app, error) {
	b, err := pickBackends(ctx, cfg, db, log)
	if err != nil {
		return nil, err
	}
	g, sim, installer, mailer, mailDescription := b.grid, b.sim, b.installer, b.mailer, b.mailDescription

	hub := onboard.NewHub()
	svc := onboard.NewService(db, g, installer, hub, log, onboard.Options{
		StageTimeouts: map[string]time.Duration{
			onboard.StageProvisioning: cfg.ProvisionTimeout,
			onboard.StageInstalling:   cfg.InstallTimeout,
			onboard.StageTeardown:     cfg.TeardownTimeout,
		},
		DegradeAfter: cfg.DegradeAfter,
	})
	v, err := views.New()
	if err != nil {
		return nil, err
	}
	a := &app{
		svc: svc, runner: onboard.NewRunner(svc), auth: onboard.NewAuth(db, onboard.AuthOptions{Idle: cfg.Idle}, log),
		outbox: onboard.NewOutbox(svc, mailer), hub: hub,
	}
	a.server = handlers.New(handlers.Config{
		DefaultNode: cfg.Node, APIToken: cfg.Token, SecureCookies: cfg.Secure, TrustProxy: cfg.Proxy,
		Heartbeat: cfg.Heartbeat, Version: version, MailDescription: mailDescription,
		MetricsToken: cfg.MetricsToken,
	}, handlers.Deps{
		Service: svc, Runner: a.runner, Auth: a.auth, Outbox: a.outbox, Sim: sim, Views: v, Log: log,
		Health: db.Ping, Metrics: newMetrics(cfg, a, db, log),
	})
	return a, nil
}

// shutdown stops everything but the database, which the caller closes last.
func (a *app) shutdown(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	a.hub.Close()
	steps := []struct {
		name string
		stop func(context.Context) error
	}{
		{"runner", a.runner.Shutdown},
		{"steps", a.svc.Shutdown},
		{"server", a.server.Shutdown},
		{"outbox", a.outbox.Shutdown},
	}
	for _, s := range steps {
		if err := s.stop(ctx); err != nil {
			log.Warn("Shutdown incomplete", "part", s.name, "error", err)
		}
	}
}

// pruneSessions deletes idle sessions every hour until ctx ends.
func (a *app) pruneSessions(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.auth.PruneSessions(ctx); err != nil && ctx.Err() == nil {
				log.Warn("Idle sessions not pruned", "error", err)
			}
		}
	}
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
