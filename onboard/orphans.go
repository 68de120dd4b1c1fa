package onboard

import (
	"context"
	"fmt"
)

// Orphans returns live grid contracts under the deployer's naming that no
// tester has recorded. Projects of testers with a provision in flight are
// left out, because their newest contract may not be recorded yet.
func (s *Service) Orphans(ctx context.Context) ([]Contract, error) {
	live, err := s.grid.Contracts(ctx)
	if err != nil {
		return nil, Errorf(EGridFailed, "The grid's contract list could not be read: %v. Try again shortly.", err)
	}
	testers, err := s.store.ListTesters(ctx)
	if err != nil {
		return nil, err
	}
	recorded := map[int64]bool{}
	inFlight := map[string]bool{}
	for _, t := range testers {
		for _, c := range t.Deployment.Contracts {
			recorded[c.ID] = true
		}
		if t.Deployment.State == DeploymentProvisioning || t.Deployment.State == DeploymentTearingDown {
			inFlight[ProjectName(t.Username)] = true
		}
	}
	var orphans []Contract
	for _, c := range live {
		if !recorded[c.ID] && !inFlight[c.Project] {
			orphans = append(orphans, c)
		}
	}
	return orphans, nil
}

// CleanUpOrphans cancels every contract of an orphaned project and records
// it in the audit log. It returns EConflict when a tester's deployment owns
// the project; such contracts go away with that tester's Teardown.
func (s *Service) CleanUpOrphans(ctx context.Context, nodeID, project string) (err error) {
	defer func() { s.audit(ctx, "orphans.cleanup", ProjectTester(project), nodeID, err, "project "+project) }()
	if err := ValidateNodeID(nodeID); err != nil {
		return err
	}
	username := ProjectTester(project)
	if username == "" || !OrphanUsername(username) {
		return FieldError("project", "Project %q is not under the deployer's naming.", clip(project, 80))
	}
	if t, err := s.store.FindTester(ctx, username); err == nil && t.HasDeployment() {
		return Errorf(EConflict, "Project %s belongs to %s's deployment. Use Teardown on the tester page instead.",
			project, username)
	}
	unlock, err := s.lockTester(username, "Orphan cleanup")
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.grid.Cancel(ctx, nodeID, project, "orphans-"+project); err != nil {
		return Errorf(EGridFailed, "Canceling project %s failed: %v. Try again.", project, err)
	}
	s.log.Info("Orphaned contracts canceled", "node_id", nodeID, "project", project)
	return nil
}

// NodeHold returns what the deployer holds against a node: reservations and
// health.
func (s *Service) NodeHold(ctx context.Context, nodeID string) (NodeHold, error) {
	if err := ValidateNodeID(nodeID); err != nil {
		return NodeHold{}, err
	}
	h, err := s.store.NodeHold(ctx, nodeID)
	if err != nil {
		return h, fmt.Errorf("read node %s: %w", nodeID, err)
	}
	return h, nil
}
