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

// Sim is the simulated installer: it prints progress lines over one to three
// times its delay and ends at https://<gateway>/. It is safe for concurrent
// use.
type Sim struct {
	faults FaultSource
	delay  time.Duration
	// fixedDelay makes every install take exactly delay.
	fixedDelay bool
}

var _ onboard.Installer = (*Sim)(nil)

// NewSim returns a simulated installer.
func NewSim(faults FaultSource, delay time.Duration) *Sim {
	return &Sim{faults: faults, delay: delay}
}

// FixDelay makes every simulated install take exactly the delay instead of
// one to three times it, for measurements that need known step times. Call
// it before the installer is used.
func (s *Sim) FixDelay() { s.fixedDelay = true }

// Install pretends to install the stack.
func (s *Sim) Install(ctx context.Context, req onboard.InstallRequest, progress func(string)) (string, error) {
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

// SetLoginGate pretends to write the login gate; the simulated VM has none
// to check, so it only takes a moment.
func (s *Sim) SetLoginGate(ctx context.Context, req onboard.InstallRequest) error {
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
