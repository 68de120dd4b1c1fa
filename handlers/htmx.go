package handlers

import (
	"regexp"

	"github.com/gofiber/fiber/v2"
)

// htmx request and response header names.
const (
	hxRequest  = "HX-Request"
	hxBoosted  = "HX-Boosted"
	hxRedirect = "HX-Redirect"
	hxRetarget = "HX-Retarget"
	hxReswap   = "HX-Reswap"
	hxTrigger  = "HX-Trigger"
	// changedEvent makes the page's live parts, such as the testers list
	// and the capacity readout, reload themselves.
	changedEvent = "deployer:changed"
	// errorTargetHeader names the element where a request's error message
	// goes; forms and buttons set it through hx-headers.
	errorTargetHeader = "X-Error-Target"
	// csrfHeader carries the CSRF token on htmx requests, from the body's
	// hx-headers.
	csrfHeader = "X-CSRF-Token"
	// resumeHeader asks a per-step handler to answer with a step result that
	// offers to resume the named onboarding.
	resumeHeader = "X-Resume-Onboarding"
)

// isHTMX reports whether the request comes from htmx and wants a fragment.
func isHTMX(c *fiber.Ctx) bool {
	return c.Get(hxRequest) == "true" && c.Get(hxBoosted) != "true"
}

var selectorPattern = regexp.MustCompile(`^#[A-Za-z][A-Za-z0-9_-]{0,80}$`)

// errorTarget returns where the request's error message should be swapped:
// the element it named, or the page's flash area.
func errorTarget(c *fiber.Ctx) string {
	if t := c.Get(errorTargetHeader); selectorPattern.MatchString(t) {
		return t
	}
	return "#flash"
}
