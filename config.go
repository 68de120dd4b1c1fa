package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"deployer/onboard"
)

// Config is the deployer's configuration: defaults, then environment
// variables, then flags.
type Config struct {
	Addr   string
	DB     string
	Node   string
	Grid   string
	Admin  string // bootstrap admin password; empty generates one on first start
	Token  string // API bearer token; empty disables it
	Secure bool
	Proxy  bool
	Idle   time.Duration
	// MetricsToken is a bearer token accepted only on /metrics, for
	// scrapers; empty leaves /metrics to admins and the API token.
	MetricsToken string

	SimSlots int
	SimDelay time.Duration

	GridProxyURL string
	TwinID       string
	TFCmd        string
	GatewayNode  string
	VMCPU        int
	VMDiskGB     int
	VMImage      string
	VMPort       int

	Installer      string
	SSHKey         string
	SSHUser        string
	KnownHosts     string
	InstallCommand string

	SMTP SMTPConfig

	ProvisionTimeout time.Duration
	InstallTimeout   time.Duration
	TeardownTimeout  time.Duration
	DegradeAfter     int
	Heartbeat        time.Duration

	LogFormat string
	LogLevel  string
}

// SMTPConfig is the SMTP server for welcome emails; an empty Host keeps
// them in the outbox.
type SMTPConfig struct {
	Host     string
	Port     int
	User     string
	Password string
	From     string
	TLS      string
}

// Grid Proxy bases of the ThreeFold networks.
const (
	GridProxyMainnet = "https://gridproxy.grid.tf"
	GridProxyTestnet = "https://gridproxy.test.grid.tf"
	GridProxyDevnet  = "https://gridproxy.dev.grid.tf"
)

func defaultConfig() Config {
	return Config{
		Addr: "127.0.0.1:8080", DB: "deployer.db", Node: "1", Grid: "sim", Idle: 12 * time.Hour,
		SimSlots: 16, SimDelay: 2 * time.Second,
		GridProxyURL: GridProxyMainnet, TFCmd: "tfcmd", Installer: "sim",
		SMTP:             SMTPConfig{Port: 587, TLS: "starttls"},
		ProvisionTimeout: onboard.DefaultProvisionTimeout, InstallTimeout: onboard.DefaultInstallTimeout,
		TeardownTimeout: onboard.DefaultTeardownTimeout, DegradeAfter: onboard.DefaultDegradeAfter,
		Heartbeat: 15 * time.Second, LogFormat: "text", LogLevel: "info",
	}
}

// loadConfig reads the environment through getenv, then the flags in args.
// Each error names the setting and what it accepts.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	cfg := defaultConfig()
	var errs []error
	env := func(name string, apply func(string) error) {
		if v := getenv(name); v != "" {
			if err := apply(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	dur := func(dst *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("%q is not a duration; use a value such as 500ms, 2s or 10m", v)
			}
			*dst = d
			return nil
		}
	}
	num := func(dst *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not a whole number of 0 or more", v)
			}
			*dst = n
			return nil
		}
	}
	boolean := func(dst *bool) func(string) error {
		return func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*dst = b
			return nil
		}
	}

	env("DEPLOYER_ADDR", str(&cfg.Addr))
	env("DEPLOYER_DB", str(&cfg.DB))
	env("DEPLOYER_NODE", str(&cfg.Node))
	env("DEPLOYER_GRID", str(&cfg.Grid))
	env("DEPLOYER_ADMIN_PASSWORD", str(&cfg.Admin))
	env("DEPLOYER_API_TOKEN", str(&cfg.Token))
	env("DEPLOYER_METRICS_TOKEN", str(&cfg.MetricsToken))
	env("DEPLOYER_SECURE_COOKIES", boolean(&cfg.Secure))
	env("DEPLOYER_TRUST_PROXY", boolean(&cfg.Proxy))
	env("DEPLOYER_SESSION_IDLE", dur(&cfg.Idle))
	env("DEPLOYER_SIM_SLOTS", num(&cfg.SimSlots))
	env("DEPLOYER_SIM_DELAY", dur(&cfg.SimDelay))
	env("DEPLOYER_GRID_PROXY_URL", str(&cfg.GridProxyURL))
	env("DEPLOYER_TWIN_ID", str(&cfg.TwinID))
	env("DEPLOYER_TFCMD", str(&cfg.TFCmd))
	env("DEPLOYER_GATEWAY_NODE", str(&cfg.GatewayNode))
	env("DEPLOYER_VM_CPU", num(&cfg.VMCPU))
	env("DEPLOYER_VM_DISK", num(&cfg.VMDiskGB))
	env("DEPLOYER_VM_IMAGE", str(&cfg.VMImage))
	env("DEPLOYER_VM_PORT", num(&cfg.VMPort))
	env("DEPLOYER_INSTALLER", str(&cfg.Installer))
	env("DEPLOYER_SSH_KEY", str(&cfg.SSHKey))
	env("DEPLOYER_SSH_USER", str(&cfg.SSHUser))
	env("DEPLOYER_SSH_KNOWN_HOSTS", str(&cfg.KnownHosts))
	env("DEPLOYER_INSTALL_COMMAND", str(&cfg.InstallCommand))
	env("DEPLOYER_SMTP_HOST", str(&cfg.SMTP.Host))
	env("DEPLOYER_SMTP_PORT", num(&cfg.SMTP.Port))
	env("DEPLOYER_SMTP_USER", str(&cfg.SMTP.User))
	env("DEPLOYER_SMTP_PASSWORD", str(&cfg.SMTP.Password))
	env("DEPLOYER_SMTP_FROM", str(&cfg.SMTP.From))
	env("DEPLOYER_SMTP_TLS", str(&cfg.SMTP.TLS))
	env("DEPLOYER_PROVISION_TIMEOUT", dur(&cfg.ProvisionTimeout))
	env("DEPLOYER_INSTALL_TIMEOUT", dur(&cfg.InstallTimeout))
	env("DEPLOYER_TEARDOWN_TIMEOUT", dur(&cfg.TeardownTimeout))
	env("DEPLOYER_DEGRADE_AFTER", num(&cfg.DegradeAfter))
	env("DEPLOYER_SSE_HEARTBEAT", dur(&cfg.Heartbeat))
	env("DEPLOYER_LOG_FORMAT", str(&cfg.LogFormat))
	env("DEPLOYER_LOG_LEVEL", str(&cfg.LogLevel))
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}

	fs := flag.NewFlagSet("deployer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen `address` (DEPLOYER_ADDR)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "SQLite database `file` (DEPLOYER_DB)")
	fs.StringVar(&cfg.Node, "node", cfg.Node, "node `id` prefilled on forms (DEPLOYER_NODE)")
	fs.StringVar(&cfg.Grid, "grid", cfg.Grid, "grid backend: sim or threefold (DEPLOYER_GRID)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q; commands are version, check and backup FILE", fs.Arg(0))
	}
	return cfg, cfg.validate()
}

