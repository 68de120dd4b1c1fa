package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/grid"
	"deployer/handlers"
	"deployer/mail"
	"deployer/onboard"
	"deployer/stack"
	"deployer/storage"
	"deployer/views"

	"golang.org/x/crypto/bcrypt"
)

// Token is the API token of test servers.
const Token = "test-token-0123456789"

// AdminPassword is the bootstrap admin password of test servers.
const AdminPassword = "test-admin-password"

// Options tunes a test server; zero fields take small, fast defaults.
type Options struct {
	Slots     int
	Delay     time.Duration
	Heartbeat time.Duration
	DBPath    string
	Onboard   onboard.Options
	// FixedDelay makes every simulated stage take exactly Delay.
	FixedDelay bool
	// Grid, when set, replaces the simulated grid in the services; the
	// simulated grid still backs the simulated installer's faults.
	Grid onboard.Grid
	// Auth tunes sessions; a zero Idle means one hour.
	Auth onboard.AuthOptions
	// SecureCookies and TrustProxy set the handler options of those names.
	SecureCookies, TrustProxy bool
}

// Server is the deployer's server on 127.0.0.1 over a fresh database and
// the simulated grid.
type Server struct {
	URL    string
	DB     *storage.DB
	Sim    *grid.Sim
	Svc    *onboard.Service
	Runner *onboard.Runner
	Hub    *onboard.Hub
	Logs   *LogBuffer
	Client *http.Client

	app    *handlers.Server
	auth   *onboard.Auth
	outbox *onboard.Outbox
	closed bool
}

// LogBuffer collects log output; it is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartServer starts a server and stops it when the test ends.
func StartServer(tb testing.TB, o Options) *Server {
	tb.Helper()
	if o.Slots == 0 {
		o.Slots = 16
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 50 * time.Millisecond
	}
	if o.DBPath == "" {
		o.DBPath = filepath.Join(tb.TempDir(), "deployer.db")
	}
	if o.Onboard.BcryptCost == 0 {
		o.Onboard.BcryptCost = bcrypt.MinCost
	}
	ctx := context.Background()
	db, err := storage.Open(ctx, o.DBPath)
	if err != nil {
		tb.Fatalf("open database: %v", err)
	}
	logs := &LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sim := grid.NewSim(db, o.Delay, o.Slots)
	if err := sim.EnsureNode(ctx, "1"); err != nil {
		tb.Fatal(err)
	}
	installer := stack.NewSim(sim, o.Delay)
	if o.FixedDelay {
		sim.FixDelay()
		installer.FixDelay()
	}
	var g onboard.Grid = sim
	if o.Grid != nil {
		g = o.Grid
	}
	hub := onboard.NewHub()
	svc := onboard.NewService(db, g, installer, hub, log, o.Onboard)
	runner := onboard.NewRunner(svc)
	if o.Auth.Idle == 0 {
		o.Auth.Idle = time.Hour
	}
	o.Auth.BcryptCost = bcrypt.MinCost
	auth := onboard.NewAuth(db, o.Auth, log)
	if _, err := auth.Bootstrap(ctx, AdminPassword); err != nil {
		tb.Fatal(err)
	}
	if err := runner.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	outbox := onboard.NewOutbox(svc, mail.NewLogSender(log))
	outbox.Start()
	v, err := views.New()
	if err != nil {
		tb.Fatal(err)
	}
	app := handlers.New(handlers.Config{DefaultNode: "1", APIToken: Token, Heartbeat: o.Heartbeat, Version: "test",
		SecureCookies: o.SecureCookies, TrustProxy: o.TrustProxy},
		handlers.Deps{Service: svc, Runner: runner, Auth: auth, Outbox: outbox, Sim: sim, Views: v, Log: log, Health: db.Ping})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go app.Serve(ln)

	s := &Server{
		URL: "http://" + ln.Addr().String(), DB: db, Sim: sim, Svc: svc, Runner: runner, Hub: hub, Logs: logs,
		Client: &http.Client{Timeout: 30 * time.Second}, app: app, auth: auth, outbox: outbox,
	}
	tb.Cleanup(func() { s.Close(tb) })
	return s
}

