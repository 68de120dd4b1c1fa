package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"deployer/handlers"
	"deployer/internal/testkit"
	"deployer/onboard"
)

// publicPaths need no credentials.
var publicPaths = map[string]bool{"/login": true, "/healthz": true}

// ownTokenPaths check a token of their own instead of a session.
var ownTokenPaths = map[string]bool{"/metrics": true}

// allRoutes returns every registered route.
func allRoutes(t *testing.T) []handlers.Route {
	t.Helper()
	routes := handlers.New(handlers.Config{}, handlers.Deps{}).Routes()
	if len(routes) < 40 {
		t.Fatalf("only %d routes listed; the listing is broken", len(routes))
	}
	return routes
}

// fillPath puts real values into a route's parameters.
func fillPath(path, onboardingID string) string {
	return strings.NewReplacer(":id", onboardingID, ":username", "alice", ":node", "1").Replace(path)
}

func isAPIPath(path string) bool { return strings.HasPrefix(path, "/api/") }

func isPageStream(path string) bool {
	return !isAPIPath(path) && strings.HasSuffix(path, "/events")
}

func TestEveryRouteNeedsCredentials(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	o, status := s.Start(t, "alice")
	if status != http.StatusAccepted {
		t.Fatalf("start: status %d", status)
	}
	s.WaitFinished(t, o.ID, 10*time.Second)

	for _, route := range allRoutes(t) {
		if publicPaths[route.Path] {
			continue
		}
		path := fillPath(route.Path, o.ID)
		if ownTokenPaths[route.Path] {
			for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong-" + testkit.Token}} {
				if r := send(t, s.URL, request{Method: route.Method, Path: path, Header: h}); r.Status < 300 {
					t.Errorf("%s %s without valid credentials: status %d", route.Method, path, r.Status)
				}
			}
			continue
		}
		t.Run(route.Method+" "+route.Path, func(t *testing.T) {
			plain := send(t, s.URL, request{Method: route.Method, Path: path})
			checkUnauthenticated(t, route.Method, path, plain, false)

			htmx := send(t, s.URL, request{Method: route.Method, Path: path, Header: map[string]string{"HX-Request": "true"}})
			checkUnauthenticated(t, route.Method, path, htmx, true)

			wrong := send(t, s.URL, request{Method: route.Method, Path: path,
				Header: map[string]string{"Authorization": "Bearer wrong-" + testkit.Token}})
			if wrong.Status != http.StatusUnauthorized {
				t.Errorf("wrong token: status %d, want 401", wrong.Status)
			}
			if isAPIPath(path) && route.Method != http.MethodHead {
				checkJSONError(t, "wrong token", wrong, "unauthorized")
			}

			if !isAPIPath(path) {
				token := send(t, s.URL, request{Method: route.Method, Path: path,
					Header: map[string]string{"Authorization": "Bearer " + testkit.Token}})
				if token.Status != http.StatusUnauthorized {
					t.Errorf("API token outside /api/: status %d, want 401", token.Status)
				}
			}
		})
	}
}

// checkUnauthenticated checks the response to a request without credentials:
// 401 with a JSON error on the API, a closing event on a page's event
// stream, an HX-Redirect for htmx and a redirect to the login page
// otherwise.
func checkUnauthenticated(t *testing.T, method, path string, r response, htmx bool) {
	t.Helper()
	kind := "plain"
	if htmx {
		kind = "htmx"
	}
	switch {
	case isAPIPath(path):
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", kind, r.Status)
		}
		if method != http.MethodHead {
			checkJSONError(t, kind, r, "unauthorized")
		}
	case isPageStream(path) && method == http.MethodGet:
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
			t.Errorf("%s: status %d, content type %q, want a 200 event stream that closes",
				kind, r.Status, r.Header.Get("Content-Type"))
		}
		if !strings.Contains(r.Body, "event: done") || !strings.Contains(r.Body, "Log in") {
			t.Errorf("%s: stream %q, want a closing event that asks to log in", kind, r.Body)
		}
		if strings.Contains(r.Body, "ob-"+strings.Split(path, "/")[2]+"-stages") {
			t.Errorf("%s: stream sends the panel's stages without a session", kind)
		}
	case htmx:
		if r.Status != http.StatusUnauthorized || r.Header.Get("HX-Redirect") != "/login" {
			t.Errorf("htmx: status %d, HX-Redirect %q, want 401 with HX-Redirect /login",
				r.Status, r.Header.Get("HX-Redirect"))
		}
	default:
		want := "/login"
		if method == http.MethodGet && path != "/" {
			want = "/login?next=" + url.QueryEscape(path)
		}
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != want {
			t.Errorf("plain: status %d, Location %q, want 303 to %s", r.Status, r.Header.Get("Location"), want)
		}
	}
}

func checkJSONError(t *testing.T, label string, r response, wantCode string) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: content type %q, want JSON", label, ct)
		return
	}
	if code, _, _ := errorJSON(t, r.Body); code != wantCode {
		t.Errorf("%s: error code %q, want %s", label, code, wantCode)
	}
}

