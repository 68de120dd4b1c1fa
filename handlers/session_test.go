package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/internal/testkit"
	"deployer/onboard"
)

// clock is a settable time source, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// loginForm sends the login form with extra headers and an optional
// session cookie.
func loginForm(t *testing.T, s *testkit.Server, username, password, cookie string, header map[string]string) response {
	t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range header {
		h[k] = v
	}
	return send(t, s.URL, request{Method: http.MethodPost, Path: "/login", Header: h, Cookie: cookie,
		Body: url.Values{"username": {username}, "password": {password}}.Encode()})
}

// isLoggedIn reports whether the session id opens the testers page.
func isLoggedIn(t *testing.T, s *testkit.Server, id string) bool {
	t.Helper()
	r := send(t, s.URL, request{Method: http.MethodGet, Path: "/", Cookie: id})
	return r.Status == http.StatusOK
}

// isCleared reports whether the cookie makes the browser drop it.
func isCleared(c *http.Cookie) bool {
	return c != nil && c.Value == "" && (c.MaxAge < 0 || !c.Expires.IsZero() && c.Expires.Before(time.Now()))
}

func TestLoginIgnoresClientInventedSessionID(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	const invented = "invented-by-the-client-0123456789abcdefghijk"

	r := loginForm(t, s, "admin", testkit.AdminPassword, invented, nil)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", r.Status)
	}
	id := sessionCookieValue(t, r.Header)
	if id == invented {
		t.Fatal("login kept the session id the client invented")
	}
	if len(id) < 40 {
		t.Errorf("session id has %d characters, want 40 or more random ones", len(id))
	}
	if isLoggedIn(t, s, invented) {
		t.Error("the invented session id opens the testers page after login")
	}
	if !isLoggedIn(t, s, id) {
		t.Error("the session id set at login does not open the testers page")
	}

	// A request with only an invented id is sent to log in, and the cookie
	// is cleared.
	r = send(t, s.URL, request{Method: http.MethodGet, Path: "/audit", Cookie: invented})
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Errorf("invented id: status %d, Location %q, want a redirect to /login", r.Status, r.Header.Get("Location"))
	}
	if c := sessionCookie(r.Header); !isCleared(c) {
		t.Errorf("invented id: session cookie %v, want it cleared", c)
	}
}

func TestSessionRotatesAtLoginAndLogout(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	first := loginAs(t, s, "admin", testkit.AdminPassword)

	// Logging in again from the same browser replaces its session.
	r := loginForm(t, s, "admin", testkit.AdminPassword, first.ID, nil)
	second := sessionCookieValue(t, r.Header)
	if second == first.ID {
		t.Fatal("a second login kept the session id")
	}
	if isLoggedIn(t, s, first.ID) {
		t.Error("the session before the second login still works")
	}
	if !isLoggedIn(t, s, second) {
		t.Fatal("the new session does not work")
	}

	page := send(t, s.URL, request{Method: http.MethodGet, Path: "/account", Cookie: second})
	csrf := csrfInPage.FindStringSubmatch(page.Body)
	if csrf == nil {
		t.Fatal("no CSRF token on the account page")
	}
	if csrf[1] == first.CSRF {
		t.Error("the CSRF token did not change with the session")
	}
	r = send(t, s.URL, request{Method: http.MethodPost, Path: "/logout", Cookie: second,
		Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		Body:   url.Values{"_csrf": {csrf[1]}}.Encode()})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Errorf("logout: status %d, Location %q, want 303 to /login", r.Status, r.Header.Get("Location"))
	}
	if c := sessionCookie(r.Header); !isCleared(c) {
		t.Errorf("logout: session cookie %v, want it cleared", c)
	}
	if isLoggedIn(t, s, second) {
		t.Error("the session still works after logout")
	}
}

