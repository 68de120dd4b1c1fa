package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// A refused start shows the message next to the form and keeps what the
// admin typed. The browser reports the 400 response itself, and htmx logs
// nothing more.
func TestRefusedStartKeepsFormAndMessage(t *testing.T) {
	requireBrowser(t)
	s, tb := startAdminTab(t, serverOptions{})

	tb.fillStartForm("nora", "Nora Example", "not-an-email")
	// The browser's own email check would stop the submit first.
	eval[bool](tb, `(document.getElementById("start-form").noValidate = true)`)
	tb.click(startButton)
	tb.waitFor("the start error", pageTimeout, `document.querySelector("#start-errors").textContent.trim() !== ""`)

	if got := tb.text("#start-errors"); !strings.Contains(strings.ToLower(got), "email") {
		t.Errorf("the start error says %q, want it to name the email field", got)
	}
	for field, want := range map[string]string{"username": "nora", "full_name": "Nora Example", "email": "not-an-email"} {
		got := eval[string](tb, `document.querySelector('#start-form [name="`+field+`"]').value`)
		if got != want {
			t.Errorf("after the refused start the %s field holds %q, want %q", field, got, want)
		}
	}
	if n := tb.count(slotPanel); n != 0 {
		t.Errorf("the refused start showed %d panels, want none", n)
	}
	if list := s.onboardings(t, "nora"); len(list) != 0 {
		t.Errorf("the refused start stored %d onboardings, want none", len(list))
	}
	for _, p := range tb.takeProblems() {
		if !strings.Contains(p, "status of 400") || !strings.Contains(p, "/onboardings") {
			t.Errorf("the refused start logged %q in the browser, want only the 400 response", p)
		}
	}

	// With the email corrected, the start goes through and the old message
	// goes away.
	eval[bool](tb, `(document.querySelector('#start-form [name="email"]').value = "nora@example.org", true)`)
	tb.click(startButton)
	tb.waitPanel(slotPanel)
	if got := strings.TrimSpace(tb.text("#start-errors")); got != "" {
		t.Errorf("after the successful start the form still shows %q", got)
	}
}

// A start form that comes back with the key of an earlier start, as the
// Back button brings it, cannot start another tester. The error names both
// testers, the form gets a fresh key, and the next press starts the tester.
func TestStaleFormKeyGetsAFreshOne(t *testing.T) {
	requireBrowser(t)
	s, tb := startAdminTab(t, serverOptions{})

	oldKey := eval[string](tb, `document.getElementById("form-key").value`)
	tb.startOnboarding("otto", "Otto Example", "otto@example.org")
	eval[bool](tb, `(document.getElementById("form-key").value = `+strconv.Quote(oldKey)+`, true)`)

	tb.fillStartForm("olga", "Olga Example", "olga@example.org")
	tb.click(startButton)
	tb.waitFor("the start error", pageTimeout, `document.querySelector("#start-errors").textContent.trim() !== ""`)
	if got := tb.text("#start-errors"); !strings.Contains(got, "otto") || !strings.Contains(got, "olga") {
		t.Errorf("the start error says %q, want it to name otto and olga", got)
	}
	if key := eval[string](tb, `document.getElementById("form-key").value`); key == oldKey || key == "" {
		t.Fatalf("the form key is %q after the error, want a fresh one", key)
	}
	if list := s.onboardings(t, "olga"); len(list) != 0 {
		t.Errorf("the stale form stored %d onboardings for olga, want none", len(list))
	}
	for _, p := range tb.takeProblems() {
		if !strings.Contains(p, "status of 400") {
			t.Errorf("the stale form logged %q in the browser, want only the 400 response", p)
		}
	}

	tb.click(startButton)
	tb.waitFor("olga's panel", pageTimeout, `[...document.querySelectorAll("#panel-slot section.panel")]`+
		`.some(p => p.textContent.includes("olga"))`)
	if list := s.onboardings(t, "olga"); len(list) != 1 {
		t.Errorf("%d onboardings for olga after the second press, want 1", len(list))
	}
}
