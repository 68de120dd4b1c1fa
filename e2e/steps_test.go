package e2e

import (
	"testing"
)

func TestTesterPageResetPasswordAndTeardown(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)
	id := tb.startOnboarding("jane", "Jane Example", "jane@example.org")
	tb.waitPanelStatus(id, "succeeded", flowTimeout)
	first := tb.text(panelSelector(id) + "-otp .secret")

	tb.navigate(s.URL + "/testers/jane")
	tb.acceptDialog("Make a new one-time password?")
	tb.click(`#steps button[hx-post="/testers/jane/reset-password"]`)
	tb.waitFor("the new one-time password", pageTimeout, `!!document.querySelector("#password-slot .secret")`)
	second := tb.text("#password-slot .secret")
	if len(second) < 16 || second == first {
		t.Errorf("reset password shows %q, want a new password of 16 characters or more", second)
	}
	tb.click(`#password-slot button.dismiss`)
	tb.waitFor("the new password dismissed", pageTimeout, `!document.querySelector("#password-slot .secret")`)

	tb.acceptDialog("Cancel every contract of this tester's deployment?")
	tb.click(`#steps button[hx-post="/testers/jane/teardown"]`)
	tb.waitFor("the deployment torn down", flowTimeout,
		`!document.querySelector('#steps button[hx-post="/testers/jane/teardown"]') && !document.querySelector("#tester-detail .htmx-request")`)
	if got := s.tester(t, "jane").Deployment.State; got == "active" {
		t.Errorf("API deployment state %q after teardown", got)
	}
	if got := tb.text(`#steps form button[type="submit"]`); got != "Provision" {
		t.Errorf("after teardown the provision button says %q, want Provision", got)
	}

	tb.navigate(s.URL + "/")
	tb.waitText("#capacity .readout", "room for 8 more testers", pageTimeout)
}
