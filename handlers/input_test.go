package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"deployer/internal/testkit"
)

// testerCount returns how many testers the API lists.
func testerCount(t *testing.T, s *testkit.Server) int {
	t.Helper()
	var list struct{ Testers []any }
	if status := s.API(t, http.MethodGet, "/api/testers", nil, &list); status != http.StatusOK {
		t.Fatalf("list testers: status %d", status)
	}
	return len(list.Testers)
}

func TestBodiesThatCannotBeReadAreRejected(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	const valid = `{"username":"bob","full_name":"Bob B","email":"bob@example.org"}`
	cases := []struct {
		name, contentType, body, field, wantText string
	}{
		{"broken JSON", "application/json", `{"username":"bob"`, "", "JSON value ends early"},
		{"garbage", "application/json", `garbage`, "", "invalid character"},
		{"data after the value", "application/json", valid + ` {"x":1}`, "", "data after the JSON value"},
		{"unknown field", "application/json", `{"username":"bob","nickname":"b"}`, "nickname", `Field "nickname" is unknown`},
		{"node on create-or-register", "application/json", `{"username":"bob","node_id":"1"}`, "node_id", `Field "node_id" is unknown`},
		{"unknown field, upper-case type", "APPLICATION/JSON; charset=UTF-8", `{"username":"bob","nickname":"b"}`, "nickname", `Field "nickname" is unknown`},
		{"field in capitals", "application/json", `{"USERNAME":"bob"}`, "USERNAME", `Field "USERNAME" is unknown`},
		{"number for a string", "application/json", `{"username":42}`, "username", "Username must be a JSON string, not number"},
		{"array body", "application/json", `[` + valid + `]`, "", "expected a JSON object, not array"},
		{"string body", "application/json", `"bob"`, "", "expected a JSON object, not string"},
		{"plain text", "text/plain", "username=bob", "", "content type \"text/plain\""},
		{"XML", "application/xml", "<testerForm><Username>bob</Username></testerForm>", "", "content type \"application/xml\""},
		{"no content type", "", valid, "", "send JSON with Content-Type: application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Authorization": "Bearer " + testkit.Token}
			if tc.contentType != "" {
				h["Content-Type"] = tc.contentType
			}
			r := send(t, s.URL, request{Method: http.MethodPost, Path: "/api/testers", Header: h, Body: tc.body})
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", r.Status, r.Body)
			}
			code, field, msg := errorJSON(t, r.Body)
			if code != "invalid" {
				t.Errorf("code %q, want invalid", code)
			}
			if field != tc.field {
				t.Errorf("field %q, want %q", field, tc.field)
			}
			if !strings.Contains(msg, tc.wantText) {
				t.Errorf("message %q does not say %q", msg, tc.wantText)
			}
			if strings.Contains(msg, "handlers.") || strings.Contains(msg, "Go value") {
				t.Errorf("message %q names Go types", msg)
			}
		})
	}
	if n := testerCount(t, s); n != 0 {
		t.Errorf("%d testers stored after rejected bodies, want 0", n)
	}
}