func TestSessionCookieFlags(t *testing.T) {
	cases := []struct {
		name        string
		opts        testkit.Options
		header      map[string]string
		wantSecure  bool
		wantHSTSSet bool
	}{
		{"plain HTTP", testkit.Options{}, nil, false, false},
		{"secure cookies configured", testkit.Options{SecureCookies: true}, nil, true, true},
		{"trusted TLS proxy", testkit.Options{TrustProxy: true}, map[string]string{"X-Forwarded-Proto": "https"}, true, true},
		{"untrusted proxy header", testkit.Options{}, map[string]string{"X-Forwarded-Proto": "https"}, false, false},
		{"trusted plain proxy", testkit.Options{TrustProxy: true}, map[string]string{"X-Forwarded-Proto": "http"}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testkit.StartServer(t, tc.opts)
			r := loginForm(t, s, "admin", testkit.AdminPassword, "", tc.header)
			c := sessionCookie(r.Header)
			if c == nil {
				t.Fatalf("no session cookie; status %d", r.Status)
			}
			if !c.HttpOnly {
				t.Error("session cookie is not HttpOnly")
			}
			if c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie SameSite %v, want Strict", c.SameSite)
			}
			if c.Path != "/" {
				t.Errorf("session cookie path %q, want /", c.Path)
			}
			if c.Secure != tc.wantSecure {
				t.Errorf("session cookie Secure %v, want %v", c.Secure, tc.wantSecure)
			}
			if got := r.Header.Get("Strict-Transport-Security") != ""; got != tc.wantHSTSSet {
				t.Errorf("Strict-Transport-Security sent %v, want %v", got, tc.wantHSTSSet)
			}

			// The cookie that logout clears carries the same flags.
			sess := loginAs(t, s, "admin", testkit.AdminPassword)
			out := send(t, s.URL, request{Method: http.MethodPost, Path: "/logout", Cookie: sess.ID, Header: map[string]string{
				"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": tc.header["X-Forwarded-Proto"],
			}, Body: url.Values{"_csrf": {sess.CSRF}}.Encode()})
			cleared := sessionCookie(out.Header)
			if cleared == nil || !cleared.HttpOnly || cleared.SameSite != http.SameSiteStrictMode ||
				cleared.Secure != tc.wantSecure {
				t.Errorf("cleared cookie %v, want HttpOnly, SameSite=Strict, Secure %v", cleared, tc.wantSecure)
			}
		})
	}
}

func TestSessionExpiresAfterIdleTime(t *testing.T) {
	clk := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	// One minute is the shortest idle time the configuration accepts.
	s := testkit.StartServer(t, testkit.Options{Auth: onboard.AuthOptions{Idle: time.Minute, Now: clk.Now}})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)

	// Used every 40 seconds, the session stays open well past the idle time.
	for i := 1; i <= 6; i++ {
		clk.Advance(40 * time.Second)
		if !isLoggedIn(t, s, sess.ID) {
			t.Fatalf("session ended %d seconds after login although used every 40 seconds", 40*i)
		}
	}

	clk.Advance(time.Minute + time.Second)
	r := send(t, s.URL, request{Method: http.MethodGet, Path: "/audit", Cookie: sess.ID})
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Fatalf("after an idle minute: status %d, Location %q, want a redirect to /login",
			r.Status, r.Header.Get("Location"))
	}
	api := send(t, s.URL, request{Method: http.MethodGet, Path: "/api/testers", Cookie: sess.ID})
	if api.Status != http.StatusUnauthorized {
		t.Errorf("API with the expired session: status %d, want 401", api.Status)
	}
	if _, _, msg := errorJSON(t, api.Body); !strings.Contains(msg, "Log in") {
		t.Errorf("API error %q, want it to say to log in", msg)
	}
	htmx := send(t, s.URL, request{Method: http.MethodGet, Path: "/capacity", Cookie: sess.ID,
		Header: map[string]string{"HX-Request": "true"}})
	if htmx.Status != http.StatusUnauthorized || htmx.Header.Get("HX-Redirect") != "/login" {
		t.Errorf("htmx with the expired session: status %d, HX-Redirect %q, want 401 to /login",
			htmx.Status, htmx.Header.Get("HX-Redirect"))
	}
}

