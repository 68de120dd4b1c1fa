package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"deployer/onboard"
	"deployer/storage"

	"github.com/chromedp/chromedp"
)

// simNodeButton is the button that takes node 1 offline or brings it back.
const simNodeButton = `#sim-panel .sim-nodes button[type="submit"]`

// openSimPanel opens the simulated grid's panel on the testers page.
func (tb *tab) openSimPanel() {
	tb.click("#sim-panel summary")
	tb.waitFor("the simulated grid panel open", pageTimeout, `document.querySelector("#sim-panel details").open`)
}

func TestSimPanelTakesNodeOfflineAndBack(t *testing.T) {
	requireBrowser(t)
	s, tb := startAdminTab(t, serverOptions{})
	tb.openSimPanel()

	tb.click(simNodeButton)
	tb.waitText("#sim-panel .sim-nodes .badge", "offline", pageTimeout)
	tb.waitText("#capacity .readout", "offline", pageTimeout)
	checkStartBlocked(t, tb, s, "not usable")

	if got := tb.text(simNodeButton); got != "Bring online" {
		t.Fatalf("the offline node's button says %q, want Bring online", got)
	}
	tb.click(simNodeButton)
	tb.waitText("#sim-panel .sim-nodes .badge", "online", pageTimeout)
	tb.waitText("#capacity .readout", "room for 8 more testers", pageTimeout)
}

func TestSimPanelFaultFailsNextInstall(t *testing.T) {
	requireBrowser(t)
	s, tb := startAdminTab(t, serverOptions{})
	tb.openSimPanel()

	// A refused form shows its error, and the notice of the last accepted
	// one goes.
	tb.click(simNodeButton)
	tb.waitText("#sim-panel .notice", "Node 1 updated: offline", pageTimeout)
	tb.do("enter an invalid fault count", chromedp.SetValue(chromedp.CSS(`#sim-panel input[name="times"]`), "-1"),
		chromedp.SetAttributeValue(chromedp.CSS(`#sim-panel form[hx-post="/sim/faults"]`), "novalidate", ""))
	tb.click(`#sim-panel form[hx-post="/sim/faults"] button[type="submit"]`)
	tb.waitFor("the fault form's error", pageTimeout, `document.querySelector("#sim-errors").textContent.trim() !== ""`)
	if n := tb.count("#sim-panel .notice"); n != 0 {
		t.Errorf("after a refused form the panel still shows %d notices of the last accepted one", n)
	}
	tb.takeProblems()
	tb.click(simNodeButton)
	tb.waitText("#sim-panel .notice", "Node 1 updated: online", pageTimeout)
	tb.do("reset the fault count", chromedp.SetValue(chromedp.CSS(`#sim-panel input[name="times"]`), "1"))

	tb.do("choose the installing stage",
		chromedp.SetValue(chromedp.CSS(`#sim-panel select[name="stage"]`), "installing"))
	tb.click(`#sim-panel form[hx-post="/sim/faults"] button[type="submit"]`)
	tb.waitText("#sim-panel", "installing × 1 (fail)", pageTimeout)

	id := tb.startOnboarding("kira", "Kira Example", "kira@example.org")
	tb.waitPanelStatus(id, "failed", flowTimeout)
	if got := tb.text(panelSelector(id) + "-failure"); !strings.HasPrefix(got, "Failed at installing the stack.") {
		t.Errorf("the panel's failure says %q, want it to start with Failed at installing the stack.", got)
	}
	// The simulator panel follows the grid: the fault is used up, and the
	// kept VM holds its slots.
	tb.waitFor("the used-up fault gone from the simulator panel", pageTimeout,
		`!document.querySelector("#sim-panel").textContent.includes("Pending faults")`)
	tb.waitText("#sim-panel .sim-nodes tbody", "2 of 16", pageTimeout)
	if o := s.onboarding(t, id); o.Error == nil || o.Error.Code != onboard.EInstallFailed {
		t.Errorf("API onboarding ended with error %+v, want code %q", o.Error, onboard.EInstallFailed)
	}
}

func TestOrphansPageCleansUpProject(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})

	// Contracts under the deployer's naming that no tester recorded, as a
	// crash between the grid's response and the deployer's record would leave.
	ctx := context.Background()
	db, err := storage.Open(ctx, s.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	project := onboard.ProjectName("ghost")
	for _, kind := range []string{onboard.ContractNetwork, onboard.ContractVM} {
		if _, err := db.SimCreateContract(ctx, onboard.Contract{Kind: kind, Name: project + "-" + kind, NodeID: "1",
			Project: project}, 0, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)
	tb.navigate(s.URL + "/orphans")
	if n := tb.count("#orphans tbody tr"); n != 2 {
		t.Fatalf("the orphans page lists %d contracts, want 2", n)
	}
	// Cleanup works on the whole project, so one button serves both rows.
	if got := tb.text(`#orphans tbody tr form button[type="submit"]`); got != "Clean up project (2 contracts)" {
		t.Errorf("the cleanup button says %q, want Clean up project (2 contracts)", got)
	}
	if n := tb.count("#orphans tbody tr form"); n != 1 {
		t.Errorf("the orphans page offers %d cleanups for one project, want 1", n)
	}
	tb.acceptDialog("Cancel every contract of this project on the grid?")
	tb.click(`#orphans tbody tr form button[type="submit"]`)
	tb.waitText("#orphans", "No orphaned contracts.", pageTimeout)

	var list struct {
		Orphans []map[string]any `json:"orphans"`
	}
	s.mustAPI(t, http.MethodGet, "/api/orphans", nil, &list)
	if len(list.Orphans) != 0 {
		t.Errorf("the API lists %d orphans after the cleanup, want none", len(list.Orphans))
	}
	tb.navigate(s.URL + "/audit")
	if got := tb.text("table.audit tbody"); !strings.Contains(got, "orphans.cleanup") {
		t.Errorf("the audit page shows no orphans.cleanup entry:\n%s", got)
	}
}
