package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAddAndSetUpShowsEachStageLive(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	b.grantClipboard()
	tb := b.newTab("admin")
	tb.login(s.URL)

	// Something else is on the clipboard, so that a copy made before the
	// click would show.
	const before = "copied before the onboarding"
	tb.writeClipboard(before)
	tb.recordStages(slotPanel)
	id := tb.startOnboarding("alice", "Alice Example", "alice@example.org")

	otp := panelSelector(id) + "-otp"
	password := tb.text(otp + " .secret")
	if len(password) < 16 {
		t.Errorf("one-time password %q on the panel, want 16 characters or more", password)
	}

	tb.waitPanelStatus(id, "succeeded", flowTimeout)
	checkStagesLive(t, tb.name, tb.stageLog())
	o := s.onboarding(t, id)
	if o.Status != "succeeded" {
		t.Errorf("API status %q after the panel showed succeeded", o.Status)
	}
	if got := tb.text(panelSelector(id) + " .cockpit-url"); got != o.CockpitURL || got == "" {
		t.Errorf("panel shows the cockpit URL %q, want %q", got, o.CockpitURL)
	}
	tb.saveScreenshot("ready-panel", panelSelector(id))

	// The password stays after ready, until the admin dismisses it.
	if got := tb.text(otp + " .secret"); got != password {
		t.Errorf("after ready the panel shows the one-time password %q, want %q", got, password)
	}
	if got := tb.readClipboard(); got != before {
		t.Errorf("clipboard holds %q before Copy was pressed, want %q", got, before)
	}

	tb.click(panelSelector(id) + " button.copy")
	tb.waitClipboard(o.CockpitURL, pageTimeout)
	tb.waitText(panelSelector(id)+" button.copy", "Copied", pageTimeout)

	tb.click(otp + " button.dismiss")
	tb.waitFor("the one-time password is dismissed", pageTimeout,
		fmt.Sprintf(`!document.querySelector(%q)`, otp))
	if html := eval[string](tb, `document.documentElement.outerHTML`); strings.Contains(html, password) {
		t.Error("the page still contains the one-time password after it was dismissed")
	}
}

func TestProvisioningFaultStopsThenStepsRecover(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	s.mustAPI(t, http.MethodPost, "/api/sim/faults", map[string]any{"stage": "provisioning", "times": 1}, nil)
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)

	id := tb.startOnboarding("bob", "Bob Example", "bob@example.org")
	tb.waitPanelStatus(id, "failed", flowTimeout)
	panel := panelSelector(id)
	tb.saveScreenshot("failed-panel", panel)

	o := s.onboarding(t, id)
	if o.Status != "failed" || o.Error == nil {
		t.Fatalf("API onboarding %+v, want failed with an error", o)
	}
	for stage, want := range map[string]string{
		"adding": "done", "provisioning": "failed", "installing": "pending", "ready": "pending",
	} {
		got := eval[string](tb, fmt.Sprintf(`document.querySelector(%q)?.dataset.status ?? ""`,
			fmt.Sprintf(`%s .stage[data-stage=%q]`, panel, stage)))
		if got != want {
			t.Errorf("panel shows %s %q, want %q", stage, got, want)
		}
	}
	failure := tb.text(panel + " .failure")
	if !strings.Contains(failure, "Failed at provisioning") || !strings.Contains(failure, o.Error.Message) {
		t.Errorf("panel failure text %q, want it to name provisioning and say %q", failure, o.Error.Message)
	}
	link := panel + ` .panel-result a[href="/testers/bob"]`
	if tb.count(link) == 0 {
		t.Fatalf("the failed panel has no link to the tester page")
	}

	tb.click(link)
	tb.waitFor("the tester page", pageTimeout,
		fmt.Sprintf(`location.href === %q && !!document.getElementById("tester-detail")`, s.URL+"/testers/bob"))
	retry := `#steps form button[type="submit"]`
	if got := tb.text(retry); got != "Retry provisioning" {
		t.Errorf("provision button says %q, want Retry provisioning", got)
	}
	tb.click(retry)
	install := `#steps button[hx-post="/testers/bob/install"]`
	tb.waitFor("the Install button after provisioning", flowTimeout, fmt.Sprintf(`!!document.querySelector(%q)`, install))
	if got := tb.text(install); got != "Install" {
		t.Errorf("install button says %q, want Install", got)
	}
	tb.click(install)
	tb.waitFor("install: installed", flowTimeout, `!!document.querySelector('#tester-detail [data-install="installed"]')`)

	tester := s.tester(t, "bob")
	if tester.InstallState != "installed" || tester.CockpitURL == "" {
		t.Errorf("API tester %+v, want installed with a cockpit URL", tester)
	}
	if got := tb.text("#tester-detail .cockpit-url"); got != tester.CockpitURL {
		t.Errorf("tester page shows the cockpit URL %q, want %q", got, tester.CockpitURL)
	}
}