func TestLoginLimitedPerClientAddress(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	for i := 0; i < 10; i++ {
		r := loginForm(t, s, fmt.Sprintf("guess%d", i), "wrong password", "", nil)
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: status %d, want 401", i, r.Status)
		}
	}

	// The address is blocked, even for the right password of another name.
	r := loginForm(t, s, "admin", testkit.AdminPassword, "", nil)
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("login after 10 failures from one address: status %d, want 429", r.Status)
	}
	if !strings.Contains(r.Body, "Too many failed logins") {
		t.Errorf("blocked login page does not say why: %s", excerpt(r.Body, "error"))
	}
	if sessionCookie(r.Header) != nil {
		t.Error("a blocked login set a session cookie")
	}

	// Each failure is in the audit log. The blocked attempt is not, so that
	// blocked attempts cannot fill it.
	failed := auditLog(t, s, "action=admin.login")
	if len(failed) != 10 {
		t.Errorf("%d login entries in the audit log, want the 10 failures", len(failed))
	}
	for _, e := range failed {
		if e.Outcome != onboard.EUnauthorized || e.Detail != "from 127.0.0.1" || !strings.HasPrefix(e.Actor, "guess") {
			t.Errorf("audit entry %+v, want a failure by guessN from 127.0.0.1", e)
			break
		}
	}
}

func TestLoginLimitedPerAccount(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{TrustProxy: true})
	admin := loginAs(t, s, "admin", testkit.AdminPassword)
	if r := htmxPost(t, s, admin, admin.CSRF, "/account/admins",
		url.Values{"username": {"ops"}, "password": {"ops-password-123"}}); r.Status != http.StatusOK {
		t.Fatalf("add admin ops: status %d: %s", r.Status, r.Body)
	}

	// Fifty failures for one account from fifty addresses block the
	// account, and only it.
	for i := 0; i < 50; i++ {
		r := loginForm(t, s, "ops", "wrong password", "", map[string]string{"X-Forwarded-For": fmt.Sprintf("10.0.0.%d", i)})
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: status %d, want 401", i, r.Status)
		}
	}
	r := loginForm(t, s, "ops", "ops-password-123", "", map[string]string{"X-Forwarded-For": "10.0.1.1"})
	if r.Status != http.StatusTooManyRequests {
		t.Errorf("right password of a blocked account from a new address: status %d, want 429", r.Status)
	}
	r = loginForm(t, s, "admin", testkit.AdminPassword, "", map[string]string{"X-Forwarded-For": "10.0.1.1"})
	if r.Status != http.StatusSeeOther {
		t.Errorf("another account from the same new address: status %d, want 303", r.Status)
	}
}

func TestLoginLimitUsesAddressTheProxyAdded(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{TrustProxy: true})
	// The client sends a different X-Forwarded-For each time, and the proxy
	// appends the real address, 192.0.2.7, which is the one counted.
	for i := 0; i < 10; i++ {
		forwarded := fmt.Sprintf("203.0.113.%d, 192.0.2.7", i)
		r := loginForm(t, s, fmt.Sprintf("guess%d", i), "wrong password", "", map[string]string{"X-Forwarded-For": forwarded})
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: status %d, want 401", i, r.Status)
		}
	}
	r := loginForm(t, s, "admin", testkit.AdminPassword, "", map[string]string{"X-Forwarded-For": "198.51.100.1, 192.0.2.7"})
	if r.Status != http.StatusTooManyRequests {
		t.Errorf("login from the blocked address behind the proxy: status %d, want 429", r.Status)
	}
	if e := auditLog(t, s, "action=admin.login"); len(e) == 0 || e[0].Detail != "from 192.0.2.7" {
		t.Errorf("newest login entry %+v, want one from 192.0.2.7", e)
	}
}

func TestLoginRejectsOverlongFields(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	cases := []struct {
		name, username, password, wantText string
	}{
		{"username over 32 characters", strings.Repeat("a", 33), "whatever-password", "Username is too long"},
		{"username over 64 bytes", strings.Repeat("a", 65), "whatever-password", "Username is too long"},
		{"password over 72 bytes", "admin", strings.Repeat("p", 73), "Password is too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := loginForm(t, s, tc.username, tc.password, "", nil)
			if r.Status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", r.Status)
			}
			if !strings.Contains(r.Body, tc.wantText) {
				t.Errorf("page does not say %q: %s", tc.wantText, excerpt(r.Body, "error"))
			}
		})
	}
	// Rejected input does not count as a failed login.
	if r := loginForm(t, s, "admin", testkit.AdminPassword, "", nil); r.Status != http.StatusSeeOther {
		t.Errorf("login after rejected input: status %d, want 303", r.Status)
	}
}

