package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

func TestCapacityReadoutShowsRoomAndBlocksWhenNone(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Slots: 6})
	b := s.Login(t)

	status, page := b.Get(t, "/")
	if status != http.StatusOK {
		t.Fatalf("testers page: status %d", status)
	}
	if !strings.Contains(page, "room for 3 more testers") {
		t.Errorf("testers page has no readout with room for 3: %s", excerpt(page, "capacity"))
	}
	if disabledStart(page) {
		t.Error("the start button is disabled on a node with room")
	}

	cases := []struct {
		name   string
		body   map[string]any
		reason string
	}{
		{"no room", map[string]any{"node_id": "1", "total_slots": 1}, "no room for another tester"},
		{"offline", map[string]any{"node_id": "1", "online": false, "total_slots": 6}, "not usable (down)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if status := s.API(t, http.MethodPost, "/api/sim/node", tc.body, nil); status != http.StatusOK {
				t.Fatalf("sim node: status %d", status)
			}
			status, fragment := b.Get(t, "/capacity?node_id=1")
			if status != http.StatusOK {
				t.Fatalf("readout: status %d", status)
			}
			if !disabledStart(fragment) {
				t.Errorf("the start button is not disabled: %s", fragment)
			}
			if !strings.Contains(fragment, tc.reason) {
				t.Errorf("the readout does not say %q: %s", tc.reason, fragment)
			}
		})
	}
}

var startButton = regexp.MustCompile(`<button id="start-button" type="submit" class="primary"( disabled)?`)

// disabledStart reports whether the page's start button is disabled, or,
// for a readout fragment, whether the readout tells the button to be.
func disabledStart(html string) bool {
	if m := startButton.FindStringSubmatch(html); m != nil {
		return m[1] != ""
	}
	return strings.Contains(html, `data-can-start="false"`)
}

func excerpt(html, near string) string {
	i := strings.Index(html, near)
	if i < 0 {
		return "(" + near + " not found)"
	}
	return html[i:min(len(html), i+400)]
}

func TestStartFromThePageShowsTheLivePanel(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 20 * time.Millisecond})
	b := s.Login(t)
	form := url.Values{"username": {"yuki"}, "full_name": {"Yuki Y"}, "email": {"yuki@example.org"},
		"node_id": {"1"}, "form_key": {"key-1"}}
	status, body := b.Post(t, "/onboardings", form)
	if status != http.StatusOK {
		t.Fatalf("start: status %d: %s", status, body)
	}
	for _, want := range []string{`sse-connect="/onboardings/`, `sse-close="done"`, "One-time password for yuki",
		`id="form-key"`, `hx-swap-oob="true"`} {
		if !strings.Contains(body, want) {
			t.Errorf("start response lacks %q", want)
		}
	}
	password := regexp.MustCompile(`<code class="secret">([^<]+)</code>`).FindStringSubmatch(body)
	if password == nil || len(password[1]) < 16 {
		t.Fatalf("no one-time password of 16 or more characters in the panel")
	}

	// The same form again is the same onboarding, without the password.
	status, again := b.Post(t, "/onboardings", form)
	if status != http.StatusOK {
		t.Fatalf("resubmit: status %d", status)
	}
	if strings.Contains(again, password[1]) || strings.Contains(again, "One-time password") {
		t.Error("a resubmitted form showed the one-time password again")
	}
	if !strings.Contains(again, "already started") {
		t.Error("a resubmitted form did not say the onboarding was already started")
	}
	if !strings.Contains(again, "Reset password") {
		t.Error("a resubmitted form did not say how to get a missed one-time password")
	}
	var list struct{ Onboardings []any }
	s.API(t, http.MethodGet, "/api/onboardings", nil, &list)
	if len(list.Onboardings) != 1 {
		t.Errorf("%d onboardings after a resubmitted form, want 1", len(list.Onboardings))
	}
}

var formKeyField = regexp.MustCompile(`id="form-key" name="form_key" value="([^"]+)" hx-swap-oob="true"`)

