package e2e

import (
	"fmt"
	"testing"
)

func TestMarkupInFullNameShownAsText(t *testing.T) {
	requireBrowser(t)
	const fullName = `<img src=x onerror=alert(1)><b>bold</b>`
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)

	id := tb.startOnboarding("mallory", fullName, "mallory@example.org")
	tb.waitPanelStatus(id, "succeeded", flowTimeout)
	if got := s.tester(t, "mallory").FullName; got != fullName {
		t.Errorf("API full name %q, want %q stored as typed", got, fullName)
	}
	checkNoMarkup(t, tb, panelSelector(id))

	// The testers table refreshes itself after the stream's messages.
	tb.waitFor("the testers table lists the full name as text", pageTimeout, fmt.Sprintf(
		`[...document.querySelectorAll("#testers-table td")].some(td => td.textContent === %q)`, fullName))
	checkNoMarkup(t, tb, "#testers-table")

	tb.navigate(s.URL + "/testers/mallory")
	got := eval[string](tb, `[...document.querySelectorAll("#tester-detail dt")]
  .find(dt => dt.textContent === "Full name")?.nextElementSibling?.textContent ?? ""`)
	if got != fullName {
		t.Errorf("tester page shows the full name %q, want %q as text", got, fullName)
	}
	checkNoMarkup(t, tb, "#tester-detail")

	if n := tb.count("img"); n != 0 {
		t.Errorf("the tester page has %d img elements, want none", n)
	}
	if dialogs := tb.openedDialogs(); len(dialogs) != 0 {
		t.Errorf("dialogs opened: %q", dialogs)
	}
}

// checkNoMarkup checks that the element that matches the CSS selector holds
// no element made from the full name's markup.
func checkNoMarkup(t *testing.T, tb *tab, selector string) {
	t.Helper()
	if n := tb.count(selector); n == 0 {
		t.Fatalf("nothing matches %s", selector)
	}
	if n := tb.count(selector + " img, " + selector + " b"); n != 0 {
		t.Errorf("%s holds %d img or b elements made from the full name", selector, n)
	}
}
