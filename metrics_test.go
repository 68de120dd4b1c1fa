package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsToken is the scrape token of the metrics tests.
const metricsToken = "scrape-token-0123456789"

// getMetrics fetches /metrics with the Authorization header, when not empty,
// and returns the status and the parsed families of a 200 response.
func getMetrics(t *testing.T, client *http.Client, base, authz string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("get /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return resp.StatusCode, families
}

// sampleValue returns the value of the counter or gauge series whose labels
// include want, and whether there is one.
func sampleValue(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range families[name].GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		if m.Counter != nil {
			return m.GetCounter().GetValue(), true
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestMetricsEndpointAfterOnboarding(t *testing.T) {
	p := startBinary(t, filepath.Join(t.TempDir(), "deployer.db"), 20*time.Millisecond,
		"DEPLOYER_METRICS_TOKEN="+metricsToken)
	id := p.start(t, "maren")
	if o := p.waitFinished(t, id); o.Status != "succeeded" {
		t.Fatalf("onboarding: %s %+v", o.Status, o.Error)
	}
	if status := p.api(t, http.MethodGet, "/api/testers/maren", nil, nil); status != http.StatusOK {
		t.Fatalf("get tester: status %d", status)
	}
	resp, err := http.Get(p.url + "/api/testers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stream := readStream(t, p.url+"/api/onboardings/"+id+"/events", "Bearer "+testkit.Token)
	if !strings.Contains(stream, "event: done") {
		t.Fatalf("stream of a finished onboarding has no closing event: %q", lastLines(stream, 3))
	}

	status, f := getMetrics(t, http.DefaultClient, p.url, "Bearer "+metricsToken)
	if status != http.StatusOK {
		t.Fatalf("metrics with the scrape token: status %d", status)
	}
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"deployer_onboardings_started_total", nil, 1},
		{"deployer_onboardings_succeeded_total", nil, 1},
		{"deployer_node_capacity_slots", map[string]string{"node_id": "1"}, 16},
		{"deployer_node_free_slots", map[string]string{"node_id": "1"}, 14},
		{"deployer_node_room_for_testers", map[string]string{"node_id": "1"}, 7},
		{"deployer_build_info", map[string]string{"version": stampedVersion}, 1},
		{"deployer_http_requests_total", map[string]string{"method": "POST", "route": "/api/onboardings", "status": "202"}, 1},
		{"deployer_http_requests_total", map[string]string{"method": "GET", "route": "/api/testers/:username", "status": "200"}, 1},
		{"deployer_http_requests_total", map[string]string{"method": "GET", "route": "/api/onboardings/:id/events", "status": "200"}, 1},
		// The 401 comes from the authentication middleware, before any route.
		{"deployer_http_requests_total", map[string]string{"method": "GET", "route": "/*", "status": "401"}, 1},
	}
	for _, w := range want {
		got, ok := sampleValue(f, w.name, w.labels)
		if !ok {
			t.Errorf("no series %s%v", w.name, w.labels)
			continue
		}
		if got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	for _, stage := range []string{"provisioning", "installing"} {
		m := findSeries(f, "deployer_stage_duration_seconds", map[string]string{"stage": stage, "status": "done"})
		if m == nil || m.GetHistogram().GetSampleCount() != 1 {
			t.Errorf("stage_duration_seconds{stage=%s,status=done}: %v, want one observation", stage, m)
		}
	}
	if _, ok := sampleValue(f, "deployer_outbox_messages", map[string]string{"status": "pending"}); !ok {
		t.Error("no outbox backlog series")
	}
	if _, ok := sampleValue(f, "deployer_event_streams_open", nil); !ok {
		t.Error("no open event streams series")
	}
	for _, m := range f["deployer_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), "maren") || strings.Contains(l.GetValue(), id) {
				t.Errorf("label %s=%q carries a raw path", l.GetName(), l.GetValue())
			}
		}
	}
}

func findSeries(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	for _, m := range families[name].GetMetric() {
		if hasLabels(m, want) {
			return m
		}
	}
	return nil
}

// readStream reads an event stream until the server closes it, for at most
// 10 s.
func readStream(t *testing.T, streamURL, authz string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, streamURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", authz)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	return string(body)
}

func TestMetricsEndpointAuthentication(t *testing.T) {
	p := startBinary(t, filepath.Join(t.TempDir(), "deployer.db"), 0, "DEPLOYER_METRICS_TOKEN="+metricsToken)
	cases := []struct {
		name  string
		authz string
		want  int
	}{
		{"no credentials", "", http.StatusUnauthorized},
		{"wrong token", "Bearer not-the-token", http.StatusUnauthorized},
		{"basic scheme", "Basic " + metricsToken, http.StatusUnauthorized},
		{"scrape token", "Bearer " + metricsToken, http.StatusOK},
		{"API token", "Bearer " + testkit.Token, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if status, _ := getMetrics(t, http.DefaultClient, p.url, c.authz); status != c.want {
				t.Errorf("status %d, want %d", status, c.want)
			}
		})
	}

	t.Run("admin session", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		resp, err := browser.PostForm(p.url+"/login", url.Values{"username": {"admin"}, "password": {testkit.AdminPassword}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if status, _ := getMetrics(t, browser, p.url, ""); status != http.StatusOK {
			t.Errorf("status %d with an admin session, want 200", status)
		}
	})

	t.Run("scrape token on the API", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, p.url+"/api/testers", nil)
		req.Header.Set("Authorization", "Bearer "+metricsToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d for the scrape token on /api/testers, want 401", resp.StatusCode)
		}
	})
}
