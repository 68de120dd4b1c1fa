// Package grid talks to the grid: an embedded simulated grid that keeps its
// nodes and contracts in the deployer's database, and the ThreeFold Grid.
package grid

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"deployer/onboard"
)

// SimDomain is the domain of simulated gateway names.
const SimDomain = "gw.sim.test"

// Fault modes of the simulated grid.
const (
	// FaultFail makes a run fail partway, after some objects exist.
	FaultFail = "fail"
	// FaultTimeout makes the grid create the VM and then stop answering.
	FaultTimeout = "timeout"
)

// SimNode is a simulated node.
type SimNode struct {
	NodeID     string
	TotalSlots int
	UsedSlots  int
	Online     bool
}

// SimFault is a pending fault of one stage.
type SimFault struct {
	Stage     string
	Remaining int
	Mode      string
}

// SimState keeps the simulated grid. Implementations are safe for concurrent
// use; SimNode returns onboard.ENotFound for an unknown node.
type SimState interface {
	SimEnsureNode(ctx context.Context, nodeID string, totalSlots int, now time.Time) error
	SimNode(ctx context.Context, nodeID string) (SimNode, error)
	SimNodes(ctx context.Context) ([]SimNode, error)
	// SimSetNode changes a node, creating it with defaultSlots when missing.
	SimSetNode(ctx context.Context, nodeID string, online *bool, totalSlots *int, defaultSlots int, now time.Time) (SimNode, error)
	SimProject(ctx context.Context, nodeID, project string) ([]onboard.Contract, error)
	// SimCreateContract creates a contract; for a VM it fails when the node
	// lacks the slots.
	SimCreateContract(ctx context.Context, c onboard.Contract, slots int, now time.Time) (onboard.Contract, error)
	// SimCancelProject deletes the project's contracts and returns how many.
	SimCancelProject(ctx context.Context, nodeID, project string, now time.Time) (int, error)
	SimContracts(ctx context.Context) ([]onboard.Contract, error)
	SimSetFault(ctx context.Context, f SimFault) error
	SimFaults(ctx context.Context) ([]SimFault, error)
	// SimDrawFault reports whether the run fails, and how. The first call
	// for a run takes one of the stage's pending faults; later calls for the
	// same run give the same answer.
	SimDrawFault(ctx context.Context, stage, runID string, now time.Time) (mode string, faulted bool, err error)
}

// Sim is the simulated grid. It is safe for concurrent use.
type Sim struct {
	state        SimState
	delay        time.Duration
	defaultSlots int
	// fixedDelay makes every stage take exactly delay.
	fixedDelay bool
}

var _ onboard.Grid = (*Sim)(nil)

// NewSim returns a simulated grid whose steps take one to three times delay,
// and whose nodes get totalSlots when first set up.
func NewSim(state SimState, delay time.Duration, totalSlots int) *Sim {
	return &Sim{state: state, delay: delay, defaultSlots: totalSlots}
}

// FixDelay makes every simulated stage take exactly the delay instead of one
// to three times it, for measurements that need known step times. Call it
// before the grid is used.
func (s *Sim) FixDelay() { s.fixedDelay = true }

// stageDuration returns the time one simulated stage takes.
func (s *Sim) stageDuration() time.Duration {
	if s.fixedDelay {
		return s.delay
	}
	return StageDuration(s.delay)
}

// EnsureNode sets up the node with the configured total slots.
func (s *Sim) EnsureNode(ctx context.Context, nodeID string) error {
	return s.state.SimEnsureNode(ctx, nodeID, s.defaultSlots, time.Now())
}

// SetNode changes a node's online flag and total slots; nil leaves a field.
func (s *Sim) SetNode(ctx context.Context, nodeID string, online *bool, totalSlots *int) (SimNode, error) {
	if err := onboard.ValidateNodeID(nodeID); err != nil {
		return SimNode{}, err
	}
	if totalSlots != nil && (*totalSlots < 0 || *totalSlots > 100000) {
		return SimNode{}, onboard.FieldError("total_slots", "Total slots must be between 0 and 100000, not %d.", *totalSlots)
	}
	return s.state.SimSetNode(ctx, nodeID, online, totalSlots, s.defaultSlots, time.Now())
}

