package stack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks SSH host keys against a known-hosts file in OpenSSH's
// format. A host that is not in the file is trusted on first use and
// recorded, so every later connection must show the same key. It is safe
// for concurrent use.
type hostKeys struct {
	path string
	mu   sync.Mutex
}

// ErrHostKeyChanged marks a host whose key differs from the recorded one.
var ErrHostKeyChanged = errors.New("SSH host key changed")

// check is an ssh.HostKeyCallback. It reads the file anew on every call, so
// that an admin's edit takes effect without a restart.
func (h *hostKeys) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ensureFile(); err != nil {
		return err
	}
	known, err := knownhosts.New(h.path)
	if err != nil {
		return fmt.Errorf("read known hosts %s: %w", h.path, err)
	}

	err = known(hostname, remote, key)
	var keyErr *knownhosts.KeyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
		return h.record(hostname, key)
	case errors.As(err, &keyErr):
		want := keyErr.Want[0]
		return fmt.Errorf("%w: %s shows key %s, but %s line %d records %s. "+
			"If the VM was recreated, delete that line and retry; otherwise do not connect",
			ErrHostKeyChanged, hostname, ssh.FingerprintSHA256(key), h.path, want.Line,
			ssh.FingerprintSHA256(want.Key))
	default:
		return fmt.Errorf("check the host key of %s: %w", hostname, err)
	}
}

// record appends the host's key to the file.
func (h *hostKeys) record(hostname string, key ssh.PublicKey) error {
	f, err := os.OpenFile(h.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record the host key of %s: %w", hostname, err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return fmt.Errorf("record the host key of %s: %w", hostname, err)
	}
	return f.Close()
}

// ensureFile creates an empty file, and its folder, when missing.
func (h *hostKeys) ensureFile() error {
	if _, err := os.Stat(h.path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return fmt.Errorf("create the known hosts folder: %w", err)
	}
	f, err := os.OpenFile(h.path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create known hosts %s: %w", h.path, err)
	}
	return f.Close()
}
