package grid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"deployer/onboard"
)

// Defaults of ThreeFoldConfig.
const (
	DefaultVMCPU      = 2
	DefaultVMDiskGB   = 20
	DefaultVMImage    = "https://hub.grid.tf/tf-official-apps/threefoldtech-ubuntu-22.04.flist"
	DefaultVMPort     = 80
	DefaultNodeTTL    = 5 * time.Second
	DefaultToolTimout = 5 * time.Minute
	DefaultListWait   = 2 * time.Minute
	DefaultListPoll   = 3 * time.Second
)

// vmEntrypoint is the init that tfcmd's default Ubuntu image boots with;
// tfcmd takes --flist only together with --entrypoint.
const vmEntrypoint = "/sbin/zinit init"

// ThreeFoldConfig sets up the ThreeFold Grid backend. Zero durations and
// sizes take the defaults above.
type ThreeFoldConfig struct {
	ProxyURL string
	TwinID   uint64
	TFCmd    string
	// SSHPublicKey is the authorized_keys line put on every VM.
	SSHPublicKey string
	VMCPU        int
	VMDiskGB     int    // root filesystem size, tfcmd --rootfs
	VMImage      string // flist URL
	// VMPort is the port on the VM that the gateway name forwards to.
	VMPort int
	// GatewayNode holds the gateway names; empty means the VM's node.
	GatewayNode string
	// NodeTTL is how long a node read is served from the cache.
	NodeTTL time.Duration
	// ToolTimeout bounds one tfcmd run.
	ToolTimeout time.Duration
	// ListWait bounds the wait for the Grid Proxy to list, or stop listing,
	// the contracts a tfcmd run made or canceled; ListPoll is its interval.
	ListWait   time.Duration
	ListPoll   time.Duration
	HTTPClient *http.Client
	Log        *slog.Logger
}

// ThreeFold is the ThreeFold Grid: node figures and contracts from the Grid
// Proxy, deploy and cancel through tfcmd. It is safe for concurrent use.
type ThreeFold struct {
	cfg   ThreeFoldConfig
	proxy *Proxy
	nodes *nodeCache
	tool  *toolRunner
	log   *slog.Logger

	mu sync.Mutex
	// projects maps tool names to the projects seen, to name hashed tool
	// names in the contract list.
	projects map[string]string
}

var _ onboard.Grid = (*ThreeFold)(nil)

// NewThreeFold returns the ThreeFold Grid backend.
func NewThreeFold(cfg ThreeFoldConfig) *ThreeFold {
	// Zero settings take the defaults.
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDefault(&cfg.NodeTTL, DefaultNodeTTL)
	setDefault(&cfg.ToolTimeout, DefaultToolTimout)
	setDefault(&cfg.ListWait, DefaultListWait)
	setDefault(&cfg.ListPoll, DefaultListPoll)

	if cfg.VMCPU <= 0 {
		cfg.VMCPU = DefaultVMCPU
	}
	if cfg.VMDiskGB <= 0 {
		cfg.VMDiskGB = DefaultVMDiskGB
	}
	if cfg.VMImage == "" {
		cfg.VMImage = DefaultVMImage
	}
	if cfg.VMPort <= 0 {
		cfg.VMPort = DefaultVMPort
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}

	t := &ThreeFold{
		cfg: cfg, proxy: NewProxy(cfg.ProxyURL, cfg.HTTPClient), log: cfg.Log,
		tool: &toolRunner{path: cfg.TFCmd, timeout: cfg.ToolTimeout}, projects: map[string]string{},
	}
	t.nodes = newNodeCache(cfg.NodeTTL, t.proxy.Node)
	return t
}

// Proxy returns the Grid Proxy client.
func (t *ThreeFold) Proxy() *Proxy { return t.proxy }

// Node returns the node's status. Reads are cached for NodeTTL and shared
// between concurrent callers; fresh skips the cache but still joins a read
// in flight. It returns onboard.ENotFound for an unknown node and
// onboard.EGridFailed when the Grid Proxy fails.
func (t *ThreeFold) Node(ctx context.Context, nodeID string, fresh bool) (onboard.NodeStatus, error) {
	n, err := t.nodes.get(ctx, nodeID, fresh)
	if err != nil {
		return onboard.NodeStatus{}, err
	}
	return NodeStatus(n, nodeID, t.cfg.TwinID, time.Now().UTC()), nil
}

