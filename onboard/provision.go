package onboard

import (
	"context"
	"errors"
	"fmt"
)

// ProjectName returns the grid project name of a tester's deployment. It
// depends on the username alone, so that every retry, resume and per-step
// run finds and adopts what an earlier run created.
func ProjectName(username string) string { return "deployer-" + username }

// ProjectTester returns the username a project name belongs to, or "" when
// the name is not under the deployer's naming.
func ProjectTester(project string) string {
	const prefix = "deployer-"
	if len(project) <= len(prefix) || project[:len(prefix)] != prefix {
		return ""
	}
	return project[len(prefix):]
}

// deployRetries is how many times a deploy that timed out is repeated within
// one run; each repeat adopts what the grid made before.
const deployRetries = 2

// errAlreadyProvisioned is returned by provision when the tester already has
// an active deployment on the node.
var errAlreadyProvisioned = errors.New("already provisioned")

// ProvisionStart is what Store.BeginProvision records in one transaction:
// the deployment's project, and a reservation of Slots on the node when
// Slots is above zero.
type ProvisionStart struct {
	Username     string
	NodeID       string
	Project      string
	OnboardingID string
	Slots        int
	// GridFree is the node's free slots as read from the grid, and
	// LandedBefore the node's landed-slots counter read just before, so
	// that the store counts reservations that landed during the read.
	GridFree     int
	LandedBefore int64
}

