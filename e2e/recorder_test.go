package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The other tests pass only while the tab's recorder reports problems, so
// this test makes one on purpose.
func TestRecorderReportsCSPViolation(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)

	// DevTools may add an inline script, but the page's policy blocks it.
	eval[bool](tb, `(() => {
  const script = document.createElement("script");
  script.textContent = "window.inlineRan = true";
  document.body.append(script);
  return true;
})()`)
	isViolation := func(p string) bool { return strings.Contains(p, "Content Security Policy") }
	var problems []string
	deadline := time.Now().Add(pageTimeout)
	for !slices.ContainsFunc(problems, isViolation) && time.Now().Before(deadline) {
		time.Sleep(pollInterval)
		problems = append(problems, tb.takeProblems()...)
	}
	if !slices.ContainsFunc(problems, isViolation) {
		t.Errorf("recorded problems %q, want a Content Security Policy violation", problems)
	}
	if eval[bool](tb, `window.inlineRan === true`) {
		t.Error("the inline script ran despite the policy")
	}
}