func TestStaleFormStartsNoOtherTester(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	b := s.Login(t)
	form := url.Values{"username": {"yuri"}, "full_name": {"Yuri Y"}, "email": {"yuri@example.org"},
		"node_id": {"1"}, "form_key": {"key-1"}}
	if status, body := b.Post(t, "/onboardings", form); status != http.StatusOK {
		t.Fatalf("start: status %d: %s", status, body)
	}

	// The Back button brings the form back with its old key, and the admin
	// types another tester.
	form.Set("username", "yvette")
	form.Set("full_name", "Yvette Y")
	form.Set("email", "yvette@example.org")
	status, body := b.Post(t, "/onboardings", form)
	if status != http.StatusBadRequest {
		t.Fatalf("stale form for another tester: status %d, want 400: %s", status, body)
	}
	if !strings.Contains(body, "yuri") || !strings.Contains(body, "yvette") {
		t.Errorf("the message does not name both testers: %s", body)
	}
	fresh := formKeyField.FindStringSubmatch(body)
	if fresh == nil || fresh[1] == "key-1" {
		t.Fatalf("the answer gives the form no fresh key: %s", body)
	}
	if status := s.API(t, http.MethodGet, "/api/testers/yvette", nil, nil); status != http.StatusNotFound {
		t.Errorf("yvette after the rejected start: status %d, want 404", status)
	}

	form.Set("form_key", fresh[1])
	status, body = b.Post(t, "/onboardings", form)
	if status != http.StatusOK || !strings.Contains(body, "One-time password for yvette") {
		t.Errorf("start with the fresh key: status %d, want 200 with yvette's panel: %s", status, excerpt(body, "panel"))
	}
}

func TestStartFromThePageRejectsBadInputNearTheForm(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	b := s.Login(t)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/onboardings",
		strings.NewReader(url.Values{"username": {"Nope!"}, "node_id": {"1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", b.CSRF)
	req.Header.Set("X-Error-Target", "#start-errors")
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if got := resp.Header.Get("HX-Retarget"); got != "#start-errors" {
		t.Errorf("HX-Retarget %q, want #start-errors", got)
	}
}

func TestPerStepButtonsFinishAFailedOnboarding(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 10 * time.Millisecond})
	b := s.Login(t)
	if status := s.API(t, http.MethodPost, "/api/sim/faults", map[string]any{"stage": "provisioning", "times": 1}, nil); status != http.StatusOK {
		t.Fatalf("set fault: status %d", status)
	}
	o, _ := s.Start(t, "zane")
	if got := s.WaitFinished(t, o.ID, 10*time.Second); got.Status != "failed" {
		t.Fatalf("status %s, want failed", got.Status)
	}

	status, page := b.Get(t, "/testers/zane")
	if status != http.StatusOK || !strings.Contains(page, "Retry provisioning") || !strings.Contains(page, "Resume setup") {
		t.Fatalf("tester page: status %d, lacks Retry provisioning or Resume setup", status)
	}
	status, detail := b.Post(t, "/testers/zane/provision", url.Values{"node_id": {"1"}})
	if status != http.StatusOK || !strings.Contains(detail, `id="tester-detail"`) || !strings.Contains(detail, ">Install<") {
		t.Fatalf("provision: status %d, the tester block lacks the Install button", status)
	}
	status, detail = b.Post(t, "/testers/zane/install", nil)
	if status != http.StatusOK || !strings.Contains(detail, "https://zane.gw.sim.test/") {
		t.Fatalf("install: status %d, no cockpit URL in the tester block", status)
	}
	if !strings.Contains(detail, `data-copy="https://zane.gw.sim.test/"`) {
		t.Error("the cockpit URL has no Copy button")
	}
}

