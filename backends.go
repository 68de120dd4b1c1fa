package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"deployer/grid"
	"deployer/mail"
	"deployer/onboard"
	"deployer/stack"
	"deployer/storage"

	"golang.org/x/crypto/ssh"
)

// backends are the grid, installer and mailer that the configuration picks.
type backends struct {
	grid      onboard.Grid
	sim       *grid.Sim // nil unless the grid is simulated
	installer onboard.Installer
	mailer    onboard.Mailer
	// mailDescription describes where welcome emails go, for the outbox page;
	// empty when they stay in the outbox.
	mailDescription string
}

// pickBackends builds the configured backends. Every error names the
// setting that needs a change.
func pickBackends(ctx context.Context, cfg Config, db *storage.DB, log *slog.Logger) (backends, error) {
	var b backends
	switch cfg.Grid {
	case "sim":
		b.sim = grid.NewSim(db, cfg.SimDelay, cfg.SimSlots)
		if err := b.sim.EnsureNode(ctx, cfg.Node); err != nil {
			return b, fmt.Errorf("set up simulated node %s: %w", cfg.Node, err)
		}
		b.grid = b.sim
	case "threefold":
		tf, err := newThreeFold(cfg, log)
		if err != nil {
			return b, err
		}
		b.grid = tf
	default:
		return b, fmt.Errorf("DEPLOYER_GRID %q is unknown; use sim or threefold", cfg.Grid)
	}

	switch cfg.Installer {
	case "sim":
		if b.sim == nil {
			return b, errors.New("DEPLOYER_INSTALLER=sim needs the simulated grid; use ssh with a real grid")
		}
		b.installer = stack.NewSim(b.sim, cfg.SimDelay)
	case "ssh":
		installer, err := newSSHInstaller(cfg, log)
		if err != nil {
			return b, err
		}
		b.installer = installer
	default:
		return b, fmt.Errorf("DEPLOYER_INSTALLER %q is unknown; use sim or ssh", cfg.Installer)
	}

	if cfg.SMTP.Host == "" {
		b.mailer = mail.NewLogSender(log)
		return b, nil
	}
	sender, err := newSMTPSender(cfg)
	if err != nil {
		return b, err
	}
	b.mailer, b.mailDescription = sender, sender.Description()
	return b, nil
}

// newThreeFold builds the ThreeFold Grid backend from the configuration.
func newThreeFold(cfg Config, log *slog.Logger) (*grid.ThreeFold, error) {
	twin, err := twinID(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.SSHKey == "" {
		return nil, errors.New("DEPLOYER_SSH_KEY is empty; the ThreeFold Grid needs the key whose public half goes on every VM")
	}
	signer, err := stack.LoadKey(cfg.SSHKey)
	if err != nil {
		return nil, fmt.Errorf("DEPLOYER_SSH_KEY: %w", err)
	}
	if cfg.GatewayNode != "" {
		if err := onboard.ValidateNodeID(cfg.GatewayNode); err != nil {
			return nil, fmt.Errorf("DEPLOYER_GATEWAY_NODE %q is not a node id; use a positive whole number", cfg.GatewayNode)
		}
	}
	return grid.NewThreeFold(grid.ThreeFoldConfig{
		ProxyURL: cfg.GridProxyURL, TwinID: twin, TFCmd: cfg.TFCmd, SSHPublicKey: authorizedKey(signer.PublicKey()),
		VMCPU: cfg.VMCPU, VMDiskGB: cfg.VMDiskGB, VMImage: cfg.VMImage, VMPort: cfg.VMPort,
		GatewayNode: cfg.GatewayNode, Log: log,
	}), nil
}

// twinID parses DEPLOYER_TWIN_ID, which the ThreeFold Grid needs.
func twinID(cfg Config) (uint64, error) {
	twin, err := strconv.ParseUint(cfg.TwinID, 10, 32)
	if err != nil || twin == 0 {
		return 0, fmt.Errorf("DEPLOYER_TWIN_ID %q is not a twin id; set the id of the twin that tfcmd logs in as", cfg.TwinID)
	}
	return twin, nil
}

// newSSHInstaller builds the SSH installer. The known hosts file defaults to
// <db>.known_hosts, beside the database.
func newSSHInstaller(cfg Config, log *slog.Logger) (*stack.SSH, error) {
	if cfg.SSHKey == "" {
		return nil, errors.New("DEPLOYER_SSH_KEY is empty; the SSH installer needs a private key file")
	}
	signer, err := stack.LoadKey(cfg.SSHKey)
	if err != nil {
		return nil, fmt.Errorf("DEPLOYER_SSH_KEY: %w", err)
	}
	if strings.TrimSpace(cfg.InstallCommand) == "" {
		return nil, errors.New("DEPLOYER_INSTALL_COMMAND is empty; set the command that installs the stack on the VM")
	}
	port := cfg.VMPort
	if port <= 0 {
		port = grid.DefaultVMPort
	}
	return stack.NewSSH(stack.SSHConfig{
		Signer: signer, KnownHostsFile: knownHostsFile(cfg), User: cfg.SSHUser, Command: cfg.InstallCommand,
		Env: []string{"DEPLOYER_VM_PORT=" + strconv.Itoa(port)}, Log: log,
	})
}

func knownHostsFile(cfg Config) string {
	if cfg.KnownHosts != "" {
		return cfg.KnownHosts
	}
	return cfg.DB + ".known_hosts"
}

// newSMTPSender builds the SMTP sender from the DEPLOYER_SMTP_* settings.
func newSMTPSender(cfg Config) (*mail.SMTPSender, error) {
	return mail.NewSMTPSender(mail.SMTPConfig{
		Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, User: cfg.SMTP.User, Password: cfg.SMTP.Password,
		From: cfg.SMTP.From, TLS: cfg.SMTP.TLS,
	})
}

// authorizedKey returns the public key as one authorized_keys line.
func authorizedKey(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}
