package handlers_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// checkSecurityHeaders checks the headers every response carries.
func checkSecurityHeaders(t *testing.T, label string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, directive := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'",
		"frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, directive) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", label, csp, directive)
		}
	}
	for _, weak := range []string{"unsafe-inline", "unsafe-eval", "*"} {
		if strings.Contains(csp, weak) {
			t.Errorf("%s: Content-Security-Policy %q allows %s", label, csp, weak)
		}
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", label, got)
	}
	if got := h.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("%s: Referrer-Policy %q, want no-referrer", label, got)
	}
	if got := h.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("%s: X-Frame-Options %q, want DENY", label, got)
	}
}

func TestSecurityHeadersOnEveryKindOfResponse(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	o, _ := s.Start(t, "alice")
	s.WaitFinished(t, o.ID, 10*time.Second)
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	token := map[string]string{"Authorization": "Bearer " + testkit.Token}
	htmx := map[string]string{"HX-Request": "true"}

	cases := []struct {
		name   string
		req    request
		status int
	}{
		{"login page", request{Method: http.MethodGet, Path: "/login"}, http.StatusOK},
		{"health", request{Method: http.MethodGet, Path: "/healthz"}, http.StatusOK},
		{"static script", request{Method: http.MethodGet, Path: "/static/app.js"}, http.StatusOK},
		{"static style", request{Method: http.MethodGet, Path: "/static/app.css"}, http.StatusOK},
		{"missing static file", request{Method: http.MethodGet, Path: "/static/none.js"}, http.StatusSeeOther},
		{"page", request{Method: http.MethodGet, Path: "/", Cookie: sess.ID}, http.StatusOK},
		{"tester page", request{Method: http.MethodGet, Path: "/testers/alice", Cookie: sess.ID}, http.StatusOK},
		{"fragment", request{Method: http.MethodGet, Path: "/capacity", Cookie: sess.ID, Header: htmx}, http.StatusOK},
		{"page stream", request{Method: http.MethodGet, Path: "/onboardings/" + o.ID + "/events", Cookie: sess.ID}, http.StatusOK},
		{"API", request{Method: http.MethodGet, Path: "/api/testers", Header: token}, http.StatusOK},
		{"API stream", request{Method: http.MethodGet, Path: "/api/onboardings/" + o.ID + "/events", Header: token}, http.StatusOK},
		{"redirect to login", request{Method: http.MethodGet, Path: "/audit"}, http.StatusSeeOther},
		{"API without credentials", request{Method: http.MethodGet, Path: "/api/testers"}, http.StatusUnauthorized},
		{"unknown page", request{Method: http.MethodGet, Path: "/no/such/page", Cookie: sess.ID}, http.StatusNotFound},
		{"unknown API route", request{Method: http.MethodGet, Path: "/api/nothing", Header: token}, http.StatusNotFound},
		{"CSRF rejected", request{Method: http.MethodPost, Path: "/sim/faults", Cookie: sess.ID, Header: htmx}, http.StatusForbidden},
		{"invalid JSON", request{Method: http.MethodPost, Path: "/api/testers", Body: "{",
			Header: map[string]string{"Authorization": "Bearer " + testkit.Token, "Content-Type": "application/json"}}, http.StatusBadRequest},
		{"wrong login", request{Method: http.MethodPost, Path: "/login", Body: "username=admin&password=wrong",
			Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, s.URL, tc.req)
			if r.Status != tc.status {
				t.Errorf("status %d, want %d", r.Status, tc.status)
			}
			checkSecurityHeaders(t, tc.name, r.Header)
		})
	}
}