// Deploy creates, or adopts, the project's VM with its network, then its
// gateway name, each through one tfcmd run. While a run goes on, it lists
// the project's contracts on the Grid Proxy and records each one as soon as
// it appears. It returns an error wrapping onboard.ErrGridTimeout when tfcmd
// or the Grid Proxy's listing takes too long.
func (t *ThreeFold) Deploy(ctx context.Context, req onboard.DeployRequest, record func(onboard.Contract) error) (onboard.GridProject, error) {
	name, err := t.toolName(req.Project)
	if err != nil {
		return onboard.GridProject{}, err
	}
	gwNode, domain, err := t.gatewayNode(ctx, req.NodeID)
	if err != nil {
		return onboard.GridProject{}, err
	}
	defer t.nodes.invalidate(req.NodeID)
	defer t.nodes.invalidate(gwNode)

	w := &watch{t: t, name: name, record: record, seen: map[uint64]bool{}}
	if err := w.poll(ctx); err != nil {
		return onboard.GridProject{}, err
	}
	addr, err := t.deployVM(ctx, w, req)
	if err != nil {
		return onboard.GridProject{}, err
	}
	fqdn, err := t.deployGateway(ctx, w, gwNode, addr)
	if err != nil {
		return onboard.GridProject{}, err
	}
	if fqdn == "" {
		fqdn = name + "." + domain
	}
	return onboard.GridProject{Contracts: w.contracts, Gateway: fqdn, VMAddress: addr}, nil
}

// deployVM runs `tfcmd deploy vm`, or `tfcmd get vm` when the VM exists, and
// returns the VM's address.
func (t *ThreeFold) deployVM(ctx context.Context, w *watch, req onboard.DeployRequest) (string, error) {
	var addrs vmAddresses
	if w.has(onboard.ContractVM) {
		out, err := t.tool.run(ctx, "get", "vm", w.name)
		if err != nil {
			return "", fmt.Errorf("read the existing VM %s: %w", w.name, err)
		}
		if addrs, err = out.loadedAddresses(); err != nil {
			return "", fmt.Errorf("read the existing VM %s from tfcmd's output: %w", w.name, err)
		}
	} else {
		keyFile, cleanup, err := t.publicKeyFile()
		if err != nil {
			return "", err
		}
		defer cleanup()
		out, err := w.run(ctx, []string{onboard.ContractNetwork, onboard.ContractVM},
			"deploy", "vm", "--name", w.name, "--ssh", keyFile, "--node", req.NodeID,
			"--cpu", strconv.Itoa(t.cfg.VMCPU), "--memory", strconv.Itoa(onboard.BundleSlots*onboard.SlotBytes>>30),
			"--rootfs", strconv.Itoa(t.cfg.VMDiskGB), "--flist", t.cfg.VMImage, "--entrypoint", vmEntrypoint)
		if err != nil {
			return "", err
		}
		addrs = out.deployedAddresses()
	}
	addr := addrs.best()
	if addr == "" {
		return "", fmt.Errorf("tfcmd reported no address for VM %s; its VM has no Mycelium, Yggdrasil or public address", w.name)
	}
	return addr, nil
}

// deployGateway runs `tfcmd deploy gateway name` unless the project holds a
// gateway name already, and returns its domain name when tfcmd printed it.
func (t *ThreeFold) deployGateway(ctx context.Context, w *watch, gwNode, vmAddr string) (string, error) {
	if w.has(onboard.ContractName) {
		return "", nil
	}
	backend := "http://" + net.JoinHostPort(vmAddr, strconv.Itoa(t.cfg.VMPort))
	out, err := w.run(ctx, []string{onboard.ContractName},
		"deploy", "gateway", "name", "--name", w.name, "--node", gwNode, "--backends", backend)
	if err != nil {
		return "", err
	}
	return out.value("fqdn"), nil
}

