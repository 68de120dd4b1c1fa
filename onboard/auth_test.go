package onboard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"deployer/onboard"
)

// testClock is a settable time source, safe for concurrent use.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newAuth returns an Auth over a real SQLite file with the admin "admin".
func newAuth(t *testing.T, cost int, clock *testClock) *onboard.Auth {
	t.Helper()
	db := mustOpenDB(t, filepath.Join(t.TempDir(), "deployer.db"))
	t.Cleanup(func() { db.Close() })
	opts := onboard.AuthOptions{Idle: time.Hour, BcryptCost: cost}
	if clock != nil {
		opts.Now = clock.Now
	}
	auth := onboard.NewAuth(db, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := auth.Bootstrap(context.Background(), "the admin password"); err != nil {
		t.Fatal(err)
	}
	return auth
}

func TestLoginBlockEndsAfterWindow(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	auth := newAuth(t, 4, clock)

	// An account takes 50 failures, spread here over 50 addresses so that
	// no address reaches its own limit of 10.
	for i := 0; i < 50; i++ {
		if _, err := auth.Login(ctx, "admin", "wrong", fmt.Sprintf("10.0.0.%d", i)); errors.Is(err, onboard.ErrLoginBlocked) {
			t.Fatalf("blocked after %d failures, want 50 allowed", i)
		}
		clock.Advance(10 * time.Second)
	}
	_, err := auth.Login(ctx, "admin", "the admin password", "10.0.1.1")
	if !errors.Is(err, onboard.ErrLoginBlocked) || onboard.ErrorCode(err) != onboard.EUnauthorized {
		t.Fatalf("login of the blocked account: %v, want EUnauthorized wrapping ErrLoginBlocked", err)
	}

	// The block lasts 15 minutes from the first of the failures, which
	// came 500 s ago.
	clock.Advance(400*time.Second + time.Second)
	if _, err := auth.Login(ctx, "admin", "the admin password", "10.0.1.1"); err != nil {
		t.Errorf("login after the window: %v, want success", err)
	}
}

func TestLoginFailuresCountPerKey(t *testing.T) {
	ctx := context.Background()
	auth := newAuth(t, 4, nil)
	if err := auth.AddAdmin(ctx, "ops", "the ops password"); err != nil {
		t.Fatal(err)
	}
	// Nine failures for one account and nine from one address block
	// neither. The tenth from that address blocks the address for every
	// account.
	for i := 0; i < 9; i++ {
		auth.Login(ctx, "admin", "wrong", fmt.Sprintf("10.0.0.%d", i))
		auth.Login(ctx, fmt.Sprintf("nobody%d", i), "wrong", "192.0.2.1")
	}
	if _, err := auth.Login(ctx, "admin", "the admin password", "10.0.0.99"); err != nil {
		t.Errorf("login after 9 failures of the account: %v", err)
	}
	if _, err := auth.Login(ctx, "ops", "the ops password", "192.0.2.1"); err != nil {
		t.Errorf("login after 9 failures from the address: %v", err)
	}
	auth.Login(ctx, "nobody", "wrong", "192.0.2.1")
	if _, err := auth.Login(ctx, "ops", "the ops password", "192.0.2.1"); !errors.Is(err, onboard.ErrLoginBlocked) {
		t.Errorf("login from an address after 10 failures: %v, want blocked", err)
	}
	if _, err := auth.Login(ctx, "ops", "the ops password", "192.0.2.2"); err != nil {
		t.Errorf("login of the same account from another address: %v", err)
	}
}

func TestLoginOfUnknownAdminTakesAsLong(t *testing.T) {
	ctx := context.Background()
	auth := newAuth(t, 10, nil)
	auth.Login(ctx, "nobody", "warm up the dummy hash", "10.0.0.1")

	measure := func(username string) time.Duration {
		var times []time.Duration
		for i := 0; i < 3; i++ {
			start := time.Now()
			if _, err := auth.Login(ctx, username, "wrong password", fmt.Sprintf("10.0.%d.%d", len(username), i)); err == nil {
				t.Fatal("a wrong password logged in")
			}
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		return times[1]
	}
	known, unknown := measure("admin"), measure("nobody-at-all")
	// Both compare a bcrypt hash. Without the dummy hash, a login of an
	// unknown name would end after a database lookup, hundreds of times
	// faster.
	if unknown < known/4 {
		t.Errorf("unknown admin took %s, known admin %s: the difference tells which admins exist", unknown, known)
	}
}

func TestOneAddressCannotLockTheAdminOut(t *testing.T) {
	ctx := context.Background()
	auth := newAuth(t, 4, nil)
	for i := 0; i < 30; i++ {
		auth.Login(ctx, "admin", "wrong", "203.0.113.9")
	}
	if _, err := auth.Login(ctx, "admin", "the admin password", "198.51.100.7"); err != nil {
		t.Errorf("the admin from another address after one address failed 30 times: %v, want success", err)
	}
}
