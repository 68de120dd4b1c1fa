package onboard_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"deployer/grid"
	"deployer/onboard"
	"deployer/stack"
	"deployer/storage"
)

// failingCancelStore is the real store, except that storing a cancel
// request fails.
type failingCancelStore struct{ *storage.DB }

func (s failingCancelStore) AppendEvent(ctx context.Context, e onboard.Event) (onboard.Event, error) {
	if e.Kind == onboard.EventCancel {
		return e, errors.New("disk I/O error")
	}
	return s.DB.AppendEvent(ctx, e)
}

func TestCancelAuditsStoreFailure(t *testing.T) {
	db := mustOpenDB(t, filepath.Join(t.TempDir(), "deployer.db"))
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	sim := grid.NewSim(db, time.Hour, 16)
	if err := sim.EnsureNode(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := onboard.NewService(failingCancelStore{db}, sim, stack.NewSim(sim, time.Hour), onboard.NewHub(), log,
		onboard.Options{BcryptCost: 4})
	runner := onboard.NewRunner(svc)
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		runner.Shutdown(stop)
		svc.Shutdown(stop)
	})

	res, err := runner.StartOnboarding(ctx, newTester("ivy"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := runner.Cancel(onboard.WithActor(ctx, "root"), res.Onboarding.ID)
	if err == nil {
		t.Fatalf("cancel returned %+v, want the store's error", o)
	}
	entries, err := svc.Audit(ctx, onboard.AuditFilter{Action: "onboarding.cancel"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d cancel entries, want 1", len(entries))
	}
	if e := entries[0]; e.Tester != "ivy" || e.NodeID != "1" || e.Actor != "root" || e.Outcome != onboard.EInternal {
		t.Errorf("audit entry %+v, want root's failed cancel for ivy on node 1", e)
	}
}
