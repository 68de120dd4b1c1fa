package onboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// work claims the onboarding and runs its remaining stages in order;
// release frees the tester before the outcome is stored.
func (r *Runner) work(ctx context.Context, launched *Onboarding, release func()) {
	id := launched.ID
	log := r.log.With("onboarding_id", id, "tester", launched.Username, "node_id", launched.NodeID)
	ttl := r.svc.opts.LeaseTTL
	// The claim and the first reads ignore ctx's end, so that a cancel or a
	// stop that comes this early still reaches the stage loop, which
	// carries it out, instead of leaving the onboarding running unworked.
	loadCtx := context.WithoutCancel(ctx)
	ok, err := r.store.ClaimOnboarding(loadCtx, id, r.owner, r.svc.now().Add(ttl), false)
	if err != nil || !ok {
		log.Warn("Onboarding not claimed", "error", err)
		return
	}
	go r.renewLease(ctx, id, log)
	defer func() {
		if err := r.store.ReleaseLease(context.Background(), id, r.owner); err != nil {
			log.Error("Lease not released", "error", err)
		}
	}()

	o, err := r.store.FindOnboarding(loadCtx, id)
	if err != nil {
		log.Error("Onboarding not loaded", "error", err)
		return
	}
	t, err := r.store.FindTester(loadCtx, o.Username)
	if err != nil {
		log.Error("Tester not loaded", "error", err)
		return
	}
	for _, stage := range Stages[1:] {
		if stillDone(o, t, stage) {
			continue
		}
		err := r.runStage(ctx, o, stage)
		if err == nil {
			continue
		}
		// Any error once the worker's context ended comes from the stop, such
		// as a read cut short, and must not fail the onboarding.
		cause := context.Cause(ctx)
		switch {
		case isShutdown(err) || errors.Is(cause, ErrShutdown) || errors.Is(cause, errLeaseLost):
			r.log.Info("Onboarding paused", "onboarding_id", id, "tester", o.Username, "node_id", o.NodeID,
				"stage", stage, "reason", context.Cause(ctx))
		case errors.Is(cause, errCanceled):
			r.finishCanceled(o, stage, release)
		default:
			r.fail(o, stage, err, release)
		}
		return
	}
	r.succeed(o, release)
}

// stillDone reports whether a stage that an earlier attempt finished needs
// no new run: a provision whose deployment is still active on the
// onboarding's node, or an install that is still in place. A teardown
// between the attempts undoes both, and a resume then runs them again.
func stillDone(o *Onboarding, t *Tester, stage string) bool {
	switch o.Stage(stage).Status {
	case StageDone, StageSkipped:
	default:
		return false
	}
	switch stage {
	case StageProvisioning:
		return t.Deployment.State == DeploymentActive && t.Deployment.NodeID == o.NodeID
	case StageInstalling:
		return t.IsReady()
	}
	return true
}

// firstToRun returns the first stage that a new attempt of o runs, given
// what the tester has now.
func firstToRun(o *Onboarding, t *Tester) string {
	for _, stage := range Stages[1:] {
		if !stillDone(o, t, stage) {
			return stage
		}
	}
	return StageReady
}

// renewLease extends the worker's lease until ctx ends, and stops the worker
// if another process took the onboarding over. Its log lines go to log, which
// carries the onboarding's ids.
func (r *Runner) renewLease(ctx context.Context, id string, log *slog.Logger) {
	ttl := r.svc.opts.LeaseTTL
	for Sleep(ctx, ttl/3) {
		ok, err := r.store.RenewLease(ctx, id, r.owner, r.svc.now().Add(ttl))
		if err != nil {
			log.Warn("Lease renewal failed", "error", err)
			continue
		}
		if !ok {
			log.Error("Lease lost to another process")
			r.mu.Lock()
			if w := r.workers[id]; w != nil {
				w.cancel(errLeaseLost)
			}
			r.mu.Unlock()
			return
		}
	}
}

