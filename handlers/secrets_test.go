package handlers_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

var secretInPanel = regexp.MustCompile(`<code class="secret">([^<]+)</code>`)

// checkNoSecretInFiles fails for every database file that contains one of
// the secrets. While the database is open, its WAL must be among them.
func checkNoSecretInFiles(t *testing.T, dbPath string, secrets map[string]string, open bool) {
	t.Helper()
	files, _ := filepath.Glob(dbPath + "*")
	if open && !slices.Contains(files, dbPath+"-wal") {
		t.Fatalf("found database files %v, want the database and its WAL", files)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for name, secret := range secrets {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s contains the %s", filepath.Base(f), name)
			}
		}
	}
}

func TestOneTimePasswordShownOnceAndNeverStored(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "deployer.db")
	s := testkit.StartServer(t, testkit.Options{DBPath: dbPath, Delay: 5 * time.Millisecond})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	secrets := map[string]string{}

	// The page's start, the API's start and create-or-register, and both
	// resets each show a new password once, in a response that is not
	// stored.
	start := htmxPost(t, s, sess, sess.CSRF, "/onboardings",
		url.Values{"username": {"pagetester"}, "full_name": {"Page Tester"}, "email": {"page@example.org"}})
	m := secretInPanel.FindStringSubmatch(start.Body)
	if start.Status != http.StatusOK || m == nil {
		t.Fatalf("page start: status %d, no one-time password in the panel", start.Status)
	}
	secrets["page start password"] = m[1]
	checkNoStore(t, "page start", start)
	id := regexp.MustCompile(`id="ob-([0-9a-f-]{36})"`).FindStringSubmatch(start.Body)[1]

	api := apiJSON(t, s, http.MethodPost, "/api/onboardings",
		`{"username":"apitester","full_name":"Api Tester","email":"api@example.org","node_id":1}`)
	secrets["API start password"] = jsonString(t, api.Body, "one_time_password")
	checkNoStore(t, "API start", api)

	created := apiJSON(t, s, http.MethodPost, "/api/testers", `{"username":"plain","full_name":"Plain P","email":"p@example.org"}`)
	secrets["create password"] = jsonString(t, created.Body, "one_time_password")
	checkNoStore(t, "API create", created)

	s.WaitFinished(t, id, 10*time.Second)
	reset := htmxPost(t, s, sess, sess.CSRF, "/testers/pagetester/reset-password", nil)
	m = secretInPanel.FindStringSubmatch(reset.Body)
	if reset.Status != http.StatusOK || m == nil {
		t.Fatalf("page reset: status %d, no password shown", reset.Status)
	}
	if m[1] == secrets["page start password"] {
		t.Error("Reset password showed the same password again")
	}
	secrets["page reset password"] = m[1]
	checkNoStore(t, "page reset", reset)
	apiReset := apiJSON(t, s, http.MethodPost, "/api/testers/plain/reset-password", "")
	secrets["API reset password"] = jsonString(t, apiReset.Body, "one_time_password")
	checkNoStore(t, "API reset", apiReset)
	for name, secret := range secrets {
		if len(secret) < 16 {
			t.Fatalf("%s %q is too short to search for", name, secret)
		}
	}

	// Nothing shows a password again: pages, fragments, JSON and every
	// replayed event.
	var apiOnboarding testkit.OnboardingJSON
	if err := jsonUnmarshal(api.Body, &apiOnboarding); err != nil {
		t.Fatal(err)
	}
	s.WaitFinished(t, apiOnboarding.ID, 10*time.Second)
	later := renderingsOf(t, s, sess, "pagetester", id)
	for _, path := range []string{"/api/testers", "/api/testers/pagetester", "/api/onboardings/" + id, "/api/audit",
		"/api/outbox", "/api/onboardings/" + id + "/events", "/api/onboardings/" + apiOnboarding.ID + "/events?after=0"} {
		r := send(t, s.URL, request{Method: http.MethodGet, Path: path, Header: map[string]string{"Authorization": "Bearer " + testkit.Token}})
		later[path] = r.Body
	}
	replay := send(t, s.URL, request{Method: http.MethodGet, Path: "/onboardings/" + apiOnboarding.ID + "/events",
		Cookie: sess.ID, Header: map[string]string{"Last-Event-ID": "0"}})
	later["page stream replay"] = replay.Body
	for where, body := range later {
		for name, secret := range secrets {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows the %s again", where, name)
			}
		}
	}

	logs := s.Logs.String()
	if !strings.Contains(logs, "pagetester") {
		t.Fatal("the log does not mention the tester; the search below would prove nothing")
	}
	for name, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
	if !filesContain(t, dbPath, "page@example.org") {
		t.Fatal("the database files do not contain the tester's email; the search below would prove nothing")
	}
	checkNoSecretInFiles(t, dbPath, secrets, true)
	s.Close(t)
	checkNoSecretInFiles(t, dbPath, secrets, false)
}

// filesContain reports whether one of the database files contains s.
func filesContain(t *testing.T, dbPath, s string) bool {
	t.Helper()
	files, _ := filepath.Glob(dbPath + "*")
	for _, f := range files {
		if raw, err := os.ReadFile(f); err == nil && bytes.Contains(raw, []byte(s)) {
			return true
		}
	}
	return false
}

func TestAdminSecretsNeverLoggedOrStored(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "deployer.db")
	s := testkit.StartServer(t, testkit.Options{DBPath: dbPath})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	htmxPost(t, s, sess, sess.CSRF, "/account/admins", url.Values{"username": {"ops"}, "password": {"ops-secret-password"}})
	s.API(t, http.MethodGet, "/api/testers", nil, nil)
	wrong := loginForm(t, s, "admin", "a-wrong-secret-guess", "", nil)
	if strings.Contains(wrong.Body, "a-wrong-secret-guess") {
		t.Error("the login page shows the password that was sent")
	}

	secrets := map[string]string{
		"admin password": testkit.AdminPassword, "added admin's password": "ops-secret-password",
		"wrong password": "a-wrong-secret-guess", "API token": testkit.Token, "session id": sess.ID,
		"CSRF token": sess.CSRF,
	}
	logs := s.Logs.String()
	for name, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
	delete(secrets, "CSRF token") // derived from the session id, never stored
	checkNoSecretInFiles(t, dbPath, secrets, true)
	s.Close(t)
	checkNoSecretInFiles(t, dbPath, secrets, false)
}

func checkNoStore(t *testing.T, label string, r response) {
	t.Helper()
	if got := r.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control %q on a response with a one-time password, want no-store", label, got)
	}
}

func jsonString(t *testing.T, body, key string) string {
	t.Helper()
	var m map[string]any
	if err := jsonUnmarshal(body, &m); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	v, _ := m[key].(string)
	if v == "" {
		t.Fatalf("body %q has no %s", body, key)
	}
	return v
}

func jsonUnmarshal(body string, v any) error { return json.Unmarshal([]byte(body), v) }
