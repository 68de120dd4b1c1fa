package onboard

import (
	"context"
	"sync/atomic"
	"time"
)

// AuditEntry records one admin action.
type AuditEntry struct {
	ID      int64
	Actor   string // admin username, "api" for the API token, "system" for the runner
	Action  string // such as tester.create, tester.provision, onboarding.start
	Tester  string
	NodeID  string
	Outcome string // ok, or the error code
	Detail  string
	Time    time.Time
}

// AuditFilter selects audit entries; empty fields match everything.
type AuditFilter struct {
	Actor  string
	Action string
	Tester string
	NodeID string
	Limit  int
}

type actorKey struct{}

// actor is the admin acting in a context, and whether an audit entry was
// recorded under that context.
type actor struct {
	name     string
	recorded atomic.Bool
}

// WithActor returns a context that names the admin acting, for the audit log.
func WithActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, &actor{name: name})
}

// ActorFrom returns the admin acting in ctx, or "system".
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(*actor); ok && a.name != "" {
		return a.name
	}
	return "system"
}

// Audited reports whether an audit entry was recorded under ctx since
// WithActor made it, so that a caller can record the requests that failed
// before they reached a service. It is safe for concurrent use.
func Audited(ctx context.Context) bool {
	a, ok := ctx.Value(actorKey{}).(*actor)
	return ok && a.recorded.Load()
}

// Audit fields are clipped to these lengths in bytes, because some of them
// come from requests that failed validation.
const (
	auditNameMax   = 64
	auditDetailMax = 500
)

// audit stores an entry for the action and logs a failure to store it; an
// audit failure does not undo the action it records.
func (s *Service) audit(ctx context.Context, action, tester, nodeID string, err error, detail string) {
	outcome := "ok"
	if err != nil {
		outcome = ErrorCode(err)
	}
	if a, ok := ctx.Value(actorKey{}).(*actor); ok {
		a.recorded.Store(true)
	}
	e := AuditEntry{
		Actor: clip(ActorFrom(ctx), auditNameMax), Action: clip(action, auditNameMax),
		Tester: clip(tester, auditNameMax), NodeID: clip(nodeID, auditNameMax),
		Outcome: outcome, Detail: clip(detail, auditDetailMax), Time: s.now(),
	}
	if err := s.store.RecordAudit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("Audit entry not stored", "action", action, "tester", tester, "error", err)
	}
}

// Audit returns audit entries, newest first.
func (s *Service) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 200
	}
	return s.store.ListAudit(ctx, f)
}

// RecordAudit stores an audit entry for an action taken outside the
// service, such as a login or a simulator switch.
func (s *Service) RecordAudit(ctx context.Context, action, tester, nodeID string, err error, detail string) {
	s.audit(ctx, action, tester, nodeID, err, detail)
}
