package stack_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/onboard"
	"deployer/stack"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

// sshd is an OpenSSH server started by a test on 127.0.0.1.
type sshd struct {
	Port int
	dir  string
	cmd  *exec.Cmd
	logs *lockedBuffer
}

// requireSSHD skips the test when sshd is missing, except under CI=true,
// where the CI script installs it and a missing sshd is a failure.
func requireSSHD(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is missing; CI installs Debian's openssh-server: %v", sshdPath, err)
		}
		tb.Skipf("%s is missing; install Debian's openssh-server to run the SSH installer tests", sshdPath)
	}
}

// writeKey writes a new ed25519 private key in OpenSSH format and returns
// its signer.
func writeKey(tb testing.TB, file string) ssh.Signer {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return signer
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSSHD starts sshd on port with the host key file, letting in the
// client key, and stops it when the test ends.
func startSSHD(tb testing.TB, dir string, port int, hostKey string, client ssh.PublicKey) *sshd {
	tb.Helper()
	requireSSHD(tb)
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation folder,
		// which Debian creates only when the service starts.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	keys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(keys, ssh.MarshalAuthorizedKey(client), 0o600); err != nil {
		tb.Fatal(err)
	}
	config := filepath.Join(dir, fmt.Sprintf("sshd_config_%d", port))
	settings := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
LogLevel VERBOSE
`, port, hostKey, keys)
	if err := os.WriteFile(config, []byte(settings), 0o600); err != nil {
		tb.Fatal(err)
	}

	s := &sshd{Port: port, dir: dir, logs: &lockedBuffer{}}
	s.cmd = exec.Command(sshdPath, "-D", "-e", "-f", config)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("sshd did not listen on port %d: %v\n%s", port, err, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sshd) stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// bench is an sshd, a client key, a cockpit on 127.0.0.1 and an installer
// configured for them.
type bench struct {
	dir     string
	server  *sshd
	signer  ssh.Signer
	cockpit *httptest.Server
	gate    string
}

func newBench(tb testing.TB) *bench {
	tb.Helper()
	requireSSHD(tb)
	dir := tb.TempDir()
	signer := writeKey(tb, filepath.Join(dir, "client_key"))
	writeKey(tb, filepath.Join(dir, "host_key"))
	b := &bench{dir: dir, signer: signer, gate: filepath.Join(dir, "vm", "login-gate")}
	b.server = startSSHD(tb, dir, freePort(tb), filepath.Join(dir, "host_key"), signer.PublicKey())
	b.cockpit = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized) // the login gate requests a password
	}))
	tb.Cleanup(b.cockpit.Close)
	return b
}

func (b *bench) installer(tb testing.TB, command string, change func(*stack.SSHConfig)) *stack.SSH {
	tb.Helper()
	u, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := stack.SSHConfig{
		Signer: b.signer, KnownHostsFile: filepath.Join(b.dir, "deployer.db.known_hosts"),
		User: u.Username, Port: b.server.Port, Command: command, GateFile: b.gate,
		Env: []string{"DEPLOYER_VM_PORT=80"}, DialTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond,
		CockpitURL: func(gateway string) string { return b.cockpit.URL + "/" },
	}
	if change != nil {
		change(&cfg)
	}
	s, err := stack.NewSSH(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func request(tb testing.TB) onboard.InstallRequest {
	tb.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	return onboard.InstallRequest{Username: "alice", Gateway: "deployeralice.gent01.grid.test",
		VMAddress: "127.0.0.1", PasswordHash: hash, RunID: "run-1"}
}

// lines collects progress lines; it is safe for concurrent use.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, s)
}

func (l *lines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.got, "\n")
}

func TestSSHInstallStreamsOutput(t *testing.T) {
	b := newBench(t)
	req := request(t)
	command := `echo "installing for $DEPLOYER_TESTER on $DEPLOYER_GATEWAY port $DEPLOYER_VM_PORT"
echo "gate: $(cat "$DEPLOYER_LOGIN_GATE_FILE")"
echo "to stderr" >&2
echo "cockpit $DEPLOYER_COCKPIT_URL"`
	var progress lines
	url, err := b.installer(t, command, nil).Install(context.Background(), req, progress.add)
	if err != nil {
		t.Fatalf("Install: %v\nprogress:\n%s\nsshd:\n%s", err, progress.all(), b.server.logs.String())
	}
	if url != b.cockpit.URL+"/" {
		t.Errorf("cockpit URL = %q, want %q", url, b.cockpit.URL+"/")
	}

	out := progress.all()
	for _, want := range []string{"installing for alice on deployeralice.gent01.grid.test port 80",
		"gate: alice:[redacted]", "to stderr", "cockpit " + b.cockpit.URL} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, string(req.PasswordHash)) {
		t.Errorf("progress shows the password hash:\n%s", out)
	}

	gate, err := os.ReadFile(b.gate)
	if err != nil {
		t.Fatal(err)
	}
	if string(gate) != "alice:"+string(req.PasswordHash)+"\n" {
		t.Errorf("login gate = %q, want the username and the bcrypt hash", gate)
	}
	if info, err := os.Stat(b.gate); err == nil && info.Mode().Perm() != 0o600 {
		t.Errorf("login gate mode = %v, want 0600", info.Mode().Perm())
	}
	known, _ := os.ReadFile(filepath.Join(b.dir, "deployer.db.known_hosts"))
	if !strings.Contains(string(known), fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 ", b.server.Port)) {
		t.Errorf("known hosts = %q, want the server's key recorded on first use", known)
	}
}

func TestSSHInstallFailureShowsLastLines(t *testing.T) {
	b := newBench(t)
	command := `for i in 1 2 3 4 5 6 7; do echo "step $i"; done; echo "E: package cockpit not found" >&2; exit 3`
	var progress lines
	_, err := b.installer(t, command, nil).Install(context.Background(), request(t), progress.add)
	if err == nil {
		t.Fatal("Install succeeded, want the exit status")
	}
	msg := err.Error()
	for _, want := range []string{"exited with status 3", "E: package cockpit not found", "step 7"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "step 1 ") || strings.HasSuffix(msg, "step 1") {
		t.Errorf("error %q shows more than the last lines", msg)
	}
	if !strings.Contains(progress.all(), "step 1") {
		t.Errorf("progress lacks the streamed lines:\n%s", progress.all())
	}
}

func TestSSHInstallRejectsChangedHostKey(t *testing.T) {
	b := newBench(t)
	req := request(t)
	s := b.installer(t, "echo ok", nil)
	if _, err := s.Install(context.Background(), req, func(string) {}); err != nil {
		t.Fatalf("first install: %v", err)
	}

	// The same address now shows another host key.
	b.server.stop()
	writeKey(t, filepath.Join(b.dir, "host_key_2"))
	startSSHD(t, b.dir, b.server.Port, filepath.Join(b.dir, "host_key_2"), b.signer.PublicKey())
	os.Remove(b.gate)
	_, err := s.Install(context.Background(), req, func(string) {})
	if !errors.Is(err, stack.ErrHostKeyChanged) {
		t.Fatalf("error = %v, want ErrHostKeyChanged", err)
	}
	if !strings.Contains(err.Error(), "deployer.db.known_hosts") {
		t.Errorf("error %q does not name the known hosts file", err)
	}
	if _, err := os.Stat(b.gate); !os.IsNotExist(err) {
		t.Errorf("the login gate was written to a host with a changed key")
	}
}

func TestSSHInstallCommandTimeout(t *testing.T) {
	b := newBench(t)
	s := b.installer(t, `echo started; exec sleep 30`, func(c *stack.SSHConfig) {
		c.CommandTimeout = 2 * time.Second
	})
	start := time.Now()
	var progress lines
	_, err := s.Install(context.Background(), request(t), progress.add)
	if err == nil || !strings.Contains(err.Error(), "timed out after 2s") {
		t.Fatalf("error = %v, want a timeout", err)
	}
	if !strings.Contains(err.Error(), "started") {
		t.Errorf("error %q lacks the last line", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Install returned after %s, want soon after the 2s timeout", d)
	}
}

func TestSSHInstallWaitsForCockpit(t *testing.T) {
	b := newBench(t)
	var mu sync.Mutex
	calls := 0
	cockpit := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			w.WriteHeader(http.StatusBadGateway) // the gateway has no backend yet
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer cockpit.Close()
	s := b.installer(t, "true", func(c *stack.SSHConfig) {
		c.CockpitURL = func(string) string { return cockpit.URL + "/" }
	})
	if _, err := s.Install(context.Background(), request(t), func(string) {}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 {
		t.Errorf("cockpit polled %d times, want 3: two 502s, then 200", calls)
	}

	// A cockpit that never responds fails once the stage deadline passes.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	down := b.installer(t, "true", func(c *stack.SSHConfig) {
		c.CockpitURL = func(string) string { return "http://127.0.0.1:1/" }
	})
	if _, err := down.Install(ctx, request(t), func(string) {}); err == nil {
		t.Error("Install succeeded with a cockpit that never responds")
	}
}

func TestSSHInstallOutputBounded(t *testing.T) {
	b := newBench(t)
	command := `head -c 5000 /dev/zero | tr '\0' x; echo; i=0; while [ $i -lt 50 ]; do echo "line $i"; i=$((i+1)); done`
	s := b.installer(t, command, func(c *stack.SSHConfig) {
		c.MaxLines, c.MaxLineBytes = 10, 100
	})
	var progress lines
	if _, err := s.Install(context.Background(), request(t), progress.add); err != nil {
		t.Fatal(err)
	}
	var fromCommand []string
	for _, l := range strings.Split(progress.all(), "\n") {
		if strings.HasPrefix(l, "x") || strings.HasPrefix(l, "line ") || strings.HasPrefix(l, "(install output") {
			fromCommand = append(fromCommand, l)
		}
	}
	if len(fromCommand) != 10 {
		t.Errorf("%d command lines reached progress, want 10:\n%s", len(fromCommand), progress.all())
	}
	if len(fromCommand) > 0 && len(fromCommand[0]) > 100+len(" …(line cut)") {
		t.Errorf("a 5000-byte line reached progress as %d bytes", len(fromCommand[0]))
	}
}

func TestSSHSetLoginGateRewritesTheHash(t *testing.T) {
	b := newBench(t)
	installer := b.installer(t, "true", nil)
	req := request(t)
	var out lines
	if _, err := installer.Install(context.Background(), req, out.add); err != nil {
		t.Fatalf("install: %v", err)
	}

	newHash, err := bcrypt.GenerateFromPassword([]byte("a new password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	req.PasswordHash = newHash
	if err := installer.SetLoginGate(context.Background(), req); err != nil {
		t.Fatalf("set login gate: %v", err)
	}
	gate, err := os.ReadFile(b.gate)
	if err != nil {
		t.Fatal(err)
	}
	if string(gate) != "alice:"+string(newHash)+"\n" {
		t.Errorf("login gate = %q, want the new hash", gate)
	}
}
