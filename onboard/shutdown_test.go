package onboard_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/onboard"
)

// stopAfterProvision stops the runner just after the provision's result is
// stored, as a SIGTERM that lands during that write does: the write still
// commits, and the worker's context ends before the done event.
type stopAfterProvision struct {
	onboard.Store
	stop func()

	mu sync.Mutex
	// workerCtx is the context of the newest FindTester call, which in the
	// provisioning stage is the worker's.
	workerCtx context.Context
	stopped   chan struct{}
}

func (s *stopAfterProvision) FindTester(ctx context.Context, username string) (*onboard.Tester, error) {
	s.mu.Lock()
	s.workerCtx = ctx
	s.mu.Unlock()
	return s.Store.FindTester(ctx, username)
}

func (s *stopAfterProvision) FinishProvision(ctx context.Context, username string, p onboard.GridProject,
	now time.Time) error {
	if err := s.Store.FinishProvision(ctx, username, p, now); err != nil {
		return err
	}
	s.mu.Lock()
	worker := s.workerCtx
	s.mu.Unlock()
	go func() {
		s.stop()
		close(s.stopped)
	}()
	select {
	case <-worker.Done():
	case <-time.After(5 * time.Second):
	}
	return nil
}

func TestShutdownRightAfterProvisionKeepsItsResult(t *testing.T) {
	path := t.TempDir() + "/deployer.db"
	wrapper := &stopAfterProvision{stopped: make(chan struct{})}
	e := newEnv(t, envOptions{path: path, wrapStore: func(s onboard.Store) onboard.Store {
		wrapper.Store = s
		return wrapper
	}})
	wrapper.stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.runner.Shutdown(ctx); err != nil {
			t.Errorf("runner shutdown: %v", err)
		}
	}

	res, err := e.runner.StartOnboarding(context.Background(), newTester("orla"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-wrapper.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not stop after the provision")
	}
	o, err := e.runner.Onboarding(context.Background(), res.Onboarding.ID)
	if err != nil {
		t.Fatal(err)
	}
	provisioning := o.Stage(onboard.StageProvisioning)
	if provisioning.Status != onboard.StageDone || !strings.HasPrefix(provisioning.Message, "Gateway orla.") {
		t.Errorf("provisioning is %s with %q, want done with the gateway", provisioning.Status, provisioning.Message)
	}
	if o.Status != onboard.StatusRunning {
		t.Errorf("the stopped onboarding is %s, want running until a restart resumes it", o.Status)
	}
	e.close(t)

	restarted := newEnv(t, envOptions{path: path})
	if o := restarted.waitFinished(t, res.Onboarding.ID, 10*time.Second); o.Status != onboard.StatusSucceeded {
		t.Fatalf("after the restart the onboarding ended %s: %s", o.Status, o.ErrorMessage)
	}
	if n := len(restarted.liveContracts(t)); n != 3 {
		t.Errorf("%d live contracts after the restart, want the 3 of one deployment", n)
	}
}