// publicKeyFile writes the deployer's SSH public key to a temporary file for
// tfcmd --ssh, which takes a path.
func (t *ThreeFold) publicKeyFile() (string, func(), error) {
	if t.cfg.SSHPublicKey == "" {
		return "", nil, errors.New("no SSH public key is configured for new VMs; set DEPLOYER_SSH_KEY")
	}
	dir, err := os.MkdirTemp("", "deployer-ssh-")
	if err != nil {
		return "", nil, fmt.Errorf("write the SSH public key for tfcmd: %w", err)
	}
	path := filepath.Join(dir, "id.pub")
	if err := os.WriteFile(path, []byte(t.cfg.SSHPublicKey+"\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("write the SSH public key for tfcmd: %w", err)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// gatewayNode returns the node that holds gateway names and its domain. It
// returns onboard.EGridFailed when that node has no public domain.
func (t *ThreeFold) gatewayNode(ctx context.Context, nodeID string) (string, string, error) {
	id := t.cfg.GatewayNode
	if id == "" {
		id = nodeID
	}
	n, err := t.nodes.get(ctx, id, false)
	if err != nil {
		return "", "", err
	}
	if n.PublicConfig.Domain == "" {
		return "", "", onboard.Errorf(onboard.EGridFailed,
			"Node %s has no public domain, so it cannot hold gateway names. "+
				"Set DEPLOYER_GATEWAY_NODE to a gateway node of the same network.", id)
	}
	return id, n.PublicConfig.Domain, nil
}

// Lookup returns the contracts under the project and its gateway name.
// NOTE: VMAddress stays empty, because only tfcmd reports it. Deploy fills
// it in when it adopts the VM.
func (t *ThreeFold) Lookup(ctx context.Context, nodeID, project string) (onboard.GridProject, error) {
	name, err := t.toolName(project)
	if err != nil {
		return onboard.GridProject{}, err
	}
	contracts, err := t.projectContracts(ctx, name)
	if err != nil {
		return onboard.GridProject{}, err
	}
	p := onboard.GridProject{Contracts: contracts}
	if _, ok := findContract(contracts, onboard.ContractName); ok {
		if _, domain, err := t.gatewayNode(ctx, nodeID); err == nil {
			p.Gateway = name + "." + domain
		}
	}
	return p, nil
}

// Cancel runs `tfcmd cancel` for the project and waits until the Grid Proxy
// lists none of its contracts. It returns an error wrapping
// onboard.ErrGridTimeout when they are still listed after ListWait.
func (t *ThreeFold) Cancel(ctx context.Context, nodeID, project, runID string) error {
	name, err := t.toolName(project)
	if err != nil {
		return err
	}
	defer t.nodes.invalidate(nodeID)
	if t.cfg.GatewayNode != "" {
		defer t.nodes.invalidate(t.cfg.GatewayNode)
	}
	if _, err := t.tool.run(ctx, "cancel", name); err != nil {
		return err
	}

	deadline := time.Now().Add(t.cfg.ListWait)
	for {
		left, err := t.projectContracts(ctx, name)
		if err == nil && len(left) == 0 {
			t.log.Info("Project canceled", "project", project, "node_id", nodeID, "run_id", runID)
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("confirm the cancellation of project %s: %w", project, err)
			}
			return fmt.Errorf("the Grid Proxy still lists %d contracts of project %s %s after tfcmd canceled them: %w",
				len(left), project, t.cfg.ListWait, onboard.ErrGridTimeout)
		}
		if !onboard.Sleep(ctx, t.cfg.ListPoll) {
			return context.Cause(ctx)
		}
	}
}

// Contracts returns the deployer's live contracts: those of its twin whose
// names are under the deployer's tool naming.
func (t *ThreeFold) Contracts(ctx context.Context) ([]onboard.Contract, error) {
	return t.listContracts(ctx)
}

// toolName returns the project's tfcmd name and remembers the project.
func (t *ThreeFold) toolName(project string) (string, error) {
	name := ToolName(project)
	if name == "" {
		return "", fmt.Errorf("project %q is not under the deployer's naming", project)
	}
	t.mu.Lock()
	t.projects[name] = project
	t.mu.Unlock()
	return name, nil
}

// projectContracts returns the live contracts made under one tool name.
func (t *ThreeFold) projectContracts(ctx context.Context, name string) ([]onboard.Contract, error) {
	all, err := t.listContracts(ctx)
	if err != nil {
		return nil, err
	}
	project := projectOfToolName(name, t.knownProjects())
	var mine []onboard.Contract
	for _, c := range all {
		if c.Project == project {
			mine = append(mine, c)
		}
	}
	return mine, nil
}

// listContracts reads the twin's contracts and converts those tfcmd made.
func (t *ThreeFold) listContracts(ctx context.Context) ([]onboard.Contract, error) {
	if t.cfg.TwinID == 0 {
		return nil, errors.New("DEPLOYER_TWIN_ID is not set, so the deployer's contracts cannot be listed")
	}
	raw, err := t.proxy.Contracts(ctx, t.cfg.TwinID)
	if err != nil {
		return nil, err
	}
	known := t.knownProjects()
	gatewayNodes := map[string]string{}
	var out []onboard.Contract
	for _, rc := range raw {
		c, ok := convertContract(rc, known)
		if !ok {
			continue
		}
		if rc.Type == "node" && c.Kind == onboard.ContractName {
			gatewayNodes[c.Name] = c.NodeID
		}
		out = append(out, c)
	}
	// A name contract has no node; give it the node of its gateway.
	for i, c := range out {
		if c.NodeID == "" {
			out[i].NodeID = gatewayNodes[c.Name]
		}
	}
	return out, nil
}

func (t *ThreeFold) knownProjects() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	known := make(map[string]string, len(t.projects))
	for k, v := range t.projects {
		known[k] = v
	}
	return known
}

// convertContract turns a proxy contract made by tfcmd under the deployer's
// naming into a deployer contract.
func convertContract(rc ProxyContract, known map[string]string) (onboard.Contract, bool) {
	c := onboard.Contract{ID: int64(rc.ContractID), State: "created"}
	var toolName string
	switch rc.Type {
	case "name":
		toolName, c.Kind, c.Name = rc.Details.Name, onboard.ContractName, rc.Details.Name
	case "node":
		var dd deploymentData
		if json.Unmarshal([]byte(rc.Details.DeploymentData), &dd) != nil {
			return c, false
		}
		toolName = strings.TrimPrefix(dd.ProjectName, "vm/")
		c.Name, c.NodeID = dd.Name, strconv.FormatUint(rc.Details.NodeID, 10)
		switch dd.Type {
		case "vm":
			c.Kind = onboard.ContractVM
		case "network":
			c.Kind = onboard.ContractNetwork
		case "Gateway Name":
			c.Kind = onboard.ContractName
		default:
			return c, false
		}
	default:
		return c, false
	}
	if !isToolName(toolName) {
		return c, false
	}
	c.Project = projectOfToolName(toolName, known)
	return c, true
}

// watch follows one project's contracts during a deploy and records each
// new one once.
type watch struct {
	t         *ThreeFold
	name      string
	record    func(onboard.Contract) error
	seen      map[uint64]bool
	contracts []onboard.Contract
}

// poll lists the project's contracts and records the new ones.
func (w *watch) poll(ctx context.Context) error {
	list, err := w.t.projectContracts(ctx, w.name)
	if err != nil {
		return err
	}
	for _, c := range list {
		if w.seen[uint64(c.ID)] {
			continue
		}
		if err := w.record(c); err != nil {
			return fmt.Errorf("record contract %d: %w", c.ID, err)
		}
		w.seen[uint64(c.ID)] = true
		w.contracts = append(w.contracts, c)
	}
	return nil
}

// has reports whether a contract of the kind has been seen.
func (w *watch) has(kind string) bool {
	_, ok := findContract(w.contracts, kind)
	return ok
}

// run runs tfcmd while polling the Grid Proxy, then waits until every kind
// in want is listed. A listing error during the run is retried at the next
// poll; a recording error stops the tool.
func (w *watch) run(ctx context.Context, want []string, args ...string) (toolOutput, error) {
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	type result struct {
		out toolOutput
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := w.t.tool.run(runCtx, args...)
		done <- result{out, err}
	}()

	ticker := time.NewTicker(w.t.cfg.ListPoll)
	defer ticker.Stop()
	var res result
	for running := true; running; {
		select {
		case res = <-done:
			running = false
		case <-ticker.C:
			if err := w.poll(ctx); err != nil && !isGridFailure(err) {
				stop(err)
				<-done
				return "", err
			}
		}
	}
	if res.err != nil {
		// Record what the failed run left, so that the undo cancels it.
		if err := w.poll(context.WithoutCancel(ctx)); err != nil {
			w.t.log.Warn("Contracts left by a failed tfcmd run not listed", "project", w.name, "error", err)
		}
		return res.out, res.err
	}
	return res.out, w.waitListed(ctx, want)
}

// waitListed polls until a contract of every kind in want is recorded.
func (w *watch) waitListed(ctx context.Context, want []string) error {
	deadline := time.Now().Add(w.t.cfg.ListWait)
	for {
		err := w.poll(ctx)
		if err != nil && !isGridFailure(err) {
			return err
		}
		missing := ""
		for _, kind := range want {
			if !w.has(kind) {
				missing = kind
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tfcmd finished, but the Grid Proxy did not list the %s contract of %s within %s: %w",
				missing, w.name, w.t.cfg.ListWait, onboard.ErrGridTimeout)
		}
		if !onboard.Sleep(ctx, w.t.cfg.ListPoll) {
			return context.Cause(ctx)
		}
	}
}

// isGridFailure reports whether err is the Grid Proxy failing, which a later
// poll may get past.
func isGridFailure(err error) bool {
	return onboard.ErrorCode(err) == onboard.EGridFailed
}
