package handlers_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// response is what a test needs from one HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   string
}

// request describes one HTTP request of a test.
type request struct {
	Method, Path string
	Header       map[string]string
	Body         string
	// Cookie is the session id to send, if any.
	Cookie string
}

// send sends the request without following redirects; an event stream is
// read until it ends or for at most a second.
func send(t *testing.T, base string, r request) response {
	t.Helper()
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequest(r.Method, base+r.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	if r.Cookie != "" {
		req.AddCookie(&http.Cookie{Name: "deployer_session", Value: r.Cookie})
	}

	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer resp.Body.Close()

	var raw []byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw = readBriefly(resp.Body, time.Second)
	} else if raw, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s %s: read body: %v", r.Method, r.Path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(raw)}
}

// readBriefly reads r until it ends or the time is up.
func readBriefly(r io.Reader, within time.Duration) []byte {
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&buf, r)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(within):
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		<-done
	}
	return buf.Bytes()
}

// session is a logged-in admin: the session id and its CSRF token.
type session struct {
	ID, CSRF string
}

// loginAs logs in with the form and returns the new session.
func loginAs(t *testing.T, s *testkit.Server, username, password string) session {
	t.Helper()
	r := send(t, s.URL, request{Method: http.MethodPost, Path: "/login",
		Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		Body:   url.Values{"username": {username}, "password": {password}}.Encode()})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("log in as %s: status %d, want 303: %s", username, r.Status, excerpt(r.Body, "error"))
	}
	id := sessionCookieValue(t, r.Header)
	page := send(t, s.URL, request{Method: http.MethodGet, Path: "/account", Cookie: id})
	m := csrfInPage.FindStringSubmatch(page.Body)
	if page.Status != http.StatusOK || m == nil {
		t.Fatalf("account page after login: status %d, no CSRF token", page.Status)
	}
	return session{ID: id, CSRF: m[1]}
}

var csrfInPage = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// sessionCookieValue returns the session cookie that the response sets.
func sessionCookieValue(t *testing.T, h http.Header) string {
	t.Helper()
	c := sessionCookie(h)
	if c == nil {
		t.Fatalf("no session cookie set; Set-Cookie: %q", h.Values("Set-Cookie"))
	}
	return c.Value
}

// sessionCookie returns the session cookie that the header sets, or nil.
func sessionCookie(h http.Header) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "deployer_session" {
			return c
		}
	}
	return nil
}

// htmxPost sends a form as htmx does for the session, with the given CSRF
// token in the header when it is not empty.
func htmxPost(t *testing.T, s *testkit.Server, sess session, csrf, path string, form url.Values) response {
	t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true"}
	if csrf != "" {
		h["X-CSRF-Token"] = csrf
	}
	return send(t, s.URL, request{Method: http.MethodPost, Path: path, Header: h, Body: form.Encode(), Cookie: sess.ID})
}

// apiJSON sends a JSON body with the API token.
func apiJSON(t *testing.T, s *testkit.Server, method, path, body string) response {
	t.Helper()
	return send(t, s.URL, request{Method: method, Path: path, Body: body, Header: map[string]string{
		"Authorization": "Bearer " + testkit.Token, "Content-Type": "application/json",
	}})
}

// auditEntry is one entry of GET /api/audit.
type auditEntry struct {
	Actor, Action, Tester, Outcome, Detail string
	NodeID                                 string `json:"node_id"`
}

// auditLog returns the audit entries matching the query, newest first.
func auditLog(t *testing.T, s *testkit.Server, query string) []auditEntry {
	t.Helper()
	var out struct{ Entries []auditEntry }
	if status := s.API(t, http.MethodGet, "/api/audit?limit=1000&"+query, nil, &out); status != http.StatusOK {
		t.Fatalf("audit log: status %d", status)
	}
	return out.Entries
}

// errorJSON decodes an API error body.
func errorJSON(t *testing.T, body string) (code, field, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Field, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", excerpt(body, ""), err)
	}
	return e.Error.Code, e.Error.Field, e.Error.Message
}

// tag is one start tag of an HTML document with its attributes, values
// unescaped as a browser reads them.
type tag struct {
	Name  string
	Attrs map[string]string
	// Depth counts the elements open around the tag.
	Depth int
}

var (
	startTag  = regexp.MustCompile(`(?s)<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?)*)\s*(/?)>`)
	attribute = regexp.MustCompile(`(?s)([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?`)
)

// voidElements never have an end tag.
var voidElements = map[string]bool{"input": true, "br": true, "meta": true, "link": true, "img": true, "hr": true}

// scanTags returns the start tags of an HTML document or fragment. It
// suits the deployer's own markup, where html/template escapes quotes in
// attribute values, not HTML in general.
func scanTags(doc string) []tag {
	var tags []tag
	depth := 0
	for _, m := range startTag.FindAllStringSubmatch(doc, -1) {
		name := strings.ToLower(m[2])
		if m[1] == "/" {
			depth--
			continue
		}
		t := tag{Name: name, Attrs: map[string]string{}, Depth: depth}
		for _, a := range attribute.FindAllStringSubmatch(m[3], -1) {
			t.Attrs[strings.ToLower(a[1])] = htmlUnescape(a[2] + a[3] + a[4])
		}
		tags = append(tags, t)
		if !voidElements[name] && m[4] != "/" {
			depth++
		}
	}
	return tags
}

// htmlUnescape decodes the character references html/template writes.
func htmlUnescape(s string) string {
	return strings.NewReplacer("&#34;", `"`, "&#39;", "'", "&quot;", `"`, "&lt;", "<", "&gt;", ">",
		"&#43;", "+", "&amp;", "&").Replace(s)
}
