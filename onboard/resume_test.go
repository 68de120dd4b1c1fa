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

func TestResumeAfterTeardownProvisionsAgain(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	if err := e.sim.SetFault(ctx, onboard.StageInstalling, 1, ""); err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.StartOnboarding(ctx, newTester("dena"))
	if err != nil {
		t.Fatal(err)
	}
	o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
	if o.FailedStage() != onboard.StageInstalling {
		t.Fatalf("failed stage %q, want installing", o.FailedStage())
	}
	if _, err := e.svc.Teardown(ctx, "dena"); err != nil {
		t.Fatalf("teardown: %v", err)
	}

	resumed, err := e.runner.Resume(ctx, o.ID)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	o = e.waitFinished(t, resumed.ID, 10*time.Second)
	if o.Status != onboard.StatusSucceeded {
		t.Fatalf("resume after teardown: %s at %s (%s)", o.Status, o.FailedStage(), o.ErrorMessage)
	}
	if got := o.Stage(onboard.StageProvisioning).Status; got != onboard.StageDone {
		t.Errorf("provisioning %s after the resume, want done again", got)
	}
	if n := countVMs(e.liveContracts(t)); n != 1 {
		t.Errorf("%d live VMs, want 1", n)
	}
	tester, _ := e.svc.Tester(ctx, "dena")
	if !tester.IsReady() {
		t.Errorf("tester not ready after the resume: deployment %s, install %s",
			tester.Deployment.State, tester.InstallState)
	}
}

func TestResumeKeepsStagesStillInPlace(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	if err := e.sim.SetFault(ctx, onboard.StageInstalling, 1, ""); err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.StartOnboarding(ctx, newTester("dino"))
	if err != nil {
		t.Fatal(err)
	}
	o := e.waitFinished(t, res.Onboarding.ID, 10*time.Second)
	before, _ := e.runner.Events(ctx, o.ID, 0, 0)

	resumed, err := e.runner.Resume(ctx, o.ID)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	o = e.waitFinished(t, resumed.ID, 10*time.Second)
	if o.Status != onboard.StatusSucceeded {
		t.Fatalf("resume: %s (%s)", o.Status, o.ErrorMessage)
	}
	after, _ := e.runner.Events(ctx, o.ID, int64(len(before)), 0)
	for _, ev := range after {
		if ev.Stage == onboard.StageProvisioning {
			t.Errorf("the resume touched provisioning, whose deployment is in place: %s %q", ev.Status, ev.Message)
		}
	}
}

func TestFormKeyStartsOneTester(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	first := newTester("fern")
	first.FormKey = "form-one"
	res, err := e.runner.StartOnboarding(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	e.waitFinished(t, res.Onboarding.ID, 10*time.Second)

	again := newTester("fred")
	again.FormKey = "form-one"
	_, err = e.runner.StartOnboarding(ctx, again)
	if onboard.ErrorField(err) != "form_key" {
		t.Fatalf("start of fred with fern's form key: %v, want an error on form_key", err)
	}
	if !strings.Contains(onboard.ErrorMessage(err), "fern") || !strings.Contains(onboard.ErrorMessage(err), "fred") {
		t.Errorf("message %q does not name both testers", onboard.ErrorMessage(err))
	}
	if _, err := e.svc.Tester(ctx, "fred"); onboard.ErrorCode(err) != onboard.ENotFound {
		t.Errorf("fred after the rejected start: %v, want not found", err)
	}
}

func TestFormKeySharedByConcurrentStarts(t *testing.T) {
	e := newEnv(t, envOptions{delay: 20 * time.Millisecond})
	ctx := context.Background()
	// Three usernames, four starts each, all with one form key.
	const starts = 12
	var wg sync.WaitGroup
	errs := make([]error, starts)
	results := make([]onboard.StartResult, starts)
	for i := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := newTester(fmt.Sprintf("kay%d", i%3))
			in.FormKey = "form-shared"
			results[i], errs[i] = e.runner.StartOnboarding(ctx, in)
		}()
	}
	wg.Wait()

	answered := map[string]bool{}
	for i, err := range errs {
		username := fmt.Sprintf("kay%d", i%3)
		switch {
		case err == nil && results[i].Onboarding.Username != username:
			t.Errorf("start of %s answered with the onboarding of %s", username, results[i].Onboarding.Username)
		case err == nil:
			answered[results[i].Onboarding.ID] = true
		case onboard.ErrorField(err) == "form_key":
		case onboard.ErrorCode(err) == onboard.EConflict:
			// Another start for the same username held the tester while
			// neither had stored anything yet.
		default:
			t.Errorf("start of %s: %v, want its onboarding, an error on form_key or a conflict", username, err)
		}
	}
	if len(answered) != 1 {
		t.Errorf("%d onboardings answered for one form key, want 1", len(answered))
	}
	testers, err := e.svc.Testers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(testers) != 1 {
		t.Errorf("%d testers stored, want 1", len(testers))
	}
}