// runStage runs one stage, with its running and done events.
func (r *Runner) runStage(ctx context.Context, o *Onboarding, stage string) error {
	t, err := r.store.FindTester(ctx, o.Username)
	if err != nil {
		return err
	}
	run := r.svc.newRun(o.Username, stage, o.ID, o.Attempt)
	switch stage {
	case StageProvisioning:
		if t.Deployment.State == DeploymentActive && t.Deployment.NodeID == o.NodeID {
			return r.stageEvent(o, stage, StageSkipped, "Already provisioned on node "+o.NodeID)
		}
		r.stageEvent(o, stage, StageRunning, "Checking node "+o.NodeID)
		err := r.svc.provision(ctx, run, o.NodeID)
		if errors.Is(err, errAlreadyProvisioned) {
			return r.stageEvent(o, stage, StageSkipped, "Already provisioned on node "+o.NodeID)
		}
		if err != nil {
			return err
		}
		if t, err = r.doneTester(ctx, o); err != nil {
			return err
		}
		return r.stageEvent(o, stage, StageDone, "Gateway "+t.Deployment.Gateway)

	case StageInstalling:
		if t.IsReady() {
			return r.stageEvent(o, stage, StageSkipped, "Already installed")
		}
		r.stageEvent(o, stage, StageRunning, "Installing the tester stack")
		if err := r.svc.install(ctx, run); err != nil {
			return err
		}
		if t, err = r.doneTester(ctx, o); err != nil {
			return err
		}
		return r.stageEvent(o, stage, StageDone, "Cockpit answers at "+t.CockpitURL)

	case StageReady:
		if !t.IsReady() {
			return Errorf(EInstallFailed, "The stack is not installed. Press Install on the tester page.")
		}
		o.CockpitURL = t.CockpitURL
		return r.stageEvent(o, stage, StageDone, t.CockpitURL)
	}
	return fmt.Errorf("unknown stage %q", stage)
}

// doneTester reads the tester after a step succeeded, for its done event.
// The step's work is stored by then even when the worker is being stopped,
// so the read ignores ctx's cancellation, and the done event records what
// the step made instead of leaving it to a restart.
func (r *Runner) doneTester(ctx context.Context, o *Onboarding) (*Tester, error) {
	t, err := r.store.FindTester(context.WithoutCancel(ctx), o.Username)
	if err != nil {
		return nil, fmt.Errorf("read tester %s after the step: %w", o.Username, err)
	}
	return t, nil
}

// stageEvent records a stage status change. A failure to store it fails the
// stage, because the stream would otherwise show a stale state.
func (r *Runner) stageEvent(o *Onboarding, stage, status, message string) error {
	_, err := r.svc.emit(Event{OnboardingID: o.ID, Stage: stage, Status: status, Message: message, Kind: EventStage})
	if err == nil {
		r.log.Info("Stage changed", "onboarding_id", o.ID, "tester", o.Username, "node_id", o.NodeID,
			"stage", stage, "status", status)
	}
	return err
}

func (r *Runner) succeed(o *Onboarding, release func()) {
	release()
	if _, err := r.svc.emit(Event{
		OnboardingID: o.ID, Stage: StageReady, Status: StatusSucceeded, Kind: EventFinish, Message: o.CockpitURL,
	}); err != nil {
		return
	}
	r.log.Info("Onboarding succeeded", "onboarding_id", o.ID, "tester", o.Username, "node_id", o.NodeID)
}

// fail stops the onboarding at the stage with the error's code and message.
func (r *Runner) fail(o *Onboarding, stage string, err error, release func()) {
	message := ErrorMessage(err)
	r.stageEvent(o, stage, StageFailed, message)
	release()
	r.svc.emit(Event{
		OnboardingID: o.ID, Stage: stage, Status: StatusFailed, Kind: EventFinish,
		Code: ErrorCode(err), Message: message,
	})
	r.log.Warn("Onboarding failed", "onboarding_id", o.ID, "tester", o.Username, "node_id", o.NodeID,
		"stage", stage, "code", ErrorCode(err), "error", err)
}

// finishCanceled undoes what the onboarding created, stage by stage, and
// marks it canceled. A provisioning run undoes its own contracts before it
// returns; a deployment this onboarding made and finished is torn down here.
func (r *Runner) finishCanceled(o *Onboarding, stage string, release func()) {
	ctx := context.Background()
	r.stageEvent(o, stage, StageCanceled, "Canceled by an admin")
	t, err := r.store.FindTester(ctx, o.Username)
	if err == nil && t.HasDeployment() && t.Deployment.OnboardingID == o.ID {
		r.stageEvent(o, StageProvisioning, StageCanceled, "Undoing: canceling the contracts this onboarding created")
		run := r.svc.newRun(o.Username, StageProvisioning, o.ID, o.Attempt)
		if err := r.svc.teardown(ctx, run, o.ID); err != nil {
			r.stageEvent(o, StageProvisioning, StageCanceled,
				"Undo failed: "+withoutRetryAdvice(ErrorMessage(err))+" Press Teardown on the tester page.")
		} else {
			r.stageEvent(o, StageProvisioning, StageCanceled, "Undone: every contract canceled and the slots freed")
		}
	}
	if o.CreatedAccount {
		r.svc.emit(Event{OnboardingID: o.ID, Stage: StageAdding, Status: StageDone, Kind: EventLog,
			Message: "The account stays; delete it from the tester page if it is not wanted"})
	}
	release()
	r.svc.emit(Event{OnboardingID: o.ID, Stage: stage, Status: StatusCanceled, Kind: EventFinish,
		Code: ECanceled, Message: "Canceled by an admin"})
	r.log.Info("Onboarding canceled", "onboarding_id", o.ID, "tester", o.Username, "node_id", o.NodeID,
		"stage", stage)
}

