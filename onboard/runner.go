package onboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Runner works onboardings on the server: it starts them, runs their stages
// in order on a context that belongs to the server, and resumes or fails
// those that were running when the process stopped. It is safe for
// concurrent use.
type Runner struct {
	svc   *Service
	store Store
	log   *slog.Logger
	// owner identifies this process in onboarding leases.
	owner string

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	workers  map[string]*worker
	stopping bool
	wg       sync.WaitGroup
}

type worker struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// NewRunner returns a runner over the service's store and backends.
func NewRunner(svc *Service) *Runner {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Runner{
		svc: svc, store: svc.store, log: svc.log, owner: uuid.NewString(),
		ctx: ctx, cancel: cancel, workers: map[string]*worker{},
	}
}

// StartResult is the outcome of a one-click start.
type StartResult struct {
	Onboarding *Onboarding
	// Started is false when the tester already had a running onboarding, or
	// the same form was submitted before; Onboarding is that one then.
	Started bool
	// OneTimePassword is set only when this start created the account.
	OneTimePassword string
}

// StartOnboarding begins the one-click flow for a tester. The adding stage runs inside
// the call, so that bad input is rejected at once and nothing is stored.
// A second start for a tester with a running onboarding, or a resubmitted
// form, returns the existing onboarding. It returns EInvalid naming the
// field, ENodeOffline or ENodeFull when the node cannot take the tester, and
// EConflict when a step is running for the tester.
func (r *Runner) StartOnboarding(ctx context.Context, in StartInput) (res StartResult, err error) {
	in.Normalize()
	defer func() {
		id := ""
		if res.Onboarding != nil {
			id = res.Onboarding.ID
		}
		r.svc.audit(ctx, "onboarding.start", in.Username, in.NodeID, err, id)
	}()
	if err := ValidateUsername(in.Username); err != nil {
		return StartResult{}, err
	}
	if err := ValidateNodeID(in.NodeID); err != nil {
		return StartResult{}, err
	}
	if len(in.FormKey) > 64 {
		return StartResult{}, FieldError("form_key", "Form key is too long: at most 64 bytes.")
	}
	tester, err := r.store.FindTester(ctx, in.Username)
	if err != nil && ErrorCode(err) != ENotFound {
		return StartResult{}, err
	}
	if tester != nil {
		if err := checkKnownTester(in.TesterInput, tester); err != nil {
			return StartResult{}, err
		}
	}
	if o, ok, err := r.existingStart(ctx, in); err != nil || ok {
		return StartResult{Onboarding: o}, err
	}

	var newTester *Tester
	var password string
	if tester == nil {
		if newTester, password, err = r.svc.newAccount(in.TesterInput); err != nil {
			return StartResult{}, err
		}
	}
	// Refuse before anything is stored when the node cannot take the tester;
	// the provisioning stage checks again with fresh figures.
	if tester == nil || !tester.HasDeployment() {
		c, err := r.svc.capacity(ctx, in.NodeID, true)
		if err != nil {
			return StartResult{}, err
		}
		if err := refuseUnusable(c); err != nil {
			return StartResult{}, err
		}
		if c.RoomForTesters < 1 {
			return StartResult{}, refuseFull(c)
		}
	}

	unlock, err := r.svc.lockTester(in.Username, "A step")
	if err != nil {
		// Another start for the same tester holds the lock. Return what
		// that start returns: its onboarding, or the form key's error when
		// the key started another tester meanwhile.
		o, ok, err2 := r.existingStart(ctx, in)
		switch {
		case err2 == nil && ok:
			return StartResult{Onboarding: o}, nil
		case ErrorField(err2) == "form_key":
			return StartResult{}, err2
		}
		return StartResult{}, err
	}
	res, err = r.create(ctx, in, newTester, password)
	if err != nil || !res.Started {
		unlock()
		return res, err
	}
	r.launch(res.Onboarding, unlock)
	return res, nil
}

// existingStart returns the onboarding that a resubmitted form, or a second
// start for the same tester, returns instead of starting another.
func (r *Runner) existingStart(ctx context.Context, in StartInput) (*Onboarding, bool, error) {
	if in.FormKey != "" {
		o, err := r.store.FindOnboardingByFormKey(ctx, in.FormKey)
		if err == nil && o.Username != in.Username {
			return nil, false, FormKeyUsed(o.Username, in.Username)
		}
		if err == nil {
			return o, true, nil
		}
		if ErrorCode(err) != ENotFound {
			return nil, false, err
		}
	}
	o, err := r.store.ActiveOnboarding(ctx, in.Username)
	if err == nil {
		return o, true, nil
	}
	if ErrorCode(err) != ENotFound {
		return nil, false, err
	}
	return nil, false, nil
}

