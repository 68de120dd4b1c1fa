package e2e

import (
	"net/http"
	"testing"
	"time"
)

func TestScratch(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	s.mustAPI(t, http.MethodPost, "/api/sim/faults", map[string]any{"stage": "provisioning", "times": 1}, nil)
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)
	id := tb.startOnboarding("bob", "Bob Example", "bob@example.org")
	tb.waitPanelStatus(id, "failed", flowTimeout)
	tb.navigate(s.URL + "/testers/bob")
	tb.saveScreenshot("tester-failed", "")
	resume := `#steps button[hx-post$="/resume"]`
	tb.click(resume)
	time.Sleep(500 * time.Millisecond)
	tb.saveScreenshot("tester-resumed", "")
	t.Logf("panels after one resume: %d", tb.count("section.panel"))
	tb.waitFor("ready", flowTimeout, `!!document.querySelector('section.panel .panel-head [data-status="succeeded"]')`)
	time.Sleep(4 * time.Second)
	tb.saveScreenshot("tester-after", "")
	t.Logf("detail install: %s", tb.text("#tester-detail .tester-head .badge"))
	t.Logf("steps: %s", tb.text("#steps"))
	t.Logf("problems: %q", tb.takeProblems())
}
