package onboard_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"deployer/grid"
	"deployer/internal/testkit"
	"deployer/onboard"
	"deployer/stack"
	"deployer/storage"

	"golang.org/x/crypto/bcrypt"
)

// env is a service and runner over a real SQLite file and the simulated grid.
type env struct {
	db     *storage.DB
	sim    *grid.Sim
	svc    *onboard.Service
	runner *onboard.Runner
	hub    *onboard.Hub
	logs   *testkit.LogBuffer
}

type envOptions struct {
	slots int
	delay time.Duration
	opts  onboard.Options
	path  string
	// wrapStore, when set, wraps the database as the service's store.
	wrapStore func(onboard.Store) onboard.Store
}

func mustOpenDB(tb testing.TB, path string) *storage.DB {
	tb.Helper()
	db, err := storage.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("open database: %v", err)
	}
	return db
}

func newEnv(tb testing.TB, o envOptions) *env {
	tb.Helper()
	if o.slots == 0 {
		o.slots = 16
	}
	if o.path == "" {
		o.path = filepath.Join(tb.TempDir(), "deployer.db")
	}
	if o.opts.BcryptCost == 0 {
		o.opts.BcryptCost = bcrypt.MinCost
	}
	db := mustOpenDB(tb, o.path)
	logs := &testkit.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sim := grid.NewSim(db, o.delay, o.slots)
	if err := sim.EnsureNode(context.Background(), "1"); err != nil {
		tb.Fatal(err)
	}
	hub := onboard.NewHub()
	var store onboard.Store = db
	if o.wrapStore != nil {
		store = o.wrapStore(db)
	}
	svc := onboard.NewService(store, sim, stack.NewSim(sim, o.delay), hub, log, o.opts)
	runner := onboard.NewRunner(svc)
	if err := runner.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	e := &env{db: db, sim: sim, svc: svc, runner: runner, hub: hub, logs: logs}
	tb.Cleanup(func() { e.close(tb) })
	return e
}

// close shuts the runner and service down and closes the database; calling
// it twice is harmless.
func (e *env) close(tb testing.TB) {
	if e.db == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.runner.Shutdown(ctx); err != nil {
		tb.Errorf("runner shutdown: %v", err)
	}
	if err := e.svc.Shutdown(ctx); err != nil {
		tb.Errorf("service shutdown: %v", err)
	}
	e.db.Close()
	e.db = nil
}

// waitFinished waits until the onboarding stops running.
func (e *env) waitFinished(tb testing.TB, id string, within time.Duration) *onboard.Onboarding {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		o, err := e.runner.Onboarding(context.Background(), id)
		if err != nil {
			tb.Fatalf("find onboarding: %v", err)
		}
		if o.Finished() {
			return o
		}
		if time.Now().After(deadline) {
			tb.Fatalf("onboarding %s still %s at stage %s after %s", id, o.Status, o.CurrentStage().Name, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newTester(name string) onboard.StartInput {
	return onboard.StartInput{
		TesterInput: onboard.TesterInput{Username: name, FullName: "Test " + name, Email: name + "@example.org"},
		NodeID:      "1",
	}
}

// liveContracts returns the simulated grid's live contracts.
func (e *env) liveContracts(tb testing.TB) []onboard.Contract {
	tb.Helper()
	list, err := e.sim.Contracts(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return list
}

// untracked returns live grid contracts that no tester has recorded.
func (e *env) untracked(tb testing.TB) []onboard.Contract {
	tb.Helper()
	testers, err := e.svc.Testers(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	owned := map[int64]bool{}
	for _, t := range testers {
		for _, c := range t.Deployment.Contracts {
			owned[c.ID] = true
		}
	}
	var orphans []onboard.Contract
	for _, c := range e.liveContracts(tb) {
		if !owned[c.ID] {
			orphans = append(orphans, c)
		}
	}
	return orphans
}