func TestFailedTeardownOffersOnlyItsRetry(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	b := s.Login(t)
	for _, stage := range []string{"installing", "teardown"} {
		if status := s.API(t, http.MethodPost, "/api/sim/faults", map[string]any{"stage": stage, "times": 1}, nil); status != http.StatusOK {
			t.Fatalf("set %s fault: status %d", stage, status)
		}
	}
	o, _ := s.Start(t, "gus")
	if got := s.WaitFinished(t, o.ID, 10*time.Second); got.Status != "failed" {
		t.Fatalf("status %s, want failed at installing", got.Status)
	}
	if status := s.API(t, http.MethodPost, "/api/testers/gus/teardown", nil, nil); status != http.StatusBadGateway {
		t.Fatalf("teardown with a fault: status %d, want 502", status)
	}

	status, page := b.Get(t, "/testers/gus")
	if status != http.StatusOK {
		t.Fatalf("tester page: status %d", status)
	}
	if !strings.Contains(page, "Retry teardown") {
		t.Error("the tester page does not offer Retry teardown")
	}
	if strings.Contains(page, "Resume setup") {
		t.Error("the tester page offers Resume setup, which cannot run before the teardown finishes")
	}
	if strings.Contains(page, "Install error") {
		t.Error("the tester page shows the install's error, whose advice to retry no longer applies")
	}
}

func TestDeleteTesterOnlyWithoutDeployment(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	o, _ := s.Start(t, "abel")
	s.WaitFinished(t, o.ID, 10*time.Second)

	var body struct{ Error struct{ Code string } }
	if status := s.API(t, http.MethodDelete, "/api/testers/abel", nil, &body); status != http.StatusConflict {
		t.Fatalf("delete with a deployment: status %d, want 409", status)
	}
	if status := s.API(t, http.MethodPost, "/api/testers/abel/teardown", nil, nil); status != http.StatusOK {
		t.Fatalf("teardown: status %d", status)
	}
	if status := s.API(t, http.MethodDelete, "/api/testers/abel", nil, nil); status != http.StatusNoContent {
		t.Fatalf("delete after teardown: status %d, want 204", status)
	}
	if status := s.API(t, http.MethodGet, "/api/testers/abel", nil, nil); status != http.StatusNotFound {
		t.Errorf("deleted tester: status %d, want 404", status)
	}
	var audit struct {
		Entries []struct{ Action, Outcome string }
	}
	s.API(t, http.MethodGet, "/api/audit?action=tester.delete", nil, &audit)
	if len(audit.Entries) != 2 || audit.Entries[0].Outcome != "ok" || audit.Entries[1].Outcome != "conflict" {
		t.Errorf("audit entries %+v, want the refused and the done delete", audit.Entries)
	}
}

func TestRepeatedInstallSendsNoSecondWelcome(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	o, _ := s.Start(t, "cleo")
	s.WaitFinished(t, o.ID, 10*time.Second)
	if status := s.API(t, http.MethodPost, "/api/testers/cleo/install", nil, nil); status != http.StatusOK {
		t.Fatalf("install again: status %d", status)
	}
	var outbox struct{ Messages []struct{ Tester string } }
	s.API(t, http.MethodGet, "/api/outbox", nil, &outbox)
	if len(outbox.Messages) != 1 {
		t.Errorf("%d welcome emails after a repeated install, want 1", len(outbox.Messages))
	}
}

