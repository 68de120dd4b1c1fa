// Package deploy_test checks the deployment examples in this folder against
// the real programs they configure.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// nginxPath is where Debian's nginx package installs the server.
const nginxPath = "/usr/sbin/nginx"

// maxEventDelay is the longest an event may take from being stored to
// reaching the client through nginx.
const maxEventDelay = time.Second

// block returns the top-level block of conf that starts with head, from
// head to its closing brace.
func block(t *testing.T, conf, head string) string {
	t.Helper()
	start := strings.Index(conf, head)
	if start < 0 {
		t.Fatalf("the example has no block %q", head)
	}
	depth := 0
	for i := start; i < len(conf); i++ {
		switch conf[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return conf[start : i+1]
			}
		}
	}
	t.Fatalf("block %q in the example is not closed", head)
	return ""
}

// tlsLines matches the lines of the HTTPS server that a plain HTTP test
// server cannot keep: its listen and ssl_ directives.
var tlsLines = regexp.MustCompile(`(?m)^\s*(listen|ssl_\w+)\s[^\n]*;\n`)

// renderConfig turns the example, changed by edit when edit is not nil,
// into a complete nginx configuration that listens on 127.0.0.1:port and
// proxies to upstream. It keeps the example's upstream block and its HTTPS
// server with every proxy setting and location, serving plain HTTP in place
// of TLS, and leaves out the HTTP redirect.
func renderConfig(t *testing.T, dir string, port int, upstream string, edit func(t *testing.T, conf string) string) string {
	t.Helper()
	example, err := os.ReadFile("nginx-deployer.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(example)
	if edit != nil {
		conf = edit(t, conf)
	}
	upstreamBlock := block(t, conf, "upstream deployer {")
	if !strings.Contains(upstreamBlock, "server 127.0.0.1:8080;") {
		t.Fatalf("the upstream block no longer points at 127.0.0.1:8080:\n%s", upstreamBlock)
	}
	upstreamBlock = strings.Replace(upstreamBlock, "server 127.0.0.1:8080;", "server "+upstream+";", 1)

	start := strings.Index(conf, "listen 443 ssl")
	if start < 0 {
		t.Fatal("the example has no HTTPS server")
	}
	httpsStart := strings.LastIndex(conf[:start], "server {")
	serverBlock := block(t, conf[httpsStart:], "server {")
	serverBlock = tlsLines.ReplaceAllString(serverBlock, "")
	serverBlock = strings.Replace(serverBlock, "server {", fmt.Sprintf("server {\n    listen 127.0.0.1:%d;", port), 1)

	temp := func(name string) string { return filepath.Join(dir, name) }
	return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %s;
error_log stderr notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;
    # Like a host that compresses every text response, which the events
    # location must override.
    gzip on;
    gzip_min_length 1;
    gzip_types text/plain text/event-stream application/json;
%s
%s
}
`, temp("nginx.pid"), temp("client_body"), temp("proxy"), temp("fastcgi"), temp("uwsgi"), temp("scgi"),
		upstreamBlock, serverBlock)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginx runs nginx with the rendered example, changed by edit when
// edit is not nil, in front of the server and returns its base URL. It
// skips the test when nginx is missing, except in CI, where the test fails.
func startNginx(t *testing.T, upstream string, edit func(t *testing.T, conf string) string) string {
	t.Helper()
	if _, err := os.Stat(nginxPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("nginx is missing at %s; .ci/run installs Debian's nginx package", nginxPath)
		}
		t.Skipf("nginx is missing at %s; install Debian's nginx package to run this test", nginxPath)
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(renderConfig(t, dir, port, upstream, edit)), 0o600); err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	cmd := exec.Command(nginxPath, "-p", dir, "-c", conf, "-e", "stderr")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("nginx exited at start: %v\n%s", err, stderr.String())
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			conn.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s within 10s\n%s", addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiRequest sends a request with the API token to target, decodes a JSON
// response into out when out is not nil, and returns the status.
func apiRequest(t *testing.T, method, target string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testkit.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: status %d: %v", method, target, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

// openStream opens an event stream through nginx, asking for gzip as
// browsers do, and checks the headers that keep it a stream.
func openStream(t *testing.T, client *http.Client, target string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	// Set by hand, the header also keeps the transport from decompressing
	// silently, so a compressed stream shows.
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("open stream %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("open stream %s: status %d", target, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("stream content type %q through nginx", ct)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("stream compressed with %q through nginx", ce)
	}
	return resp
}

// withoutProxyBuffering removes the events location's "proxy_buffering
// off", leaving the deployer's X-Accel-Buffering header alone to keep
// nginx from buffering the stream.
func withoutProxyBuffering(t *testing.T, conf string) string {
	t.Helper()
	const line = "        proxy_buffering off;\n"
	if strings.Count(conf, line) != 1 {
		t.Fatalf("the example has %d lines %q, want 1", strings.Count(conf, line), line)
	}
	return strings.Replace(conf, line, "", 1)
}

func TestNginxDeliversEachEventWithinASecond(t *testing.T) {
	t.Run("example", func(t *testing.T) { testNginxDelivery(t, nil) })
	// The example turns buffering off in nginx, and the deployer's header
	// turns it off again. The header alone must keep events flowing, so
	// that a host whose configuration lacks the line still gets each event
	// at once.
	t.Run("header alone", func(t *testing.T) { testNginxDelivery(t, withoutProxyBuffering) })
}

func testNginxDelivery(t *testing.T, edit func(t *testing.T, conf string) string) {
	s := testkit.StartServer(t, testkit.Options{Delay: 300 * time.Millisecond, Heartbeat: time.Second})
	base := startNginx(t, strings.TrimPrefix(s.URL, "http://"), edit)

	var health struct{ Status string }
	if status := apiRequest(t, http.MethodGet, base+"/healthz", nil, &health); status != http.StatusOK {
		t.Fatalf("/healthz through nginx: status %d", status)
	}
	var started struct {
		ID          string `json:"id"`
		LastEventID int64  `json:"last_event_id"`
	}
	status := apiRequest(t, http.MethodPost, base+"/api/onboardings", map[string]any{
		"username": "nadia", "full_name": "Nadia Test", "email": "nadia@example.org", "node_id": "1",
	}, &started)
	if status != http.StatusAccepted {
		t.Fatalf("start through nginx: status %d", status)
	}

	client := &http.Client{Timeout: 60 * time.Second}
	header := http.Header{"Authorization": {"Bearer " + testkit.Token}}
	target := fmt.Sprintf("%s/api/onboardings/%s/events?after=%d", base, started.ID, started.LastEventID)
	opened := time.Now()
	resp := openStream(t, client, target, header)
	defer resp.Body.Close()

	reader := testkit.NewSSEReader(resp.Body)
	delivered := 0
	stages := map[string]bool{}
	for {
		e, err := reader.Next()
		if err != nil {
			t.Fatalf("stream ended before its closing event, after %d events: %v", delivered, err)
		}
		arrived := time.Now()
		if e.Name == "done" {
			break
		}
		var data struct{ Stage, Status, TS string }
		if err := json.Unmarshal([]byte(e.Data), &data); err != nil {
			t.Fatalf("event %d data %q: %v", e.ID, e.Data, err)
		}
		stored, err := time.Parse(time.RFC3339Nano, data.TS)
		if err != nil {
			t.Fatalf("event %d ts %q: %v", e.ID, data.TS, err)
		}
		// An event stored before the stream opened cannot arrive earlier.
		if delay := arrived.Sub(later(stored, opened)); delay > maxEventDelay {
			t.Errorf("event %d (%s %s) arrived %s after it was stored, want at most %s",
				e.ID, data.Stage, data.Status, delay.Round(time.Millisecond), maxEventDelay)
		}
		delivered++
		stages[data.Stage] = true
	}
	for _, stage := range []string{"provisioning", "installing", "ready"} {
		if !stages[stage] {
			t.Errorf("no event of stage %s arrived through nginx", stage)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func TestNginxStreamsPanelToLoggedInAdmin(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 300 * time.Millisecond, Heartbeat: time.Second})
	base := startNginx(t, strings.TrimPrefix(s.URL, "http://"), nil)

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 60 * time.Second}
	resp, err := browser.PostForm(base+"/login", url.Values{"username": {"admin"}, "password": {testkit.AdminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("login through nginx: status %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	var started struct {
		ID string `json:"id"`
	}
	status := apiRequest(t, http.MethodPost, base+"/api/onboardings", map[string]any{
		"username": "oskar", "full_name": "Oskar Test", "email": "oskar@example.org", "node_id": "1",
	}, &started)
	if status != http.StatusAccepted {
		t.Fatalf("start through nginx: status %d", status)
	}

	opened := time.Now()
	stream := openStream(t, browser, base+"/onboardings/"+started.ID+"/events", http.Header{})
	defer stream.Body.Close()
	reader := testkit.NewSSEReader(stream.Body)
	first, err := reader.Next()
	if err != nil {
		t.Fatalf("read the first event: %v", err)
	}
	if first.Name != "snapshot" {
		t.Errorf("first event %q, want the snapshot", first.Name)
	}
	if took := time.Since(opened); took > maxEventDelay {
		t.Errorf("snapshot took %s through nginx, want at most %s", took.Round(time.Millisecond), maxEventDelay)
	}
	var onboarding testkit.OnboardingJSON
	apiRequest(t, http.MethodGet, base+"/api/onboardings/"+started.ID, nil, &onboarding)
	if onboarding.Status != "running" {
		t.Errorf("onboarding %s by the time the snapshot arrived; the test needs it running", onboarding.Status)
	}

	updates := 0
	for {
		e, err := reader.Next()
		if err != nil {
			t.Fatalf("stream ended before its closing event, after %d updates: %v", updates, err)
		}
		if e.Name == "done" {
			break
		}
		updates++
	}
	if updates == 0 {
		t.Error("no update arrived between the snapshot and the closing event")
	}
}
