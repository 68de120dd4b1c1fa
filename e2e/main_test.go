package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// chromiumPath is Debian's chromium package, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

var (
	// deployerBinary is the deployer that TestMain builds for the tests.
	deployerBinary string
	// artifactsDir receives screenshots; git ignores it.
	artifactsDir string
	// browserMissing is why the tests cannot run a browser, or empty.
	browserMissing string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds the deployer once for every test, unless no browser is
// installed, and removes the build when the tests end.
func runTests(m *testing.M) int {
	if _, err := os.Stat(chromiumPath); err != nil {
		browserMissing = fmt.Sprintf("%s is missing (install Debian's chromium package): %v", chromiumPath, err)
		return m.Run()
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	artifactsDir = filepath.Join(root, "test-artifacts")

	dir, err := os.MkdirTemp("", "deployer-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	deployerBinary = filepath.Join(dir, "deployer")
	if err := buildDeployer(root, deployerBinary); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// moduleRoot returns the folder of the deployer's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root with go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD found no go.mod above %s", mustGetwd())
	}
	return filepath.Dir(gomod), nil
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}

// raceEnv names the environment variable that builds the deployer with the
// race detector when it is "true". Each test then fails on a race report in
// the deployer's output. It is off by default because bcrypt under the race
// detector makes every start and login take seconds. That tripled the run
// time of these tests on a two-core machine, from about 1 to 3 minutes. The
// handler and service tests already run the same code under the race
// detector.
const raceEnv = "E2E_DEPLOYER_RACE"

// buildDeployer compiles the deployer into out.
func buildDeployer(root, out string) error {
	args := []string{"build", "-o", out}
	if os.Getenv(raceEnv) == "true" {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

// requireBrowser skips the test when Chromium is missing, except on CI,
// where a missing browser is a broken set-up and fails the test.
func requireBrowser(t *testing.T) {
	t.Helper()
	if browserMissing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(browserMissing)
	}
	t.Skip(browserMissing)
}
