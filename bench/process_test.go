package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// benchToken and benchPassword are the API token and admin password of the
// deployer processes that the benchmarks start.
const (
	benchToken    = "bench-token-0123456789"
	benchPassword = "bench-admin-password"
)

// process is a server that a benchmark started as a separate process.
type process struct {
	cmd    *exec.Cmd
	URL    string
	stderr lockedBuffer
	done   chan struct{}
}

var listenPattern = regexp.MustCompile(`listening on (http://[0-9.:]+)/`)

// startProcess runs a server binary that prints "listening on http://…/"
// once it accepts connections, and stops it when the benchmark ends.
func startProcess(b *testing.B, path string, args []string, env []string) *process {
	b.Helper()
	p := &process{cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", path, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	b.Cleanup(func() { p.stop() })

	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listenPattern.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p.URL = <-found:
	case <-p.done:
		b.Fatalf("%s exited before listening: %s", path, string(p.stderr.Bytes()))
	case <-time.After(30 * time.Second):
		b.Fatalf("%s did not listen within 30 s", path)
	}
	return p
}

// startDeployer runs the deployer binary over a fresh database in a
// temporary folder, with the simulated grid.
func startDeployer(b *testing.B, env ...string) *process {
	b.Helper()
	dir := b.TempDir()
	base := []string{
		"DEPLOYER_ADDR=127.0.0.1:0", "DEPLOYER_DB=" + filepath.Join(dir, "deployer.db"),
		"DEPLOYER_ADMIN_PASSWORD=" + benchPassword, "DEPLOYER_API_TOKEN=" + benchToken,
		"DEPLOYER_GRID=sim", "DEPLOYER_INSTALLER=sim", "DEPLOYER_SIM_SLOTS=64",
		"GOTRACEBACK=all",
	}
	return startProcess(b, deployerPath(b), nil, append(base, env...))
}

// rssKiB returns the process's resident memory from /proc/PID/status.
func (p *process) rssKiB(b *testing.B) int64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return n
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}

// goroutines makes a Go server print every goroutine's stack with SIGQUIT,
// which also ends it, and counts them. The server must run with
// GOTRACEBACK=all.
func (p *process) goroutines(b *testing.B) int {
	b.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		b.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		b.Fatal("the server did not exit on SIGQUIT")
	}
	n := 0
	for _, line := range strings.Split(string(p.stderr.Bytes()), "\n") {
		if strings.HasPrefix(line, "goroutine ") && strings.HasSuffix(line, ":") {
			n++
		}
	}
	return n
}

// stop ends the process with SIGTERM, and SIGKILL after 5 s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// log returns what the process wrote to standard error so far.
func (p *process) log() []byte {
	return p.stderr.Bytes()
}

// login returns a cookie header of an admin session of the deployer.
func (p *process) login(b *testing.B) http.Header {
	b.Helper()
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.PostForm(p.URL+"/login", url.Values{"username": {"admin"}, "password": {benchPassword}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	h := http.Header{}
	for _, c := range resp.Cookies() {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	if len(h) == 0 {
		b.Fatalf("login: status %d and no session cookie", resp.StatusCode)
	}
	return h
}

// apiHeader returns the header of API requests to a deployer process.
func apiHeader() http.Header {
	return http.Header{"Authorization": {"Bearer " + benchToken}}
}

// post sends a JSON body with the API token and returns the status and body.
func post(ctx context.Context, base, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = apiHeader()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// lockedBuffer is a buffer that a process writes while a benchmark reads
// it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Bytes returns a copy of what was written so far.
func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}
