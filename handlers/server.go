// Package handlers serves the deployer's pages, htmx fragments, JSON API and
// event streams. It is the only package that imports Fiber.
package handlers

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"deployer/grid"
	"deployer/onboard"
	"deployer/static"
	"deployer/views"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
)

// bodyLimit caps request bodies; the largest legitimate body is a form of a
// few hundred bytes.
const bodyLimit = 64 << 10

// Config is what the handlers need from the deployer's configuration.
type Config struct {
	// DefaultNode prefills the node field of forms.
	DefaultNode string
	// APIToken is accepted as a bearer token on /api/; empty disables it.
	APIToken string
	// MetricsToken is accepted as a bearer token on /metrics only, for
	// scrapers; empty disables it.
	MetricsToken string
	// SecureCookies marks cookies Secure and sends HSTS, for a deployer
	// served over HTTPS.
	SecureCookies bool
	// TrustProxy believes X-Forwarded-Proto and X-Forwarded-For from a
	// reverse proxy in front of the deployer.
	TrustProxy bool
	// Heartbeat is the interval of event stream comments.
	Heartbeat time.Duration
	// Version is shown in the footer and /healthz.
	Version string
	// MailDescription says where welcome emails go, for the outbox page; empty
	// means they stay in the outbox.
	MailDescription string
}

// Deps are the services the handlers call.
type Deps struct {
	Service *onboard.Service
	Runner  *onboard.Runner
	Auth    *onboard.Auth
	Outbox  *onboard.Outbox
	// Sim is the simulated grid, or nil when a real grid is configured.
	Sim   *grid.Sim
	Views *views.Views
	Log   *slog.Logger
	// Health checks the database for /healthz.
	Health func(ctx context.Context) error
	// Metrics serves /metrics and counts requests; nil turns both off.
	Metrics Metrics
}

// handler holds the dependencies of every route.
type handler struct {
	Deps
	cfg  Config
	svc  *onboard.Service
	sim  *grid.Sim
	auth *onboard.Auth
	log  *slog.Logger
	// panels and events keep the data fields of the newest panel and JSON
	// event of each onboarding for its event streams.
	panels, events *eventCache
}

// Server is the deployer's HTTP server.
type Server struct {
	app *fiber.App
	h   *handler
}

// New returns a server with every route registered.
func New(cfg Config, deps Deps) *Server {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	h := &handler{
		Deps: deps, cfg: cfg, svc: deps.Service, sim: deps.Sim, auth: deps.Auth, log: deps.Log,
		panels: newEventCache(), events: newEventCache(),
	}
	app := fiber.New(fiber.Config{
		AppName:               "deployer",
		BodyLimit:             bodyLimit,
		DisableStartupMessage: true,
		// Immutable copies request values, which detached steps and event
		// streams keep after the handler returns.
		Immutable:    true,
		ErrorHandler: h.handleError,
		ReadTimeout:  30 * time.Second,
		// No write timeout: event streams stay open for as long as the
		// onboarding runs. Idle keep-alive connections close after a minute.
		IdleTimeout: time.Minute,
		// ReduceMemoryUsage returns a connection's read buffer to the pool
		// once the request is read, and its write buffer once the response
		// is written. An open event stream then holds no read buffer, which
		// saves 4 KiB per stream for a little pool traffic per request.
		ReduceMemoryUsage:       true,
		ProxyHeader:             proxyHeader(cfg.TrustProxy),
		EnableTrustedProxyCheck: false,
	})
	s := &Server{app: app, h: h}
	s.routes()
	return s
}

func proxyHeader(trust bool) string {
	if trust {
		return fiber.HeaderXForwardedFor
	}
	return ""
}

func (s *Server) routes() {
	app, h := s.app, s.h
	app.Use(h.tagRequest)
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(static.FS), MaxAge: 3600}))
	app.Get("/healthz", h.checkHealth)
	app.Get("/metrics", h.authenticateMetrics, h.showMetrics)
	app.Get("/login", h.showLoginPage)
	app.Post("/login", h.login)

	app.Use(h.authenticate)
	app.Post("/logout", h.logout)

	// Pages and htmx fragments.
	app.Get("/", h.showTestersPage)
	app.Get("/capacity", h.showCapacity)
	app.Get("/testers-list", h.showTesterList)
	app.Post("/onboardings", h.startOnboarding)
	app.Get("/onboardings", h.showOnboardingsPage)
	app.Get("/onboardings/:id", h.showOnboardingPage)
	app.Get("/onboardings/:id/events", h.streamOnboardingEvents)
	app.Get("/onboardings/:id/log", h.showStageLog)
	app.Post("/onboardings/:id/cancel", h.cancelOnboarding)
	app.Post("/onboardings/:id/resume", h.resumeOnboarding)
	app.Get("/testers/:username", h.showTesterPage)
	app.Post("/testers/:username/provision", h.provisionTester)
	app.Post("/testers/:username/install", h.installTester)
	app.Post("/testers/:username/teardown", h.teardownTester)
	app.Post("/testers/:username/reset-password", h.resetPassword)
	app.Post("/testers/:username/delete", h.deleteTester)
	app.Get("/orphans", h.showOrphansPage)
	app.Post("/orphans/cleanup", h.cleanUpOrphans)
	app.Post("/nodes/:node/clear-degraded", h.clearDegraded)
	app.Get("/outbox", h.showOutboxPage)
	app.Get("/audit", h.showAuditPage)
	app.Get("/account", h.showAccountPage)
	app.Post("/account/admins", h.addAdmin)
	app.Post("/account/password", h.changePassword)
	app.Post("/sim/node", h.setSimNode)
	app.Post("/sim/faults", h.setSimFault)

	// JSON API.
	api := app.Group("/api")
	api.Get("/nodes/:node/capacity", h.getCapacity)
	api.Post("/nodes/:node/clear-degraded", h.clearDegraded)
	api.Get("/testers", h.listTesters)
	api.Post("/testers", h.createTester)
	api.Get("/testers/:username", h.getTester)
	api.Post("/testers/:username/provision", h.provisionTester)
	api.Post("/testers/:username/install", h.installTester)
	api.Post("/testers/:username/teardown", h.teardownTester)
	api.Post("/testers/:username/reset-password", h.resetPassword)
	api.Delete("/testers/:username", h.deleteTester)
	api.Get("/onboardings", h.listOnboardings)
	api.Post("/onboardings", h.startOnboarding)
	api.Get("/onboardings/:id", h.getOnboarding)
	api.Get("/onboardings/:id/events", h.streamOnboardingEvents)
	api.Post("/onboardings/:id/cancel", h.cancelOnboarding)
	api.Post("/onboardings/:id/resume", h.resumeOnboarding)
	api.Get("/orphans", h.listOrphans)
	api.Post("/orphans/cleanup", h.cleanUpOrphans)
	api.Get("/audit", h.exportAudit)
	api.Get("/outbox", h.listOutbox)
	api.Post("/sim/node", h.setSimNode)
	api.Post("/sim/faults", h.setSimFault)

	app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for open requests until
// ctx ends. Event streams end when the hub closes, which the caller does
// first.
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }
