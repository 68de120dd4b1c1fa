package onboard

import (
	"context"
)

// Teardown cancels every contract of the tester's deployment, waits until
// the grid confirms, then frees its slots. The account stays. A failed
// teardown stays visible and can be run again. The step goes on when ctx
// ends. It returns EConflict when there is nothing to tear down or an
// onboarding or step is running for the tester.
func (s *Service) Teardown(ctx context.Context, username string) (t *Tester, err error) {
	var nodeID string
	defer func() { s.audit(ctx, "tester.teardown", username, nodeID, err, "") }()
	t, err = s.store.FindTester(ctx, username)
	if err != nil {
		return nil, err
	}
	nodeID = t.Deployment.NodeID
	unlock, err := s.lockTester(username, "Teardown")
	if err != nil {
		return nil, err
	}
	err = s.runDetached(ctx, func(ctx context.Context) error {
		defer unlock()
		return s.teardown(ctx, s.newRun(username, StageTeardown, "", 0), "")
	})
	if err != nil {
		return nil, err
	}
	return s.store.FindTester(ctx, username)
}

// teardown runs the teardown step. It refuses while an onboarding runs for
// the tester, except the one named by canceling, which is undoing its work.
func (s *Service) teardown(ctx context.Context, run *stepRun, canceling string) error {
	username := run.Username
	t, err := s.store.FindTester(ctx, username)
	if err != nil {
		return err
	}
	if !t.HasDeployment() {
		return Errorf(EConflict, "%s has no deployment to tear down.", username)
	}
	if active, err := s.store.ActiveOnboarding(ctx, username); err == nil && active.ID != canceling {
		return Errorf(EConflict, "Onboarding %s is running for %s. Cancel it instead, which undoes what it created.",
			active.ID, username)
	}
	d := t.Deployment
	if err := s.store.BeginTeardown(ctx, username, s.now()); err != nil {
		return err
	}

	run.say("Canceling %d contracts under project %s on node %s", len(d.Contracts), d.Project, d.NodeID)
	stageCtx, cancel := s.stageContext(ctx, StageTeardown)
	defer cancel()
	project := d.Project
	if project == "" {
		project = ProjectName(username)
	}
	if err := s.grid.Cancel(stageCtx, d.NodeID, project, run.ID); err != nil {
		err = s.stepError(stageCtx, StageTeardown, EGridFailed, err)
		if isShutdown(err) {
			return err
		}
		if e := s.store.FailTeardown(context.WithoutCancel(ctx), username, ErrorMessage(err), s.now()); e != nil {
			s.log.Error("Teardown failure not recorded", "tester", username, "error", e)
		}
		s.log.Warn("Teardown failed", "tester", username, "node_id", d.NodeID, "error", err)
		return err
	}
	if err := s.store.FinishTeardown(context.WithoutCancel(ctx), username, s.now()); err != nil {
		return err
	}
	run.say("The grid confirmed every contract canceled; %d slots freed", BundleSlots)
	s.log.Info("Torn down", "tester", username, "node_id", d.NodeID)
	return nil
}