func TestKnownTesterDetailsAreChecked(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	if _, err := e.svc.CreateOrRegister(ctx, onboard.TesterInput{
		Username: "gwen", FullName: "Gwen Test", Email: "gwen@example.org",
	}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, fullName, email string
		code, field           string
	}{
		{"username alone", "", "", "", ""},
		{"same details", "Gwen Test", "gwen@example.org", "", ""},
		{"same details in other case", "gwen  TEST", "Gwen@Example.org", "", ""},
		{"control character in name", "Gwen\x00Test", "", onboard.EInvalid, "full_name"},
		{"markup for email", "", "<script>alert(1)</script>", onboard.EInvalid, "email"},
		{"other person's name", "Gwendolyn Other", "", onboard.EConflict, "full_name"},
		{"other email", "", "gwen@elsewhere.org", onboard.EConflict, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := onboard.TesterInput{Username: "gwen", FullName: tc.fullName, Email: tc.email}
			_, regErr := e.svc.CreateOrRegister(ctx, in)
			_, startErr := e.runner.StartOnboarding(ctx, onboard.StartInput{TesterInput: in, NodeID: "1"})
			for call, err := range map[string]error{"register": regErr, "start": startErr} {
				if tc.code == "" {
					if err != nil {
						t.Errorf("%s: %v, want success", call, err)
					}
					continue
				}
				if onboard.ErrorCode(err) != tc.code || onboard.ErrorField(err) != tc.field {
					t.Errorf("%s: %v (code %q, field %q), want code %s on %s",
						call, err, onboard.ErrorCode(err), onboard.ErrorField(err), tc.code, tc.field)
				}
			}
			if tc.code == onboard.EConflict && !strings.Contains(onboard.ErrorMessage(regErr), "Gwen Test") {
				t.Errorf("message %q does not say who the username belongs to", onboard.ErrorMessage(regErr))
			}
		})
		// Let a started onboarding end before the next case starts one.
		if list, _ := e.runner.Onboardings(ctx, "gwen", 1); len(list) == 1 {
			e.waitFinished(t, list[0].ID, 10*time.Second)
		}
	}
	tester, _ := e.svc.Tester(ctx, "gwen")
	if tester.FullName != "Gwen Test" || tester.Email != "gwen@example.org" {
		t.Errorf("stored details changed to %q <%s>", tester.FullName, tester.Email)
	}
}

func TestCancelRightAfterResumeFinishesAtOnce(t *testing.T) {
	e := newEnv(t, envOptions{delay: 50 * time.Millisecond})
	ctx := context.Background()
	if err := e.sim.SetFault(ctx, onboard.StageProvisioning, 1, ""); err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.StartOnboarding(ctx, newTester("hugo"))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Onboarding.ID
	e.waitFinished(t, id, 10*time.Second)

	// Each round cancels the new attempt before or while its worker loads
	// it, the moment at which a stopped load once left it running.
	for round := range 10 {
		before, _ := e.runner.Events(ctx, id, 0, 0)
		if _, err := e.runner.Resume(ctx, id); err != nil {
			t.Fatalf("round %d: resume: %v", round, err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.runner.Cancel(ctx, id)
				if err != nil && onboard.ErrorCode(err) != onboard.EConflict {
					t.Errorf("round %d: cancel: %v", round, err)
				}
			}()
		}
		wg.Wait()
		// The lease lasts 30 s, so an onboarding left running would still be
		// running when this returns.
		o := e.waitFinished(t, id, 3*time.Second)
		if o.Status != onboard.StatusCanceled && o.Status != onboard.StatusSucceeded {
			t.Errorf("round %d: status %s (%s), want canceled", round, o.Status, o.ErrorMessage)
		}
		events, _ := e.runner.Events(ctx, id, int64(len(before)), 0)
		requests := 0
		for _, ev := range events {
			if ev.Kind != onboard.EventCancel {
				continue
			}
			requests++
			if ev.Stage != onboard.StageProvisioning {
				t.Errorf("round %d: cancel request at stage %s, want provisioning", round, ev.Stage)
			}
		}
		if requests > 1 {
			t.Errorf("round %d: %d cancel requests stored for one attempt, want at most 1", round, requests)
		}
		if o.Status == onboard.StatusSucceeded {
			return
		}
	}
	if n := len(e.liveContracts(t)); n != 0 {
		t.Errorf("%d live contracts after the canceled attempts, want 0", n)
	}
}
