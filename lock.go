package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDatabase takes an exclusive lock on a file beside the database, so
// that a second deployer on the same database stops at once. The kernel
// drops the lock when the process ends, even when it is killed, so every
// onboarding found running at startup belongs to a process that is gone.
func lockDatabase(dbPath string) (*os.File, error) {
	path := dbPath + ".lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another deployer is using %s; stop it first", dbPath)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
