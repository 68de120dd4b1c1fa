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

func TestChunkedBodyOverLimitMatchesSized(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	body := `{"username":"bob","full_name":"` + strings.Repeat("x", 70<<10) + `"}`
	cases := []struct {
		name, path string
		header     map[string]string
		wantType   string
	}{
		{"API", "/api/testers", map[string]string{
			"Authorization": "Bearer " + testkit.Token, "Content-Type": "application/json",
		}, "application/json"},
		{"htmx", "/sim/faults", map[string]string{
			"HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded",
		}, "text/html"},
		{"page", "/testers/bob/provision", map[string]string{
			"Content-Type": "application/x-www-form-urlencoded",
		}, "text/html"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sized := sendBody(t, s.URL, tc.path, tc.header, body, false)
			chunked := sendBody(t, s.URL, tc.path, tc.header, body, true)
			if sized.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("sized body: status %d, want 413", sized.Status)
			}
			if chunked.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("chunked body: status %d, want 413", chunked.Status)
			}
			if ct := chunked.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("chunked body: content type %q, want %s", ct, tc.wantType)
			}
			if got, want := chunked.Header.Get("HX-Retarget"), sized.Header.Get("HX-Retarget"); got != want {
				t.Errorf("chunked body: HX-Retarget %q, want %q as for a sized body", got, want)
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
	if n := testerCount(t, s); n != 0 {
		t.Errorf("%d testers stored, want 0", n)
	}
}