func TestDeleteButtonOnlyWithoutContracts(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	b := s.Login(t)
	o, _ := s.Start(t, "dina")
	s.WaitFinished(t, o.ID, 10*time.Second)
	if _, page := b.Get(t, "/testers/dina"); strings.Contains(page, "Delete tester") {
		t.Error("a tester with a deployment is offered Delete")
	}
	s.API(t, http.MethodPost, "/api/testers/dina/teardown", nil, nil)
	_, page := b.Get(t, "/testers/dina")
	if !strings.Contains(page, "Delete tester") {
		t.Fatal("a tester without a deployment is not offered Delete")
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/testers/dina/delete", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", b.CSRF)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("HX-Redirect") != "/" {
		t.Errorf("delete: status %d, HX-Redirect %q; want 204 and /", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
}

func TestTestersListPagesAndSearches(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	b := s.Login(t)
	for i := 0; i < 120; i++ {
		body := map[string]any{"username": fmt.Sprintf("user%03d", i), "full_name": fmt.Sprintf("Person %03d", i),
			"email": fmt.Sprintf("p%03d@example.org", i)}
		if i == 7 {
			body["full_name"] = "Zora 100% Unique"
		}
		if status := s.API(t, http.MethodPost, "/api/testers", body, nil); status != http.StatusCreated {
			t.Fatalf("create tester %d: status %d", i, status)
		}
	}
	rows := regexp.MustCompile(`<td><a href="/testers/`)

	_, page := b.Get(t, "/")
	if n := len(rows.FindAllString(page, -1)); n != 50 {
		t.Errorf("first page lists %d testers, want 50", n)
	}
	if !strings.Contains(page, "page 1 of 3") || !strings.Contains(page, `<span class="count">120</span>`) {
		t.Error("the first page does not show page 1 of 3 and the count of 120")
	}
	if !strings.Contains(page, "/testers/user119") || strings.Contains(page, "/testers/user000") {
		t.Error("the first page does not show the newest testers first")
	}

	_, last := b.Get(t, "/testers-list?page=3")
	if n := len(rows.FindAllString(last, -1)); n != 20 {
		t.Errorf("last page lists %d testers, want 20", n)
	}
	_, past := b.Get(t, "/testers-list?page=99")
	if !strings.Contains(past, "page 3 of 3") {
		t.Error("a page past the end does not show the last page")
	}

	for query, want := range map[string]int{"zora 100%": 1, "100%": 1, "user01": 10, "_": 0, "p005@": 1} {
		_, found := b.Get(t, "/testers-list?q="+url.QueryEscape(query))
		if n := len(rows.FindAllString(found, -1)); n != want {
			t.Errorf("search %q lists %d testers, want %d", query, n, want)
		}
	}
	_, none := b.Get(t, "/testers-list?q=nobody-here")
	if !strings.Contains(none, `No tester matches "nobody-here".`) {
		t.Error("an empty search does not say that nothing matches")
	}
}

func TestExistingAccountGetsNoPassword(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	var reg map[string]any
	status := s.API(t, http.MethodPost, "/api/testers", map[string]any{"username": "omar", "full_name": "Omar O",
		"email": "omar@example.org", "account": "existing"}, &reg)
	if status != http.StatusOK {
		t.Fatalf("register an existing account: status %d, want 200", status)
	}
	if _, ok := reg["one_time_password"]; ok || reg["account"] != "existing" {
		t.Errorf("registration %v, want account existing without a one-time password", reg)
	}
	var bad struct{ Error struct{ Field string } }
	if status := s.API(t, http.MethodPost, "/api/testers", map[string]any{"username": "pia", "full_name": "P",
		"email": "pia@example.org", "account": "borrowed"}, &bad); status != http.StatusBadRequest || bad.Error.Field != "account" {
		t.Errorf("an unknown account kind: status %d field %q, want 400 on account", status, bad.Error.Field)
	}

	b := s.Login(t)
	status, body := b.Post(t, "/onboardings", url.Values{"username": {"rhea"}, "full_name": {"Rhea R"},
		"email": {"rhea@example.org"}, "node_id": {"1"}, "account": {"existing"}})
	if status != http.StatusOK {
		t.Fatalf("start with an existing account: status %d", status)
	}
	if strings.Contains(body, "One-time password") {
		t.Error("the panel shows a one-time password for an existing account")
	}
	if !strings.Contains(body, "whose account already exists") {
		t.Error("the adding stage does not say the account already exists")
	}
	var list struct {
		Onboardings []struct{ ID string } `json:"onboardings"`
	}
	s.API(t, http.MethodGet, "/api/onboardings?username=rhea", nil, &list)
	if len(list.Onboardings) != 1 {
		t.Fatalf("%d onboardings for rhea, want 1", len(list.Onboardings))
	}
	s.WaitFinished(t, list.Onboardings[0].ID, 10*time.Second)
	if _, page := b.Get(t, "/testers/rhea"); strings.Contains(page, "Reset password") {
		t.Error("an existing account is offered Reset password")
	}
	var outbox struct {
		Messages []struct{ Tester, Body string }
	}
	s.API(t, http.MethodGet, "/api/outbox", nil, &outbox)
	if len(outbox.Messages) != 1 || !strings.Contains(outbox.Messages[0].Body, "your existing account") {
		t.Errorf("welcome emails %+v, want one that points to the existing account", outbox.Messages)
	}
}

func TestCSRFTokenInTheQueryIsRejected(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	b := s.Login(t)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/testers/nobody/reset-password?_csrf="+url.QueryEscape(b.CSRF), nil)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a CSRF token in the query: status %d, want 403", resp.StatusCode)
	}
}

