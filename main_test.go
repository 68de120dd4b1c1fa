package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"deployer/internal/testkit"
)

var binary string

// stampedVersion is the version the test binary is built with, as make
// stamps a release.
const stampedVersion = "v9.8.7-test"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deployer-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "deployer")
	build := exec.Command("go", "build", "-race", "-ldflags", "-X main.version="+stampedVersion, "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build deployer:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is the deployer binary running on 127.0.0.1.
type process struct {
	cmd    *exec.Cmd
	url    string
	stderr *testkit.LogBuffer
	// done is closed when the process has exited, with its error in err.
	done chan struct{}
	err  error
}

var listenPattern = regexp.MustCompile(`listening on (http://[0-9.:]+)/`)

// startBinary runs the deployer on the database with a short simulated
// delay and waits until it listens. Each of env is NAME=value and overrides
// the defaults.
func startBinary(t *testing.T, db string, delay time.Duration, env ...string) *process {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(),
		"DEPLOYER_ADDR=127.0.0.1:0", "DEPLOYER_DB="+db, "DEPLOYER_API_TOKEN="+testkit.Token,
		"DEPLOYER_ADMIN_PASSWORD="+testkit.AdminPassword, "DEPLOYER_SIM_DELAY="+delay.String(),
		"DEPLOYER_SSE_HEARTBEAT=100ms")
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stderr: &testkit.LogBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})

	lines := bufio.NewScanner(stdout)
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if m := listenPattern.FindStringSubmatch(lines.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case p.url = <-found:
	case <-p.done:
		t.Fatalf("deployer exited at start: %v\n%s", p.err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("deployer did not listen within 30s\n%s", p.stderr.String())
	}
	return p
}

func (p *process) api(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.url+path, r)
	req.Header.Set("Authorization", "Bearer "+testkit.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (p *process) onboarding(t *testing.T, id string) testkit.OnboardingJSON {
	t.Helper()
	var o testkit.OnboardingJSON
	if status := p.api(t, http.MethodGet, "/api/onboardings/"+id, nil, &o); status != http.StatusOK {
		t.Fatalf("get onboarding: status %d", status)
	}
	return o
}

func stageStatus(o testkit.OnboardingJSON, name string) string {
	for _, s := range o.Stages {
		if s.Name == name {
			return s.Status
		}
	}
	return ""
}

func (p *process) waitStage(t *testing.T, id, stage, status string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if stageStatus(p.onboarding(t, id), stage) == status {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("stage %s never became %s", stage, status)
}

func (p *process) waitFinished(t *testing.T, id string) testkit.OnboardingJSON {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if o := p.onboarding(t, id); o.Status != "running" {
			return o
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("onboarding %s still running after 60s", id)
	return testkit.OnboardingJSON{}
}

func (p *process) start(t *testing.T, username string) string {
	t.Helper()
	var o testkit.OnboardingJSON
	status := p.api(t, http.MethodPost, "/api/onboardings", map[string]any{
		"username": username, "full_name": "Test " + username, "email": username + "@example.org", "node_id": "1",
	}, &o)
	if status != http.StatusAccepted {
		t.Fatalf("start: status %d", status)
	}
	return o.ID
}

func TestKilledDuringAStageThenRestarted(t *testing.T) {
	for _, stage := range []string{"provisioning", "installing"} {
		t.Run(stage, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "deployer.db")
			first := startBinary(t, db, 2*time.Second)
			id := first.start(t, "vera")
			first.waitStage(t, id, stage, "running")
			time.Sleep(300 * time.Millisecond)
			first.cmd.Process.Signal(syscall.SIGKILL)
			<-first.done

			second := startBinary(t, db, 200*time.Millisecond)
			o := second.waitFinished(t, id)
			switch o.Status {
			case "succeeded":
			case "failed":
				if o.Error == nil || !strings.Contains(o.Error.Message, "restart") {
					t.Fatalf("failed without the restart as reason: %+v", o.Error)
				}
				// The Retry for the failed step works, and resuming reaches ready.
				retry := "/api/testers/vera/install"
				if stageStatus(o, "provisioning") == "failed" {
					retry = "/api/testers/vera/provision"
				}
				if status := second.api(t, http.MethodPost, retry, map[string]any{"node_id": "1"}, nil); status != http.StatusOK {
					t.Fatalf("retry %s: status %d", retry, status)
				}
				if status := second.api(t, http.MethodPost, "/api/onboardings/"+id+"/resume", nil, nil); status != http.StatusAccepted {
					t.Fatalf("resume: status %d", status)
				}
				if o = second.waitFinished(t, id); o.Status != "succeeded" {
					t.Fatalf("after retry and resume: %s %+v", o.Status, o.Error)
				}
			default:
				t.Fatalf("status %s after restart", o.Status)
			}
			if stage == "installing" && o.Attempt < 2 {
				t.Errorf("an interrupted install ended %s at attempt %d, want a failure and a Retry", o.Status, o.Attempt)
			}

			var tester map[string]any
			second.api(t, http.MethodGet, "/api/testers/vera", nil, &tester)
			deployment, _ := tester["deployment"].(map[string]any)
			contracts, _ := deployment["contracts"].([]any)
			if len(contracts) != 3 {
				t.Errorf("%d contracts recorded, want 3 (network, VM, name)", len(contracts))
			}
			var orphans struct{ Orphans []any }
			second.api(t, http.MethodGet, "/api/orphans", nil, &orphans)
			if len(orphans.Orphans) != 0 {
				t.Errorf("orphaned contracts after the restart: %v", orphans.Orphans)
			}
		})
	}
}

func TestTerminateEndsPromptlyAndResumes(t *testing.T) {
	db := filepath.Join(t.TempDir(), "deployer.db")
	p := startBinary(t, db, 3*time.Second)
	id := p.start(t, "wren")
	p.waitStage(t, id, "provisioning", "running")

	// Open event streams that stay open while the onboarding runs.
	var wg sync.WaitGroup
	tails := make([]string, 3)
	for i := range tails {
		req, _ := http.NewRequest(http.MethodGet, p.url+"/api/onboardings/"+id+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+testkit.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			tails[i] = string(body)
		}()
	}
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("exit after SIGTERM: %v", p.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5s after SIGTERM")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %s, want at most 2s", took)
	}
	wg.Wait()
	for i, tail := range tails {
		if !strings.Contains(tail, "retry:") || !strings.Contains(tail, "stopping") {
			t.Errorf("stream %d ended without a final frame: %q", i, lastLines(tail, 3))
		}
	}
	if logs := p.stderr.String(); strings.Contains(logs, "database is closed") {
		t.Errorf("shutdown logged a closed-database error:\n%s", logs)
	}

	again := startBinary(t, db, 100*time.Millisecond)
	if o := again.waitFinished(t, id); o.Status != "succeeded" {
		t.Errorf("after the restart: %s %+v", o.Status, o.Error)
	}
}

func TestSecondDeployerOnTheSameDatabaseStops(t *testing.T) {
	db := filepath.Join(t.TempDir(), "deployer.db")
	startBinary(t, db, 0)
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), "DEPLOYER_ADDR=127.0.0.1:0", "DEPLOYER_DB="+db)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("a second deployer on the same database started")
	}
	if !strings.Contains(string(out), "another deployer is using") {
		t.Errorf("output %q does not say why", out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
