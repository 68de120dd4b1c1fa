package handlers

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

type orphansView struct {
	page
	Rows          []orphanRow
	Error, Notice string
}

// orphanRow is one orphaned contract. Cleanup works on a whole project, so
// only the first row of each project offers it.
type orphanRow struct {
	onboard.Contract
	// ProjectContracts is the count of the project's contracts, on its
	// first row, and 0 on the others.
	ProjectContracts int
}

// orphanRows groups the contracts by node and project, in id order.
func orphanRows(orphans []onboard.Contract) []orphanRow {
	sorted := slices.Clone(orphans)
	slices.SortStableFunc(sorted, func(a, b onboard.Contract) int {
		return cmp.Or(cmp.Compare(a.NodeID, b.NodeID), cmp.Compare(a.Project, b.Project), cmp.Compare(a.ID, b.ID))
	})
	rows := make([]orphanRow, len(sorted))
	first := 0
	for i, c := range sorted {
		rows[i].Contract = c
		if c.NodeID != sorted[first].NodeID || c.Project != sorted[first].Project {
			first = i
		}
		rows[first].ProjectContracts++
	}
	return rows
}

// withOrphans fills v with the orphaned contracts, or the error that kept
// them from being read.
func (h *handler) withOrphans(c *fiber.Ctx, v orphansView) orphansView {
	orphans, err := h.svc.Orphans(userContext(c))
	if err != nil {
		v.Error = onboard.ErrorMessage(err)
	}
	v.Rows = orphanRows(orphans)
	return v
}

func (h *handler) showOrphansPage(c *fiber.Ctx) error {
	v := h.withOrphans(c, orphansView{page: h.page(c, "Orphans", "orphans")})
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
	v := h.withOrphans(c, orphansView{Notice: "Canceled the contracts of project " + f.Project + "."})
	return h.renderFragment(c, http.StatusOK, "partials/orphans_table", v)
}