func TestEveryFieldHasALengthLimit(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	if status := s.API(t, http.MethodPost, "/api/testers",
		map[string]any{"username": "bob", "full_name": "Bob B", "email": "bob@example.org"}, nil); status != http.StatusCreated {
		t.Fatalf("create bob: status %d", status)
	}
	tester := map[string]string{"username": "carol", "full_name": "Carol C", "email": "carol@example.org"}
	onboarding := map[string]string{"username": "carol", "full_name": "Carol C", "email": "carol@example.org",
		"node_id": "1", "form_key": "key"}
	cases := []struct {
		path  string
		base  map[string]string
		field string
		limit int
	}{
		{"/api/testers", tester, "username", 64},
		{"/api/testers", tester, "full_name", 200},
		{"/api/testers", tester, "email", 254},
		{"/api/onboardings", onboarding, "username", 64},
		{"/api/onboardings", onboarding, "full_name", 200},
		{"/api/onboardings", onboarding, "email", 254},
		{"/api/onboardings", onboarding, "node_id", 20},
		{"/api/onboardings", onboarding, "form_key", 64},
		{"/api/testers/bob/provision", map[string]string{"node_id": "1"}, "node_id", 20},
		{"/api/orphans/cleanup", map[string]string{"node_id": "1", "project": "deployer-x"}, "project", 256},
		{"/api/orphans/cleanup", map[string]string{"node_id": "1", "project": "deployer-x"}, "node_id", 20},
		{"/api/sim/node", map[string]string{"node_id": "1"}, "node_id", 20},
		{"/api/sim/faults", map[string]string{"stage": "installing", "mode": "fail"}, "stage", 256},
		{"/api/sim/faults", map[string]string{"stage": "installing", "mode": "fail"}, "mode", 256},
	}
	for _, tc := range cases {
		t.Run(tc.path+" "+tc.field, func(t *testing.T) {
			body := map[string]string{}
			for k, v := range tc.base {
				body[k] = v
			}
			// The length is checked as the body is read, before the rules of
			// each field.
			body[tc.field] = strings.Repeat("7", tc.limit+1)
			raw, _ := json.Marshal(body)
			r := apiJSON(t, s, http.MethodPost, tc.path, string(raw))
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", r.Status, r.Body)
			}
			_, field, msg := errorJSON(t, r.Body)
			if field != tc.field {
				t.Errorf("field %q, want %s", field, tc.field)
			}
			statesLimit := strings.Contains(msg, "too long") && strings.Contains(msg, fmt.Sprintf("at most %d", tc.limit))
			// A node id longer than ten digits breaks the node id rule first.
			statesNodeRule := tc.field == "node_id" && strings.Contains(msg, "from 1 to 4294967295")
			if !statesLimit && !statesNodeRule {
				t.Errorf("message %q does not state the limit of %d", msg, tc.limit)
			}
		})
	}

	// The page forms have the same limits.
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	forms := []struct {
		path  string
		form  url.Values
		label string
	}{
		{"/onboardings", url.Values{"username": {"dave"}, "full_name": {strings.Repeat("x", 201)}, "email": {"d@example.org"}}, "Full name is too long"},
		{"/account/admins", url.Values{"username": {strings.Repeat("a", 65)}, "password": {"a long enough password"}}, "Username is too long"},
		{"/account/password", url.Values{"current_password": {strings.Repeat("a", 73)}, "password": {"a long enough password"}}, "Current password is too long"},
		{"/sim/faults", url.Values{"stage": {strings.Repeat("s", 257)}}, "Stage is too long"},
		{"/orphans/cleanup", url.Values{"node_id": {"1"}, "project": {strings.Repeat("p", 257)}}, "Project is too long"},
	}
	for _, tc := range forms {
		r := htmxPost(t, s, sess, sess.CSRF, tc.path, tc.form)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, tc.label) {
			t.Errorf("POST %s: status %d, body %q, want 400 saying %q", tc.path, r.Status, r.Body, tc.label)
		}
	}

	if n := testerCount(t, s); n != 1 {
		t.Errorf("%d testers stored, want only bob", n)
	}
	var faults struct{ Faults []any }
	s.API(t, http.MethodPost, "/api/sim/faults", map[string]any{"stage": "installing", "times": 0}, &faults)
	if len(faults.Faults) != 0 {
		t.Errorf("faults %v stored after rejected input, want none", faults.Faults)
	}
}

func TestBodyOverTheLimitIsRejected(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	body := `{"username":"bob","full_name":"` + strings.Repeat("x", 70<<10) + `","email":"bob@example.org"}`
	r := apiJSON(t, s, http.MethodPost, "/api/testers", body)
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", r.Status)
	}
	if code, _, msg := errorJSON(t, r.Body); code != "invalid" || !strings.Contains(msg, "at most 64 KiB") {
		t.Errorf("error %q %q, want invalid saying the limit", code, msg)
	}
	checkSecurityHeaders(t, "body over the limit", r.Header)
	if n := testerCount(t, s); n != 0 {
		t.Errorf("%d testers stored, want 0", n)
	}
}

