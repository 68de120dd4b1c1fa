package onboard

import (
	"context"
	"errors"
	"time"
)

// SlotBytes is the size of the grid's capacity unit: 4 GiB of memory.
const SlotBytes = 4 << 30

// BundleSlots is what one tester takes: 2 slots, 8 GiB.
const BundleSlots = 2

// NodeStatus is what the grid reports about a node.
type NodeStatus struct {
	NodeID     string
	Online     bool
	Reason     string // why the node is not usable, when Online is false
	TotalSlots int
	FreeSlots  int
	// UsedSlots are the slots in use. They may exceed TotalSlots on a node
	// whose total shrank under its VMs, where FreeSlots is 0.
	UsedSlots int
	CheckedAt time.Time
}

// DeployRequest asks the grid for a tester's VM, network and gateway name.
type DeployRequest struct {
	NodeID   string
	Project  string // deterministic; every object of the deployment carries it
	Username string
	// RunID identifies one run of the provisioning stage, so that the
	// simulated grid can fail whole runs.
	RunID string
}

// GridProject is what exists on the grid under one project name.
type GridProject struct {
	Contracts []Contract
	Gateway   string
	VMAddress string
}

// Complete reports whether the project holds a VM and a gateway name.
func (p GridProject) Complete() bool {
	var vm, name bool
	for _, c := range p.Contracts {
		vm = vm || c.Kind == ContractVM
		name = name || c.Kind == ContractName
	}
	return vm && name && p.Gateway != ""
}

// Grid deploys and cancels on the grid. Implementations are safe for
// concurrent use.
type Grid interface {
	// Node returns the node's status and slot figures. With fresh false the
	// answer may come from a short cache; with fresh true it is read anew.
	// It returns ENotFound for an unknown node.
	Node(ctx context.Context, nodeID string, fresh bool) (NodeStatus, error)

	// Deploy creates the project's network, VM and gateway name, adopting
	// any of them that already exist under the project name, so that a
	// retry never makes a second VM. It calls record with each contract as
	// soon as the grid returns its id, before waiting on the next one.
	Deploy(ctx context.Context, req DeployRequest, record func(Contract) error) (GridProject, error)

	// Lookup returns what exists under the project name on the node; an
	// empty GridProject when nothing does.
	Lookup(ctx context.Context, nodeID, project string) (GridProject, error)

	// Cancel cancels every contract of the project and returns once the grid
	// confirms that none is left. runID identifies the teardown run.
	Cancel(ctx context.Context, nodeID, project, runID string) error

	// Contracts returns every live contract made under the deployer's naming.
	Contracts(ctx context.Context) ([]Contract, error)
}

// InstallRequest asks for the stack on a tester's VM.
type InstallRequest struct {
	Username string
	// NodeID is the node that holds the tester's VM.
	NodeID       string
	Gateway      string
	VMAddress    string
	PasswordHash []byte // bcrypt hash for the login gate; empty when none
	RunID        string
}

// Installer installs the tester stack. Implementations are safe for
// concurrent use.
type Installer interface {
	// Install installs the stack, sends its progress lines to progress, and
	// returns the cockpit URL once it answers.
	Install(ctx context.Context, req InstallRequest, progress func(line string)) (cockpitURL string, err error)

	// Check returns nil when the cockpit URL answers.
	Check(ctx context.Context, cockpitURL string) error

	// SetLoginGate writes the tester's username and password hash to the
	// login gate on the VM, so that a new password works at once.
	SetLoginGate(ctx context.Context, req InstallRequest) error
}

// Message is one email.
type Message struct {
	ID       int64
	To       string
	ToName   string
	Subject  string
	Body     string
	Tester   string
	Status   string // pending, sent or failed
	Attempts int
	LastErr  string
	NextAt   time.Time
	SentAt   time.Time
	Created  time.Time
}

// Outbox message statuses.
const (
	MessagePending = "pending"
	MessageSent    = "sent"
	MessageFailed  = "failed"
)

// Mailer delivers one message. Implementations are safe for concurrent use.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// ErrGridTimeout marks a grid call that got no answer in time; the object
// may exist anyway, so a retry looks it up by name and adopts it.
var ErrGridTimeout = errors.New("the grid did not answer in time")
