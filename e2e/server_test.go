package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// adminPassword is the bootstrap admin's password in every test server.
	adminPassword = "e2e-admin-password"
	// apiToken is the bearer token of every test server.
	apiToken = "e2e-api-token-0123456789"
)

// serverOptions tunes one deployer process.
type serverOptions struct {
	// SimDelay is the base duration of a simulated step; a stage takes one to
	// three times as long. Zero means defaultSimDelay.
	SimDelay time.Duration
	// Slots is the total slots of the simulated node; zero means 16.
	Slots int
}

// defaultSimDelay keeps every stage on screen for a few hundred
// milliseconds, long enough for a poll of the page to see it.
const defaultSimDelay = 400 * time.Millisecond

// server is the deployer binary running on 127.0.0.1 over a fresh database.
type server struct {
	URL string
	// DBPath is the server's database file, for tests that put state on
	// the simulated grid that no page can make.
	DBPath string
	output *lockedBuffer
	cmd    *exec.Cmd
	exited chan struct{}
	client *http.Client
}

// lockedBuffer collects a process's output; it is safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer starts the deployer on a free loopback port and stops it when
// the test ends. The test fails when the deployer's output has a race report,
// and the output is logged when the test failed.
func startServer(t *testing.T, o serverOptions) *server {
	t.Helper()
	if o.SimDelay == 0 {
		o.SimDelay = defaultSimDelay
	}
	if o.Slots == 0 {
		o.Slots = 16
	}
	dbPath := filepath.Join(t.TempDir(), "deployer.db")
	cmd := exec.Command(deployerBinary)
	cmd.Env = append(environWithout("DEPLOYER_"),
		"DEPLOYER_ADDR=127.0.0.1:0",
		"DEPLOYER_DB="+dbPath,
		"DEPLOYER_ADMIN_PASSWORD="+adminPassword,
		"DEPLOYER_API_TOKEN="+apiToken,
		"DEPLOYER_SIM_DELAY="+o.SimDelay.String(),
		"DEPLOYER_SIM_SLOTS="+strconv.Itoa(o.Slots),
		"DEPLOYER_SSE_HEARTBEAT=1s",
		"DEPLOYER_LOG_LEVEL=debug",
	)
	s := &server{DBPath: dbPath, output: &lockedBuffer{}, cmd: cmd, exited: make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second}}
	cmd.Stderr = s.output
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the deployer: %v", err)
	}
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	// The deployer prints its address on stdout once it listens.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.output.Write([]byte(line + "\n"))
			if _, url, ok := strings.Cut(line, "listening on "); ok {
				select {
				case addr <- strings.TrimSuffix(url, "/"):
				default:
				}
			}
		}
	}()
	select {
	case s.URL = <-addr:
	case <-s.exited:
		t.Fatalf("the deployer exited before it listened:\n%s", s.output)
	case <-time.After(30 * time.Second):
		t.Fatalf("the deployer printed no address within 30s:\n%s", s.output)
	}
	s.waitHealthy(t)
	return s
}

// waitHealthy polls /healthz until it returns 200.
func (s *server) waitHealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.client.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz did not answer 200 within 30s (last error %v):\n%s", err, s.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the deployer with SIGTERM, as an operator would, and kills it
// when it has not exited after 10s.
func (s *server) stop(t *testing.T) {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("the deployer did not exit within 10s of SIGTERM; killing it")
		s.cmd.Process.Kill()
		<-s.exited
	}
	out := s.output.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("the deployer reported a data race")
	}
	if t.Failed() {
		t.Logf("deployer output:\n%s", out)
	}
}

// api sends a request with the bearer token, decodes the JSON response into
// out when out is not nil, and returns the status.
func (s *server) api(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: status %d, body %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// mustAPI is api for calls that must return 200.
func (s *server) mustAPI(t *testing.T, method, path string, body, out any) {
	t.Helper()
	if status := s.api(t, method, path, body, out); status != http.StatusOK {
		t.Fatalf("%s %s: status %d, want 200", method, path, status)
	}
}

// onboardingJSON is the API's view of an onboarding.
type onboardingJSON struct {
	ID         string `json:"id"`
	Username   string `json:"username"`
	Status     string `json:"status"`
	CockpitURL string `json:"cockpit_url"`
	Stages     []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"stages"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// stageStatus returns the status of the named stage, or "".
func (o onboardingJSON) stageStatus(name string) string {
	for _, s := range o.Stages {
		if s.Name == name {
			return s.Status
		}
	}
	return ""
}

// onboardings returns the tester's onboardings, newest first.
func (s *server) onboardings(t *testing.T, username string) []onboardingJSON {
	t.Helper()
	var body struct {
		Onboardings []onboardingJSON `json:"onboardings"`
	}
	s.mustAPI(t, http.MethodGet, "/api/onboardings?username="+username, nil, &body)
	return body.Onboardings
}

// onboarding returns one onboarding.
func (s *server) onboarding(t *testing.T, id string) onboardingJSON {
	t.Helper()
	var o onboardingJSON
	s.mustAPI(t, http.MethodGet, "/api/onboardings/"+id, nil, &o)
	return o
}

// testerJSON is the API's view of a tester.
type testerJSON struct {
	Username     string `json:"username"`
	FullName     string `json:"full_name"`
	InstallState string `json:"install_state"`
	CockpitURL   string `json:"cockpit_url"`
	Deployment   struct {
		State string `json:"state"`
	} `json:"deployment"`
}

func (s *server) tester(t *testing.T, username string) testerJSON {
	t.Helper()
	var tj testerJSON
	s.mustAPI(t, http.MethodGet, "/api/testers/"+username, nil, &tj)
	return tj
}

// environWithout returns the test's environment without the variables that
// start with prefix, so that an operator's settings do not leak in.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}