// Provision deploys the tester's VM, gateway name and login gate on the node.
// It refuses with ENodeOffline or ENodeFull before anything is created. The
// step goes on when ctx ends, and its outcome is stored. It returns the
// tester, and EConflict when the tester already has a deployment or a step
// running.
func (s *Service) Provision(ctx context.Context, username, nodeID string) (t *Tester, err error) {
	defer func() { s.audit(ctx, "tester.provision", username, nodeID, err, "") }()
	if err := ValidateNodeID(nodeID); err != nil {
		return nil, err
	}
	if _, err := s.store.FindTester(ctx, username); err != nil {
		return nil, err
	}
	unlock, err := s.lockTester(username, "Provisioning")
	if err != nil {
		return nil, err
	}
	err = s.runDetached(ctx, func(ctx context.Context) error {
		defer unlock()
		err := s.provision(ctx, s.newRun(username, StageProvisioning, "", 0), nodeID)
		if errors.Is(err, errAlreadyProvisioned) {
			return Errorf(EConflict, "%s is already provisioned on node %s.", username, nodeID)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.store.FindTester(ctx, username)
}

// provision runs the provisioning step: preflight, reservation, deploy, and
// on failure the cancellation of what this run created.
func (s *Service) provision(ctx context.Context, run *stepRun, nodeID string) error {
	username := run.Username
	t, err := s.store.FindTester(ctx, username)
	if err != nil {
		return err
	}
	switch d := t.Deployment; d.State {
	case DeploymentActive:
		if d.NodeID == nodeID {
			return errAlreadyProvisioned
		}
		return Errorf(EConflict, "%s already has a deployment on node %s. Tear it down before provisioning on node %s.",
			username, d.NodeID, nodeID)
	case DeploymentTearingDown, DeploymentTeardownFail:
		return Errorf(EConflict, "%s has a teardown that has not finished. Press Teardown to finish it first.", username)
	case DeploymentProvisioning, DeploymentFailed:
		if d.NodeID != "" && d.NodeID != nodeID && len(d.Contracts) > 0 {
			return Errorf(EConflict, "%s still holds contracts on node %s. Press Teardown to cancel them first.",
				username, d.NodeID)
		}
	}

	stageCtx, cancel := s.stageContext(ctx, StageProvisioning)
	defer cancel()
	project := ProjectName(username)
	if err := s.beginProvision(stageCtx, run, nodeID, project); err != nil {
		err = s.stepError(stageCtx, StageProvisioning, EGridFailed, err)
		if t.Deployment.State == DeploymentProvisioning && !isShutdown(err) {
			// An interrupted run that cannot go on lets its reservation go,
			// and keeps what it recorded for a Retry or a Teardown.
			if e := s.store.FailProvision(context.WithoutCancel(ctx), username, ErrorMessage(err), false, s.now()); e != nil {
				s.log.Error("Failed provision not recorded", "tester", username, "error", e)
			}
		}
		return err
	}

	run.say("Deploying network, VM and gateway name on node %s", nodeID)
	req := DeployRequest{NodeID: nodeID, Project: project, Username: username, RunID: run.ID}
	record := func(c Contract) error {
		// The contract is written down even when the stage is ending, so that
		// nothing the grid created goes untracked.
		if err := s.store.RecordContract(context.WithoutCancel(ctx), username, c); err != nil {
			return err
		}
		// The grid passes both the contracts it made and the ones it found
		// under the project's name, so the line reads "Recorded".
		run.say("Recorded %s contract %d (%s)", c.Kind, c.ID, c.Name)
		return nil
	}
	result, err := s.grid.Deploy(stageCtx, req, record)
	for retry := 1; retry <= deployRetries && errors.Is(err, ErrGridTimeout) && stageCtx.Err() == nil; retry++ {
		run.say("The grid did not answer in time; retrying (%d of %d), adopting what exists", retry, deployRetries)
		result, err = s.grid.Deploy(stageCtx, req, record)
	}
	if err == nil {
		err = s.store.FinishProvision(context.WithoutCancel(ctx), username, result, s.now())
	}
	if err != nil {
		err = s.stepError(stageCtx, StageProvisioning, EGridFailed, err)
		if isShutdown(err) {
			// Left as provisioning, with its reservation: a restart adopts
			// what exists under the project name and goes on.
			return err
		}
		s.undoProvision(ctx, run, nodeID, project, err)
		s.noteProvisionOutcome(nodeID, err)
		return err
	}
	run.say("Gateway %s is ready", result.Gateway)
	s.noteProvisionOutcome(nodeID, nil)
	s.log.Info("Provisioned", "tester", username, "node_id", nodeID, "gateway", result.Gateway)
	return nil
}

// beginProvision checks the node afresh and, unless the project's VM already
// exists on the grid, reserves a bundle in the same transaction that records
// the project.
func (s *Service) beginProvision(ctx context.Context, run *stepRun, nodeID, project string) error {
	existing, err := s.grid.Lookup(ctx, nodeID, project)
	if err != nil {
		return s.stepError(ctx, StageProvisioning, EGridFailed, fmt.Errorf("look up project %s: %w", project, err))
	}
	slots := BundleSlots
	for _, c := range existing.Contracts {
		if c.Kind == ContractVM {
			slots = 0
			run.say("Adopting VM contract %d found under project %s", c.ID, project)
		}
	}

	hold, err := s.store.NodeHold(ctx, nodeID)
	if err != nil {
		return err
	}
	// A run that resumes after a restart still holds its reservation; its
	// own slots are not in the way.
	own, err := s.store.HeldSlots(ctx, run.Username, nodeID)
	if err != nil {
		return err
	}
	hold.ReservedSlots -= own
	if own >= slots {
		slots = 0
	}
	landed, err := s.store.NodeLandedSlots(ctx, nodeID)
	if err != nil {
		return err
	}
	ns, err := s.grid.Node(ctx, nodeID, true)
	if err != nil {
		if ErrorCode(err) == ENotFound {
			return err
		}
		return Errorf(ENodeOffline, "Node %s could not be checked (%s). Nothing was created; try again shortly.",
			nodeID, ErrorMessage(err))
	}
	c := newCapacity(ns, hold)
	if err := refuseUnusable(c); err != nil {
		return err
	}
	if slots > 0 && c.RoomForTesters < 1 {
		return refuseFull(c)
	}

	err = s.store.BeginProvision(ctx, ProvisionStart{
		Username: run.Username, NodeID: nodeID, Project: project, OnboardingID: run.OnboardingID,
		Slots: slots, GridFree: ns.FreeSlots, LandedBefore: landed,
	}, s.now())
	if err == nil && slots > 0 {
		run.say("Reserved %d slots on node %s (room for %d more before this one)", slots, nodeID, c.RoomForTesters)
	}
	return err
}

// undoProvision cancels what a failed or canceled provisioning run left
// under the project and records the outcome; the reservation is released
// either way.
func (s *Service) undoProvision(ctx context.Context, run *stepRun, nodeID, project string, cause error) {
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CleanupTimeout)
	defer cancel()

	run.say("Canceling what this attempt created under project %s", project)
	cleanupErr := s.grid.Cancel(cleanupCtx, nodeID, project, run.ID+"-undo")
	if cleanupErr != nil {
		run.say("Cleanup failed: %v. The contracts stay listed on the tester page; press Teardown to cancel them.",
			cleanupErr)
		s.log.Error("Provision cleanup failed", "tester", run.Username, "node_id", nodeID, "error", cleanupErr)
	} else {
		run.say("Canceled every contract under project %s", project)
	}
	if err := s.store.FailProvision(cleanupCtx, run.Username, ErrorMessage(cause), cleanupErr == nil, s.now()); err != nil {
		s.log.Error("Failed provision not recorded", "tester", run.Username, "error", err)
	}
	s.log.Warn("Provision failed", "tester", run.Username, "node_id", nodeID, "run_id", run.ID,
		"code", ErrorCode(cause), "error", cause)
}
