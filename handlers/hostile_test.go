package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// hostileNames are full names an admin may enter that must show as text.
var hostileNames = []struct{ name, value string }{
	{"script element", `<script>alert(1)</script>`},
	{"attribute breakout", `"><img src=x onerror=alert(1)>`},
	{"single quotes", `' onmouseover='alert(1)' x='`},
	{"template and comment syntax", `{{.CSRF}} ${7*7} <!-- --> ]]> &amp;`},
	{"full-width brackets", `＜script＞alert(1)＜/script＞`},
	{"look-alike letters", `Аdmin Тester`},
	{"apostrophe and ampersand", `Zoë O'Brien & Co`},
	{"longest allowed", strings.Repeat("é", 100)},
}

// hostileEmails are valid addresses with characters that need escaping.
var hostileEmails = []struct{ name, value string }{
	{"apostrophe and plus", `o'brien+test@example.org`},
	{"look-alike letter", `аlice@example.org`},
}

// escapedText returns s as html/template writes it in element text.
func escapedText(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := template.Must(template.New("").Parse(`{{.}}`)).Execute(&buf, s); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// dangerousParts returns the pieces of a hostile value that can only be on
// a page when the value was not escaped: the value itself when it has a
// character that needs escaping, and the markup it carries.
func dangerousParts(value string) []string {
	var parts []string
	if strings.ContainsAny(value, `<>"'&`) {
		parts = append(parts, value)
	}
	for _, p := range []string{"<script>alert", "<img", "' onmouseover='", "<!-- -->"} {
		if strings.Contains(value, p) {
			parts = append(parts, p)
		}
	}
	return parts
}

// renderingsOf fetches every page, fragment and stream that shows the
// tester, by name.
func renderingsOf(t *testing.T, s *testkit.Server, sess session, username, onboardingID string) map[string]string {
	t.Helper()
	get := func(path string, htmx bool) string {
		h := map[string]string{}
		if htmx {
			h["HX-Request"] = "true"
		}
		r := send(t, s.URL, request{Method: http.MethodGet, Path: path, Cookie: sess.ID, Header: h})
		if r.Status != http.StatusOK {
			t.Errorf("GET %s: status %d", path, r.Status)
		}
		return r.Body
	}
	pages := map[string]string{
		"testers page":     get("/", false),
		"testers table":    get("/", true),
		"tester page":      get("/testers/"+username, false),
		"tester detail":    get("/testers/"+username, true),
		"onboarding page":  get("/onboardings/"+onboardingID, false),
		"onboardings page": get("/onboardings", false),
		"audit page":       get("/audit?tester="+username, false),
		"outbox page":      get("/outbox", false),
		"account page":     get("/account", false),
	}
	var data []string
	r := testkit.NewSSEReader(strings.NewReader(get("/onboardings/"+onboardingID+"/events", false)))
	for {
		e, err := r.Next()
		if err != nil {
			break
		}
		data = append(data, e.Data)
	}
	pages["stream fragments"] = strings.Join(data, "\n")
	return pages
}

func TestHostileValuesRenderAsText(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Slots: 100})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)

	type accepted struct{ username, field, value string }
	var cases []accepted
	for i, c := range hostileNames {
		cases = append(cases, accepted{fmt.Sprintf("name%d", i), "full_name", c.value})
	}
	for i, c := range hostileEmails {
		cases = append(cases, accepted{fmt.Sprintf("mail%d", i), "email", c.value})
	}

	for _, c := range cases {
		t.Run(c.username, func(t *testing.T) {
			form := url.Values{"username": {c.username}, "full_name": {"Plain Name"}, "email": {c.username + "@example.org"}}
			form.Set(c.field, c.value)
			start := htmxPost(t, s, sess, sess.CSRF, "/onboardings", form)
			if start.Status != http.StatusOK {
				t.Fatalf("start: status %d: %s", start.Status, start.Body)
			}
			id := regexp.MustCompile(`id="ob-([0-9a-f-]{36})"`).FindStringSubmatch(start.Body)
			if id == nil {
				t.Fatalf("no panel in the start response")
			}
			if o := s.WaitFinished(t, id[1], 10*time.Second); o.Status != "succeeded" {
				t.Fatalf("onboarding %s, want succeeded", o.Status)
			}

			pages := renderingsOf(t, s, sess, c.username, id[1])
			pages["start response"] = start.Body
			for page, body := range pages {
				for _, part := range dangerousParts(c.value) {
					if strings.Contains(body, part) {
						t.Errorf("%s contains %q unescaped", page, part)
					}
				}
			}
			want := escapedText(t, c.value)
			for _, page := range []string{"testers page", "testers table", "tester page", "tester detail", "outbox page"} {
				if !strings.Contains(pages[page], want) {
					t.Errorf("%s does not show the %s as text %q", page, c.field, want)
				}
			}

			var tester map[string]any
			s.API(t, http.MethodGet, "/api/testers/"+c.username, nil, &tester)
			if tester[c.field] != c.value {
				t.Errorf("API returns %s %q, want %q unchanged", c.field, tester[c.field], c.value)
			}
		})
	}
}