func TestOversizedRequestHeadGetsJSONError(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	for _, path := range []string{"/api/testers/" + strings.Repeat("a", 5000), "/testers/" + strings.Repeat("a", 5000)} {
		r := send(t, s.URL, request{Method: http.MethodGet, Path: path})
		if r.Status != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%.20s…: status %d, want 431", path, r.Status)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%.20s…: content type %q, want JSON", path, ct)
		}
		if code, _, msg := errorJSON(t, r.Body); code != "invalid" || !strings.Contains(msg, "over 4 KiB") {
			t.Errorf("%.20s…: error %q %q, want invalid saying the limit", path, code, msg)
		}
		checkSecurityHeaders(t, "oversized request head", r.Header)
	}
}

func TestQueryAndPathValuesAreChecked(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	o, _ := s.Start(t, "alice")
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	const markup = `<script>alert(1)</script>`

	for _, node := range []string{"0001", "0", "4294967296", "-1", "1.5", url.PathEscape(markup)} {
		r := apiJSON(t, s, http.MethodGet, "/api/nodes/"+node+"/capacity", "")
		if r.Status != http.StatusBadRequest {
			t.Errorf("capacity of node %q: status %d, want 400", node, r.Status)
			continue
		}
		if _, field, _ := errorJSON(t, r.Body); field != "node_id" {
			t.Errorf("capacity of node %q: field %q, want node_id", node, field)
		}
		if strings.Contains(r.Body, "<script>") {
			t.Errorf("capacity of node %q: response contains raw markup", node)
		}
	}

	page := func(path string) response {
		return send(t, s.URL, request{Method: http.MethodGet, Path: path, Cookie: sess.ID,
			Header: map[string]string{"HX-Request": "true"}})
	}
	r := page("/capacity?node_id=" + url.QueryEscape(markup))
	if r.Status != http.StatusOK || strings.Contains(r.Body, markup) {
		t.Errorf("readout for a node of markup: status %d, raw markup %v", r.Status, strings.Contains(r.Body, markup))
	}
	if !strings.Contains(r.Body, `hx-get="/capacity?node_id=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"`) {
		t.Errorf("readout does not poll with the node id URL-encoded: %s", excerpt(r.Body, "hx-get"))
	}

	r = page("/onboardings/" + o.ID + "/log?stage=" + url.QueryEscape(markup))
	if r.Status != http.StatusBadRequest || strings.Contains(r.Body, markup) {
		t.Errorf("stage log of a stage of markup: status %d, body %s", r.Status, r.Body)
	}
	r = send(t, s.URL, request{Method: http.MethodGet, Path: "/testers/" + url.PathEscape(markup), Cookie: sess.ID})
	if r.Status != http.StatusNotFound || strings.Contains(r.Body, markup) {
		t.Errorf("tester page of markup: status %d, raw markup %v", r.Status, strings.Contains(r.Body, markup))
	}
	r = send(t, s.URL, request{Method: http.MethodGet, Path: "/audit?actor=" + strings.Repeat("a", 3000), Cookie: sess.ID})
	if r.Status != http.StatusOK || strings.Contains(r.Body, strings.Repeat("a", 65)) {
		t.Errorf("audit with a 3000-byte filter: status %d, filter shown unclipped %v",
			r.Status, strings.Contains(r.Body, strings.Repeat("a", 65)))
	}
	for _, after := range []string{"abc", "-5", "99999999999999999999"} {
		stream := send(t, s.URL, request{Method: http.MethodGet, Path: "/api/onboardings/" + o.ID + "/events?after=" + after,
			Header: map[string]string{"Authorization": "Bearer " + testkit.Token}})
		if stream.Status != http.StatusOK || !strings.Contains(stream.Body, "event: ") {
			t.Errorf("stream after=%s: status %d, body %q, want the events", after, stream.Status, stream.Body)
		}
	}
}
