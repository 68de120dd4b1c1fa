package e2e

import (
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
}
