package e2e

import "testing"

func TestLoginShowsCapacityReadout(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")

	tb.login(s.URL)

	// An empty node of 16 slots has room for 8 bundles of 2 slots.
	want := "online node 1 · 0 of 16 slots used · room for 8 more testers"
	if got := tb.text("#capacity .readout"); got != want {
		t.Errorf("capacity readout %q, want %q", got, want)
	}
	if eval[bool](tb, `document.querySelector('`+startButton+`').disabled`) {
		t.Error("the Add and set up button is disabled on an online, empty node")
	}
}
