package handlers

import (
	"strings"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

// auditActions names the audit action of each state-changing route, by its
// method and its path without the /api prefix. A parameter named :username
// is the tester and :node is the node of the entry.
var auditActions = []struct{ method, pattern, action string }{
	{fiber.MethodPost, "/logout", "admin.logout"},
	{fiber.MethodPost, "/account/admins", "admin.add"},
	{fiber.MethodPost, "/account/password", "admin.change_password"},
	{fiber.MethodPost, "/testers", "tester.register"},
	{fiber.MethodPost, "/testers/:username/provision", "tester.provision"},
	{fiber.MethodPost, "/testers/:username/install", "tester.install"},
	{fiber.MethodPost, "/testers/:username/teardown", "tester.teardown"},
	{fiber.MethodPost, "/testers/:username/reset-password", "tester.reset_password"},
	{fiber.MethodPost, "/testers/:username/delete", "tester.delete"},
	{fiber.MethodDelete, "/testers/:username", "tester.delete"},
	{fiber.MethodPost, "/onboardings", "onboarding.start"},
	{fiber.MethodPost, "/onboardings/:id/cancel", "onboarding.cancel"},
	{fiber.MethodPost, "/onboardings/:id/resume", "onboarding.resume"},
	{fiber.MethodPost, "/orphans/cleanup", "orphans.cleanup"},
	{fiber.MethodPost, "/nodes/:node/clear-degraded", "node.clear_degraded"},
	{fiber.MethodPost, "/sim/node", "sim.node"},
	{fiber.MethodPost, "/sim/faults", "sim.fault"},
}

// unknownAction is the audit action of a request that no entry of
// auditActions matches.
const unknownAction = "request"

// routeAction returns the audit action of a request with the tester and
// node its path names. Paths match without regard to case, as Fiber routes
// them.
func routeAction(method, path string) (action, tester, nodeID string) {
	path = strings.TrimSuffix(path, "/")
	if len(path) >= 5 && strings.EqualFold(path[:5], "/api/") {
		path = path[4:]
	}
	segments := strings.Split(path, "/")
	for _, a := range auditActions {
		pattern := strings.Split(a.pattern, "/")
		if a.method != method || len(pattern) != len(segments) {
			continue
		}
		tester, nodeID = "", ""
		matched := true
		for i, p := range pattern {
			switch p {
			case ":username":
				tester = strings.ToLower(segments[i])
			case ":node":
				nodeID = segments[i]
			case ":id":
			default:
				matched = strings.EqualFold(p, segments[i])
			}
			if !matched {
				break
			}
		}
		if matched {
			return a.action, tester, nodeID
		}
	}
	return unknownAction, "", ""
}

// auditUnrecorded runs next and, for a state-changing request that no
// service recorded, such as one rejected for its CSRF token or its body,
// stores an audit entry with the outcome.
func (h *handler) auditUnrecorded(c *fiber.Ctx, next func() error) error {
	err := next()
	if !isStateChanging(c.Method()) || onboard.Audited(c.UserContext()) {
		return err
	}
	action, tester, nodeID := routeAction(c.Method(), c.Path())
	detail := c.Method() + " " + c.Path()
	var outcome error
	if err != nil {
		outcome, _ = fromFiber(err)
		detail += ": " + onboard.ErrorMessage(outcome)
	}
	h.svc.RecordAudit(c.UserContext(), action, tester, nodeID, outcome, detail)
	return err
}
