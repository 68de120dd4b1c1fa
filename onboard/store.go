package onboard

import (
	"context"
	"time"
)

// Store keeps testers, onboardings, events, reservations, the outbox and the
// audit log. Methods that change more than one row do it in one transaction.
// Lookups return ENotFound for a missing row. Implementations are safe for
// concurrent use.
type Store interface {
	// CreateTester inserts t and reports whether it did; false means the
	// username was taken meanwhile.
	CreateTester(ctx context.Context, t *Tester) (bool, error)
	FindTester(ctx context.Context, username string) (*Tester, error)
	ListTesters(ctx context.Context) ([]*Tester, error)
	// SearchTesters returns one page of testers whose username, full name
	// or email contains text, newest first, and how many match in all.
	SearchTesters(ctx context.Context, text string, offset, limit int) ([]*Tester, int, error)
	SetPasswordHash(ctx context.Context, username string, hash []byte, now time.Time) error

	// BeginProvision records the deployment's project and, when p.Slots is
	// above zero, reserves the slots, in one immediate transaction that
	// checks the room first. It returns ENodeFull when the slots do not fit,
	// ENodeOffline when the node is degraded. Slots landed after
	// p.LandedBefore count as used, whatever the grid figure says.
	BeginProvision(ctx context.Context, p ProvisionStart, now time.Time) error
	// RecordContract adds a contract to the tester's deployment. A VM
	// contract lands the tester's reservation, because the grid now counts
	// its slots, and adds them to the node's landed counter.
	RecordContract(ctx context.Context, username string, c Contract) error
	// FinishProvision marks the deployment active with the grid's contracts
	// and releases the reservation.
	FinishProvision(ctx context.Context, username string, p GridProject, now time.Time) error
	// FailProvision marks the deployment failed with the reason and releases
	// the reservation; cleared drops the recorded contracts, which the grid
	// confirmed canceled.
	FailProvision(ctx context.Context, username, reason string, cleared bool, now time.Time) error
	SetInstallState(ctx context.Context, username, state, reason string, now time.Time) error
	// MarkInstalled stores the cockpit URL and queues m in the outbox when
	// m is not nil.
	MarkInstalled(ctx context.Context, username, cockpitURL string, m *Message, now time.Time) error
	// DeleteTester removes the tester with its onboardings, events and logs.
	DeleteTester(ctx context.Context, username string) error
	BeginTeardown(ctx context.Context, username string, now time.Time) error
	FailTeardown(ctx context.Context, username, reason string, now time.Time) error
	// FinishTeardown drops the deployment, its contracts and any reservation.
	FinishTeardown(ctx context.Context, username string, now time.Time) error

	NodeHold(ctx context.Context, nodeID string) (NodeHold, error)
	// HeldSlots returns the slots the tester's reservation holds on the node
	// that the grid does not count yet.
	HeldSlots(ctx context.Context, username, nodeID string) (int, error)
	// NodeLandedSlots returns the node's counter of landed reservation slots.
	NodeLandedSlots(ctx context.Context, nodeID string) (int64, error)
	// SetNodeHealth sets or clears the degraded mark and resets the failure count.
	SetNodeHealth(ctx context.Context, nodeID string, degraded bool, reason string, now time.Time) error
	// CountNodeFailure adds one provision failure and marks the node
	// degraded when the count reaches threshold. It returns the count.
	CountNodeFailure(ctx context.Context, nodeID string, threshold int, reason string, now time.Time) (int, error)

	// CreateOnboarding stores o, inserting newTester first when it is not
	// nil, and appends events, in one transaction. It reports whether it
	// created the account. When the tester already has a running onboarding
	// it stores nothing and returns that one as active.
	CreateOnboarding(ctx context.Context, o *Onboarding, newTester *Tester, events []Event) (created bool, active *Onboarding, err error)
	FindOnboarding(ctx context.Context, id string) (*Onboarding, error)
	FindOnboardingByFormKey(ctx context.Context, key string) (*Onboarding, error)
	ActiveOnboarding(ctx context.Context, username string) (*Onboarding, error)
	// ListOnboardings returns onboardings newest first: a tester's, or
	// everyone's for an empty username.
	ListOnboardings(ctx context.Context, username string, limit int) ([]*Onboarding, error)
	ListRunningOnboardings(ctx context.Context) ([]*Onboarding, error)
	// ClaimOnboarding makes owner the lease holder of a running onboarding
	// when the lease is free or expired, or always with takeover.
	ClaimOnboarding(ctx context.Context, id, owner string, until time.Time, takeover bool) (bool, error)
	// RenewLease extends owner's lease; false means owner no longer holds it.
	RenewLease(ctx context.Context, id, owner string, until time.Time) (bool, error)
	ReleaseLease(ctx context.Context, id, owner string) error

	// AppendEvent stores e with the onboarding's next sequence number and
	// applies it: a stage event sets the stage, a finish event the outcome,
	// a resume event starts a new attempt of a failed or canceled onboarding.
	// It returns the stored event, and EConflict for a resume event when the
	// onboarding is not failed or canceled or the tester has another running.
	AppendEvent(ctx context.Context, e Event) (Event, error)
	// Events returns the onboarding's events after the sequence number.
	Events(ctx context.Context, id string, after int64, limit int) ([]Event, error)
	// AppendLog stores a log line and, when e is not nil, appends e as
	// AppendEvent does, in one transaction; it returns the stored event.
	AppendLog(ctx context.Context, runID, username string, l LogLine, e *Event) (Event, error)
	StageLog(ctx context.Context, onboardingID, stage string, attempt int) ([]LogLine, error)
	// TesterLog returns the newest log lines of the tester's step runs.
	TesterLog(ctx context.Context, username string, limit int) ([]LogLine, error)

	// DueMessages returns pending outbox messages whose next attempt is due.
	DueMessages(ctx context.Context, now time.Time, limit int) ([]Message, error)
	MarkMessageSent(ctx context.Context, id int64, now time.Time) error
	// MarkMessageFailed records a failed attempt; the message stays pending
	// until next, or is failed for good when next is zero.
	MarkMessageFailed(ctx context.Context, id int64, reason string, next time.Time) error
	ListMessages(ctx context.Context, limit int) ([]Message, error)

	RecordAudit(ctx context.Context, e AuditEntry) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}
