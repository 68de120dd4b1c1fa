package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// midFlowDelay slows the simulated grid for tests that act while a flow
// runs: each stage then takes one to three seconds, so a reload or a closed
// page lands inside the flow even on a slow machine.
const midFlowDelay = time.Second

// streamQuiet is how long a page that showed ready must leave the event
// stream alone.
const streamQuiet = 5 * time.Second

func TestDoubleClickStartsOneOnboarding(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)

	tb.fillStartForm("frank", "Frank Example", "frank@example.org")
	tb.doubleClick(startButton)
	id := tb.waitPanel(slotPanel)
	tb.waitPanelStatus(id, "succeeded", flowTimeout)

	list := s.onboardings(t, "frank")
	if len(list) != 1 {
		t.Errorf("GET /api/onboardings lists %d onboardings for frank, want 1", len(list))
	}
	if len(list) > 0 && list[0].ID != id {
		t.Errorf("the API lists onboarding %s, but the panel shows %s", list[0].ID, id)
	}
	posts := 0
	for _, r := range tb.requestsTo(s.URL + "/onboardings") {
		if r.Method == http.MethodPost {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("the page sent %d POST /onboardings for a double click, want 1", posts)
	}
	if n := tb.count(slotPanel); n != 1 {
		t.Errorf("the page shows %d panels, want 1", n)
	}
	if notice := tb.text("#panel-slot .notice"); notice != "" {
		t.Errorf("the page shows the notice %q, want none", notice)
	}
}

func TestReloadAndSecondTabReachReady(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{SimDelay: midFlowDelay})
	b := newBrowser(t, s.URL)
	reloaded := b.newTab("reloaded")
	reloaded.login(s.URL)

	id := reloaded.startOnboarding("dave", "Dave Example", "dave@example.org")
	reloaded.waitStage(id, "provisioning", "running", pageTimeout)
	reloaded.reload()
	reloaded.checkShowsCurrentStage(s, id)
	reloaded.recordStages(panelSelector(id))

	second := b.newTab("second")
	second.navigate(s.URL + "/onboardings/" + id)
	second.checkShowsCurrentStage(s, id)
	second.recordStages(panelSelector(id))

	readyAt := map[*tab]time.Time{}
	for _, tb := range []*tab{reloaded, second} {
		tb.waitPanelStatus(id, "succeeded", flowTimeout)
		readyAt[tb] = time.Now()
		checkStagesForward(t, tb.name, tb.stageLog())
		if got := tb.text(panelSelector(id) + " .cockpit-url"); got == "" {
			t.Errorf("tab %s: the ready panel shows no cockpit URL", tb.name)
		}
	}

	// The onboarding page's events table follows the stream too.
	second.waitFor("the finish event in the events table", pageTimeout,
		`[...document.querySelectorAll("#onboarding-events tbody td:nth-child(4)")].some(td => td.textContent === "succeeded")`)

	// Watch the network for the whole quiet period: a stream that the page
	// failed to close would reconnect within its retry delay of 2s.
	time.Sleep(time.Until(readyAt[second].Add(streamQuiet)))
	events := fmt.Sprintf("/onboardings/%s/events", id)
	for _, tb := range []*tab{reloaded, second} {
		for _, r := range tb.requestsTo(events) {
			if r.At.After(readyAt[tb]) {
				t.Errorf("tab %s: %s %s sent %s after the panel showed ready",
					tb.name, r.Method, r.URL, r.At.Sub(readyAt[tb]).Round(time.Millisecond))
			}
		}
		if len(tb.requestsTo(events)) == 0 {
			t.Errorf("tab %s: the page never opened the event stream", tb.name)
		}
	}
}

func TestClosedPageThenTesterPageShowsReady(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{SimDelay: midFlowDelay})
	b := newBrowser(t, s.URL)
	closed := b.newTab("closed")
	closed.login(s.URL)

	id := closed.startOnboarding("erin", "Erin Example", "erin@example.org")
	closed.waitStage(id, "provisioning", "running", pageTimeout)
	closed.close()

	// A little later: the job, with no page open, has moved on to installing.
	installing := slices.Index(stageNames, "installing")
	deadline := time.Now().Add(flowTimeout)
	for stageIndex(apiStages(s.onboarding(t, id))) < installing {
		if time.Now().After(deadline) {
			t.Fatalf("onboarding %s did not reach installing within %s of the page closing", id, flowTimeout)
		}
		time.Sleep(pollInterval)
	}

	later := b.newTab("later")
	later.navigate(s.URL + "/testers/erin")
	later.waitFor("install: installed on the tester page", flowTimeout,
		`!!document.querySelector('#tester-detail [data-install="installed"]')`)
	o := s.onboarding(t, id)
	if o.Status != "succeeded" {
		t.Errorf("API status %q after the tester page showed installed, want succeeded", o.Status)
	}
	if got := later.text("#tester-detail .cockpit-url"); got != o.CockpitURL || got == "" {
		t.Errorf("tester page shows the cockpit URL %q, want %q", got, o.CockpitURL)
	}
	// A panel shown while the job still ran must have followed it to ready.
	if later.count(panelSelector(id)) > 0 {
		later.waitPanelStatus(id, "succeeded", pageTimeout)
	}
}
