package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"deployer/internal/gridtest"
	"deployer/internal/smtptest"

	"golang.org/x/crypto/ssh"
)

// checkEnv returns the environment of a deployer on the ThreeFold Grid with
// the SSH installer and SMTP, all pointing at stand-ins on 127.0.0.1.
func checkEnv(t *testing.T) (map[string]string, *gridtest.Proxy, *smtptest.Server) {
	t.Helper()
	dir := t.TempDir()
	tool := gridtest.WriteTool(t)
	proxy := gridtest.StartProxy(t, tool.Dir, 1234)
	proxy.SetNode("1", gridtest.UpNode(1234, 24))
	server := smtptest.Start(t, smtptest.Options{})

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}

	// tfcmd keeps its login in the user's configuration folder.
	t.Setenv("XDG_CONFIG_HOME", dir)
	if err := os.WriteFile(filepath.Join(dir, ".tfgridconfig"), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"DEPLOYER_DB": filepath.Join(dir, "deployer.db"), "DEPLOYER_NODE": "1",
		"DEPLOYER_GRID": "threefold", "DEPLOYER_GRID_PROXY_URL": proxy.URL, "DEPLOYER_TWIN_ID": "1234",
		"DEPLOYER_TFCMD": tool.Path, "DEPLOYER_SSH_KEY": key,
		"DEPLOYER_INSTALLER": "ssh", "DEPLOYER_INSTALL_COMMAND": "/opt/stack/install",
		"DEPLOYER_SMTP_HOST": server.Host, "DEPLOYER_SMTP_PORT": strconv.Itoa(server.Port),
		"DEPLOYER_SMTP_TLS": "none", "DEPLOYER_SMTP_FROM": "deployer@example.org",
	}, proxy, server
}

func runDeployerCheck(env map[string]string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"check"}, func(k string) string { return env[k] }, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestCheckPassesWithWorkingBackends(t *testing.T) {
	env, _, server := checkEnv(t)
	out, err := runDeployerCheck(env)
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, out)
	}
	for _, want := range []string{"ok    gridproxy", "ok    node       node 1 is up and usable: 10 of 14 slots free",
		"ok    gateway", "ok    tfcmd", "login found", "ssh-ed25519 SHA256:", "ok    installer",
		"ok    smtp", "Every configured backend works."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := len(server.Messages()); n != 0 {
		t.Errorf("check sent %d messages, want none", n)
	}
}

func TestCheckFailsOnBrokenBackends(t *testing.T) {
	env, proxy, server := checkEnv(t)
	down := gridtest.UpNode(1234, 24)
	down.Status = "down"
	proxy.SetNode("1", down)
	env["DEPLOYER_TFCMD"] = filepath.Join(t.TempDir(), "no-tfcmd")
	env["DEPLOYER_SSH_KEY"] = filepath.Join(t.TempDir(), "missing-key")
	server.Close()

	out, err := runDeployerCheck(env)
	if err == nil {
		t.Fatalf("check passed with broken backends:\n%s", out)
	}
	for _, want := range []string{"FAIL  node       node 1 is not usable: down", "FAIL  tfcmd", "FAIL  ssh key",
		"FAIL  smtp"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(err.Error(), "4 checks failed") {
		t.Errorf("error = %v, want 4 checks failed", err)
	}
}

func TestCheckReportsUnreachableProxy(t *testing.T) {
	env, _, _ := checkEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env["DEPLOYER_GRID_PROXY_URL"] = "http://" + ln.Addr().String()
	ln.Close()

	out, err := runDeployerCheck(env)
	if err == nil {
		t.Fatalf("check passed with an unreachable Grid Proxy:\n%s", out)
	}
	if !strings.Contains(out, "FAIL  gridproxy") || !strings.Contains(out, "connection refused") {
		t.Errorf("output does not report the refused connection:\n%s", out)
	}
}

func TestCheckSimulatedBackends(t *testing.T) {
	env := map[string]string{"DEPLOYER_DB": filepath.Join(t.TempDir(), "deployer.db")}
	out, err := runDeployerCheck(env)
	if err != nil {
		t.Fatalf("check failed on the embedded backends: %v\n%s", err, out)
	}
	if !strings.Contains(out, "grid       simulated") || !strings.Contains(out, "outbox") {
		t.Errorf("output does not describe the embedded backends:\n%s", out)
	}
}
