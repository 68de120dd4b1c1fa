package stack_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"deployer/grid"
	"deployer/onboard"
	"deployer/stack"
	"deployer/storage"
)

// deploySim opens a database in a temporary directory, sets up node 1 of a
// simulated grid with no delays, and deploys a VM for bob on it.
func deploySim(t *testing.T) (*grid.Sim, onboard.InstallRequest) {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "deployer.db"))
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	sim := grid.NewSim(db, 0, 16)
	if err := sim.EnsureNode(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	project, err := sim.Deploy(ctx, onboard.DeployRequest{
		NodeID: "1", Project: onboard.ProjectName("bob"), Username: "bob", RunID: "provision-1",
	}, func(onboard.Contract) error { return nil })
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	return sim, onboard.InstallRequest{
		Username: "bob", NodeID: "1", Gateway: project.Gateway, VMAddress: project.VMAddress, RunID: "install-1",
	}
}

func TestSimInstallOnOnlineNode(t *testing.T) {
	sim, req := deploySim(t)
	url, err := stack.NewSim(sim, 0).Install(context.Background(), req, func(string) {})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if want := "https://" + req.Gateway + "/"; url != want {
		t.Errorf("cockpit URL %q, want %q", url, want)
	}
}

func TestSimInstallOnOfflineNodeFails(t *testing.T) {
	sim, req := deploySim(t)
	ctx := context.Background()
	offline := false
	if _, err := sim.SetNode(ctx, "1", &offline, nil); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetFault(ctx, onboard.StageInstalling, 1, ""); err != nil {
		t.Fatal(err)
	}

	var lines []string
	url, err := stack.NewSim(sim, 0).Install(ctx, req, func(line string) { lines = append(lines, line) })
	if err == nil {
		t.Fatalf("install succeeded with cockpit %s, want an error", url)
	}
	if code := onboard.ErrorCode(err); code != onboard.EInstallFailed {
		t.Errorf("code %q, want %q", code, onboard.EInstallFailed)
	}
	msg := onboard.ErrorMessage(err)
	for _, want := range []string{"Node 1 is offline", req.VMAddress, "simulator panel", "/api/sim/node", "Retry"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "node 1 is offline") {
		t.Errorf("progress lines %q, want one saying node 1 is offline", lines)
	}
	faults, err := sim.Faults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(faults) != 1 || faults[0].Remaining != 1 {
		t.Errorf("faults %+v after the failed install, want the installing fault still pending once", faults)
	}
}
