package onboard

import (
	"context"
	"fmt"
)

// Start reconciles what the last process left running, then keeps watching
// for onboardings whose worker stopped renewing its lease. It returns once the
// startup reconciliation is done.
func (r *Runner) Start(ctx context.Context) error {
	if err := r.reconcileTesters(ctx); err != nil {
		return err
	}
	running, err := r.store.ListRunningOnboardings(ctx)
	if err != nil {
		return fmt.Errorf("list running onboardings: %w", err)
	}
	for _, o := range running {
		// The process holds the database's lock file, so no other deployer
		// works these; every lease left is from a process that stopped.
		r.reconcile(ctx, o, true)
	}

	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.sweep()
	}()
	return nil
}

// sweep takes over running onboardings whose lease expired, which happens
// only when a worker stopped without finishing.
func (r *Runner) sweep() {
	for Sleep(r.ctx, r.svc.opts.LeaseTTL) {
		running, err := r.store.ListRunningOnboardings(r.ctx)
		if err != nil {
			if r.ctx.Err() == nil {
				r.log.Error("Running onboardings not listed", "error", err)
			}
			continue
		}
		now := r.svc.now()
		for _, o := range running {
			r.mu.Lock()
			_, mine := r.workers[o.ID]
			r.mu.Unlock()
			if !mine && now.After(o.LeaseExpiresAt) {
				r.log.Warn("Onboarding lease expired; taking it over", "onboarding_id", o.ID, "tester", o.Username,
					"node_id", o.NodeID)
				r.reconcile(r.ctx, o, false)
			}
		}
	}
}

// reconcile settles a running onboarding that has no worker. A pending
// cancel is carried out. An interrupted provisioning resumes and adopts what
// the grid has under the project name. An interrupted install fails with the
// reason and a Retry, because running an install command twice may not be
// safe.
func (r *Runner) reconcile(ctx context.Context, o *Onboarding, takeover bool) {
	ok, err := r.store.ClaimOnboarding(ctx, o.ID, r.owner, r.svc.now().Add(r.svc.opts.LeaseTTL), takeover)
	if err != nil || !ok {
		r.log.Warn("Onboarding not claimed for reconciliation", "onboarding_id", o.ID, "tester", o.Username,
			"node_id", o.NodeID, "error", err)
		return
	}
	stage := o.CurrentStage()
	if stage.Status == StageDone || stage.Status == StageSkipped {
		stage = o.Stage(nextStage(stage.Name))
	}
	r.log.Info("Reconciling onboarding", "onboarding_id", o.ID, "tester", o.Username, "node_id", o.NodeID,
		"stage", stage.Name, "status", stage.Status)

	unlock, err := r.svc.lockTester(o.Username, "Reconciliation")
	if err != nil {
		r.store.ReleaseLease(ctx, o.ID, r.owner)
		return
	}
	if o.CancelRequest {
		r.finishCanceled(o, stage.Name, unlock)
		r.store.ReleaseLease(ctx, o.ID, r.owner)
		return
	}

	note := func(msg string) {
		r.svc.emit(Event{OnboardingID: o.ID, Stage: stage.Name, Status: StageRunning, Kind: EventLog, Message: msg})
	}
	switch {
	case stage.Name == StageInstalling && stage.Status == StageRunning:
		err := Errorf(EInstallFailed, "Interrupted by a restart during installing. Press Retry to run the install again.")
		if e := r.store.SetInstallState(ctx, o.Username, InstallFailed, ErrorMessage(err), r.svc.now()); e != nil {
			r.log.Error("Install state not stored", "tester", o.Username, "error", e)
		}
		r.fail(o, stage.Name, err, unlock)
		r.store.ReleaseLease(ctx, o.ID, r.owner)
		return
	case stage.Name == StageProvisioning && stage.Status == StageRunning:
		found, err := r.svc.grid.Lookup(ctx, o.NodeID, ProjectName(o.Username))
		if err != nil {
			note(fmt.Sprintf("Resumed after a restart; the grid lookup failed (%s), so provisioning runs again", ErrorMessage(err)))
		} else {
			note(fmt.Sprintf("Resumed after a restart; found %d contracts under project %s to adopt",
				len(found.Contracts), ProjectName(o.Username)))
		}
	default:
		note("Resumed after a restart")
	}
	r.store.ReleaseLease(ctx, o.ID, r.owner)
	r.launch(o, unlock)
}

// reconcileTesters settles per-step work that a stop interrupted: such a step
// has no onboarding to resume it, so it fails with the reason, keeping the
// contracts it recorded for the next Provision to adopt or Teardown to cancel.
func (r *Runner) reconcileTesters(ctx context.Context) error {
	testers, err := r.store.ListTesters(ctx)
	if err != nil {
		return fmt.Errorf("list testers: %w", err)
	}
	now := r.svc.now()
	for _, t := range testers {
		if _, err := r.store.ActiveOnboarding(ctx, t.Username); err == nil {
			continue
		}
		switch {
		case t.Deployment.State == DeploymentProvisioning:
			err = r.store.FailProvision(ctx, t.Username,
				"Interrupted by a restart during provisioning. Press Provision to finish it, or Teardown.", false, now)
		case t.Deployment.State == DeploymentTearingDown:
			err = r.store.FailTeardown(ctx, t.Username, "Interrupted by a restart during teardown. Press Teardown again.", now)
		case t.InstallState == InstallInstalling:
			err = r.store.SetInstallState(ctx, t.Username, InstallFailed,
				"Interrupted by a restart during installing. Press Install to run it again.", now)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("settle interrupted step of %s: %w", t.Username, err)
		}
		r.log.Warn("Interrupted step settled", "tester", t.Username)
	}
	return nil
}

func nextStage(name string) string {
	for i, s := range Stages {
		if s == name && i+1 < len(Stages) {
			return Stages[i+1]
		}
	}
	return name
}
