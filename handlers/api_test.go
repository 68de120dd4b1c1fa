package handlers_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

type capacity struct {
	Online         bool   `json:"online"`
	Reason         string `json:"reason"`
	TotalSlots     int    `json:"total_slots"`
	FreeSlots      int    `json:"free_slots"`
	ReservedSlots  int    `json:"reserved_slots"`
	RoomForTesters int    `json:"room_for_testers"`
}

type streamEvent struct {
	ID      int64  `json:"id"`
	Kind    string `json:"kind"`
	Stage   string `json:"stage"`
	Status  string `json:"status"`
	Message string `json:"message"`
	TS      string `json:"ts"`
}

func TestOnboardingThroughAPIEndToEnd(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "deployer.db")
	s := testkit.StartServer(t, testkit.Options{Delay: 20 * time.Millisecond, DBPath: dbPath})

	var before capacity
	if status := s.API(t, http.MethodGet, "/api/nodes/1/capacity", nil, &before); status != http.StatusOK {
		t.Fatalf("capacity: status %d", status)
	}
	o, status := s.Start(t, "alice")
	if status != http.StatusAccepted {
		t.Fatalf("start: status %d, want 202", status)
	}
	if len(o.OneTimePassword) < 16 {
		t.Fatalf("one-time password has %d characters, want 16 or more", len(o.OneTimePassword))
	}

	resp := s.Stream(t, "/api/onboardings/"+o.ID+"/events", nil)
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/event-stream") {
		t.Errorf("content type %q, want text/event-stream", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", got)
	}
	if got := resp.Header.Get("X-Accel-Buffering"); got != "no" {
		t.Errorf("X-Accel-Buffering %q, want no", got)
	}

	r := testkit.NewSSEReader(resp.Body)
	var done []string
	var lastID int64
	var final map[string]any
	for {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("read stream after %v: %v", done, err)
		}
		if e.ID <= lastID {
			t.Fatalf("event id %d after %d, want rising ids", e.ID, lastID)
		}
		lastID = e.ID
		if e.Name == "done" {
			if err := json.Unmarshal([]byte(e.Data), &final); err != nil {
				t.Fatalf("done event data: %v", err)
			}
			break
		}
		var ev streamEvent
		if err := json.Unmarshal([]byte(e.Data), &ev); err != nil {
			t.Fatalf("event %d data %q: %v", e.ID, e.Data, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev.TS); err != nil {
			t.Errorf("event %d ts %q is not RFC 3339: %v", e.ID, ev.TS, err)
		}
		if ev.Kind == "stage" && ev.Status == "done" {
			done = append(done, ev.Stage)
		}
	}
	if got := strings.Join(done, ","); got != "adding,provisioning,installing,ready" {
		t.Errorf("stages done in order %q, want adding,provisioning,installing,ready", got)
	}
	if final["status"] != "succeeded" {
		t.Errorf("final status %v, want succeeded", final["status"])
	}
	if want := "https://alice.gw.sim.test/"; final["cockpit_url"] != want {
		t.Errorf("cockpit URL %v, want %s", final["cockpit_url"], want)
	}

	var after capacity
	s.API(t, http.MethodGet, "/api/nodes/1/capacity", nil, &after)
	if before.FreeSlots-after.FreeSlots != 2 {
		t.Errorf("free slots went from %d to %d, want exactly 2 fewer", before.FreeSlots, after.FreeSlots)
	}
	if after.ReservedSlots != 0 {
		t.Errorf("reserved slots %d after success, want 0", after.ReservedSlots)
	}

	var tester map[string]any
	s.API(t, http.MethodGet, "/api/testers/alice", nil, &tester)
	if tester["cockpit_url"] != "https://alice.gw.sim.test/" || tester["install_state"] != "installed" {
		t.Errorf("tester %v, want installed with the cockpit URL", tester)
	}

	// The one-time password is in no log line, event or database file.
	s.Close(t)
	if strings.Contains(s.Logs.String(), o.OneTimePassword) {
		t.Error("log output contains the one-time password")
	}
	files, _ := filepath.Glob(dbPath + "*")
	if len(files) == 0 {
		t.Fatal("no database files found")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(o.OneTimePassword)) {
			t.Errorf("%s contains the one-time password", filepath.Base(f))
		}
	}
}

func TestAPIRejectsBadInputNamingTheField(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	cases := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"uppercase username", map[string]any{"username": "Bad_Name!", "full_name": "X", "email": "x@example.org"}, "username"},
		{"short username", map[string]any{"username": "ab", "full_name": "X", "email": "x@example.org"}, "username"},
		{"trailing hyphen", map[string]any{"username": "abc-", "full_name": "X", "email": "x@example.org"}, "username"},
		{"missing full name", map[string]any{"username": "newbie", "email": "x@example.org"}, "full_name"},
		{"bad email", map[string]any{"username": "newbie", "full_name": "New Bie", "email": "not-an-email"}, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body struct {
				Error struct{ Code, Message, Field string } `json:"error"`
			}
			status := s.API(t, http.MethodPost, "/api/testers", tc.body, &body)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", status)
			}
			if body.Error.Code != "invalid" || body.Error.Field != tc.field {
				t.Errorf("error %+v, want code invalid on field %s", body.Error, tc.field)
			}
			if !strings.Contains(strings.ToLower(body.Error.Message), strings.ReplaceAll(tc.field, "_", " ")) {
				t.Errorf("message %q does not name the field %s", body.Error.Message, tc.field)
			}
		})
	}
	var list struct{ Testers []any }
	s.API(t, http.MethodGet, "/api/testers", nil, &list)
	if len(list.Testers) != 0 {
		t.Errorf("%d testers stored after rejected input, want 0", len(list.Testers))
	}
}

func TestCreateOrRegisterTester(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	var created map[string]any
	if status := s.API(t, http.MethodPost, "/api/testers",
		map[string]any{"username": "carol", "full_name": "Carol C", "email": "carol@example.org"}, &created); status != http.StatusCreated {
		t.Fatalf("create: status %d, want 201", status)
	}
	if p, _ := created["one_time_password"].(string); len(p) < 16 {
		t.Errorf("one-time password %q, want 16 or more characters", p)
	}
	var again map[string]any
	if status := s.API(t, http.MethodPost, "/api/testers", map[string]any{"username": "carol"}, &again); status != http.StatusOK {
		t.Fatalf("register existing: status %d, want 200", status)
	}
	if _, ok := again["one_time_password"]; ok {
		t.Error("registering an existing account returned a one-time password")
	}
	if again["full_name"] != "Carol C" {
		t.Errorf("existing account changed: full name %v", again["full_name"])
	}
}

func TestRoutesNeedCredentials(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/api/testers", "/api/nodes/1/capacity", "/api/onboardings"} {
		resp, err := client.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"unauthorized"`) {
			t.Errorf("GET %s: status %d body %s, want 401 with a JSON error", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/", "/testers/alice", "/audit"} {
		resp, err := client.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("GET %s: status %d location %q, want a redirect to /login", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, err := client.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: status %d, want 200 without credentials", resp.StatusCode)
	}
}
