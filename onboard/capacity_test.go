package onboard_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/onboard"
)

func setSlots(t *testing.T, e *env, slots int) {
	t.Helper()
	if _, err := e.sim.SetNode(context.Background(), "1", nil, &slots); err != nil {
		t.Fatal(err)
	}
}

func TestTwoStartsForTheLastBundle(t *testing.T) {
	e := newEnv(t, envOptions{slots: 2})
	ctx := context.Background()
	for round := 0; round < 100; round++ {
		names := [2]string{fmt.Sprintf("first%d", round), fmt.Sprintf("second%d", round)}
		var wg sync.WaitGroup
		results := [2]onboard.StartResult{}
		errs := [2]error{}
		for i, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = e.runner.StartOnboarding(ctx, newTester(name))
			}()
		}
		wg.Wait()

		succeeded, refused := 0, 0
		for i := range names {
			if errs[i] != nil {
				if code := onboard.ErrorCode(errs[i]); code != onboard.ENodeFull {
					t.Fatalf("round %d: start %s: %v, want node_full", round, names[i], errs[i])
				}
				refused++
				continue
			}
			o := e.waitFinished(t, results[i].Onboarding.ID, 10*time.Second)
			switch {
			case o.Status == onboard.StatusSucceeded:
				succeeded++
			case o.ErrorCode == onboard.ENodeFull:
				refused++
			default:
				t.Fatalf("round %d: %s ended %s (%s: %s)", round, names[i], o.Status, o.ErrorCode, o.ErrorMessage)
			}
		}
		if succeeded != 1 || refused != 1 {
			t.Fatalf("round %d: %d provisioned and %d refused, want 1 and 1", round, succeeded, refused)
		}
		if n := countVMs(e.liveContracts(t)); n != 1 {
			t.Fatalf("round %d: %d VMs on a node with room for 1", round, n)
		}

		// Free the node for the next round.
		for _, name := range names {
			tester, err := e.svc.Tester(ctx, name)
			if err == nil && tester.HasDeployment() {
				if _, err := e.svc.Teardown(ctx, name); err != nil {
					t.Fatalf("round %d: teardown %s: %v", round, name, err)
				}
			}
		}
	}
}

