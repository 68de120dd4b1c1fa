package e2e

import (
	"regexp"
	"testing"
)

func TestLoginShowsCapacityReadout(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")

	tb.login(s.URL)

	readout := tb.text("#capacity .readout")
	if !regexp.MustCompile(`room for \d+ more testers?`).MatchString(readout) {
		t.Errorf("capacity readout %q, want it to say the room, as in \"room for 8 more testers\"", readout)
	}
	if want := "room for 8 more testers"; !regexp.MustCompile(want).MatchString(readout) {
		t.Errorf("capacity readout %q, want %q for an empty node of 16 slots", readout, want)
	}
}
