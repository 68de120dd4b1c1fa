package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"deployer/grid"
	"deployer/onboard"
	"deployer/stack"

	"golang.org/x/crypto/ssh"
)

// checkTimeout bounds each network check of `deployer check`.
const checkTimeout = 20 * time.Second

// checker prints one line per check and counts the failures.
type checker struct {
	out    io.Writer
	failed int
}

func (c *checker) ok(name, format string, args ...any) {
	fmt.Fprintf(c.out, "ok    %-10s %s\n", name, fmt.Sprintf(format, args...))
}

func (c *checker) fail(name, format string, args ...any) {
	c.failed++
	fmt.Fprintf(c.out, "FAIL  %-10s %s\n", name, fmt.Sprintf(format, args...))
}

func (c *checker) info(name, format string, args ...any) {
	fmt.Fprintf(c.out, "-     %-10s %s\n", name, fmt.Sprintf(format, args...))
}

// runCheck prints whether each configured backend works: the Grid Proxy and
// the node, tfcmd, the SSH key and the SMTP server. It sends no mail and
// changes nothing on the grid. It returns an error when a check fails.
func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	c := &checker{out: stdout}
	if cfg.Grid == "threefold" {
		checkThreeFold(ctx, c, cfg)
	} else {
		c.info("grid", "simulated; nothing to check")
	}
	if cfg.Grid == "threefold" || cfg.Installer == "ssh" {
		checkSSHKey(c, cfg)
	}
	if cfg.Installer == "ssh" {
		checkInstaller(c, cfg)
	} else {
		c.info("installer", "simulated; nothing to check")
	}
	checkSMTP(ctx, c, cfg)

	if c.failed > 0 {
		return fmt.Errorf("%d checks failed", c.failed)
	}
	fmt.Fprintln(stdout, "Every configured backend works.")
	return nil
}

// checkThreeFold reads the node and the gateway node from the Grid Proxy
// and runs tfcmd.
func checkThreeFold(ctx context.Context, c *checker, cfg Config) {
	twin, err := twinID(cfg)
	if err != nil {
		c.fail("twin", "%v", err)
	}
	proxy := grid.NewProxy(cfg.GridProxyURL, nil)
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()

	n, err := proxy.Node(ctx, cfg.Node)
	if err != nil {
		c.fail("gridproxy", "%s", onboard.ErrorMessage(err))
	} else {
		c.ok("gridproxy", "%s is reachable", proxy.URL())
		st := grid.NodeStatus(n, cfg.Node, twin, time.Now())
		if st.Online {
			c.ok("node", "node %s is up and usable: %d of %d slots free", cfg.Node, st.FreeSlots, st.TotalSlots)
		} else {
			c.fail("node", "node %s is not usable: %s", cfg.Node, st.Reason)
		}
	}

	gwNode := cfg.GatewayNode
	if gwNode == "" {
		gwNode = cfg.Node
	}
	if gw, err := proxy.Node(ctx, gwNode); err != nil {
		c.fail("gateway", "%s", onboard.ErrorMessage(err))
	} else if gw.PublicConfig.Domain == "" {
		c.fail("gateway", "node %s has no public domain for gateway names; set DEPLOYER_GATEWAY_NODE", gwNode)
	} else {
		c.ok("gateway", "node %s holds gateway names under %s", gwNode, gw.PublicConfig.Domain)
	}
	checkTool(ctx, c, cfg)
}

// checkTool runs `tfcmd --help` and looks for tfcmd's login file, which
// holds the mnemonic; the file is not read.
func checkTool(ctx context.Context, c *checker, cfg Config) {
	path, err := exec.LookPath(cfg.TFCmd)
	if err != nil {
		c.fail("tfcmd", "%s not found: %v; set DEPLOYER_TFCMD to its path", cfg.TFCmd, err)
		return
	}
	if out, err := exec.CommandContext(ctx, path, "--help").CombinedOutput(); err != nil {
		c.fail("tfcmd", "%s does not run: %v: %.200s", path, err, out)
		return
	}
	c.ok("tfcmd", "%s runs", path)

	dir, err := os.UserConfigDir()
	login := filepath.Join(dir, ".tfgridconfig")
	if _, statErr := os.Stat(login); err != nil || statErr != nil {
		c.fail("tfcmd", "no login found at %s; run `tfcmd login` as the user that runs the deployer", login)
		return
	}
	c.ok("tfcmd", "login found at %s", login)
}

// checkSSHKey loads the key and prints its public key's fingerprint.
func checkSSHKey(c *checker, cfg Config) {
	if cfg.SSHKey == "" {
		c.fail("ssh key", "DEPLOYER_SSH_KEY is empty")
		return
	}
	signer, err := stack.LoadKey(cfg.SSHKey)
	if err != nil {
		c.fail("ssh key", "%v", err)
		return
	}
	pub := signer.PublicKey()
	c.ok("ssh key", "%s is readable: %s %s", cfg.SSHKey, pub.Type(), ssh.FingerprintSHA256(pub))
}

// checkInstaller checks the install command and the known hosts file.
func checkInstaller(c *checker, cfg Config) {
	if cfg.InstallCommand == "" {
		c.fail("installer", "DEPLOYER_INSTALL_COMMAND is empty")
	} else {
		c.ok("installer", "install command is set; SSH user %s", cmp.Or(cfg.SSHUser, stack.DefaultSSHUser))
	}
	file := knownHostsFile(cfg)
	if _, err := os.Stat(file); err == nil {
		c.ok("installer", "known hosts file %s exists", file)
	} else if _, err := os.Stat(filepath.Dir(file)); err != nil {
		c.fail("installer", "the folder of the known hosts file %s is missing", file)
	} else {
		c.info("installer", "known hosts file %s will be created on first use", file)
	}
}

// checkSMTP connects to the SMTP server, greets it, starts TLS and logs in
// as configured, without sending mail.
func checkSMTP(ctx context.Context, c *checker, cfg Config) {
	if cfg.SMTP.Host == "" {
		c.info("smtp", "no server set; welcome emails stay in the outbox")
		return
	}
	sender, err := newSMTPSender(cfg)
	if err != nil {
		c.fail("smtp", "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := sender.Check(ctx); err != nil {
		c.fail("smtp", "%v", err)
		return
	}
	c.ok("smtp", "%s accepts the connection", sender.Description())
}