// Cancel stops a running onboarding and undoes what it created. It waits for
// the worker to finish the undo until ctx ends, and returns the onboarding.
// It returns ENotFound for an unknown id and EConflict for one that already
// finished.
func (r *Runner) Cancel(ctx context.Context, id string) (o *Onboarding, err error) {
	o, err = r.store.FindOnboarding(ctx, id)
	if err != nil {
		return nil, err
	}
	// The audit names the tester from the first read, because o is nil when
	// a later store call fails.
	username, nodeID := o.Username, o.NodeID
	defer func() { r.svc.audit(ctx, "onboarding.cancel", username, nodeID, err, id) }()
	if o.Finished() {
		return o, Errorf(EConflict, "Onboarding %s already %s; there is nothing to cancel.", id, o.Status)
	}
	// The request is an event, so that open panels stop offering Cancel at
	// once instead of when the undo ends. A second request stores nothing
	// and waits for the same undo.
	e, err := r.store.AppendEvent(ctx, Event{
		OnboardingID: id, Kind: EventCancel, Stage: o.ActiveStage(), Status: StatusRunning,
		Message: "Cancel requested by " + ActorFrom(ctx) + ". The step stops at its next checkpoint, " +
			"then what this attempt created is undone.",
		Time: r.svc.now(),
	})
	switch {
	case err == nil:
		r.svc.hub.Publish(e)
	case !errors.Is(err, ErrCancelPending):
		return nil, err
	}

	r.mu.Lock()
	w := r.workers[id]
	r.mu.Unlock()
	if w == nil {
		// No worker here: the onboarding waits for a restart's reconciliation,
		// which finds the stored request and cancels it.
		return r.store.FindOnboarding(ctx, id)
	}
	w.cancel(errCanceled)
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	return r.store.FindOnboarding(context.WithoutCancel(ctx), id)
}

// Resume runs the remaining stages of a failed or canceled onboarding as a
// new attempt; its history stays. It returns EConflict when the tester has a
// newer onboarding or another one running.
func (r *Runner) Resume(ctx context.Context, id string) (o *Onboarding, err error) {
	o, err = r.store.FindOnboarding(ctx, id)
	if err != nil {
		return nil, err
	}
	username, nodeID := o.Username, o.NodeID
	defer func() { r.svc.audit(ctx, "onboarding.resume", username, nodeID, err, id) }()
	if !o.Finished() {
		return o, nil
	}
	if o.Status == StatusSucceeded {
		return o, Errorf(EConflict, "Onboarding %s already succeeded; there is nothing to resume.", id)
	}
	latest, err := r.store.ListOnboardings(ctx, o.Username, 1)
	if err != nil {
		return nil, err
	}
	if len(latest) > 0 && latest[0].ID != id {
		return o, Errorf(EConflict, "%s has a newer onboarding, %s. Resume that one instead.", o.Username, latest[0].ID)
	}
	unlock, err := r.svc.lockTester(o.Username, "A step")
	if err != nil {
		return o, err
	}
	t, err := r.store.FindTester(ctx, o.Username)
	if err != nil {
		unlock()
		return o, err
	}
	e, err := r.store.AppendEvent(ctx, Event{OnboardingID: id, Stage: firstToRun(o, t), Status: StageRunning,
		Kind: EventResume, Message: fmt.Sprintf("Attempt %d started by %s", o.Attempt+1, ActorFrom(ctx)),
		Time: r.svc.now()})
	if err != nil {
		unlock()
		return o, err
	}
	r.svc.hub.Publish(e)
	restarted, err := r.store.FindOnboarding(ctx, id)
	if err != nil {
		unlock()
		return o, err
	}
	r.log.Info("Onboarding resumed", "onboarding_id", id, "tester", o.Username, "node_id", o.NodeID,
		"attempt", restarted.Attempt)
	r.launch(restarted, unlock)
	return r.store.FindOnboarding(ctx, id)
}
