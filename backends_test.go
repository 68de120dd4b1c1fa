package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"deployer/mail"
	"deployer/storage"

	"golang.org/x/crypto/ssh"
)

func TestPickBackendsNamesTheSetting(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := storage.Open(context.Background(), filepath.Join(dir, "deployer.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))

	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"threefold without twin", func(c *Config) { c.Grid, c.SSHKey, c.Installer = "threefold", key, "ssh" }, "DEPLOYER_TWIN_ID"},
		{"threefold without key", func(c *Config) { c.Grid, c.TwinID, c.Installer = "threefold", "7", "ssh" }, "DEPLOYER_SSH_KEY"},
		{"simulated installer on threefold", func(c *Config) { c.Grid, c.TwinID, c.SSHKey = "threefold", "7", key },
			"DEPLOYER_INSTALLER=sim"},
		{"ssh without command", func(c *Config) { c.Installer, c.SSHKey = "ssh", key }, "DEPLOYER_INSTALL_COMMAND"},
		{"bad gateway node", func(c *Config) {
			c.Grid, c.TwinID, c.SSHKey, c.Installer, c.GatewayNode = "threefold", "7", key, "ssh", "x"
		}, "DEPLOYER_GATEWAY_NODE"},
		{"smtp without sender", func(c *Config) { c.SMTP.Host = "127.0.0.1" }, "DEPLOYER_SMTP_FROM"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.DB = filepath.Join(dir, "deployer.db")
			cfg.InstallCommand = ""
			c.change(&cfg)
			_, err := pickBackends(context.Background(), cfg, db, log)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v, want one naming %s", err, c.want)
			}
		})
	}

	t.Run("real backends", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.DB = filepath.Join(dir, "deployer.db")
		cfg.Grid, cfg.TwinID, cfg.SSHKey, cfg.Installer, cfg.InstallCommand = "threefold", "7", key, "ssh", "true"
		cfg.SMTP.Host, cfg.SMTP.From, cfg.SMTP.Password = "127.0.0.1", "deployer@example.org", "hunter2"
		b, err := pickBackends(context.Background(), cfg, db, log)
		if err != nil {
			t.Fatal(err)
		}
		if b.sim != nil {
			t.Error("the ThreeFold configuration picked the simulated grid")
		}
		if _, ok := b.mailer.(*mail.SMTPSender); !ok {
			t.Errorf("mailer = %T, want the SMTP sender", b.mailer)
		}
		if !strings.Contains(b.mailDescription, "127.0.0.1:587") || strings.Contains(b.mailDescription, "hunter2") {
			t.Errorf("mail description = %q, want the server without the password", b.mailDescription)
		}
	})
}