func TestPublicRoutesAnswerWithoutCredentials(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	for _, path := range []string{"/login", "/healthz", "/static/app.js", "/static/htmx.min.js"} {
		if r := send(t, s.URL, request{Method: http.MethodGet, Path: path}); r.Status != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", path, r.Status)
		}
	}
	// An unknown address needs a session too, so that it does not reveal
	// which routes exist.
	r := send(t, s.URL, request{Method: http.MethodGet, Path: "/no/such/page"})
	if r.Status != http.StatusSeeOther {
		t.Errorf("unknown page without a session: status %d, want 303", r.Status)
	}
}

func TestSessionWithWrongTokenIsRejected(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	r := send(t, s.URL, request{Method: http.MethodGet, Path: "/api/testers", Cookie: sess.ID,
		Header: map[string]string{"Authorization": "Bearer wrong"}})
	if r.Status != http.StatusUnauthorized {
		t.Errorf("session with a wrong bearer token: status %d, want 401", r.Status)
	}
	r = send(t, s.URL, request{Method: http.MethodGet, Path: "/api/testers", Cookie: sess.ID})
	if r.Status != http.StatusOK {
		t.Errorf("session alone on the API: status %d, want 200", r.Status)
	}
}

func TestEveryStateChangingRouteHasAnAuditAction(t *testing.T) {
	for _, route := range allRoutes(t) {
		if route.Method == http.MethodGet || route.Method == http.MethodHead || publicPaths[route.Path] {
			continue
		}
		if action, _, _ := handlers.RouteAction(route.Method, route.Path); action == handlers.UnknownAction {
			t.Errorf("%s %s has no audit action", route.Method, route.Path)
		}
	}
	action, tester, node := handlers.RouteAction(http.MethodPost, "/API/Testers/Bob/provision/")
	if action != "tester.provision" || tester != "bob" || node != "" {
		t.Errorf("route action %q, tester %q, node %q; want tester.provision for bob", action, tester, node)
	}
	if action, _, node := handlers.RouteAction(http.MethodPost, "/nodes/7/clear-degraded"); action != "node.clear_degraded" || node != "7" {
		t.Errorf("route action %q, node %q; want node.clear_degraded on 7", action, node)
	}
	if action, _, _ := handlers.RouteAction(http.MethodPost, "/api/testers/bob"); action != handlers.UnknownAction {
		t.Errorf("route action of POST /api/testers/bob %q, want %s", action, handlers.UnknownAction)
	}
}

func TestEveryStateChangingRouteIsAudited(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	const missing = "00000000-0000-4000-8000-000000000000"

	var logout handlers.Route
	for _, route := range allRoutes(t) {
		if route.Method == http.MethodGet || route.Method == http.MethodHead || publicPaths[route.Path] {
			continue
		}
		if route.Path == "/logout" {
			logout = route
			continue
		}
		path := fillPath(route.Path, missing)
		want, _, _ := handlers.RouteAction(route.Method, route.Path)
		t.Run(route.Method+" "+route.Path, func(t *testing.T) {
			before := len(auditLog(t, s, ""))
			// A body that cannot be read, or a tester and onboarding that do
			// not exist: the request fails, and the failure is recorded.
			h := map[string]string{"Content-Type": "application/json", "HX-Request": "true"}
			if isAPIPath(path) {
				h["Authorization"] = "Bearer " + testkit.Token
			} else {
				h["X-CSRF-Token"] = sess.CSRF
			}
			r := send(t, s.URL, request{Method: route.Method, Path: path, Header: h, Body: "{not json", Cookie: sess.ID})
			if r.Status >= 500 {
				t.Fatalf("status %d, want a 4xx for the client's mistake or a success", r.Status)
			}

			entries := auditLog(t, s, "")
			if len(entries) != before+1 {
				t.Fatalf("%d audit entries added, want 1", len(entries)-before)
			}
			e := entries[0]
			if e.Action != want {
				t.Errorf("audit action %q, want %s", e.Action, want)
			}
			if failed := r.Status >= 400; failed != (e.Outcome != "ok") || e.Outcome == "" {
				t.Errorf("audit outcome %q for status %d, want ok exactly for a success", e.Outcome, r.Status)
			}
			wantActor := "admin"
			if isAPIPath(path) {
				wantActor = "api"
			}
			if e.Actor != wantActor {
				t.Errorf("audit actor %q, want %s", e.Actor, wantActor)
			}
		})
	}

	// A request rejected for its CSRF token is recorded too.
	before := len(auditLog(t, s, ""))
	r := htmxPost(t, s, sess, "", "/sim/faults", url.Values{"stage": {"installing"}})
	if r.Status != http.StatusForbidden {
		t.Fatalf("post without CSRF token: status %d, want 403", r.Status)
	}
	entries := auditLog(t, s, "")
	if len(entries) != before+1 || entries[0].Action != "sim.fault" || entries[0].Outcome != onboard.EForbidden {
		t.Errorf("after a rejected CSRF token the newest entry is %+v, want sim.fault forbidden", entries[0])
	}

	r = send(t, s.URL, request{Method: logout.Method, Path: logout.Path, Cookie: sess.ID,
		Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, Body: "_csrf=" + url.QueryEscape(sess.CSRF)})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("logout: status %d, want 303", r.Status)
	}
	if e := auditLog(t, s, "")[0]; e.Action != "admin.logout" || e.Actor != "admin" || e.Outcome != "ok" {
		t.Errorf("newest entry after logout %+v, want admin.logout by admin, ok", e)
	}
}
