package stack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"deployer/onboard"

	"golang.org/x/crypto/ssh"
)

// Defaults of SSHConfig.
const (
	DefaultSSHUser        = "root"
	DefaultSSHPort        = 22
	DefaultGateFile       = "/etc/deployer/login-gate"
	DefaultDialTimeout    = 30 * time.Second
	DefaultCommandTimeout = 15 * time.Minute
	DefaultPollInterval   = 2 * time.Second
	DefaultMaxLines       = 300
	DefaultMaxLineBytes   = 500
)

// SSHConfig sets up the SSH installer. Zero fields take the defaults above.
type SSHConfig struct {
	// Signer is the deployer's key; LoadKey reads one from a file.
	Signer ssh.Signer
	// KnownHostsFile records the VMs' host keys, created when missing.
	KnownHostsFile string
	User           string
	Port           int
	// Command is the install command, run by the login user's shell.
	Command string
	// Env adds NAME=value settings to the install command's environment.
	Env []string
	// GateFile is the path of the login gate file on the VM.
	GateFile       string
	DialTimeout    time.Duration
	CommandTimeout time.Duration
	PollInterval   time.Duration
	MaxLines       int
	MaxLineBytes   int
	// CockpitURL returns the cockpit URL of a gateway name; the default is
	// https://<gateway>/.
	CockpitURL func(gateway string) string
	HTTPClient *http.Client
	Log        *slog.Logger
}

// SSH installs the stack by running the install command on the VM over
// SSH, then waits until the cockpit URL responds. It is safe for concurrent
// use.
type SSH struct {
	cfg   SSHConfig
	hosts *hostKeys
}

var _ onboard.Installer = (*SSH)(nil)

// LoadKey reads an unencrypted private key file in OpenSSH or PEM format.
func LoadKey(file string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("SSH key %s is protected by a passphrase; use a key without one", file)
	}
	if err != nil {
		return nil, fmt.Errorf("SSH key %s is not a private key in OpenSSH or PEM format: %w", file, err)
	}
	return signer, nil
}