// validate checks the settings that the backends do not check themselves.
func (c Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("DEPLOYER_ADDR %q is not host:port, such as 127.0.0.1:8080", c.Addr))
	}
	if c.DB == "" {
		errs = append(errs, errors.New("DEPLOYER_DB is empty; name the SQLite file, such as deployer.db"))
	}
	if err := onboard.ValidateNodeID(c.Node); err != nil {
		errs = append(errs, fmt.Errorf("DEPLOYER_NODE %q is not a node id; use a positive whole number", c.Node))
	}
	switch c.Grid {
	case "sim":
	case "threefold":
		if _, err := url.ParseRequestURI(c.GridProxyURL); err != nil || !strings.HasPrefix(c.GridProxyURL, "http") {
			errs = append(errs, fmt.Errorf("DEPLOYER_GRID_PROXY_URL %q is not an http or https URL", c.GridProxyURL))
		}
	default:
		errs = append(errs, fmt.Errorf("DEPLOYER_GRID %q is unknown; use sim or threefold", c.Grid))
	}
	switch c.Installer {
	case "sim", "ssh":
	default:
		errs = append(errs, fmt.Errorf("DEPLOYER_INSTALLER %q is unknown; use sim or ssh", c.Installer))
	}
	switch c.SMTP.TLS {
	case "none", "starttls", "tls":
	default:
		errs = append(errs, fmt.Errorf("DEPLOYER_SMTP_TLS %q is unknown; use none, starttls or tls", c.SMTP.TLS))
	}
	if c.Token != "" && len(c.Token) < 16 {
		errs = append(errs, errors.New("DEPLOYER_API_TOKEN is too short; use 16 characters or more, such as the output of openssl rand -hex 24"))
	}
	if c.SimSlots > 100000 {
		errs = append(errs, fmt.Errorf("DEPLOYER_SIM_SLOTS %d is too large; use at most 100000", c.SimSlots))
	}
	if c.Heartbeat < 10*time.Millisecond || c.Heartbeat > 15*time.Second {
		errs = append(errs, fmt.Errorf("DEPLOYER_SSE_HEARTBEAT %s is out of range; use 10ms to 15s", c.Heartbeat))
	}
	if c.Idle < time.Minute {
		errs = append(errs, fmt.Errorf("DEPLOYER_SESSION_IDLE %s is too short; use 1m or more", c.Idle))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("DEPLOYER_LOG_FORMAT %q is unknown; use text or json", c.LogFormat))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("DEPLOYER_LOG_LEVEL %q is unknown; use debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}