// SetFault makes the next times runs of the stage fail in the given mode.
func (s *Sim) SetFault(ctx context.Context, stage string, times int, mode string) error {
	switch stage {
	case onboard.StageProvisioning, onboard.StageInstalling, onboard.StageTeardown:
	default:
		return onboard.FieldError("stage", "Stage %q cannot fail on purpose; use provisioning, installing or teardown.",
			stage)
	}
	if times < 0 || times > 1000 {
		return onboard.FieldError("times", "Times must be between 0 and 1000, not %d.", times)
	}
	switch mode {
	case "":
		mode = FaultFail
	case FaultFail:
	case FaultTimeout:
		if stage != onboard.StageProvisioning {
			return onboard.FieldError("mode", "Mode timeout applies to provisioning only.")
		}
	default:
		return onboard.FieldError("mode", "Mode %q is unknown; use fail or timeout.", mode)
	}
	return s.state.SimSetFault(ctx, SimFault{Stage: stage, Remaining: times, Mode: mode})
}

// Faults returns the pending faults.
func (s *Sim) Faults(ctx context.Context) ([]SimFault, error) { return s.state.SimFaults(ctx) }

// DrawFault reports whether the run of the stage fails; the simulated
// installer uses it too.
func (s *Sim) DrawFault(ctx context.Context, stage, runID string) (string, bool, error) {
	return s.state.SimDrawFault(ctx, stage, runID, time.Now())
}

// Node returns the node's status; the simulated grid has no cache, so fresh
// makes no difference.
func (s *Sim) Node(ctx context.Context, nodeID string, fresh bool) (onboard.NodeStatus, error) {
	n, err := s.state.SimNode(ctx, nodeID)
	if err != nil {
		return onboard.NodeStatus{}, err
	}
	st := onboard.NodeStatus{
		NodeID: nodeID, Online: n.Online, TotalSlots: n.TotalSlots,
		FreeSlots: max(n.TotalSlots-n.UsedSlots, 0), UsedSlots: n.UsedSlots, CheckedAt: time.Now().UTC(),
	}
	if !n.Online {
		st.Reason = "down"
	}
	return st, nil
}

// StageDuration returns a random duration of one to three times the delay,
// the time a simulated stage takes.
func StageDuration(delay time.Duration) time.Duration {
	if delay <= 0 {
		return 0
	}
	return delay + time.Duration(rand.Int64N(int64(2*delay)))
}

// Deploy creates or adopts the network, VM and gateway name of the project.
func (s *Sim) Deploy(ctx context.Context, req onboard.DeployRequest, record func(onboard.Contract) error) (onboard.GridProject, error) {
	total := s.stageDuration()
	mode, faulted, err := s.DrawFault(ctx, onboard.StageProvisioning, req.RunID)
	if err != nil {
		return onboard.GridProject{}, err
	}
	node, err := s.state.SimNode(ctx, req.NodeID)
	if err != nil {
		return onboard.GridProject{}, err
	}
	if !node.Online {
		return onboard.GridProject{}, onboard.Errorf(onboard.ENodeOffline,
			"Node %s is down. Retry once it is back online.", req.NodeID)
	}
	existing, err := s.state.SimProject(ctx, req.NodeID, req.Project)
	if err != nil {
		return onboard.GridProject{}, err
	}

	var result onboard.GridProject
	steps := []struct {
		kind, name string
		slots      int
		share      int // percent of the stage's time
	}{
		{onboard.ContractNetwork, req.Project + "-net", 0, 20},
		{onboard.ContractVM, req.Project + "-vm", onboard.BundleSlots, 50},
		{onboard.ContractName, req.Username, 0, 30},
	}
	for _, step := range steps {
		if faulted && step.kind == onboard.ContractName {
			return onboard.GridProject{}, s.fail(ctx, mode, req, total)
		}
		c, found := findContract(existing, step.kind)
		if !found {
			if !onboard.Sleep(ctx, total*time.Duration(step.share)/100) {
				return onboard.GridProject{}, ctx.Err()
			}
			// A node taken offline midway fails the rest of the deploy.
			if node, err := s.state.SimNode(ctx, req.NodeID); err != nil || !node.Online {
				return onboard.GridProject{}, onboard.Errorf(onboard.ENodeOffline,
					"Node %s went down while the %s contract was being made. Retry once it is back online.",
					req.NodeID, step.kind)
			}
			c, err = s.state.SimCreateContract(ctx, onboard.Contract{
				Kind: step.kind, Name: step.name, NodeID: req.NodeID, Project: req.Project,
			}, step.slots, time.Now())
			if err != nil {
				return onboard.GridProject{}, err
			}
		}
		if err := record(c); err != nil {
			return onboard.GridProject{}, fmt.Errorf("record contract %d: %w", c.ID, err)
		}
		result.Contracts = append(result.Contracts, c)
	}
	result.Gateway = req.Username + "." + SimDomain
	result.VMAddress = simVMAddress(result.Contracts)
	return result, nil
}

