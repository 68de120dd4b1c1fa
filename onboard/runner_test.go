package onboard_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"deployer/onboard"
)

func TestOnboardingReachesReady(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()

	res, err := e.runner.StartOnboarding(ctx, newTester("alice"))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if !res.Started || len(res.OneTimePassword) < 16 {
		t.Fatalf("started %v with password of %d characters, want a started onboarding and a password of 16 or more",
			res.Started, len(res.OneTimePassword))
	}
	o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
	if o.Status != onboard.StatusSucceeded {
		t.Fatalf("status %s (%s: %s), want succeeded", o.Status, o.ErrorCode, o.ErrorMessage)
	}
	if want := "https://alice.gw.sim.test/"; o.CockpitURL != want {
		t.Errorf("cockpit URL %q, want %q", o.CockpitURL, want)
	}

	events, err := e.runner.Events(ctx, o.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for i, ev := range events {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d, want %d", i, ev.Seq, i+1)
		}
		if ev.Kind == onboard.EventStage && ev.Status == onboard.StageDone {
			order = append(order, ev.Stage)
		}
		if strings.Contains(ev.Message, res.OneTimePassword) {
			t.Errorf("event %d contains the one-time password", ev.Seq)
		}
	}
	if got := strings.Join(order, ","); got != "adding,provisioning,installing,ready" {
		t.Errorf("stages done in order %s", got)
	}

	c, err := e.svc.Capacity(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if c.FreeSlots != 14 || c.ReservedSlots != 0 || c.RoomForTesters != 7 {
		t.Errorf("capacity free %d reserved %d room %d, want 14, 0, 7", c.FreeSlots, c.ReservedSlots, c.RoomForTesters)
	}
	if strings.Contains(e.logs.String(), res.OneTimePassword) {
		t.Error("log output contains the one-time password")
	}
}

func TestFaultAtProvisioningLeavesNoContract(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	if err := e.sim.SetFault(ctx, onboard.StageProvisioning, 1, ""); err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.StartOnboarding(ctx, newTester("bob"))
	if err != nil {
		t.Fatal(err)
	}
	o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
	if o.Status != onboard.StatusFailed || o.FailedStage() != onboard.StageProvisioning {
		t.Fatalf("status %s failed stage %q, want failed at provisioning", o.Status, o.FailedStage())
	}
	if o.ErrorCode != onboard.EGridFailed {
		t.Errorf("error code %q, want grid_failed", o.ErrorCode)
	}
	if n := len(e.liveContracts(t)); n != 0 {
		t.Errorf("%d live contracts after the failed provision, want 0", n)
	}
	c, _ := e.svc.Capacity(ctx, "1")
	if c.ReservedSlots != 0 {
		t.Errorf("reserved slots %d after failure, want 0", c.ReservedSlots)
	}

	resumed, err := e.runner.Resume(ctx, o.ID)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	o = e.waitFinished(t, resumed.ID, 10*time.Second)
	if o.Status != onboard.StatusSucceeded || o.Attempt != 2 {
		t.Fatalf("after resume: status %s attempt %d (%s), want succeeded at attempt 2", o.Status, o.Attempt, o.ErrorMessage)
	}
}