func TestJSONKeysMustMatchExactly(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	cases := map[string]string{
		"capitalized key": `{"Username":"zed","full_name":"Z","email":"z@example.org"}`,
		"repeated key":    `{"username":"zed","username":"zoe","full_name":"Z","email":"z@example.org"}`,
		"invalid UTF-8":   "{\"username\":\"zed\",\"full_name\":\"Z\xff\",\"email\":\"z@example.org\"}",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/testers", strings.NewReader(body))
			req.Header.Set("Authorization", "bearer "+testkit.Token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
		})
	}
	var list struct{ Testers []any }
	s.API(t, http.MethodGet, "/api/testers", nil, &list)
	if len(list.Testers) != 0 {
		t.Errorf("%d testers stored from rejected bodies, want 0", len(list.Testers))
	}
}

func TestFormFieldSentTwiceIsRejected(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	b := s.Login(t)
	status, _ := b.Post(t, "/onboardings", url.Values{"username": {"ann", "bob"}, "full_name": {"A"},
		"email": {"a@example.org"}, "node_id": {"1"}})
	if status != http.StatusBadRequest {
		t.Errorf("a form with username twice: status %d, want 400", status)
	}
}

func TestSimPanelSaysWhetherNodeWasAdded(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	for _, tc := range []struct{ node, want string }{
		{"1", "Node 1 updated: online, 8 slots."},
		{"999", "Node 999 added to the simulated grid: online, 8 slots."},
	} {
		r := htmxPost(t, s, sess, sess.CSRF, "/sim/node", url.Values{"node_id": {tc.node}, "total_slots": {"8"}})
		if r.Status != http.StatusOK {
			t.Fatalf("node %s: status %d: %s", tc.node, r.Status, r.Body)
		}
		if !strings.Contains(r.Body, tc.want) {
			t.Errorf("node %s: the panel lacks the notice %q:\n%s", tc.node, tc.want, r.Body)
		}
	}
}

func TestCapacityReadoutShowsSlotsOverTheTotal(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Slots: 8})
	b := s.Login(t)
	for _, name := range []string{"ulla", "umar", "uwe"} {
		o, status := s.Start(t, name)
		if status != http.StatusAccepted {
			t.Fatalf("start %s: status %d", name, status)
		}
		if o = s.WaitFinished(t, o.ID, 10*time.Second); o.Status != "succeeded" {
			t.Fatalf("onboarding of %s %s", name, o.Status)
		}
	}
	// The node's total shrinks under its three VMs of 2 slots each.
	if status := s.API(t, http.MethodPost, "/api/sim/node", map[string]any{"node_id": "1", "total_slots": 4}, nil); status != http.StatusOK {
		t.Fatalf("sim node: status %d", status)
	}
	_, fragment := b.Get(t, "/capacity?node_id=1")
	if !strings.Contains(fragment, "6 of 4 slots used") {
		t.Errorf("the readout hides the 6 slots in use: %s", fragment)
	}
	if !disabledStart(fragment) {
		t.Error("the start button is not disabled on a node over its total")
	}
}
