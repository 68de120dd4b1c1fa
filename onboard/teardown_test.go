package onboard_test

import (
	"context"
	"testing"
	"time"

	"deployer/onboard"
)

func TestFailedTeardownStaysVisibleAndRetries(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	res, err := e.runner.StartOnboarding(ctx, newTester("ravi"))
	if err != nil {
		t.Fatal(err)
	}
	e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
	before, _ := e.svc.Capacity(ctx, "1")

	if err := e.sim.SetFault(ctx, onboard.StageTeardown, 1, ""); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Teardown(ctx, "ravi")
	if onboard.ErrorCode(err) != onboard.EGridFailed {
		t.Fatalf("teardown with a fault: %v, want grid_failed", err)
	}
	tester, _ := e.svc.Tester(ctx, "ravi")
	if tester.Deployment.State != onboard.DeploymentTeardownFail {
		t.Errorf("deployment %s, want teardown_failed", tester.Deployment.State)
	}
	if tester.Deployment.Error == "" {
		t.Error("the failed teardown shows no reason")
	}
	if len(tester.Deployment.Contracts) != 3 {
		t.Errorf("%d contracts kept after the failed teardown, want 3", len(tester.Deployment.Contracts))
	}
	after, _ := e.svc.Capacity(ctx, "1")
	if after.FreeSlots != before.FreeSlots {
		t.Errorf("free slots went from %d to %d although the grid did not confirm", before.FreeSlots, after.FreeSlots)
	}

	if _, err := e.svc.Teardown(ctx, "ravi"); err != nil {
		t.Fatalf("retry teardown: %v", err)
	}
	tester, _ = e.svc.Tester(ctx, "ravi")
	if tester.Deployment.State != onboard.DeploymentNone || len(tester.Deployment.Contracts) != 0 {
		t.Errorf("after the retry: deployment %s with %d contracts, want none and 0",
			tester.Deployment.State, len(tester.Deployment.Contracts))
	}
	if tester.InstallState != onboard.InstallNone || tester.CockpitURL != "" {
		t.Errorf("after teardown: install %s cockpit %q, want none and empty", tester.InstallState, tester.CockpitURL)
	}
	freed, _ := e.svc.Capacity(ctx, "1")
	if freed.FreeSlots != before.FreeSlots+onboard.BundleSlots {
		t.Errorf("free slots %d after teardown, want %d", freed.FreeSlots, before.FreeSlots+onboard.BundleSlots)
	}
	if _, err := e.svc.Tester(ctx, "ravi"); err != nil {
		t.Errorf("the account went away with the teardown: %v", err)
	}
}