func TestRetryOnFailedPanelThenResume(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	s.mustAPI(t, http.MethodPost, "/api/sim/faults", map[string]any{"stage": "provisioning", "times": 1}, nil)
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)

	id := tb.startOnboarding("cleo", "Cleo Example", "cleo@example.org")
	panel := panelSelector(id)
	otp := panel + "-otp .secret"
	password := tb.text(otp)
	tb.waitPanelStatus(id, "failed", flowTimeout)

	retry := panel + ` .actions button[hx-post="/testers/cleo/provision"]`
	if got := tb.text(retry); got != "Retry provisioning" {
		t.Errorf("panel's retry button says %q, want Retry provisioning", got)
	}
	tb.click(retry)
	step := panel + "-step"
	tb.waitText(step, "Provisioned on node 1", flowTimeout)
	if n := tb.count(step + " #tester-detail"); n != 0 {
		t.Errorf("the step result holds %d tester blocks, want the step's message only", n)
	}
	if n := tb.count(retry); n != 0 {
		t.Errorf("the retry button is still offered after the step succeeded")
	}
	if got := tb.text(panel + "-failure"); !strings.HasPrefix(got, "The retry succeeded.") {
		t.Errorf("after the retry the panel's failure text is %q, want it to say the retry succeeded", got)
	}
	if got := tb.text(panel + "-next"); got != "" {
		t.Errorf("after the retry the panel still advises %q", got)
	}
	// The testers list learns of the step from the response, not from a
	// stream, and shows the new deployment well before its 10 s poll.
	tb.waitFor("cleo's deployment active in the testers list", 5*time.Second,
		`[...document.querySelectorAll("#testers-table tbody tr")].some(tr => !!tr.querySelector('a[href="/testers/cleo"]') && !!tr.querySelector(".badge.active"))`)
	resume := panel + " .actions button.primary"
	if got := tb.text(resume); got != "Resume setup" {
		t.Fatalf("the panel's button says %q, want Resume setup", got)
	}

	tb.recordStages(panel)
	tb.click(resume)
	tb.waitPanelStatus(id, "succeeded", flowTimeout)
	log := tb.stageLog()
	last, err := parseStageLine(log[len(log)-1])
	if err != nil {
		t.Fatal(err)
	}
	if last.Status != "succeeded" || currentStage(last.Stages) != "" {
		t.Errorf("the resumed panel ended at %q, want succeeded with every stage done", log[len(log)-1])
	}
	if o := s.onboarding(t, id); o.Status != "succeeded" || o.CockpitURL == "" {
		t.Errorf("API onboarding %+v, want succeeded with a cockpit URL", o)
	}
	if got := tb.text(panel + " .cockpit-url"); got == "" {
		t.Error("the resumed panel shows no cockpit URL")
	}
	// Resume replaces the panel; the password not yet dismissed stays.
	if got := tb.text(otp); got != password || got == "" {
		t.Errorf("after Resume setup the panel shows the one-time password %q, want %q", got, password)
	}
}

func TestResumeOnTesterPageUpdatesDetail(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	s.mustAPI(t, http.MethodPost, "/api/sim/faults", map[string]any{"stage": "provisioning", "times": 1}, nil)
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)
	id := tb.startOnboarding("iris", "Iris Example", "iris@example.org")
	tb.waitPanelStatus(id, "failed", flowTimeout)

	tb.navigate(s.URL + "/testers/iris")
	tb.click(`#steps button[hx-post="/onboardings/` + id + `/resume"]`)
	tb.waitPanel(panelSelector(id))
	tb.waitPanelStatus(id, "succeeded", flowTimeout)

	// The tester block below the panel follows the resumed onboarding, so
	// it offers no step of the failed attempt once the tester is ready.
	tb.waitFor("install: installed in the tester block", pageTimeout,
		`!!document.querySelector('#tester-detail [data-install="installed"]')`)
	if got := tb.text(`#steps form button[type="submit"]`); got != "" {
		t.Errorf("the ready tester's block still offers %q", got)
	}
	if n := tb.count(`#steps button[hx-post$="/resume"]`); n != 0 {
		t.Errorf("the ready tester's block still offers Resume setup")
	}
	if n := tb.count("section.panel"); n != 1 {
		t.Errorf("the tester page shows %d panels, want 1", n)
	}
	// The history and the activity below it follow too, without a reload.
	tb.waitFor("the resumed attempt in the history", pageTimeout,
		`document.querySelector('#tester-history tbody').textContent.includes("succeeded")`)
	tb.waitFor("the resume in the activity", pageTimeout,
		`document.querySelector('#tester-activity tbody').textContent.includes("onboarding.resume")`)
}
