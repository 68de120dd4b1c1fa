package handlers_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// sendBody posts body to path with the header and returns the response.
// A chunked body goes without a Content-Length, in Transfer-Encoding:
// chunked.
func sendBody(t *testing.T, base, path string, header map[string]string, body string, chunked bool) response {
	t.Helper()
	var reader io.Reader = strings.NewReader(body)
	if chunked {
		// Hiding the length makes the client send the body in chunks.
		reader = io.MultiReader(reader)
	}
	req, err := http.NewRequest(http.MethodPost, base+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if chunked && req.ContentLength != 0 {
		t.Fatalf("POST %s: the request has a Content-Length of %d, want none", path, req.ContentLength)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(raw)}
}

// A chunked body over the limit gets the same JSON error as a sized one on
// /api/. fasthttp clears such a request before the handler runs, so pages
// get that JSON too. Browsers send forms with a Content-Length, so a chunked
// body comes from a script.
func TestChunkedBodyOverLimitGetsJSON(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	body := `{"username":"bob","full_name":"` + strings.Repeat("x", 70<<10) + `"}`
	api := map[string]string{"Authorization": "Bearer " + testkit.Token, "Content-Type": "application/json"}
	sized := sendBody(t, s.URL, "/api/testers", api, body, false)
	if sized.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("sized body: status %d, want 413", sized.Status)
	}
	cases := []struct {
		name, path string
		header     map[string]string
	}{
		{"API", "/api/testers", api},
		{"htmx", "/sim/faults", map[string]string{
			"HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded",
		}},
		{"page", "/testers/bob/provision", map[string]string{
			"Content-Type": "application/x-www-form-urlencoded",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chunked := sendBody(t, s.URL, tc.path, tc.header, body, true)
			if chunked.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("chunked body: status %d, want 413", chunked.Status)
			}
			if ct := chunked.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("chunked body: content type %q, want application/json", ct)
			}
			if chunked.Body != sized.Body {
				t.Errorf("chunked body: response %q, want the sized body's %q", excerpt(chunked.Body, ""), excerpt(sized.Body, ""))
			}
			if !strings.Contains(chunked.Body, "at most 64 KiB") {
				t.Errorf("chunked body: response %q does not say the limit", excerpt(chunked.Body, ""))
			}
			checkSecurityHeaders(t, "chunked body over the limit", chunked.Header)
		})
	}
	// A sized body over the limit on a page still gets the HTML response.
	htmx := map[string]string{"HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded"}
	page := sendBody(t, s.URL, "/sim/faults", htmx, body, false)
	if ct := page.Header.Get("Content-Type"); page.Status != http.StatusRequestEntityTooLarge || !strings.HasPrefix(ct, "text/html") {
		t.Errorf("sized body from htmx: status %d, content type %q, want 413 with an HTML fragment", page.Status, ct)
	}
	if n := testerCount(t, s); n != 0 {
		t.Errorf("%d testers stored, want 0", n)
	}
}
