package handlers_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

func TestAuditPageFiltersAndExport(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)
	for _, name := range []string{"alice", "bob"} {
		if status := s.API(t, http.MethodPost, "/api/testers",
			map[string]any{"username": name, "full_name": "T " + name, "email": name + "@example.org"}, nil); status != http.StatusCreated {
			t.Fatalf("create %s: status %d", name, status)
		}
	}
	s.API(t, http.MethodPost, "/api/testers/nobody/provision", map[string]any{"node_id": "1"}, nil)

	page := send(t, s.URL, request{Method: http.MethodGet, Path: "/audit?tester=alice", Cookie: sess.ID})
	if page.Status != http.StatusOK {
		t.Fatalf("audit page: status %d", page.Status)
	}
	if !strings.Contains(page.Body, `<a href="/testers/alice">alice</a>`) {
		t.Error("the filtered page does not list alice's entry")
	}
	if strings.Contains(page.Body, `<a href="/testers/bob">`) {
		t.Error("the page filtered to alice lists bob's entry")
	}
	if !strings.Contains(page.Body, `href="/api/audit?tester=alice"`) {
		t.Errorf("the export link does not keep the filter: %s", excerpt(page.Body, "Export"))
	}

	entries := auditLog(t, s, "tester=nobody")
	if len(entries) != 1 {
		t.Fatalf("%d entries for nobody, want the failed provision", len(entries))
	}
	if e := entries[0]; e.Actor != "api" || e.Action != "tester.provision" || e.NodeID != "1" || e.Outcome != "not_found" {
		t.Errorf("entry %+v, want the API's provision of nobody on node 1, not found", e)
	}
	if got := auditLog(t, s, "action=admin.login&actor=admin"); len(got) != 1 || got[0].Detail != "from 127.0.0.1" {
		t.Errorf("login entries %+v, want the one login from 127.0.0.1", got)
	}

	var raw struct {
		Entries []struct{ Time string }
	}
	s.API(t, http.MethodGet, "/api/audit", nil, &raw)
	for _, e := range raw.Entries {
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
			t.Errorf("entry time %q is not RFC 3339: %v", e.Time, err)
		}
	}
}
