package handlers

import (
	"net/http"
	"strconv"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

type orphansView struct {
	page
	Orphans       []onboard.Contract
	Error, Notice string
}

func (h *handler) showOrphansPage(c *fiber.Ctx) error {
	v := orphansView{page: h.page(c, "Orphans", "orphans")}
	orphans, err := h.svc.Orphans(userContext(c))
	if err != nil {
		v.Error = onboard.ErrorMessage(err)
	}
	v.Orphans = orphans
	return h.renderPage(c, http.StatusOK, "pages/orphans", v)
}

type contractListJSON struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	NodeID  string `json:"node_id"`
	Project string `json:"project"`
}

func (h *handler) listOrphans(c *fiber.Ctx) error {
	orphans, err := h.svc.Orphans(userContext(c))
	if err != nil {
		return err
	}
	out := make([]contractListJSON, 0, len(orphans))
	for _, o := range orphans {
		out = append(out, contractListJSON{ID: strconv.FormatInt(o.ID, 10), Kind: o.Kind, Name: o.Name, NodeID: o.NodeID, Project: o.Project})
	}
	return c.JSON(fiber.Map{"orphans": out})
}

type cleanupForm struct {
	NodeID  nodeIDParam `json:"node_id" form:"node_id"`
	Project string      `json:"project" form:"project"`
}

// cleanUpOrphans cancels the contracts of one orphaned project.
func (h *handler) cleanUpOrphans(c *fiber.Ctx) error {
	var f cleanupForm
	if err := parseBody(c, &f); err != nil {
		return err
	}
	ctx := userContext(c)
	if err := h.svc.CleanUpOrphans(ctx, string(f.NodeID), f.Project); err != nil {
		return err
	}
	if isAPI(c) {
		return h.listOrphans(c)
	}
	v := orphansView{Notice: "Canceled the contracts of project " + f.Project + "."}
	orphans, err := h.svc.Orphans(ctx)
	if err != nil {
		v.Error = onboard.ErrorMessage(err)
	}
	v.Orphans = orphans
	return h.renderFragment(c, http.StatusOK, "partials/orphans_table", v)
}
