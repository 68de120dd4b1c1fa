package handlers

import (
	"net/http"
	"strings"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

type stepResultView struct {
	Message string
	// PanelID is the failed onboarding whose panel had the Retry button.
	// The result replaces that panel's failure text and Retry button.
	PanelID string
	// ResumeID keeps that panel's Resume setup button, for a tester that
	// is not ready yet.
	ResumeID string
}

// stepDone writes the response to a per-step call: the tester's JSON for the API, a step
// result for a Retry pressed on an onboarding panel, and the re-rendered
// tester block otherwise.
func (h *handler) stepDone(c *fiber.Ctx, username string, t *onboard.Tester, err error,
	describe func(*onboard.Tester) string) error {
	if err != nil {
		return err
	}
	if isAPI(c) {
		return c.JSON(newTesterJSON(t))
	}
	if id := c.Get(resumeHeader); id != "" {
		view := stepResultView{Message: describe(t)}
		o, err := h.Runner.Onboarding(userContext(c), id)
		if err == nil && o.Username == username && o.Finished() && o.Status != onboard.StatusSucceeded {
			view.PanelID = o.ID
			if !t.IsReady() {
				view.ResumeID = o.ID
				view.Message += " Press Resume setup to run the remaining stages."
			}
		}
		// A step run makes no onboarding event, so the page's live parts
		// learn of it from the response.
		c.Set(hxTrigger, changedEvent)
		return h.renderFragment(c, http.StatusOK, "partials/step_result", view)
	}
	return h.renderTesterDetail(c, t, describe(t))
}

// renderTesterDetail renders the tester block with its current onboarding
// state.
func (h *handler) renderTesterDetail(c *fiber.Ctx, t *onboard.Tester, notice string) error {
	history, err := h.Runner.Onboardings(userContext(c), t.Username, 1)
	if err != nil {
		return err
	}
	var active, latest *onboard.Onboarding
	if len(history) > 0 {
		latest = history[0]
		if !latest.Finished() {
			active = latest
		}
	}
	v := h.newTesterView(t, active, latest)
	v.Notice = notice
	return h.renderFragment(c, http.StatusOK, "partials/tester_detail", v)
}

type otpView struct {
	Username, Password, Warning string
}

// resetPassword makes a new one-time password and shows it once.
func (h *handler) resetPassword(c *fiber.Ctx) error {
	username := strings.ToLower(c.Params("username"))
	reset, err := h.svc.ResetPassword(userContext(c), username)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if isAPI(c) {
		body := fiber.Map{"username": username, "one_time_password": reset.Password}
		if reset.GateWarning != "" {
			body["warning"] = reset.GateWarning
		}
		return c.JSON(body)
	}
	return h.renderFragment(c, http.StatusOK, "partials/otp",
		otpView{Username: username, Password: reset.Password, Warning: reset.GateWarning})
}

// deleteTester removes a tester without a deployment, then sends the browser
// to the testers page.
func (h *handler) deleteTester(c *fiber.Ctx) error {
	username := strings.ToLower(c.Params("username"))
	if err := h.svc.DeleteTester(userContext(c), username); err != nil {
		return err
	}
	if isAPI(c) {
		return c.SendStatus(http.StatusNoContent)
	}
	c.Set(hxRedirect, "/")
	return c.SendStatus(http.StatusNoContent)
}
