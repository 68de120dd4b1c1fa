package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// stop ends the process with SIGTERM and waits for it, so that every log
// line is written.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("deployer still running 10s after SIGTERM")
	}
}

// logLines parses every line of a JSON log, failing the test on a line that
// is not a JSON object.
func logLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	scanner := bufio.NewScanner(strings.NewReader(log))
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var line map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, scanner.Text())
		}
		lines = append(lines, line)
	}
	return lines
}

// missingKeys returns the keys of want that line lacks or leaves empty.
func missingKeys(line map[string]any, want ...string) []string {
	var missing []string
	for _, k := range want {
		if v, ok := line[k]; !ok || v == "" || v == nil {
			missing = append(missing, k)
		}
	}
	return missing
}

func TestJSONLogsCarryIdsAndNoSecrets(t *testing.T) {
	p := startBinary(t, filepath.Join(t.TempDir(), "deployer.db"), 20*time.Millisecond,
		"DEPLOYER_LOG_FORMAT=json", "DEPLOYER_METRICS_TOKEN="+metricsToken)
	secrets := map[string]string{
		"admin password": testkit.AdminPassword, "API token": testkit.Token, "metrics token": metricsToken,
	}

	// A created account, whose one-time password the start returns once.
	var started testkit.OnboardingJSON
	status := p.api(t, http.MethodPost, "/api/onboardings", map[string]any{
		"username": "ingrid", "full_name": "Ingrid Test", "email": "ingrid@example.org", "node_id": "1",
	}, &started)
	if status != http.StatusAccepted || started.OneTimePassword == "" {
		t.Fatalf("start: status %d, one-time password %t", status, started.OneTimePassword != "")
	}
	secrets["one-time password"] = started.OneTimePassword
	if o := p.waitFinished(t, started.ID); o.Status != "succeeded" {
		t.Fatalf("onboarding: %s %+v", o.Status, o.Error)
	}
	var reset struct {
		OneTimePassword string `json:"one_time_password"`
	}
	if status := p.api(t, http.MethodPost, "/api/testers/ingrid/reset-password", nil, &reset); status != http.StatusOK {
		t.Fatalf("reset password: status %d", status)
	}
	secrets["reset one-time password"] = reset.OneTimePassword
	readStream(t, p.url+"/api/onboardings/"+started.ID+"/events", "Bearer "+testkit.Token)

	// A failure, whose lines must carry the ids too.
	fault := map[string]any{"stage": "installing", "times": 1}
	if status := p.api(t, http.MethodPost, "/api/sim/faults", fault, nil); status != http.StatusOK {
		t.Fatalf("set fault: status %d", status)
	}
	failedID := p.start(t, "jonas")
	if o := p.waitFinished(t, failedID); o.Status != "failed" {
		t.Fatalf("onboarding with a fault: %s, want failed", o.Status)
	}

	// An admin session and a scrape, whose credentials must stay out too.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := browser.PostForm(p.url+"/login", url.Values{"username": {"admin"}, "password": {testkit.AdminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	base, _ := url.Parse(p.url)
	for _, c := range jar.Cookies(base) {
		secrets["session cookie "+c.Name] = c.Value
	}
	if status, _ := getMetrics(t, http.DefaultClient, p.url, "Bearer "+metricsToken); status != http.StatusOK {
		t.Fatalf("metrics: status %d", status)
	}
	p.stop(t)

	log := p.stderr.String()
	for name, secret := range secrets {
		if secret != "" && strings.Contains(log, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
	lines := logLines(t, log)
	seen := map[string]int{}
	for _, line := range lines {
		msg, _ := line["msg"].(string)
		seen[msg]++
		if missing := missingKeys(line, "time", "level", "msg"); len(missing) > 0 {
			t.Errorf("line without %v: %v", missing, line)
		}
		var want []string
		switch msg {
		case "Request":
			want = []string{"request_id", "method", "route", "status", "duration_ms"}
			if route, _ := line["route"].(string); strings.Contains(route, "ingrid") || strings.Contains(route, started.ID) {
				t.Errorf("request line carries a raw path as its route: %v", line)
			}
		case "Event stream closed":
			want = []string{"request_id", "method", "route", "status", "duration_ms", "onboarding_id"}
		case "Onboarding started", "Stage changed", "Onboarding succeeded":
			want = []string{"onboarding_id", "tester", "node_id"}
		case "Onboarding failed":
			want = []string{"onboarding_id", "tester", "node_id", "stage", "code", "error"}
		}
		if missing := missingKeys(line, want...); len(missing) > 0 {
			t.Errorf("%q line without %v: %v", msg, missing, line)
		}
	}
	for _, msg := range []string{"Deployer started", "Request", "Event stream closed", "Onboarding started",
		"Stage changed", "Onboarding succeeded", "Onboarding failed", "Deployer stopped"} {
		if seen[msg] == 0 {
			t.Errorf("no %q line in %d log lines", msg, len(lines))
		}
	}
}

func TestLogLevelAndTextFormat(t *testing.T) {
	cases := []struct {
		name      string
		env       []string
		want      string
		forbidden string
	}{
		{"text by default", nil, "level=INFO msg=Request", `"level":`},
		{"warn hides info", []string{"DEPLOYER_LOG_LEVEL=warn"}, "", "level=INFO"},
		{"json debug", []string{"DEPLOYER_LOG_FORMAT=json", "DEPLOYER_LOG_LEVEL=debug"}, `"msg":"Request"`, "level=INFO"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startBinary(t, filepath.Join(t.TempDir(), "deployer.db"), 0, c.env...)
			resp, err := http.Get(p.url + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			p.stop(t)
			log := p.stderr.String()
			if c.want != "" && !strings.Contains(log, c.want) {
				t.Errorf("log lacks %q:\n%s", c.want, log)
			}
			if strings.Contains(log, c.forbidden) {
				t.Errorf("log contains %q:\n%s", c.forbidden, log)
			}
		})
	}
}
