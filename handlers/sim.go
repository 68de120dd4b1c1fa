package handlers

import (
	"fmt"
	"net/http"
	"strconv"

	"deployer/grid"
	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

type simView struct {
	NodeID string
	Nodes  []grid.SimNode
	Faults []grid.SimFault
	Notice string
	Open   bool
}

func (h *handler) simView(c *fiber.Ctx, notice string) (simView, error) {
	ctx := userContext(c)
	v := simView{NodeID: h.cfg.DefaultNode, Notice: notice, Open: notice != ""}
	nodes, err := h.sim.Nodes(ctx)
	if err != nil {
		return v, err
	}
	v.Nodes = nodes
	v.Faults, err = h.sim.Faults(ctx)
	return v, err
}

// simNodeForm accepts booleans and numbers as JSON values or form strings.
type simNodeForm struct {
	NodeID     nodeIDParam `json:"node_id" form:"node_id"`
	Online     *jsonBool   `json:"online" form:"online"`
	TotalSlots *int        `json:"total_slots" form:"total_slots"`
}

type jsonBool bool

func (b *jsonBool) UnmarshalJSON(data []byte) error {
	v, err := strconv.ParseBool(string(trimQuotes(data)))
	if err != nil {
		return onboard.FieldError("online", "Online must be true or false.")
	}
	*b = jsonBool(v)
	return nil
}

// UnmarshalText reads the form value.
func (b *jsonBool) UnmarshalText(data []byte) error { return b.UnmarshalJSON(data) }

func trimQuotes(b []byte) []byte {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		return b[1 : len(b)-1]
	}
	return b
}

func (h *handler) requireSim() error {
	if h.sim == nil {
		return onboard.Errorf(onboard.ENotFound, "The simulated grid is not in use (DEPLOYER_GRID is not sim).")
	}
	return nil
}

// setSimNode switches a simulated node online or offline and sets its slots.
func (h *handler) setSimNode(c *fiber.Ctx) error {
	if err := h.requireSim(); err != nil {
		return err
	}
	var f simNodeForm
	if err := parseBody(c, &f); err != nil {
		return err
	}
	if f.NodeID == "" {
		f.NodeID = nodeIDParam(h.cfg.DefaultNode)
	}
	var online *bool
	if f.Online != nil {
		v := bool(*f.Online)
		online = &v
	}
	ctx := userContext(c)
	// A node id the simulator lacks adds a node. The notice names that
	// case, so that a mistyped id does not pass for an update.
	_, lookupErr := h.sim.Node(ctx, string(f.NodeID), true)
	added := onboard.ErrorCode(lookupErr) == onboard.ENotFound
	n, err := h.sim.SetNode(ctx, string(f.NodeID), online, f.TotalSlots)
	h.svc.RecordAudit(ctx, "sim.node", "", string(f.NodeID), err, simNodeDetail(online, f.TotalSlots))
	if err != nil {
		return err
	}
	if isAPI(c) {
		return c.JSON(fiber.Map{"node_id": n.NodeID, "online": n.Online, "total_slots": n.TotalSlots, "used_slots": n.UsedSlots})
	}
	state := "online"
	if !n.Online {
		state = "offline"
	}
	notice := fmt.Sprintf("Node %s updated: %s, %d slots.", n.NodeID, state, n.TotalSlots)
	if added {
		notice = fmt.Sprintf("Node %s added to the simulated grid: %s, %d slots.", n.NodeID, state, n.TotalSlots)
	}
	return h.renderSimPanel(c, notice)
}

func simNodeDetail(online *bool, slots *int) string {
	detail := ""
	if online != nil {
		detail += "online=" + strconv.FormatBool(*online) + " "
	}
	if slots != nil {
		detail += "total_slots=" + strconv.Itoa(*slots)
	}
	return detail
}

type simFaultForm struct {
	Stage string `json:"stage" form:"stage"`
	Times *int   `json:"times" form:"times"`
	Mode  string `json:"mode" form:"mode"`
}

// setSimFault makes the next runs of a stage fail.
func (h *handler) setSimFault(c *fiber.Ctx) error {
	if err := h.requireSim(); err != nil {
		return err
	}
	var f simFaultForm
	if err := parseBody(c, &f); err != nil {
		return err
	}
	times := 1
	if f.Times != nil {
		times = *f.Times
	}
	ctx := userContext(c)
	err := h.sim.SetFault(ctx, f.Stage, times, f.Mode)
	h.svc.RecordAudit(ctx, "sim.fault", "", "", err, f.Stage+" x"+strconv.Itoa(times)+" "+f.Mode)
	if err != nil {
		return err
	}
	if isAPI(c) {
		faults, err := h.sim.Faults(ctx)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"faults": faults})
	}
	return h.renderSimPanel(c, "Fault set.")
}

func (h *handler) renderSimPanel(c *fiber.Ctx, notice string) error {
	v, err := h.simView(c, notice)
	if err != nil {
		return err
	}
	// The capacity readout and the testers table refresh at once.
	c.Set("HX-Trigger", "deployer:changed")
	return h.renderFragment(c, http.StatusOK, "partials/sim", v)
}