func TestHostileValuesRejectedAndNotStored(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	cases := []struct {
		name, field, value string
	}{
		{"markup username", "username", "<script>"},
		{"quote in username", "username", `alice"`},
		{"look-alike username", "username", "аlice"},
		{"line break in username", "username", "alice\nbob"},
		{"null byte in username", "username", "al\x00ice"},
		{"long username", "username", strings.Repeat("a", 33)},
		{"username ends with hyphen", "username", "alice-"},
		{"CR LF in full name", "full_name", "Alice\r\nBcc: x"},
		{"null byte in full name", "full_name", "Al\x00ice"},
		{"tab in full name", "full_name", "Al\tice"},
		{"right-to-left override in full name", "full_name", "Alice \u202Egnp.exe"},
		{"line separator in full name", "full_name", "Alice\u2028Bob"},
		{"long full name", "full_name", strings.Repeat("x", 201)},
		{"header injection in email", "email", "a@example.org\r\nBcc: x@example.org"},
		{"markup in email", "email", "<a@example.org>"},
		{"display name in email", "email", `"Alice" <a@example.org>`},
		{"email without a dot", "email", "a@localhost"},
		{"null byte in email", "email", "a\x00b@example.org"},
		{"override in email", "email", "a\u202Eb@example.org"},
		{"long email", "email", strings.Repeat("a", 250) + "@example.org"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]string{"username": "victim", "full_name": "Victim V", "email": "victim@example.org"}
			body[tc.field] = tc.value
			raw, _ := json.Marshal(body)
			r := apiJSON(t, s, http.MethodPost, "/api/testers", string(raw))
			if r.Status != http.StatusBadRequest {
				t.Fatalf("API: status %d, want 400", r.Status)
			}
			if _, field, msg := errorJSON(t, r.Body); field != tc.field || msg == "" {
				t.Errorf("API: field %q, message %q, want a message on %s", field, msg, tc.field)
			}

			form := url.Values{}
			for k, v := range body {
				form.Set(k, v)
			}
			page := htmxPost(t, s, sess, sess.CSRF, "/onboardings", form)
			if page.Status != http.StatusBadRequest {
				t.Errorf("page: status %d, want 400", page.Status)
			}
			if label := strings.ReplaceAll(tc.field, "_", " "); !strings.Contains(page.Body, "("+label+")") {
				t.Errorf("page: error %q does not name the %s", page.Body, label)
			}
			for _, part := range []string{"<script>", "<a@", "\r\n", "\x00"} {
				if strings.Contains(page.Body, part) {
					t.Errorf("page: error echoes %q unescaped", part)
				}
			}
		})
	}
	if n := testerCount(t, s); n != 0 {
		t.Errorf("%d testers stored after rejected input, want 0", n)
	}
	var list struct{ Onboardings []any }
	s.API(t, http.MethodGet, "/api/onboardings", nil, &list)
	if len(list.Onboardings) != 0 {
		t.Errorf("%d onboardings stored after rejected input, want 0", len(list.Onboardings))
	}
}
