package onboard_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/onboard"
)

func TestFaultAtEachStageStopsThereAndRetryReachesReady(t *testing.T) {
	cases := []struct {
		stage    string
		wantCode string
		// wantDeployment is the deployment state the failure leaves.
		wantDeployment string
	}{
		{onboard.StageProvisioning, onboard.EGridFailed, onboard.DeploymentFailed},
		{onboard.StageInstalling, onboard.EInstallFailed, onboard.DeploymentActive},
	}
	for _, tc := range cases {
		t.Run(tc.stage, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			ctx := context.Background()
			if err := e.sim.SetFault(ctx, tc.stage, 1, ""); err != nil {
				t.Fatal(err)
			}
			res, err := e.runner.StartOnboarding(ctx, newTester("dora"))
			if err != nil {
				t.Fatal(err)
			}
			o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
			if o.Status != onboard.StatusFailed || o.FailedStage() != tc.stage {
				t.Fatalf("status %s, failed stage %q, want failed at %s", o.Status, o.FailedStage(), tc.stage)
			}
			if o.ErrorCode != tc.wantCode {
				t.Errorf("error code %q, want %q", o.ErrorCode, tc.wantCode)
			}
			if !strings.Contains(o.ErrorMessage, "Retry") {
				t.Errorf("error message %q does not say what to do next", o.ErrorMessage)
			}
			if orphans := e.untracked(t); len(orphans) != 0 {
				t.Errorf("the grid holds %d contracts no tester owns: %+v", len(orphans), orphans)
			}
			tester, _ := e.svc.Tester(ctx, "dora")
			if tester.Deployment.State != tc.wantDeployment {
				t.Errorf("deployment %s, want %s", tester.Deployment.State, tc.wantDeployment)
			}
			lines, err := e.runner.StageLog(ctx, o.ID, tc.stage, 0)
			if err != nil || len(lines) == 0 {
				t.Errorf("stage log: %d lines, error %v; want the failed stage's lines kept", len(lines), err)
			}

			// Retry the failed step alone, then resume the rest.
			switch tc.stage {
			case onboard.StageProvisioning:
				_, err = e.svc.Provision(ctx, "dora", "1")
			case onboard.StageInstalling:
				_, err = e.svc.Install(ctx, "dora")
			}
			if err != nil {
				t.Fatalf("retry %s: %v", tc.stage, err)
			}
			resumed, err := e.runner.Resume(ctx, o.ID)
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			o = e.waitFinished(t, resumed.ID, 10*time.Second)
			if o.Status != onboard.StatusSucceeded {
				t.Fatalf("after retry and resume: %s (%s)", o.Status, o.ErrorMessage)
			}
			if got := o.Stage(tc.stage).Status; got != onboard.StageSkipped {
				t.Errorf("resumed %s stage is %s, want skipped because the retry did it", tc.stage, got)
			}
			if n := countVMs(e.liveContracts(t)); n != 1 {
				t.Errorf("%d live VMs, want 1", n)
			}
		})
	}
}

func countVMs(contracts []onboard.Contract) int {
	n := 0
	for _, c := range contracts {
		if c.Kind == onboard.ContractVM {
			n++
		}
	}
	return n
}

