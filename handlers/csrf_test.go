package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// pendingFaults returns how many faults the simulated grid has pending.
func pendingFaults(t *testing.T, s *testkit.Server) int {
	t.Helper()
	faults, err := s.Sim.Faults(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(faults)
}

func TestCSRFTokenMissingForeignAndValid(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	mine := loginAs(t, s, "admin", testkit.AdminPassword)
	other := loginAs(t, s, "admin", testkit.AdminPassword)
	if mine.CSRF == other.CSRF {
		t.Fatal("two sessions have the same CSRF token")
	}
	fault := url.Values{"stage": {"installing"}, "times": {"1"}}

	cases := []struct {
		name, token, wantText string
	}{
		{"missing", "", "no security token"},
		{"another session's", other.CSRF, "out of date"},
		{"made up", strings.Repeat("A", len(mine.CSRF)), "out of date"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" in htmx", func(t *testing.T) {
			r := htmxPost(t, s, mine, tc.token, "/sim/faults", fault)
			if r.Status != http.StatusForbidden {
				t.Errorf("status %d, want 403", r.Status)
			}
			if !strings.Contains(r.Body, tc.wantText) || !strings.Contains(r.Body, "Reload the page") {
				t.Errorf("body %q, want it to say %q and to reload the page", r.Body, tc.wantText)
			}
			if got := r.Header.Get("HX-Retarget"); got != "#flash" {
				t.Errorf("HX-Retarget %q, want #flash", got)
			}
		})
		t.Run(tc.name+" in a form", func(t *testing.T) {
			form := url.Values{"stage": {"installing"}, "_csrf": {tc.token}}
			r := send(t, s.URL, request{Method: http.MethodPost, Path: "/sim/faults", Cookie: mine.ID, Body: form.Encode(),
				Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
			if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "Reload the page") {
				t.Errorf("status %d, want 403 with a page that says to reload", r.Status)
			}
		})
		t.Run(tc.name+" on the API with the session", func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			if tc.token != "" {
				h["X-CSRF-Token"] = tc.token
			}
			r := send(t, s.URL, request{Method: http.MethodPost, Path: "/api/sim/faults", Cookie: mine.ID, Header: h,
				Body: `{"stage":"installing","times":1}`})
			if r.Status != http.StatusForbidden {
				t.Errorf("status %d, want 403", r.Status)
			}
			if code, _, _ := errorJSON(t, r.Body); code != "forbidden" {
				t.Errorf("code %q, want forbidden", code)
			}
		})
	}
	if n := pendingFaults(t, s); n != 0 {
		t.Fatalf("%d faults stored by requests without a valid token, want 0", n)
	}

	if r := htmxPost(t, s, mine, mine.CSRF, "/sim/faults", fault); r.Status != http.StatusOK {
		t.Errorf("valid token in the header: status %d, want 200", r.Status)
	}
	form := url.Values{"stage": {"installing"}, "_csrf": {mine.CSRF}}
	r := send(t, s.URL, request{Method: http.MethodPost, Path: "/sim/faults", Cookie: mine.ID, Body: form.Encode(),
		Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	if r.Status != http.StatusOK {
		t.Errorf("valid token in the form: status %d, want 200", r.Status)
	}
	r = send(t, s.URL, request{Method: http.MethodPost, Path: "/api/sim/faults", Cookie: mine.ID,
		Header: map[string]string{"Content-Type": "application/json", "X-CSRF-Token": mine.CSRF},
		Body:   `{"stage":"provisioning","times":1}`})
	if r.Status != http.StatusOK {
		t.Errorf("valid token on the API: status %d, want 200", r.Status)
	}
	if n := pendingFaults(t, s); n != 2 {
		t.Errorf("%d faults pending after valid requests, want 2 (installing and provisioning)", n)
	}
	if r := send(t, s.URL, request{Method: http.MethodGet, Path: "/api/testers", Cookie: mine.ID}); r.Status != http.StatusOK {
		t.Errorf("GET on the API with the session and no token: status %d, want 200", r.Status)
	}
}

func TestStaleTokenAfterNewLoginSaysReload(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	old := loginAs(t, s, "admin", testkit.AdminPassword)
	// Another tab logs in again in the same browser, which replaces the
	// session, while this tab still has the old page and token.
	r := loginForm(t, s, "admin", testkit.AdminPassword, old.ID, nil)
	current := session{ID: sessionCookieValue(t, r.Header), CSRF: old.CSRF}

	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true",
		"X-CSRF-Token": old.CSRF, "X-Error-Target": "#start-errors"}
	form := url.Values{"username": {"newbie"}, "full_name": {"New Bie"}, "email": {"newbie@example.org"}}
	r = send(t, s.URL, request{Method: http.MethodPost, Path: "/onboardings", Cookie: current.ID, Header: h, Body: form.Encode()})
	if r.Status != http.StatusForbidden {
		t.Fatalf("stale token: status %d, want 403", r.Status)
	}
	if got := r.Header.Get("HX-Retarget"); got != "#start-errors" {
		t.Errorf("HX-Retarget %q, want the form's error element #start-errors", got)
	}
	if got := r.Header.Get("HX-Reswap"); got != "innerHTML" {
		t.Errorf("HX-Reswap %q, want innerHTML", got)
	}
	if !strings.Contains(r.Body, `role="alert"`) || !strings.Contains(r.Body, "Reload the page and try again.") {
		t.Errorf("body %q, want a visible alert that says to reload the page", r.Body)
	}
	if n := testerCount(t, s); n != 0 {
		t.Errorf("%d testers stored by a request with a stale token, want 0", n)
	}

	// A target that is not a plain id selector falls back to the flash area.
	h["X-Error-Target"] = "body script"
	r = send(t, s.URL, request{Method: http.MethodPost, Path: "/onboardings", Cookie: current.ID, Header: h, Body: form.Encode()})
	if got := r.Header.Get("HX-Retarget"); got != "#flash" {
		t.Errorf("HX-Retarget %q for an unusable target, want #flash", got)
	}
}

// postingAttrs are the htmx attributes that send state-changing requests.
var postingAttrs = []string{"hx-post", "hx-put", "hx-patch", "hx-delete"}

var postForm = regexp.MustCompile(`(?is)<form\b[^>]*\bmethod="post"[^>]*>.*?</form>`)

// checkCSRFCoverage checks that every state-changing control in an HTML
// document or fragment sends the session's CSRF token: htmx controls
// through the body's hx-headers, which no element overrides or unsets,
// and plain forms through a _csrf field.
func checkCSRFCoverage(t *testing.T, label, doc, token string, fullPage bool) {
	t.Helper()
	tags := scanTags(doc)
	if fullPage {
		var body *tag
		for i := range tags {
			if tags[i].Name == "body" {
				body = &tags[i]
			}
		}
		if body == nil {
			t.Fatalf("%s: no body element", label)
		}
		var headers map[string]string
		if err := json.Unmarshal([]byte(body.Attrs["hx-headers"]), &headers); err != nil {
			t.Fatalf("%s: body hx-headers %q is not JSON: %v", label, body.Attrs["hx-headers"], err)
		}
		if headers["X-CSRF-Token"] != token {
			t.Errorf("%s: body sends X-CSRF-Token %q, want the session's token", label, headers["X-CSRF-Token"])
		}
	}

	posting := 0
	for _, tg := range tags {
		if tg.Name == "body" {
			continue
		}
		if raw, ok := tg.Attrs["hx-headers"]; ok {
			var headers map[string]string
			if err := json.Unmarshal([]byte(raw), &headers); err != nil {
				t.Errorf("%s: <%s hx-headers=%q> is not a JSON object of strings: %v", label, tg.Name, raw, err)
			}
			if _, ok := headers["X-CSRF-Token"]; ok {
				t.Errorf("%s: <%s> overrides the CSRF header", label, tg.Name)
			}
		}
		for _, name := range postingAttrs {
			if _, ok := tg.Attrs[name]; ok {
				posting++
			}
		}
	}
	for _, form := range postForm.FindAllString(doc, -1) {
		if strings.Contains(form[:strings.Index(form, ">")], "hx-post") {
			continue
		}
		if !strings.Contains(form, `name="_csrf" value="`+token+`"`) {
			t.Errorf("%s: a plain POST form lacks the _csrf field: %s", label, excerpt(form, "<form"))
		}
	}
	t.Logf("%s: %d htmx controls that post", label, posting)
}

func TestStateChangingControlsCarryCSRFToken(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: time.Hour, FixedDelay: true})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)

	start := htmxPost(t, s, sess, sess.CSRF, "/onboardings",
		url.Values{"username": {"dana"}, "full_name": {"Dana D"}, "email": {"dana@example.org"}})
	if start.Status != http.StatusOK {
		t.Fatalf("start: status %d: %s", start.Status, start.Body)
	}
	checkCSRFCoverage(t, "start response", start.Body, sess.CSRF, false)
	id := regexp.MustCompile(`id="ob-([0-9a-f-]{36})"`).FindStringSubmatch(start.Body)
	if id == nil {
		t.Fatal("no panel id in the start response")
	}
	if !strings.Contains(start.Body, `hx-post="/onboardings/`+id[1]+`/cancel"`) {
		t.Fatal("the running panel has no Cancel button")
	}

	// The same controls arrive over the event stream, where they swap into
	// the page below its body and so inherit its hx-headers.
	stream := send(t, s.URL, request{Method: http.MethodGet, Path: "/onboardings/" + id[1] + "/events", Cookie: sess.ID})
	if !strings.Contains(stream.Body, "/cancel") {
		t.Fatalf("the stream's snapshot has no Cancel button: %q", stream.Body)
	}
	var fragments []string
	r := testkit.NewSSEReader(strings.NewReader(stream.Body))
	for {
		e, err := r.Next()
		if err != nil {
			break
		}
		fragments = append(fragments, e.Data)
	}
	checkCSRFCoverage(t, "stream snapshot", strings.Join(fragments, "\n"), sess.CSRF, false)

	for _, path := range []string{"/", "/testers/dana", "/onboardings/" + id[1], "/onboardings", "/orphans",
		"/outbox", "/audit", "/account"} {
		page := send(t, s.URL, request{Method: http.MethodGet, Path: path, Cookie: sess.ID})
		if page.Status != http.StatusOK {
			t.Errorf("GET %s: status %d", path, page.Status)
			continue
		}
		checkCSRFCoverage(t, path, page.Body, sess.CSRF, true)
	}
}