// NewSSH returns the SSH installer. It returns an error when the key, the
// known hosts file or the command is missing.
func NewSSH(cfg SSHConfig) (*SSH, error) {
	switch {
	case cfg.Signer == nil:
		return nil, errors.New("the SSH installer needs a key; set DEPLOYER_SSH_KEY")
	case cfg.KnownHostsFile == "":
		return nil, errors.New("the SSH installer needs a known hosts file")
	case strings.TrimSpace(cfg.Command) == "":
		return nil, errors.New("the SSH installer needs an install command; set DEPLOYER_INSTALL_COMMAND")
	}
	cfg.User = cmp.Or(cfg.User, DefaultSSHUser)
	cfg.GateFile = cmp.Or(cfg.GateFile, DefaultGateFile)
	cfg.Port = positiveOr(cfg.Port, DefaultSSHPort)
	cfg.MaxLines = positiveOr(cfg.MaxLines, DefaultMaxLines)
	cfg.MaxLineBytes = positiveOr(cfg.MaxLineBytes, DefaultMaxLineBytes)
	cfg.DialTimeout = positiveOr(cfg.DialTimeout, DefaultDialTimeout)
	cfg.CommandTimeout = positiveOr(cfg.CommandTimeout, DefaultCommandTimeout)
	cfg.PollInterval = positiveOr(cfg.PollInterval, DefaultPollInterval)
	if cfg.CockpitURL == nil {
		cfg.CockpitURL = func(gateway string) string { return "https://" + gateway + "/" }
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &SSH{cfg: cfg, hosts: &hostKeys{path: cfg.KnownHostsFile}}, nil
}

// Install connects to the VM, writes the login gate, runs the install
// command with its output streamed to progress, then polls the cockpit URL
// until it responds or ctx ends. It returns the cockpit URL.
func (s *SSH) Install(ctx context.Context, req onboard.InstallRequest, progress func(string)) (string, error) {
	if err := onboard.ValidateUsername(req.Username); err != nil {
		return "", fmt.Errorf("install for %q: %w", req.Username, err)
	}
	if req.VMAddress == "" || req.Gateway == "" {
		return "", fmt.Errorf("the deployment of %s has no VM address or gateway name; provision it again", req.Username)
	}
	addr := net.JoinHostPort(req.VMAddress, strconv.Itoa(s.cfg.Port))
	progress(fmt.Sprintf("Connecting to %s@%s over SSH", s.cfg.User, addr))
	client, err := s.dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer client.Close()

	if err := s.writeGate(ctx, client, req); err != nil {
		return "", err
	}
	progress(fmt.Sprintf("Wrote the login gate for %s to %s", req.Username, s.cfg.GateFile))

	cockpit := s.cfg.CockpitURL(req.Gateway)
	progress("Running the install command")
	if err := s.runInstall(ctx, client, req, cockpit, progress); err != nil {
		return "", err
	}
	progress("Install command finished; waiting for " + cockpit + " to respond")
	if err := s.waitCockpit(ctx, cockpit); err != nil {
		return "", err
	}
	return cockpit, nil
}

// SetLoginGate connects to the VM and rewrites the login gate, without
// running the install command.
func (s *SSH) SetLoginGate(ctx context.Context, req onboard.InstallRequest) error {
	if err := onboard.ValidateUsername(req.Username); err != nil {
		return fmt.Errorf("login gate for %q: %w", req.Username, err)
	}
	if req.VMAddress == "" {
		return fmt.Errorf("the deployment of %s has no VM address", req.Username)
	}
	client, err := s.dial(ctx, net.JoinHostPort(req.VMAddress, strconv.Itoa(s.cfg.Port)))
	if err != nil {
		return err
	}
	defer client.Close()
	return s.writeGate(ctx, client, req)
}

// dial opens an SSH connection with host key checking, bounding the TCP
// connect and the handshake by the dial timeout.
func (s *SSH) dial(ctx context.Context, addr string) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)

	config := &ssh.ClientConfig{
		User:            s.cfg.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.cfg.Signer)},
		HostKeyCallback: s.hosts.check,
		Timeout:         s.cfg.DialTimeout,
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("SSH to %s@%s: %w", s.cfg.User, addr, err)
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// writeGate writes "username:bcrypt-hash" to the gate file, through the
// session's standard input so that the hash appears on no command line. An
// existing account has no hash, and gets "username:" alone.
func (s *SSH) writeGate(ctx context.Context, client *ssh.Client, req onboard.InstallRequest) error {
	session, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("open an SSH session: %w", err)
	}
	defer session.Close()
	session.Stdin = strings.NewReader(req.Username + ":" + string(req.PasswordHash) + "\n")
	dir, file := path.Dir(s.cfg.GateFile), s.cfg.GateFile
	cmd := fmt.Sprintf("umask 077 && mkdir -p %s && cat > %s && mv %s %s",
		shellQuote(dir), shellQuote(file+".new"), shellQuote(file+".new"), shellQuote(file))

	done := make(chan error, 1)
	go func() { done <- session.Run(cmd) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("write the login gate %s on the VM: %w", s.cfg.GateFile, err)
		}
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// runInstall runs the install command and streams its output. The tester's
// username, gateway, cockpit URL and gate file reach the command as
// environment variables set through env(1), each value shell-quoted, because
// sshd accepts only the variables its AcceptEnv lists.
func (s *SSH) runInstall(ctx context.Context, client *ssh.Client, req onboard.InstallRequest, cockpit string,
	progress func(string)) error {
	session, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("open an SSH session: %w", err)
	}
	defer session.Close()

	vars := append([]string{
		"DEPLOYER_TESTER=" + req.Username, "DEPLOYER_GATEWAY=" + req.Gateway,
		"DEPLOYER_COCKPIT_URL=" + cockpit, "DEPLOYER_LOGIN_GATE_FILE=" + s.cfg.GateFile,
	}, s.cfg.Env...)
	var cmd strings.Builder
	cmd.WriteString("env")
	for _, v := range vars {
		cmd.WriteString(" " + shellQuote(v))
	}
	// The VM merges stderr into stdout, so that lines keep their order; the
	// SSH channel carries the two streams apart.
	cmd.WriteString(" sh -c " + shellQuote(s.cfg.Command) + " 2>&1")

	pr, pw := io.Pipe()
	session.Stdout, session.Stderr = pw, pw
	out := &outputLines{
		limits:  lineLimits{maxLines: s.cfg.MaxLines, maxBytes: s.cfg.MaxLineBytes, tail: 5},
		secrets: []string{string(req.PasswordHash)}, emit: progress,
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		out.consume(pr)
	}()
	if err := session.Start(cmd.String()); err != nil {
		pw.Close()
		<-read
		return fmt.Errorf("start the install command: %w", err)
	}

	cmdCtx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- session.Wait() }()
	select {
	case err = <-done:
	case <-cmdCtx.Done():
		// Stop the command and the connection; the VM may keep what the
		// command did so far.
		session.Signal(ssh.SIGKILL)
		session.Close()
		client.Close()
		err = <-done
	}
	pw.Close()
	<-read
	return s.installError(ctx, cmdCtx, req.VMAddress, err, out)
}

// installError describes how the install command ended; nil when it
// succeeded.
func (s *SSH) installError(ctx, cmdCtx context.Context, vm string, err error, out *outputLines) error {
	var exit *ssh.ExitError
	switch {
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case cmdCtx.Err() != nil:
		return fmt.Errorf("the install command timed out after %s on %s. Last lines: %s",
			s.cfg.CommandTimeout, vm, out.lastLines())
	case err == nil:
		return nil
	case errors.As(err, &exit):
		return fmt.Errorf("the install command exited with status %d on %s. Last lines: %s",
			exit.ExitStatus(), vm, out.lastLines())
	default:
		return fmt.Errorf("the install command on %s ended without a status (%v). Last lines: %s",
			vm, err, out.lastLines())
	}
}

// waitCockpit polls the cockpit URL until it responds or ctx ends.
func (s *SSH) waitCockpit(ctx context.Context, url string) error {
	for {
		err := s.Check(ctx, url)
		if err == nil {
			return nil
		}
		t := time.NewTimer(s.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("the cockpit at %s did not respond before the deadline (%v): %w",
				url, err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Check returns nil when the cockpit URL responds with a status below 500.
// The login gate's 401 counts, because it shows that the stack is serving.
func (s *SSH) Check(ctx context.Context, cockpitURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cockpitURL, nil)
	if err != nil {
		return fmt.Errorf("cockpit URL %q is invalid: %w", cockpitURL, err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%s returned status %d", cockpitURL, resp.StatusCode)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell as one word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func positiveOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
