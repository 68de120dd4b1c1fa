package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// checkStartBlocked checks that the start button is disabled, that the
// form shows the reason next to it and in its title, that the reason
// contains want, and that pressing the button sends nothing.
func checkStartBlocked(t *testing.T, tb *tab, s *server, want string) {
	t.Helper()
	if !eval[bool](tb, `document.querySelector('`+startButton+`').disabled`) {
		t.Errorf("the Add and set up button is enabled, want disabled")
	}
	reason := tb.text("#capacity .blocked-reason")
	if !strings.Contains(reason, want) {
		t.Errorf("the form shows the reason %q, want it to contain %q", reason, want)
	}
	title := eval[string](tb, `document.querySelector('`+startButton+`').title`)
	if title != reason {
		t.Errorf("the button's title is %q, want the reason %q", title, reason)
	}

	tb.fillStartForm("grace", "Grace Example", "grace@example.org")
	pressed := time.Now()
	tb.click(startButton)
	tb.settleNetwork(s.URL)
	for _, r := range tb.requestsTo(s.URL + "/onboardings") {
		if r.Method == http.MethodPost && r.At.After(pressed) {
			t.Errorf("pressing the disabled button sent %s %s", r.Method, r.URL)
		}
	}
	if n := tb.count(slotPanel); n != 0 {
		t.Errorf("pressing the disabled button showed %d panels, want none", n)
	}
	if list := s.onboardings(t, "grace"); len(list) != 0 {
		t.Errorf("pressing the disabled button started %d onboardings, want none", len(list))
	}
}

func TestStartBlockedWhileNodeOffline(t *testing.T) {
	requireBrowser(t)
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	tb := b.newTab("admin")
	tb.login(s.URL)
	if eval[bool](tb, `document.querySelector('`+startButton+`').disabled`) {
		t.Fatal("the Add and set up button is disabled on an online, empty node")
	}

	// The readout refreshes itself, so the page shows the change without a
	// reload.
	s.mustAPI(t, http.MethodPost, "/api/sim/node", map[string]any{"node_id": "1", "online": false}, nil)
	tb.waitText("#capacity .readout", "offline", pageTimeout)
	readout := tb.text("#capacity .readout")
	if strings.Contains(readout, "room for") {
		t.Errorf("the offline readout %q still offers room", readout)
	}
	checkStartBlocked(t, tb, s, "not usable")

	s.mustAPI(t, http.MethodPost, "/api/sim/node", map[string]any{"node_id": "1", "online": true}, nil)
	tb.waitText("#capacity .readout", "room for 8 more testers", pageTimeout)
	tb.waitFor("the Add and set up button enabled again", pageTimeout,
		`!document.querySelector('`+startButton+`').disabled`)
}

func TestStartBlockedWhenNoRoom(t *testing.T) {
	t.Run("no slots", func(t *testing.T) {
		requireBrowser(t)
		s := startServer(t, serverOptions{})
		s.mustAPI(t, http.MethodPost, "/api/sim/node", map[string]any{"node_id": "1", "total_slots": 0}, nil)
		b := newBrowser(t, s.URL)
		tb := b.newTab("admin")
		tb.login(s.URL)

		tb.waitText("#capacity .readout", "room for 0 more testers", pageTimeout)
		checkStartBlocked(t, tb, s, "no room for another tester")
	})

	t.Run("node filled", func(t *testing.T) {
		requireBrowser(t)
		// Two slots hold exactly one tester.
		s := startServer(t, serverOptions{Slots: 2})
		b := newBrowser(t, s.URL)
		tb := b.newTab("admin")
		tb.login(s.URL)
		tb.waitText("#capacity .readout", "room for 1 more tester", pageTimeout)

		id := tb.startOnboarding("henry", "Henry Example", "henry@example.org")
		tb.waitPanelStatus(id, "succeeded", flowTimeout)
		// The readout and the button follow the stream's messages; a fresh
		// page then gets an empty form.
		tb.waitText("#capacity .readout", "room for 0 more testers", pageTimeout)
		tb.waitFor("the Add and set up button disabled", pageTimeout,
			`document.querySelector('`+startButton+`').disabled`)
		tb.navigate(s.URL + "/")
		checkStartBlocked(t, tb, s, "no room for another tester")
	})
}

// The capacity readout inside the start form refreshes every few seconds.
// What the admin typed, and the message of a refused start, stay through
// the refresh.
func TestReadoutRefreshKeepsTypedFields(t *testing.T) {
	requireBrowser(t)
	s, tb := startAdminTab(t, serverOptions{})

	tb.fillStartForm("hedda", "Hedda Example", "not-an-email")
	eval[bool](tb, `(document.getElementById("start-form").noValidate = true)`)
	tb.click(startButton)
	tb.waitFor("the start error", pageTimeout, `document.querySelector("#start-errors").textContent.trim() !== ""`)
	tb.takeProblems()

	before := len(tb.requestsTo(s.URL + "/capacity"))
	eval[bool](tb, `(document.body.dispatchEvent(new CustomEvent("deployer:changed")), true)`)
	tb.waitFor("a readout refresh", pageTimeout, `!document.querySelector("#capacity.htmx-request")`)
	tb.settleNetwork(s.URL)
	tb.waitSettled()
	if after := len(tb.requestsTo(s.URL + "/capacity")); after <= before {
		t.Fatalf("the readout sent %d requests after the change, want a refresh", after-before)
	}

	for field, want := range map[string]string{"username": "hedda", "full_name": "Hedda Example", "email": "not-an-email"} {
		got := eval[string](tb, `document.querySelector('#start-form [name="`+field+`"]').value`)
		if got != want {
			t.Errorf("after the readout refreshed the %s field holds %q, want %q", field, got, want)
		}
	}
	if got := tb.text("#start-errors"); !strings.Contains(strings.ToLower(got), "email") {
		t.Errorf("after the readout refreshed the start error says %q, want the email message kept", got)
	}
}
