package onboard

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Options tunes the service and the runner. Zero fields take the defaults.
type Options struct {
	// StageTimeouts bounds each stage run: provisioning, installing, teardown.
	StageTimeouts map[string]time.Duration
	// LeaseTTL is how long a worker's claim on an onboarding lasts without a
	// renewal; workers renew it at a third of that.
	LeaseTTL time.Duration
	// DegradeAfter marks a node degraded after that many provision failures
	// in a row; 0 disables it.
	DegradeAfter int
	// CleanupTimeout bounds undoing a failed or canceled provision.
	CleanupTimeout time.Duration
	// LogLinesPerStage caps the log lines kept for one stage run.
	LogLinesPerStage int
	// BcryptCost is the work factor of one-time password hashes; tests lower
	// it to bcrypt.MinCost.
	BcryptCost int
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// Default option values.
const (
	DefaultProvisionTimeout = 10 * time.Minute
	DefaultInstallTimeout   = 20 * time.Minute
	DefaultTeardownTimeout  = 10 * time.Minute
	DefaultLeaseTTL         = 30 * time.Second
	DefaultDegradeAfter     = 3
	DefaultCleanupTimeout   = 2 * time.Minute
	DefaultLogLinesPerStage = 500
)

func (o *Options) setDefaults() {
	if o.StageTimeouts == nil {
		o.StageTimeouts = map[string]time.Duration{}
	}
	for stage, d := range map[string]time.Duration{
		StageProvisioning: DefaultProvisionTimeout,
		StageInstalling:   DefaultInstallTimeout,
		StageTeardown:     DefaultTeardownTimeout,
	} {
		if o.StageTimeouts[stage] <= 0 {
			o.StageTimeouts[stage] = d
		}
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.DegradeAfter < 0 {
		o.DegradeAfter = 0
	}
	if o.CleanupTimeout <= 0 {
		o.CleanupTimeout = DefaultCleanupTimeout
	}
	if o.LogLinesPerStage <= 0 {
		o.LogLinesPerStage = DefaultLogLinesPerStage
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = bcryptCost
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Service carries out the steps: create-or-register, provision, install,
// teardown and password reset. The pages, the JSON API and the one-click
// runner all call it, so the paths cannot drift apart. It is safe for
// concurrent use; steps for one tester run one at a time.
type Service struct {
	store     Store
	grid      Grid
	installer Installer
	hub       *Hub
	log       *slog.Logger
	opts      Options

	// mailWake is signalled when the outbox gains a message.
	mailWake chan struct{}

	mu   sync.Mutex
	busy map[string]string // tester username to the work holding it

	// stop ends work that must outlive a request, at shutdown.
	stopCtx context.Context
	stop    context.CancelCauseFunc
	work    sync.WaitGroup
}

// NewService returns a service over the given backends.
func NewService(store Store, grid Grid, installer Installer, hub *Hub, log *slog.Logger, opts Options) *Service {
	opts.setDefaults()
	ctx, stop := context.WithCancelCause(context.Background())
	return &Service{
		store:     store,
		grid:      grid,
		installer: installer,
		hub:       hub,
		log:       log,
		opts:      opts,
		mailWake:  make(chan struct{}, 1),
		busy:      map[string]string{},
		stopCtx:   ctx,
		stop:      stop,
	}
}

// Hub returns the event hub the service publishes to.
func (s *Service) Hub() *Hub { return s.hub }

// MailWake returns a channel that receives a value when a message is queued.
func (s *Service) MailWake() <-chan struct{} { return s.mailWake }

// lockTester marks the tester busy with the named work. It returns
// EConflict, naming the work in progress, when the tester is already busy.
func (s *Service) lockTester(username, work string) (unlock func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held, ok := s.busy[username]; ok {
		return nil, Errorf(EConflict, "%s is already running for %s. Wait for it to finish, then try again.",
			held, username)
	}
	s.busy[username] = work
	return func() {
		s.mu.Lock()
		delete(s.busy, username)
		s.mu.Unlock()
	}, nil
}

// detach returns a context that carries ctx's values but ends only when the
// service shuts down, so that a step outlives the request that asked for it.
func (s *Service) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	detached, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(s.stopCtx, func() { cancel(context.Cause(s.stopCtx)) })
	return detached, func() {
		stop()
		cancel(context.Canceled)
	}
}

// runDetached runs fn on a context that outlives ctx and waits for it, or for
// ctx to end; the work goes on either way and its outcome is stored.
func (s *Service) runDetached(ctx context.Context, fn func(ctx context.Context) error) error {
	detached, cancel := s.detach(ctx)
	done := make(chan error, 1)
	s.work.Add(1)
	go func() {
		defer s.work.Done()
		defer cancel()
		done <- fn(detached)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops detached steps at their next checkpoint and waits for them
// until ctx ends.
func (s *Service) Shutdown(ctx context.Context) error {
	s.stop(ErrShutdown)
	return waitGroup(ctx, &s.work)
}

func (s *Service) now() time.Time { return s.opts.Now().UTC() }

func (s *Service) queueMail() {
	select {
	case s.mailWake <- struct{}{}:
	default:
	}
}