// create stores the onboarding, with the new account if there is one, and
// the adding stage's events, in one transaction.
func (r *Runner) create(ctx context.Context, in StartInput, newTester *Tester, password string) (StartResult, error) {
	now := r.svc.now()
	o := &Onboarding{
		ID: uuid.NewString(), Username: in.Username, NodeID: in.NodeID, Status: StatusRunning,
		Attempt: 1, FormKey: in.FormKey, StartedBy: ActorFrom(ctx), CreatedAt: now, UpdatedAt: now,
	}
	for _, name := range Stages {
		o.Stages = append(o.Stages, Stage{Name: name, Status: StagePending})
	}
	addedMsg := fmt.Sprintf("Registered %s, who was already known here", in.Username)
	switch {
	case newTester != nil && newTester.Account == AccountExisting:
		addedMsg = fmt.Sprintf("Registered %s, whose account already exists", in.Username)
	case newTester != nil:
		addedMsg = fmt.Sprintf("Created the account %s with a one-time password", in.Username)
	}
	events := []Event{
		{Stage: StageAdding, Status: StageRunning, Kind: EventStage, Time: now},
		{Stage: StageAdding, Status: StageDone, Kind: EventStage, Message: addedMsg, Time: now},
	}

	created, active, err := r.store.CreateOnboarding(ctx, o, newTester, events)
	if err != nil {
		return StartResult{}, err
	}
	if active != nil {
		return StartResult{Onboarding: active}, nil
	}
	if !created {
		// The account appeared meanwhile, so this start did not create
		// it and has no password to show.
		password = ""
	}
	o, err = r.store.FindOnboarding(ctx, o.ID)
	if err != nil {
		return StartResult{}, err
	}
	stored, err := r.store.Events(ctx, o.ID, 0, 10)
	if err == nil {
		for _, e := range stored {
			r.svc.hub.Publish(e)
		}
	}
	r.log.Info("Onboarding started", "onboarding_id", o.ID, "tester", o.Username, "node_id", o.NodeID,
		"account_created", created)
	return StartResult{Onboarding: o, Started: true, OneTimePassword: password}, nil
}

// Onboarding returns one onboarding. It returns ENotFound for an unknown id.
func (r *Runner) Onboarding(ctx context.Context, id string) (*Onboarding, error) {
	return r.store.FindOnboarding(ctx, id)
}

// Onboardings returns a tester's onboardings, newest first, or everyone's
// when username is empty.
func (r *Runner) Onboardings(ctx context.Context, username string, limit int) ([]*Onboarding, error) {
	return r.store.ListOnboardings(ctx, username, limit)
}

// Events returns the onboarding's stored events after the sequence number.
func (r *Runner) Events(ctx context.Context, id string, after int64, limit int) ([]Event, error) {
	return r.store.Events(ctx, id, after, limit)
}

// StageLog returns the log lines of one stage of an onboarding's attempt.
func (r *Runner) StageLog(ctx context.Context, id, stage string, attempt int) ([]LogLine, error) {
	return r.store.StageLog(ctx, id, stage, attempt)
}

// Hub returns the hub that the runner's events are published to.
func (r *Runner) Hub() *Hub { return r.svc.hub }

// launch runs the onboarding's remaining stages in a goroutine of the
// runner; unlock releases the tester when the work ends.
func (r *Runner) launch(o *Onboarding, unlock func()) {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		unlock()
		return
	}
	ctx, cancel := context.WithCancelCause(r.ctx)
	w := &worker{cancel: cancel, done: make(chan struct{})}
	r.workers[o.ID] = w
	r.wg.Add(1)
	r.mu.Unlock()

	// The tester is released just before the outcome is stored, so that a
	// step pressed as soon as the onboarding shows finished is not refused.
	release := sync.OnceFunc(unlock)
	go func() {
		defer r.wg.Done()
		defer close(w.done)
		defer func() {
			r.mu.Lock()
			delete(r.workers, o.ID)
			r.mu.Unlock()
		}()
		defer release()
		defer cancel(context.Canceled)
		r.work(ctx, o, release)
	}()
}

// Shutdown stops every worker at its next checkpoint, leaving its onboarding
// running for the next start to resume, and waits for them until ctx ends.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	r.cancel(ErrShutdown)

	if err := waitGroup(ctx, &r.wg); err != nil {
		return fmt.Errorf("runner shutdown: %w", err)
	}
	return nil
}

// Running returns the number of onboardings this process is working on.
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.workers)
}

// Sleep waits for d or until ctx ends, and reports whether d passed. A d of
// zero or less returns at once, false only when ctx has ended.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// waitGroup waits for wg until ctx ends; it returns ctx's error when ctx
// ended first.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errLeaseLost is the cause of a worker stopped because another process took
// over its onboarding.
var errLeaseLost = errors.New("lease lost")
