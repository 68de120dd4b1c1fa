package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
	"deployer/metrics"
	"deployer/onboard"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape serves the metrics once and parses them with the text parser of
// github.com/prometheus/common/expfmt.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics: status %d, body %q", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics content type %q, want the text format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return families
}

// series returns the metric of the family whose labels include want, or
// nil.
func series(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns the value of a counter or gauge series, failing the test
// when the series is missing.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := series(families, name, labels)
	if m == nil {
		t.Fatalf("no series %s%v; families: %s", name, labels, names(families))
	}
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("series %s%v is neither a counter nor a gauge", name, labels)
	return 0
}

// histogramCount returns the observation count of a histogram series, or 0
// when it is missing.
func histogramCount(families map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	m := series(families, name, labels)
	if m == nil || m.Histogram == nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

func names(families map[string]*dto.MetricFamily) string {
	var list []string
	for n := range families {
		list = append(list, n)
	}
	sort.Strings(list)
	return strings.Join(list, " ")
}

// attach builds metrics over a test server and observes its hub.
func attach(s *testkit.Server, node string) *metrics.Metrics {
	m := metrics.New(metrics.Sources{
		Version: "1.2.3-test", Node: node, Capacity: s.Svc, Outbox: s.DB,
		Streams: s.Hub.Subscribers, Running: s.Runner.Running,
	})
	s.Hub.Observe(m)
	return m
}

func TestMetricsAfterOnboardings(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 20 * time.Millisecond})
	m := attach(s, "1")

	ok, status := s.Start(t, "alma")
	if status != http.StatusAccepted {
		t.Fatalf("start alma: status %d", status)
	}
	if o := s.WaitFinished(t, ok.ID, 30*time.Second); o.Status != onboard.StatusSucceeded {
		t.Fatalf("alma: %s %+v", o.Status, o.Error)
	}
	fault := map[string]any{"stage": onboard.StageProvisioning, "times": 1}
	if status := s.API(t, http.MethodPost, "/api/sim/faults", fault, nil); status != http.StatusOK {
		t.Fatalf("set fault: status %d", status)
	}
	bad, status := s.Start(t, "bruno")
	if status != http.StatusAccepted {
		t.Fatalf("start bruno: status %d", status)
	}
	failed := s.WaitFinished(t, bad.ID, 30*time.Second)
	if failed.Status != onboard.StatusFailed || failed.Error == nil {
		t.Fatalf("bruno: %s %+v, want a failure", failed.Status, failed.Error)
	}

	f := scrape(t, m)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"deployer_onboardings_started_total", nil, 2},
		{"deployer_onboardings_succeeded_total", nil, 1},
		{"deployer_onboardings_failed_total", map[string]string{"stage": "provisioning", "code": failed.Error.Code}, 1},
		{"deployer_onboardings_resumed_total", nil, 0},
		{"deployer_node_online", map[string]string{"node_id": "1"}, 1},
		{"deployer_node_degraded", map[string]string{"node_id": "1"}, 0},
		{"deployer_node_capacity_slots", map[string]string{"node_id": "1"}, 16},
		{"deployer_node_free_slots", map[string]string{"node_id": "1"}, 14},
		{"deployer_node_reserved_slots", map[string]string{"node_id": "1"}, 0},
		{"deployer_node_room_for_testers", map[string]string{"node_id": "1"}, 7},
		{"deployer_event_streams_open", nil, 0},
		{"deployer_onboardings_running", nil, 0},
		{"deployer_build_info", map[string]string{"version": "1.2.3-test"}, 1},
	}
	for _, c := range checks {
		if got := value(t, f, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	outbox := value(t, f, "deployer_outbox_messages", map[string]string{"status": "pending"}) +
		value(t, f, "deployer_outbox_messages", map[string]string{"status": "sent"})
	if outbox != 1 {
		t.Errorf("outbox holds %v pending or sent messages, want the one welcome email", outbox)
	}

	durations := []struct {
		stage, status string
		want          uint64
	}{
		{"adding", "done", 2},
		{"provisioning", "done", 1},
		{"provisioning", "failed", 1},
		{"installing", "done", 1},
	}
	for _, d := range durations {
		labels := map[string]string{"stage": d.stage, "status": d.status}
		if got := histogramCount(f, "deployer_stage_duration_seconds", labels); got != d.want {
			t.Errorf("stage_duration_seconds%v has %d observations, want %d", labels, got, d.want)
		}
	}
}

func TestMetricsCountOpenStreams(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	m := attach(s, "1")
	first, second := s.Hub.Subscribe("a"), s.Hub.Subscribe(onboard.AllOnboardings)
	if got := value(t, scrape(t, m), "deployer_event_streams_open", nil); got != 2 {
		t.Errorf("event_streams_open = %v with two subscriptions, want 2", got)
	}
	s.Hub.Unsubscribe(first)
	s.Hub.Unsubscribe(second)
	if got := value(t, scrape(t, m), "deployer_event_streams_open", nil); got != 0 {
		t.Errorf("event_streams_open = %v after both closed, want 0", got)
	}
}

func TestMetricsServeRestWhenNodeUnreadable(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	// The simulated grid has only node 1, so node 77 cannot be read.
	m := attach(s, "77")
	if _, err := s.Svc.Capacity(context.Background(), "77"); err == nil {
		t.Fatal("node 77 read without an error; the test needs a node that fails")
	}
	f := scrape(t, m)
	if f["deployer_node_online"] != nil {
		t.Errorf("node_online served for a node that could not be read: %v", f["deployer_node_online"])
	}
	if got := value(t, f, "deployer_onboardings_started_total", nil); got != 0 {
		t.Errorf("onboardings_started_total = %v, want 0", got)
	}
}

func TestObserveEventTimesStages(t *testing.T) {
	m := metrics.New(metrics.Sources{Version: "test"})
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	events := []onboard.Event{
		{OnboardingID: "a", Kind: onboard.EventStage, Stage: "adding", Status: "running", Time: t0},
		{OnboardingID: "a", Kind: onboard.EventStage, Stage: "adding", Status: "done", Time: t0},
		{OnboardingID: "a", Kind: onboard.EventStage, Stage: "provisioning", Status: "running", Time: t0},
		// A progress line of a running stage does not restart its clock.
		{OnboardingID: "a", Kind: onboard.EventLog, Stage: "provisioning", Status: "running", Time: t0.Add(time.Second)},
		{OnboardingID: "a", Kind: onboard.EventStage, Stage: "provisioning", Status: "running", Time: t0.Add(2 * time.Second)},
		{OnboardingID: "a", Kind: onboard.EventStage, Stage: "provisioning", Status: "canceled", Time: t0.Add(3 * time.Second)},
		// A second canceled event, as an undo writes, has no start left.
		{OnboardingID: "a", Kind: onboard.EventStage, Stage: "provisioning", Status: "canceled", Time: t0.Add(4 * time.Second)},
		{OnboardingID: "a", Kind: onboard.EventFinish, Stage: "provisioning", Status: "canceled", Code: "canceled", Time: t0.Add(4 * time.Second)},
		{OnboardingID: "a", Kind: onboard.EventResume, Stage: "provisioning", Status: "running", Time: t0.Add(5 * time.Second)},
		{OnboardingID: "a", Kind: onboard.EventStage, Stage: "ready", Status: "skipped", Time: t0.Add(6 * time.Second)},
		{OnboardingID: "a", Kind: onboard.EventFinish, Stage: "ready", Status: "failed", Time: t0.Add(6 * time.Second)},
	}
	for _, e := range events {
		m.ObserveEvent(e)
	}

	f := scrape(t, m)
	if got := value(t, f, "deployer_onboardings_started_total", nil); got != 1 {
		t.Errorf("started_total = %v, want 1", got)
	}
	if got := value(t, f, "deployer_onboardings_resumed_total", nil); got != 1 {
		t.Errorf("resumed_total = %v, want 1", got)
	}
	if got := value(t, f, "deployer_onboardings_canceled_total", map[string]string{"stage": "provisioning"}); got != 1 {
		t.Errorf("canceled_total{stage=provisioning} = %v, want 1", got)
	}
	// A failure without a code counts as internal.
	if got := value(t, f, "deployer_onboardings_failed_total", map[string]string{"stage": "ready", "code": "internal"}); got != 1 {
		t.Errorf("failed_total{stage=ready,code=internal} = %v, want 1", got)
	}
	canceled := series(f, "deployer_stage_duration_seconds", map[string]string{"stage": "provisioning", "status": "canceled"})
	if canceled == nil {
		t.Fatal("no duration for the canceled provisioning stage")
	}
	if n := canceled.GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("canceled provisioning has %d observations, want 1", n)
	}
	if sum := canceled.GetHistogram().GetSampleSum(); sum != 3 {
		t.Errorf("canceled provisioning took %vs, want 3s from its first running event", sum)
	}
	if n := histogramCount(f, "deployer_stage_duration_seconds", map[string]string{"stage": "ready", "status": "skipped"}); n != 0 {
		t.Errorf("a stage skipped without running has %d duration observations, want 0", n)
	}
}

func TestObserveRequestKeepsStreamsOutOfDurations(t *testing.T) {
	m := metrics.New(metrics.Sources{Version: "test"})
	m.ObserveRequest(http.MethodGet, "/testers/:username", 200, 30*time.Millisecond, false)
	m.ObserveRequest(http.MethodGet, "/api/onboardings/:id/events", 200, time.Hour, true)

	f := scrape(t, m)
	for _, route := range []string{"/testers/:username", "/api/onboardings/:id/events"} {
		labels := map[string]string{"method": "GET", "route": route, "status": "200"}
		if got := value(t, f, "deployer_http_requests_total", labels); got != 1 {
			t.Errorf("http_requests_total%v = %v, want 1", labels, got)
		}
	}
	if n := histogramCount(f, "deployer_http_request_duration_seconds", map[string]string{"route": "/testers/:username"}); n != 1 {
		t.Errorf("page request has %d duration observations, want 1", n)
	}
	if n := histogramCount(f, "deployer_http_request_duration_seconds", map[string]string{"route": "/api/onboardings/:id/events"}); n != 0 {
		t.Errorf("event stream has %d duration observations, want 0", n)
	}
}
