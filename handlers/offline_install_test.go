package handlers_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// readyTesterOnOfflineNode starts a deployer, onboards username to ready
// on node 1, then takes the node offline in the simulated grid.
func readyTesterOnOfflineNode(t *testing.T, username string) *testkit.Server {
	t.Helper()
	s := testkit.StartServer(t, testkit.Options{})
	o, status := s.Start(t, username)
	if status != http.StatusAccepted {
		t.Fatalf("start onboarding: status %d, want 202", status)
	}
	if done := s.WaitFinished(t, o.ID, 10*time.Second); done.Status != "succeeded" {
		t.Fatalf("onboarding ended %s, want succeeded", done.Status)
	}
	if status := s.API(t, http.MethodPost, "/api/sim/node", map[string]any{"node_id": "1", "online": false}, nil); status != http.StatusOK {
		t.Fatalf("take node 1 offline: status %d", status)
	}
	return s
}

func TestInstallOnOfflineSimNodeFails(t *testing.T) {
	s := readyTesterOnOfflineNode(t, "alice")

	r := apiJSON(t, s, http.MethodPost, "/api/testers/alice/install", "")
	if r.Status != http.StatusBadGateway {
		t.Fatalf("install on an offline node: status %d, want 502; body %s", r.Status, r.Body)
	}
	code, _, msg := errorJSON(t, r.Body)
	if code != "install_failed" {
		t.Errorf("code %q, want install_failed", code)
	}
	for _, want := range []string{"Node 1 is offline", "simulator panel", "Retry"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}

	if status := s.API(t, http.MethodPost, "/api/sim/node", map[string]any{"node_id": "1", "online": true}, nil); status != http.StatusOK {
		t.Fatalf("bring node 1 online: status %d", status)
	}
	var tester struct {
		InstallState string `json:"install_state"`
	}
	if status := s.API(t, http.MethodPost, "/api/testers/alice/install", nil, &tester); status != http.StatusOK {
		t.Fatalf("install once the node is online: status %d, want 200", status)
	}
	if tester.InstallState != "installed" {
		t.Errorf("install state %q after the retry, want installed", tester.InstallState)
	}
}

func TestPasswordResetOnOfflineSimNodeWarns(t *testing.T) {
	s := readyTesterOnOfflineNode(t, "bert")

	var reset struct {
		OneTimePassword string `json:"one_time_password"`
		Warning         string `json:"warning"`
	}
	if status := s.API(t, http.MethodPost, "/api/testers/bert/reset-password", nil, &reset); status != http.StatusOK {
		t.Fatalf("reset password: status %d, want 200", status)
	}
	if len(reset.OneTimePassword) < 16 {
		t.Errorf("one-time password %q, want the new password despite the warning", reset.OneTimePassword)
	}
	if !strings.Contains(reset.Warning, "node 1 is offline") || !strings.Contains(reset.Warning, "Install again") {
		t.Errorf("warning %q, want it to say the node is offline and to press Install again", reset.Warning)
	}
}
