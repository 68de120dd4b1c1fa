package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestStampedVersionShowsEverywhere(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("deployer version: %v\n%s", err, out)
	}
	if got, want := string(out), "deployer "+stampedVersion+"\n"; got != want {
		t.Errorf("deployer version printed %q, want %q", got, want)
	}

	p := startBinary(t, filepath.Join(t.TempDir(), "deployer.db"), 0)
	resp, err := http.Get(p.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health struct{ Status, Version string }
	err = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("decode /healthz: %v", err)
	}
	if health.Version != stampedVersion {
		t.Errorf("/healthz version %q, want %q", health.Version, stampedVersion)
	}

	resp, err = http.Get(p.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	footer := `<footer class="bottom">Deployer ` + stampedVersion
	if !strings.Contains(string(page), footer) {
		t.Errorf("login page has no footer %q", footer)
	}
}