func TestAccountPageAddsAdmins(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	admin := loginAs(t, s, "admin", testkit.AdminPassword)

	r := htmxPost(t, s, admin, admin.CSRF, "/account/admins", url.Values{"username": {"Ops-Lead"}, "password": {"a long enough password"}})
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Admin ops-lead added") {
		t.Fatalf("add admin: status %d, body %s", r.Status, r.Body)
	}
	loginAs(t, s, "ops-lead", "a long enough password")

	cases := []struct {
		name     string
		form     url.Values
		status   int
		wantText string
	}{
		{"taken username", url.Values{"username": {"ops-lead"}, "password": {"another password 1"}}, http.StatusConflict, "already exists"},
		{"bad username", url.Values{"username": {"ops lead!"}, "password": {"another password 1"}}, http.StatusBadRequest, "Admin username"},
		{"short password", url.Values{"username": {"ops-two"}, "password": {"short"}}, http.StatusBadRequest, "Password must be 12 to 72 bytes"},
		{"long password", url.Values{"username": {"ops-two"}, "password": {strings.Repeat("p", 73)}}, http.StatusBadRequest, "Password is too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := htmxPost(t, s, admin, admin.CSRF, "/account/admins", tc.form)
			if r.Status != tc.status {
				t.Errorf("status %d, want %d", r.Status, tc.status)
			}
			if !strings.Contains(r.Body, tc.wantText) {
				t.Errorf("response %q does not say %q", r.Body, tc.wantText)
			}
		})
	}
	if r := loginForm(t, s, "ops-two", "another password 1", "", nil); r.Status == http.StatusSeeOther {
		t.Error("a rejected admin can log in")
	}
	entries := auditLog(t, s, "action=admin.add")
	if len(entries) != 5 || entries[len(entries)-1].Outcome != "ok" || entries[0].Outcome == "ok" {
		t.Errorf("admin.add entries %+v, want the success and four failures", entries)
	}
}

func TestChangePasswordEndsEverySession(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	first := loginAs(t, s, "admin", testkit.AdminPassword)
	second := loginAs(t, s, "admin", testkit.AdminPassword)
	const next = "the new admin password"

	r := htmxPost(t, s, first, first.CSRF, "/account/password",
		url.Values{"current_password": {"not the password"}, "password": {next}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "Current password is wrong") {
		t.Fatalf("wrong current password: status %d, body %s", r.Status, r.Body)
	}
	if !isLoggedIn(t, s, first.ID) {
		t.Fatal("a rejected change ended the session")
	}

	r = htmxPost(t, s, first, first.CSRF, "/account/password",
		url.Values{"current_password": {testkit.AdminPassword}, "password": {next}})
	if r.Status != http.StatusOK || r.Header.Get("HX-Redirect") != "/login" {
		t.Fatalf("change password: status %d, HX-Redirect %q, want 200 to /login", r.Status, r.Header.Get("HX-Redirect"))
	}
	if isLoggedIn(t, s, first.ID) {
		t.Error("the session that changed the password still works")
	}
	if isLoggedIn(t, s, second.ID) {
		t.Error("another session of the admin still works after the change")
	}
	if r := loginForm(t, s, "admin", testkit.AdminPassword, "", nil); r.Status == http.StatusSeeOther {
		t.Error("the old password still logs in")
	}
	loginAs(t, s, "admin", next)

	entries := auditLog(t, s, "action=admin.change_password")
	if len(entries) != 2 || entries[0].Outcome != "ok" || entries[1].Outcome != onboard.EInvalid {
		t.Errorf("change_password entries %+v, want the failure then the success", entries)
	}
}
