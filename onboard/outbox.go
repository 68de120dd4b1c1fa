package onboard

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Outbox delivery retries: the wait doubles from the first delay up to the
// max, and a message fails for good after the last attempt.
const (
	outboxFirstRetry  = 10 * time.Second
	outboxMaxRetry    = 30 * time.Minute
	outboxMaxAttempts = 10
	outboxPoll        = 30 * time.Second
)

// Outbox delivers queued messages through a mailer with retries and
// backoff. It is safe for concurrent use.
type Outbox struct {
	store  Store
	mailer Mailer
	wake   <-chan struct{}
	log    *slog.Logger
	now    func() time.Time
	// FirstRetry is the wait after a first failed attempt; tests shorten it.
	FirstRetry time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewOutbox returns a sender for the service's outbox.
func NewOutbox(svc *Service, mailer Mailer) *Outbox {
	return &Outbox{
		store: svc.store, mailer: mailer, wake: svc.mailWake, log: svc.log,
		now: svc.opts.Now, FirstRetry: outboxFirstRetry,
	}
}

// Start delivers in a goroutine until Shutdown.
func (o *Outbox) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		o.loop(ctx)
	}()
}

// Shutdown stops delivery and waits for an attempt in progress until ctx ends.
func (o *Outbox) Shutdown(ctx context.Context) error {
	if o.cancel == nil {
		return nil
	}
	o.cancel()
	return waitGroup(ctx, &o.wg)
}

func (o *Outbox) loop(ctx context.Context) {
	for {
		next := o.deliverDue(ctx)
		wait := outboxPoll
		if !next.IsZero() {
			wait = min(max(next.Sub(o.now()), 10*time.Millisecond), outboxPoll)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-o.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliverDue sends every due message once and returns when the next retry
// is due, or zero when none waits.
func (o *Outbox) deliverDue(ctx context.Context) time.Time {
	due, err := o.store.DueMessages(ctx, o.now().UTC(), 50)
	if err != nil {
		if ctx.Err() == nil {
			o.log.Error("Outbox not read", "error", err)
		}
		return o.now().Add(outboxPoll)
	}
	var next time.Time
	for _, m := range due {
		if ctx.Err() != nil {
			return next
		}
		if at := o.deliver(ctx, m); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

// deliver makes one attempt and records it; it returns when to retry.
func (o *Outbox) deliver(ctx context.Context, m Message) time.Time {
	sendCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err := o.mailer.Send(sendCtx, m)
	cancel()
	store := context.WithoutCancel(ctx)
	if err == nil {
		if err := o.store.MarkMessageSent(store, m.ID, o.now().UTC()); err != nil {
			o.log.Error("Sent message not recorded", "message_id", m.ID, "error", err)
		}
		o.log.Info("Welcome email sent", "message_id", m.ID, "tester", m.Tester)
		return time.Time{}
	}

	attempt := m.Attempts + 1
	var next time.Time
	if attempt < outboxMaxAttempts {
		backoff := min(o.FirstRetry<<(attempt-1), outboxMaxRetry)
		next = o.now().UTC().Add(backoff)
		o.log.Warn("Welcome email not sent; will retry", "message_id", m.ID, "tester", m.Tester,
			"attempt", attempt, "retry_in", backoff.String(), "error", err)
	} else {
		o.log.Error("Welcome email failed for good", "message_id", m.ID, "tester", m.Tester,
			"attempts", attempt, "error", err)
	}
	if err := o.store.MarkMessageFailed(store, m.ID, clip(err.Error(), 500), next); err != nil {
		o.log.Error("Failed message not recorded", "message_id", m.ID, "error", err)
	}
	return next
}

// Messages returns the newest outbox messages.
func (o *Outbox) Messages(ctx context.Context, limit int) ([]Message, error) {
	return o.store.ListMessages(ctx, limit)
}