// Close shuts the server down in the deployer's order; a second call does
// nothing.
func (s *Server) Close(tb testing.TB) {
	if s.closed {
		return
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Hub.Close()
	for name, stop := range map[string]func(context.Context) error{
		"runner": s.Runner.Shutdown, "steps": s.Svc.Shutdown,
	} {
		if err := stop(ctx); err != nil {
			tb.Errorf("%s shutdown: %v", name, err)
		}
	}
	if err := s.app.Shutdown(ctx); err != nil {
		tb.Errorf("server shutdown: %v", err)
	}
	s.outbox.Shutdown(ctx)
	s.DB.Close()
}

// API sends a request with the API token and decodes a JSON answer into out
// when out is not nil. It returns the status.
func (s *Server) API(tb testing.TB, method, path string, body any, out any) int {
	tb.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.Fatalf("%s %s: status %d, body %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// Browser is an HTTP client logged in as an admin, with the session's CSRF
// token read from a page.
type Browser struct {
	*http.Client
	Base string
	CSRF string
}

var csrfPattern = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// Login logs in as the bootstrap admin and returns the client.
func (s *Server) Login(tb testing.TB) *Browser {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	b := &Browser{Client: &http.Client{Jar: jar, Timeout: 30 * time.Second}, Base: s.URL}
	resp, err := b.PostForm(s.URL+"/login", url.Values{"username": {"admin"}, "password": {AdminPassword}})
	if err != nil {
		tb.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfPattern.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		tb.Fatalf("login: status %d, no CSRF token in the page", resp.StatusCode)
	}
	b.CSRF = string(m[1])
	return b
}

// Post sends a form as htmx does, with the CSRF header; it returns the
// status and body.
func (b *Browser) Post(tb testing.TB, path string, form url.Values) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, b.Base+path, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", b.CSRF)
	resp, err := b.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Get fetches a page and returns the status and body.
func (b *Browser) Get(tb testing.TB, path string) (int, string) {
	tb.Helper()
	resp, err := b.Client.Get(b.Base + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// OnboardingJSON is the API's onboarding.
type OnboardingJSON struct {
	ID              string `json:"id"`
	Username        string `json:"username"`
	Status          string `json:"status"`
	Attempt         int    `json:"attempt"`
	CockpitURL      string `json:"cockpit_url"`
	OneTimePassword string `json:"one_time_password"`
	Stages          []struct {
		Name, Status string
	} `json:"stages"`
	Error *struct {
		Code, Message string
	} `json:"error"`
}

// Start starts an onboarding for a new tester through the API.
func (s *Server) Start(tb testing.TB, username string) (OnboardingJSON, int) {
	tb.Helper()
	var o OnboardingJSON
	status := s.API(tb, http.MethodPost, "/api/onboardings", map[string]any{
		"username": username, "full_name": "Test " + username, "email": username + "@example.org", "node_id": 1,
	}, &o)
	return o, status
}

// WaitFinished polls the API until the onboarding stops running.
func (s *Server) WaitFinished(tb testing.TB, id string, within time.Duration) OnboardingJSON {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		var o OnboardingJSON
		if status := s.API(tb, http.MethodGet, "/api/onboardings/"+id, nil, &o); status != http.StatusOK {
			tb.Fatalf("get onboarding %s: status %d", id, status)
		}
		if o.Status != onboard.StatusRunning {
			return o
		}
		if time.Now().After(deadline) {
			tb.Fatalf("onboarding %s still running after %s", id, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stream opens an onboarding's event stream with the API token.
func (s *Server) Stream(tb testing.TB, path string, header map[string]string) *http.Response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		tb.Fatalf("open stream %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		tb.Fatalf("open stream %s: status %d", path, resp.StatusCode)
	}
	return resp
}

// String describes the server for failure messages.
func (s *Server) String() string { return fmt.Sprintf("deployer at %s", s.URL) }