// fail ends a faulted run: at once for FaultFail, or after the grid stays
// silent for a while for FaultTimeout.
func (s *Sim) fail(ctx context.Context, mode string, req onboard.DeployRequest, total time.Duration) error {
	if mode == FaultTimeout {
		if !onboard.Sleep(ctx, total) {
			return ctx.Err()
		}
		return fmt.Errorf("simulated fault: no answer after creating the VM of %s: %w", req.Project, onboard.ErrGridTimeout)
	}
	return fmt.Errorf("simulated fault: the grid rejected the gateway name %s", req.Username)
}

// Lookup returns what exists under the project.
func (s *Sim) Lookup(ctx context.Context, nodeID, project string) (onboard.GridProject, error) {
	contracts, err := s.state.SimProject(ctx, nodeID, project)
	if err != nil {
		return onboard.GridProject{}, err
	}
	p := onboard.GridProject{Contracts: contracts}
	if c, ok := findContract(contracts, onboard.ContractName); ok {
		p.Gateway = c.Name + "." + SimDomain
	}
	p.VMAddress = simVMAddress(contracts)
	return p, nil
}

// Cancel deletes every contract of the project after a short delay.
func (s *Sim) Cancel(ctx context.Context, nodeID, project, runID string) error {
	_, faulted, err := s.DrawFault(ctx, onboard.StageTeardown, runID)
	if err != nil {
		return err
	}
	if !onboard.Sleep(ctx, s.stageDuration()/2) {
		return ctx.Err()
	}
	if faulted {
		return fmt.Errorf("simulated fault: the grid did not confirm the cancellation of project %s", project)
	}
	_, err = s.state.SimCancelProject(ctx, nodeID, project, time.Now())
	return err
}

// Contracts returns every live simulated contract.
func (s *Sim) Contracts(ctx context.Context) ([]onboard.Contract, error) {
	all, err := s.state.SimContracts(ctx)
	if err != nil {
		return nil, err
	}
	var mine []onboard.Contract
	for _, c := range all {
		if strings.HasPrefix(c.Project, onboard.ProjectName("")) {
			mine = append(mine, c)
		}
	}
	return mine, nil
}

func findContract(contracts []onboard.Contract, kind string) (onboard.Contract, bool) {
	for _, c := range contracts {
		if c.Kind == kind {
			return c, true
		}
	}
	return onboard.Contract{}, false
}

// simVMAddress derives a private address from the VM's contract id.
func simVMAddress(contracts []onboard.Contract) string {
	c, ok := findContract(contracts, onboard.ContractVM)
	if !ok {
		return ""
	}
	return fmt.Sprintf("10.20.%d.%d", c.ID/250%250, 2+c.ID%250)
}

// Nodes returns every simulated node.
func (s *Sim) Nodes(ctx context.Context) ([]SimNode, error) { return s.state.SimNodes(ctx) }
