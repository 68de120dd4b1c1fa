package handlers

import (
	"fmt"
	"net/http"
	"strings"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

// capacityView is the readout on the start form, with the submit button.
type capacityView struct {
	NodeID                      string
	Online                      bool
	Reason                      string
	Total, Used, Free, Reserved int
	Room                        int
	CanStart, Degraded          bool
	BlockedReason, Error        string
}

func (h *handler) capacityView(c *fiber.Ctx, nodeID string) capacityView {
	nodeID = strings.TrimSpace(nodeID)
	cap, err := h.svc.Capacity(userContext(c), nodeID)
	if err != nil {
		msg := onboard.ErrorMessage(err)
		return capacityView{NodeID: nodeID, Error: msg, BlockedReason: msg}
	}
	v := capacityView{
		NodeID: cap.NodeID, Online: cap.Online, Reason: cap.Reason, Total: cap.TotalSlots, Free: cap.FreeSlots,
		Used: cap.UsedSlots, Reserved: cap.ReservedSlots, Room: cap.RoomForTesters,
		Degraded: cap.Degraded,
	}
	switch {
	case cap.Degraded:
		v.BlockedReason = fmt.Sprintf("Node %s is marked %s. Clear the mark once the node works again.",
			cap.NodeID, cap.Reason)
	case !cap.Online:
		v.BlockedReason = fmt.Sprintf("Node %s is not usable (%s), so nothing can be provisioned there.", cap.NodeID, cap.Reason)
	case cap.RoomForTesters < 1:
		// The form cannot tell a new tester from one with a VM, which needs
		// no room; the tester's page runs that one's install.
		v.BlockedReason = fmt.Sprintf("Node %s has no room for another tester: %d slots free, %d reserved, %d needed. "+
			"A tester who already has a VM can be installed again from their page.",
			cap.NodeID, cap.FreeSlots, cap.ReservedSlots, onboard.BundleSlots)
	default:
		v.CanStart = true
	}
	return v
}

// showCapacity renders the readout for the node in the query.
func (h *handler) showCapacity(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return h.renderFragment(c, http.StatusOK, "partials/capacity", h.capacityView(c, c.Query("node_id", h.cfg.DefaultNode)))
}

// getCapacity returns the node's capacity as JSON.
func (h *handler) getCapacity(c *fiber.Ctx) error {
	cap, err := h.svc.Capacity(userContext(c), c.Params("node"))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(newCapacityJSON(cap))
}

// clearDegraded lets provisions run on a degraded node again.
func (h *handler) clearDegraded(c *fiber.Ctx) error {
	nodeID := c.Params("node")
	if err := h.svc.ClearDegraded(userContext(c), nodeID); err != nil {
		return err
	}
	if isAPI(c) {
		return h.getCapacity(c)
	}
	return h.renderFragment(c, http.StatusOK, "partials/capacity", h.capacityView(c, nodeID))
}
