package onboard

import (
	"context"
	"strings"
	"time"
)

// Capacity is a node's room for testers as the deployer sees it: the grid's
// figures less the slots held by work in flight.
type Capacity struct {
	NodeID     string
	Online     bool
	Reason     string
	TotalSlots int
	FreeSlots  int
	// UsedSlots may exceed TotalSlots; see NodeStatus.
	UsedSlots int
	// ReservedSlots are held by provisions in flight whose VM the grid does
	// not show yet.
	ReservedSlots  int
	RoomForTesters int
	Degraded       bool
	CheckedAt      time.Time
}

// NodeHold is what the store holds against a node.
type NodeHold struct {
	ReservedSlots  int
	Degraded       bool
	DegradedReason string
	// Failures counts provision failures in a row on the node.
	Failures int
}

// Reasons a node is not usable.
const (
	ReasonDegraded = "degraded"
)

// room returns how many more bundles fit in free slots less reserved ones.
func room(free, reserved int) int {
	n := (free - reserved) / BundleSlots
	if n < 0 || free-reserved < 0 {
		return 0
	}
	return n
}

func newCapacity(ns NodeStatus, hold NodeHold) Capacity {
	c := Capacity{
		NodeID:        ns.NodeID,
		Online:        ns.Online,
		Reason:        ns.Reason,
		TotalSlots:    ns.TotalSlots,
		FreeSlots:     ns.FreeSlots,
		UsedSlots:     ns.UsedSlots,
		ReservedSlots: hold.ReservedSlots,
		Degraded:      hold.Degraded,
		CheckedAt:     ns.CheckedAt,
	}
	if hold.Degraded && c.Online {
		c.Online = false
		c.Reason = ReasonDegraded + ": " + hold.DegradedReason
	}
	if c.Online {
		c.RoomForTesters = room(c.FreeSlots, c.ReservedSlots)
	}
	return c
}

// Capacity returns the node's capacity. Grid figures may come from a short
// cache; the deployer's own reservations are always current. A grid that
// cannot be reached gives an offline node with the reason rather than an
// error. It returns EInvalid for a bad node id and ENotFound for a node the
// grid does not know.
func (s *Service) Capacity(ctx context.Context, nodeID string) (Capacity, error) {
	return s.capacity(ctx, nodeID, false)
}

func (s *Service) capacity(ctx context.Context, nodeID string, fresh bool) (Capacity, error) {
	if err := ValidateNodeID(nodeID); err != nil {
		return Capacity{}, err
	}
	hold, err := s.store.NodeHold(ctx, nodeID)
	if err != nil {
		return Capacity{}, err
	}
	ns, err := s.grid.Node(ctx, nodeID, fresh)
	if ErrorCode(err) == ENotFound {
		return Capacity{}, err
	}
	if err != nil {
		if ctx.Err() != nil {
			return Capacity{}, err
		}
		s.log.Warn("Node status read failed", "node_id", nodeID, "error", err)
		ns = NodeStatus{NodeID: nodeID, Reason: "grid unreachable: " + ErrorMessage(err), CheckedAt: s.now()}
	}
	return newCapacity(ns, hold), nil
}

// refuseUnusable returns ENodeOffline when the capacity shows an unusable
// node, naming the reason and what to do.
func refuseUnusable(c Capacity) error {
	if c.Online {
		return nil
	}
	reason := c.Reason
	if reason == "" {
		reason = "offline"
	}
	if c.Degraded {
		return Errorf(ENodeOffline, "Node %s is marked %s. Nothing was created; clear the mark on the testers page "+
			"once the node works again, or pick another node.", c.NodeID, reason)
	}
	return Errorf(ENodeOffline, "Node %s is not usable (%s). Nothing was created; pick another node or try again when it is back.",
		c.NodeID, reason)
}

// refuseFull returns ENodeFull for a node without room for one more tester.
func refuseFull(c Capacity) error {
	return Errorf(ENodeFull, "Node %s has no room for another tester (%d free slots, %d reserved, %d needed). "+
		"Nothing was created; tear down a tester or pick another node.",
		c.NodeID, c.FreeSlots, c.ReservedSlots, BundleSlots)
}

// ClearDegraded lets provisions run on a degraded node again.
func (s *Service) ClearDegraded(ctx context.Context, nodeID string) (err error) {
	defer func() { s.audit(ctx, "node.clear_degraded", "", nodeID, err, "") }()
	if err := ValidateNodeID(nodeID); err != nil {
		return err
	}
	return s.store.SetNodeHealth(ctx, nodeID, false, "", s.now())
}

// noteProvisionOutcome counts grid failures on the node and marks it degraded
// after DegradeAfter of them in a row; a success resets the count.
func (s *Service) noteProvisionOutcome(nodeID string, err error) {
	ctx := context.Background()
	if err == nil {
		// A success resets the failure count; a node without failures
		// needs no write.
		hold, err := s.store.NodeHold(ctx, nodeID)
		if err == nil && hold.Failures == 0 && !hold.Degraded {
			return
		}
		if err := s.store.SetNodeHealth(ctx, nodeID, false, "", s.now()); err != nil {
			s.log.Error("Node health not stored", "node_id", nodeID, "error", err)
		}
		return
	}
	if ErrorCode(err) != EGridFailed || s.opts.DegradeAfter == 0 {
		return
	}
	// The mark's reason quotes the failure without its advice to retry,
	// because a degraded node takes no retry until the mark is cleared.
	reason := strings.TrimSuffix(withoutRetryAdvice(ErrorMessage(err)), ".")
	failures, err2 := s.store.CountNodeFailure(ctx, nodeID, s.opts.DegradeAfter, reason, s.now())
	if err2 != nil {
		s.log.Error("Node failure not counted", "node_id", nodeID, "error", err2)
		return
	}
	if failures >= s.opts.DegradeAfter {
		s.log.Warn("Node marked degraded", "node_id", nodeID, "failures", failures)
	}
}
