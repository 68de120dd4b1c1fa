package handlers

import (
	"net/http"
	"strconv"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

type startResponseView struct {
	Panel   panelView
	FormKey string
	Notice  string
}

// startOnboarding starts the one-click flow. The API answers 202 with the
// new onboarding, or 200 with the tester's running one; the page gets the
// progress panel and a fresh form key.
func (h *handler) startOnboarding(c *fiber.Ctx) error {
	var f testerForm
	if err := parseBody(c, &f); err != nil {
		return err
	}
	if f.NodeID == "" && !isAPI(c) {
		f.NodeID = nodeIDParam(h.cfg.DefaultNode)
	}
	in, err := f.input()
	if err != nil {
		return err
	}
	res, err := h.Runner.StartOnboarding(userContext(c), onboard.StartInput{
		TesterInput: in, NodeID: string(f.NodeID), FormKey: f.FormKey,
	})
	if err != nil && isHTMX(c) && onboard.ErrorField(err) == "form_key" {
		// The form came back with the key of an earlier start, so it gets
		// a fresh key beside the message, and Start works again.
		if err := h.handleError(c, err); err != nil {
			return err
		}
		return h.appendFragment(c, "partials/form_key_oob", uuid.NewString())
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if isAPI(c) {
		body := newOnboardingJSON(res.Onboarding)
		body.OneTimePassword = res.OneTimePassword
		status := http.StatusOK
		if res.Started {
			status = http.StatusAccepted
		}
		c.Set(fiber.HeaderLocation, "/api/onboardings/"+res.Onboarding.ID)
		return c.Status(status).JSON(body)
	}

	view := startResponseView{Panel: newPanelView(res.Onboarding, res.OneTimePassword), FormKey: uuid.NewString()}
	if !res.Started {
		view.Notice = "An onboarding for " + res.Onboarding.Username + " on node " + res.Onboarding.NodeID +
			" was already started; this is its progress."
		if res.Onboarding.CreatedAccount {
			view.Notice += " A one-time password is shown only once, in the answer to the first start; " +
				"if it was missed, use Reset password on the tester's page."
		}
	}
	return h.renderFragment(c, http.StatusOK, "partials/start_response", view)
}

type onboardingPage struct {
	page
	Panel  panelView
	Events []onboard.Event
}

func (h *handler) showOnboardingPage(c *fiber.Ctx) error {
	ctx := userContext(c)
	o, err := h.Runner.Onboarding(ctx, c.Params("id"))
	if err != nil {
		return err
	}
	events, err := h.Runner.Events(ctx, o.ID, 0, 2000)
	if err != nil {
		return err
	}
	panel := newPanelView(o, "")
	panel.OnDetailsPage = true
	p := onboardingPage{page: h.page(c, "Onboarding "+o.Username, "onboardings"), Panel: panel, Events: events}
	return h.renderPage(c, http.StatusOK, "pages/onboarding", p)
}

type onboardingsPage struct {
	page
	History []historyRow
}

func (h *handler) showOnboardingsPage(c *fiber.Ctx) error {
	list, err := h.Runner.Onboardings(userContext(c), "", 200)
	if err != nil {
		return err
	}
	return h.renderPage(c, http.StatusOK, "pages/onboardings",
		onboardingsPage{page: h.page(c, "Onboardings", "onboardings"), History: historyRows(list)})
}

// showStageLog renders one stage's log lines, for the details page.
func (h *handler) showStageLog(c *fiber.Ctx) error {
	stage := c.Query("stage")
	switch stage {
	case onboard.StageAdding, onboard.StageProvisioning, onboard.StageInstalling, onboard.StageReady:
	default:
		return onboard.FieldError("stage", "Stage %q is unknown; use adding, provisioning, installing or ready.", stage)
	}
	attempt, _ := strconv.Atoi(c.Query("attempt", "0"))
	if _, err := h.Runner.Onboarding(userContext(c), c.Params("id")); err != nil {
		return err
	}
	lines, err := h.Runner.StageLog(userContext(c), c.Params("id"), stage, attempt)
	if err != nil {
		return err
	}
	if isAPI(c) {
		return c.JSON(fiber.Map{"lines": lines})
	}
	return h.renderFragment(c, http.StatusOK, "partials/log", lines)
}

func (h *handler) getOnboarding(c *fiber.Ctx) error {
	o, err := h.Runner.Onboarding(userContext(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(newOnboardingJSON(o))
}

func (h *handler) listOnboardings(c *fiber.Ctx) error {
	limit, _ := strconv.Atoi(c.Query("limit", "100"))
	list, err := h.Runner.Onboardings(userContext(c), c.Query("username"), min(max(limit, 1), 1000))
	if err != nil {
		return err
	}
	out := make([]onboardingJSON, 0, len(list))
	for _, o := range list {
		out = append(out, newOnboardingJSON(o))
	}
	return c.JSON(fiber.Map{"onboardings": out})
}

// cancelOnboarding stops a running onboarding and undoes what it created.
func (h *handler) cancelOnboarding(c *fiber.Ctx) error {
	o, err := h.Runner.Cancel(userContext(c), c.Params("id"))
	if err != nil {
		return err
	}
	if isAPI(c) {
		return c.JSON(newOnboardingJSON(o))
	}
	// The panel's result block, which the cancel button replaces; the stream
	// brings the rest.
	v := newPanelView(o, "")
	return h.renderFragment(c, http.StatusOK, "partials/panel_result", v)
}

// resumeOnboarding runs the remaining stages as a new attempt.
func (h *handler) resumeOnboarding(c *fiber.Ctx) error {
	o, err := h.Runner.Resume(userContext(c), c.Params("id"))
	if err != nil {
		return err
	}
	if isAPI(c) {
		return c.Status(http.StatusAccepted).JSON(newOnboardingJSON(o))
	}
	return h.renderFragment(c, http.StatusOK, "partials/panel", newPanelView(o, ""))
}