func TestNodeOfflineAfterTheFormLoaded(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	c, err := e.svc.Capacity(ctx, "1")
	if err != nil || !c.Online || c.RoomForTesters == 0 {
		t.Fatalf("capacity before: %+v, %v; want an online node with room", c, err)
	}
	offline := false
	if _, err := e.sim.SetNode(ctx, "1", &offline, nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.runner.StartOnboarding(ctx, newTester("kim"))
	if onboard.ErrorCode(err) != onboard.ENodeOffline {
		t.Fatalf("start on an offline node: %v, want node_offline", err)
	}
	if n := len(e.liveContracts(t)); n != 0 {
		t.Errorf("%d contracts after a refused start, want 0", n)
	}
	if _, err := e.svc.Tester(ctx, "kim"); onboard.ErrorCode(err) != onboard.ENotFound {
		t.Errorf("the refused start stored the tester: %v", err)
	}

	// The Provision button refuses the same way.
	if _, err := e.svc.CreateOrRegister(ctx, onboard.TesterInput{Username: "kim", FullName: "Kim", Email: "kim@example.org"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Provision(ctx, "kim", "1"); onboard.ErrorCode(err) != onboard.ENodeOffline {
		t.Errorf("provision on an offline node: %v, want node_offline", err)
	}
	tester, _ := e.svc.Tester(ctx, "kim")
	if tester.Deployment.State != onboard.DeploymentNone {
		t.Errorf("deployment %s after a refused provision, want none", tester.Deployment.State)
	}
}

func TestReservationReleasedAfterProvisionFailure(t *testing.T) {
	e := newEnv(t, envOptions{slots: 2})
	ctx := context.Background()
	if err := e.sim.SetFault(ctx, onboard.StageProvisioning, 1, ""); err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.StartOnboarding(ctx, newTester("lee"))
	if err != nil {
		t.Fatal(err)
	}
	if o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second); o.Status != onboard.StatusFailed {
		t.Fatalf("status %s, want failed", o.Status)
	}
	c, _ := e.svc.Capacity(ctx, "1")
	if c.ReservedSlots != 0 || c.RoomForTesters != 1 {
		t.Fatalf("after the failure: reserved %d, room %d; want 0 and 1", c.ReservedSlots, c.RoomForTesters)
	}
	res, err = e.runner.StartOnboarding(ctx, newTester("max"))
	if err != nil {
		t.Fatalf("a new start on the freed room: %v", err)
	}
	if o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second); o.Status != onboard.StatusSucceeded {
		t.Fatalf("new start: %s (%s)", o.Status, o.ErrorMessage)
	}
}

func TestCapacityMatchesGridAfterOnboardingsAndTeardowns(t *testing.T) {
	e := newEnv(t, envOptions{slots: 24})
	ctx := context.Background()
	var ids []string
	for i := 0; i < 10; i++ {
		res, err := e.runner.StartOnboarding(ctx, newTester(fmt.Sprintf("user%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Onboarding.ID)
	}
	for _, id := range ids {
		if o := e.waitFinished(t, id, 20*time.Second); o.Status != onboard.StatusSucceeded {
			t.Fatalf("onboarding %s: %s (%s)", id, o.Status, o.ErrorMessage)
		}
	}
	for i := 0; i < 5; i++ {
		if _, err := e.svc.Teardown(ctx, fmt.Sprintf("user%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := e.svc.Capacity(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	node, err := e.db.SimNode(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if c.TotalSlots != node.TotalSlots || c.FreeSlots != node.TotalSlots-node.UsedSlots {
		t.Errorf("capacity total %d free %d, simulated grid total %d used %d", c.TotalSlots, c.FreeSlots,
			node.TotalSlots, node.UsedSlots)
	}
	if c.FreeSlots != 24-5*onboard.BundleSlots || c.ReservedSlots != 0 || c.RoomForTesters != 7 {
		t.Errorf("free %d reserved %d room %d, want 14, 0, 7", c.FreeSlots, c.ReservedSlots, c.RoomForTesters)
	}
}

func TestNodeDegradedAfterFailuresInARow(t *testing.T) {
	e := newEnv(t, envOptions{opts: onboard.Options{DegradeAfter: 2}})
	ctx := context.Background()
	if err := e.sim.SetFault(ctx, onboard.StageProvisioning, 2, ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nia", "oto"} {
		res, err := e.runner.StartOnboarding(ctx, newTester(name))
		if err != nil {
			t.Fatal(err)
		}
		e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
	}
	c, _ := e.svc.Capacity(ctx, "1")
	if c.Online || !c.Degraded || c.RoomForTesters != 0 {
		t.Fatalf("capacity after 2 failures: %+v, want a degraded node with no room", c)
	}
	_, err := e.runner.StartOnboarding(ctx, newTester("pam"))
	if onboard.ErrorCode(err) != onboard.ENodeOffline {
		t.Fatalf("start on a degraded node: %v, want node_offline", err)
	}
	// The refusal quotes the last failure but gives one piece of advice:
	// clear the mark, not the failure's own Retry.
	message := onboard.ErrorMessage(err)
	if strings.Contains(message, "Retry") || strings.Contains(message, "..") {
		t.Errorf("refusal %q repeats the failure's advice or its period", message)
	}
	if !strings.Contains(message, "clear the mark") {
		t.Errorf("refusal %q does not say to clear the mark", message)
	}
	if err := e.svc.ClearDegraded(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.StartOnboarding(ctx, newTester("pam"))
	if err != nil {
		t.Fatalf("start after clearing: %v", err)
	}
	if o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second); o.Status != onboard.StatusSucceeded {
		t.Errorf("after clearing: %s (%s)", o.Status, o.ErrorMessage)
	}
}

func TestOrphansListedAndCleanedUp(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	for _, kind := range []string{onboard.ContractNetwork, onboard.ContractVM} {
		if _, err := e.db.SimCreateContract(ctx, onboard.Contract{Kind: kind, Name: "ghost-" + kind, NodeID: "1",
			Project: onboard.ProjectName("ghost")}, 0, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	orphans, err := e.svc.Orphans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 2 {
		t.Fatalf("%d orphans, want 2", len(orphans))
	}
	if err := e.svc.CleanUpOrphans(onboard.WithActor(ctx, "root"), "1", onboard.ProjectName("ghost")); err != nil {
		t.Fatal(err)
	}
	if orphans, _ := e.svc.Orphans(ctx); len(orphans) != 0 {
		t.Errorf("%d orphans after cleanup, want 0", len(orphans))
	}
	entries, err := e.svc.Audit(ctx, onboard.AuditFilter{Action: "orphans.cleanup"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Actor != "root" || entries[0].Outcome != "ok" {
		t.Errorf("audit entries %+v, want one ok cleanup by root", entries)
	}
}
