// Package stack installs the tester stack on a tester's VM: a simulated
// installer for trying the deployer, and an installer that runs the install
// command over SSH.
package stack

import (
	"context"
	"fmt"
	"strings"
	"time"

	"deployer/grid"
	"deployer/onboard"
)

// FaultSource decides whether a run of a stage fails on purpose.
type FaultSource interface {
	DrawFault(ctx context.Context, stage, runID string) (mode string, faulted bool, err error)
}

// nodeSource reports whether a simulated node is online. *grid.Sim
// implements it.
type nodeSource interface {
	Node(ctx context.Context, nodeID string, fresh bool) (onboard.NodeStatus, error)
}

// Sim is the simulated installer: it prints progress lines over one to three
// times its delay and ends at https://<gateway>/. It is safe for concurrent
// use.
type Sim struct {
	faults FaultSource
	// nodes is nil when faults is not the simulated grid, and then no
	// install checks its node.
	nodes nodeSource
	delay time.Duration
	// fixedDelay makes every install take exactly delay.
	fixedDelay bool
}

var _ onboard.Installer = (*Sim)(nil)

// NewSim returns a simulated installer. When faults is also the simulated
// grid, as *grid.Sim is, an install on a node that is offline there fails,
// as a real install that cannot reach the VM does.
func NewSim(faults FaultSource, delay time.Duration) *Sim {
	nodes, _ := faults.(nodeSource)
	return &Sim{faults: faults, nodes: nodes, delay: delay}
}

// FixDelay makes every simulated install take exactly the delay instead of
// one to three times it, for measurements that need known step times. Call
// it before the installer is used.
func (s *Sim) FixDelay() { s.fixedDelay = true }

// Install pretends to install the stack. It returns EInstallFailed when the
// VM's node is offline in the simulated grid, at the start or between two
// steps. An install that fails at the start leaves a pending fault of the
// stage for the next run.
func (s *Sim) Install(ctx context.Context, req onboard.InstallRequest, progress func(string)) (string, error) {
	if err := s.checkOnline(ctx, req, progress); err != nil {
		return "", err
	}
	_, faulted, err := s.faults.DrawFault(ctx, onboard.StageInstalling, req.RunID)
	if err != nil {
		return "", err
	}
	cockpit := "https://" + req.Gateway + "/"
	gate := "without a password"
	if len(req.PasswordHash) > 0 {
		gate = "with the account's password hash"
	}
	lines := []string{
		fmt.Sprintf("Connecting to %s over SSH", req.VMAddress),
		"Installing packages: cockpit, caddy, tester-tools",
		fmt.Sprintf("Setting up the login gate for %s %s", req.Username, gate),
		"Starting the cockpit service",
		"Waiting for " + cockpit + " to answer",
	}
	total := s.delay
	if !s.fixedDelay {
		total = grid.StageDuration(s.delay)
	}
	step := total / time.Duration(len(lines))
	for i, line := range lines {
		if err := s.checkOnline(ctx, req, progress); err != nil {
			return "", err
		}
		if faulted && i == 2 {
			progress("install command exited with status 1")
			return "", fmt.Errorf("simulated fault: the install command exited with status 1 on %s", req.VMAddress)
		}
		progress(line)
		if !onboard.Sleep(ctx, step) {
			return "", ctx.Err()
		}
	}
	return cockpit, nil
}

// checkOnline returns EInstallFailed, after a progress line, when the node
// is offline in the simulated grid. A request without a node passes, and
// so does every request when the installer has no simulated grid.
func (s *Sim) checkOnline(ctx context.Context, req onboard.InstallRequest, progress func(string)) error {
	offline, reason, err := s.nodeOffline(ctx, req)
	if err != nil || !offline {
		return err
	}
	progress(fmt.Sprintf("Cannot reach %s: node %s is offline", req.VMAddress, req.NodeID))
	return onboard.Errorf(onboard.EInstallFailed, "Node %s is offline (%s) in the simulated grid, "+
		"so the install cannot reach the VM at %s. Bring the node back online in the simulator panel "+
		"or with POST /api/sim/node, then press Retry.", req.NodeID, reason, req.VMAddress)
}

// nodeOffline reports whether the request's node is offline in the
// simulated grid, with the grid's reason. A request without a node is
// online, and so is every request when the installer has no simulated grid.
func (s *Sim) nodeOffline(ctx context.Context, req onboard.InstallRequest) (bool, string, error) {
	if s.nodes == nil || req.NodeID == "" {
		return false, "", nil
	}
	node, err := s.nodes.Node(ctx, req.NodeID, true)
	if err != nil {
		return false, "", fmt.Errorf("check node %s: %w", req.NodeID, err)
	}
	return !node.Online, node.Reason, nil
}

// SetLoginGate pretends to write the login gate; the simulated VM has none
// to check, so it only takes a moment. Like the install, it cannot reach a
// VM whose node is offline.
func (s *Sim) SetLoginGate(ctx context.Context, req onboard.InstallRequest) error {
	offline, reason, err := s.nodeOffline(ctx, req)
	if err != nil {
		return err
	}
	if offline {
		return fmt.Errorf("node %s is offline (%s) in the simulated grid", req.NodeID, reason)
	}
	if !onboard.Sleep(ctx, s.delay/10) {
		return ctx.Err()
	}
	return nil
}

// Check reports whether a simulated cockpit URL answers, which it does for
// every gateway of the simulated grid.
func (s *Sim) Check(ctx context.Context, cockpitURL string) error {
	if strings.HasSuffix(strings.TrimSuffix(cockpitURL, "/"), "."+grid.SimDomain) {
		return nil
	}
	return fmt.Errorf("%s is not a simulated cockpit", cockpitURL)
}