func TestGridTimeoutAfterVMLeavesExactlyOneVM(t *testing.T) {
	e := newEnv(t, envOptions{delay: 10 * time.Millisecond})
	ctx := context.Background()
	if err := e.sim.SetFault(ctx, onboard.StageProvisioning, 1, "timeout"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateOrRegister(ctx, onboard.TesterInput{Username: "erin", FullName: "Erin", Email: "erin@example.org"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Provision(ctx, "erin", "1")
	if onboard.ErrorCode(err) != onboard.EGridFailed {
		t.Fatalf("provision with a silent grid: %v, want grid_failed", err)
	}
	all, err := e.db.SimProject(ctx, "1", onboard.ProjectName("erin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 0 {
		t.Errorf("%d contracts left under the project after the failed run, want 0", len(all))
	}
	if orphans := e.untracked(t); len(orphans) != 0 {
		t.Errorf("untracked contracts: %+v", orphans)
	}
	if !strings.Contains(e.logs.String(), "retrying") && !logHas(t, e, "erin", "retrying") {
		t.Error("no retry inside the run was logged")
	}

	if _, err := e.svc.Provision(ctx, "erin", "1"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := countVMs(e.liveContracts(t)); n != 1 {
		t.Errorf("%d live VMs after the retry, want exactly 1", n)
	}
}

func logHas(t *testing.T, e *env, username, text string) bool {
	lines, err := e.svc.TesterLog(context.Background(), username, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if strings.Contains(l.Line, text) {
			return true
		}
	}
	return false
}

func TestConcurrentStartsForOneTester(t *testing.T) {
	for _, sameKey := range []bool{true, false} {
		name := "different form keys"
		if sameKey {
			name = "same form key"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{delay: 20 * time.Millisecond})
			ctx := context.Background()
			var wg sync.WaitGroup
			ids := make([]string, 8)
			errs := make([]error, 8)
			passwords := make([]string, 8)
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					in := newTester("fay")
					in.FormKey = "form-" + string(rune('a'+i))
					if sameKey {
						in.FormKey = "form-shared"
					}
					res, err := e.runner.StartOnboarding(ctx, in)
					errs[i] = err
					if err == nil {
						ids[i] = res.Onboarding.ID
						passwords[i] = res.OneTimePassword
					}
				}()
			}
			wg.Wait()
			seen := map[string]bool{}
			withPassword := 0
			for i, err := range errs {
				if err != nil && onboard.ErrorCode(err) != onboard.EConflict {
					t.Fatalf("start %d: %v", i, err)
				}
				if err == nil {
					seen[ids[i]] = true
				}
				if passwords[i] != "" {
					withPassword++
				}
			}
			if len(seen) != 1 {
				t.Fatalf("%d onboardings started, want 1: %v", len(seen), seen)
			}
			if withPassword != 1 {
				t.Errorf("%d answers carried a one-time password, want exactly 1", withPassword)
			}
			for id := range seen {
				if o := e.waitFinished(t, id, 10*time.Second); o.Status != onboard.StatusSucceeded {
					t.Errorf("onboarding %s: %s (%s)", id, o.Status, o.ErrorMessage)
				}
			}
			if n := countVMs(e.liveContracts(t)); n != 1 {
				t.Errorf("%d VMs, want 1 deployment", n)
			}
		})
	}
}

func TestCancelUndoesWhatTheOnboardingCreated(t *testing.T) {
	for _, stage := range []string{onboard.StageProvisioning, onboard.StageInstalling} {
		t.Run(stage, func(t *testing.T) {
			e := newEnv(t, envOptions{delay: 300 * time.Millisecond})
			ctx := context.Background()
			res, err := e.runner.StartOnboarding(ctx, newTester("gus"))
			if err != nil {
				t.Fatal(err)
			}
			waitStage(t, e, res.Onboarding.ID, stage, onboard.StageRunning)
			o, err := e.runner.Cancel(ctx, res.Onboarding.ID)
			if err != nil {
				t.Fatalf("cancel: %v", err)
			}
			if o.Status != onboard.StatusCanceled {
				t.Fatalf("status %s after cancel, want canceled", o.Status)
			}
			if got := o.Stage(stage).Status; got != onboard.StageCanceled {
				t.Errorf("%s stage %s, want canceled", stage, got)
			}
			if n := len(e.liveContracts(t)); n != 0 {
				t.Errorf("%d live contracts after cancel, want 0", n)
			}
			c, _ := e.svc.Capacity(ctx, "1")
			if c.FreeSlots != 16 || c.ReservedSlots != 0 {
				t.Errorf("capacity free %d reserved %d after cancel, want 16 and 0", c.FreeSlots, c.ReservedSlots)
			}
			tester, _ := e.svc.Tester(ctx, "gus")
			if tester.Deployment.State != onboard.DeploymentNone {
				t.Errorf("deployment %s after cancel, want none", tester.Deployment.State)
			}

			resumed, err := e.runner.Resume(ctx, o.ID)
			if err != nil {
				t.Fatalf("resume after cancel: %v", err)
			}
			if o := e.waitFinished(t, resumed.ID, 15*time.Second); o.Status != onboard.StatusSucceeded {
				t.Errorf("resume after cancel: %s (%s)", o.Status, o.ErrorMessage)
			}
		})
	}
}

func waitStage(t *testing.T, e *env, id, stage, status string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		o, err := e.runner.Onboarding(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if o.Stage(stage).Status == status {
			return
		}
		if o.Finished() {
			t.Fatalf("onboarding finished %s before %s was %s", o.Status, stage, status)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s never became %s", stage, status)
}

func TestStageDeadlineFailsWithTimedOut(t *testing.T) {
	e := newEnv(t, envOptions{delay: 2 * time.Second, opts: onboard.Options{
		StageTimeouts: map[string]time.Duration{onboard.StageProvisioning: 150 * time.Millisecond},
	}})
	ctx := context.Background()
	res, err := e.runner.StartOnboarding(ctx, newTester("hal"))
	if err != nil {
		t.Fatal(err)
	}
	o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
	if o.Status != onboard.StatusFailed || o.FailedStage() != onboard.StageProvisioning {
		t.Fatalf("status %s at %q, want failed at provisioning", o.Status, o.FailedStage())
	}
	if !strings.Contains(o.ErrorMessage, "timed out after 150ms") {
		t.Errorf("message %q, want it to say timed out after 150ms", o.ErrorMessage)
	}
	if n := len(e.liveContracts(t)); n != 0 {
		t.Errorf("%d live contracts after the timeout, want 0", n)
	}
}

func TestStepsRefuseWhileAnotherRunsForTheTester(t *testing.T) {
	e := newEnv(t, envOptions{delay: 300 * time.Millisecond})
	ctx := context.Background()
	res, err := e.runner.StartOnboarding(ctx, newTester("ivy"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Provision(ctx, "ivy", "1")
	if onboard.ErrorCode(err) != onboard.EConflict {
		t.Errorf("provision during the onboarding: %v, want conflict", err)
	}
	_, err = e.svc.Teardown(ctx, "ivy")
	if onboard.ErrorCode(err) != onboard.EConflict {
		t.Errorf("teardown during the onboarding: %v, want conflict", err)
	}
	e.waitFinished(t, res.Onboarding.ID, 15*time.Second)
}

func TestEventsMirrorStoredState(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	if err := e.sim.SetFault(ctx, onboard.StageInstalling, 1, ""); err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.StartOnboarding(ctx, newTester("jay"))
	if err != nil {
		t.Fatal(err)
	}
	o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
	if _, err := e.runner.Resume(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	stored := e.waitFinished(t, o.ID, 10*time.Second)

	// Folding every event over the first snapshot gives the stored state.
	events, err := e.runner.Events(ctx, o.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	folded := &onboard.Onboarding{ID: o.ID, Status: onboard.StatusRunning, Attempt: 1}
	for _, name := range onboard.Stages {
		folded.Stages = append(folded.Stages, onboard.Stage{Name: name, Status: onboard.StagePending})
	}
	for _, ev := range events {
		folded.Apply(ev)
	}
	if folded.Status != stored.Status || folded.Attempt != stored.Attempt || folded.CockpitURL != stored.CockpitURL ||
		folded.LastSeq != stored.LastSeq {
		t.Errorf("folded %s attempt %d url %q seq %d; stored %s attempt %d url %q seq %d",
			folded.Status, folded.Attempt, folded.CockpitURL, folded.LastSeq,
			stored.Status, stored.Attempt, stored.CockpitURL, stored.LastSeq)
	}
	for i, s := range stored.Stages {
		f := folded.Stages[i]
		if f.Status != s.Status || f.Message != s.Message {
			t.Errorf("stage %s: folded %s %q, stored %s %q", s.Name, f.Status, f.Message, s.Status, s.Message)
		}
	}
}

func TestRestartAtTheLastSlotReusesItsReservation(t *testing.T) {
	path := t.TempDir() + "/deployer.db"
	first := newEnv(t, envOptions{slots: 2, delay: 2 * time.Second, path: path})
	ctx := context.Background()
	res, err := first.runner.StartOnboarding(ctx, newTester("lena"))
	if err != nil {
		t.Fatal(err)
	}
	waitStage(t, first, res.Onboarding.ID, onboard.StageProvisioning, onboard.StageRunning)
	first.close(t)

	second := newEnv(t, envOptions{slots: 2, delay: 10 * time.Millisecond, path: path})
	o := second.waitFinished(t, res.Onboarding.ID, 15*time.Second)
	if o.Status != onboard.StatusSucceeded {
		t.Fatalf("after the restart: %s (%s: %s), want succeeded\n%s", o.Status, o.ErrorCode, o.ErrorMessage, second.logs.String())
	}
	c, _ := second.svc.Capacity(ctx, "1")
	if c.ReservedSlots != 0 || c.FreeSlots != 0 {
		t.Errorf("capacity reserved %d free %d, want 0 and 0 with the one tester in place", c.ReservedSlots, c.FreeSlots)
	}
}

func TestInterruptedRunThatCannotGoOnReleasesItsReservation(t *testing.T) {
	path := t.TempDir() + "/deployer.db"
	first := newEnv(t, envOptions{slots: 4, delay: 2 * time.Second, path: path})
	ctx := context.Background()
	res, err := first.runner.StartOnboarding(ctx, newTester("milo"))
	if err != nil {
		t.Fatal(err)
	}
	waitStage(t, first, res.Onboarding.ID, onboard.StageProvisioning, onboard.StageRunning)
	first.close(t)

	second := newEnv(t, envOptions{slots: 4, delay: 10 * time.Millisecond, path: path})
	// The node went down while the deployer was away, before the VM existed.
	offline := false
	if _, err := second.sim.SetNode(ctx, "1", &offline, nil); err != nil {
		t.Fatal(err)
	}
	o := second.waitFinished(t, res.Onboarding.ID, 15*time.Second)
	if o.Status != onboard.StatusFailed {
		t.Fatalf("after the restart on an offline node: %s, want failed", o.Status)
	}
	hold, _ := second.svc.NodeHold(ctx, "1")
	if hold.ReservedSlots != 0 {
		t.Errorf("%d slots still reserved after the failure, want 0", hold.ReservedSlots)
	}
	tester, _ := second.svc.Tester(ctx, "milo")
	if tester.Deployment.State == onboard.DeploymentProvisioning {
		t.Error("the tester stays in provisioning with nothing working on it")
	}
}
