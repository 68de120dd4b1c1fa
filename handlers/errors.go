package handlers

import (
	"errors"
	"net/http"
	"strings"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

// statusOf maps an error code to its HTTP status.
func statusOf(code string) int {
	switch code {
	case onboard.EInvalid:
		return http.StatusBadRequest
	case onboard.ENotFound:
		return http.StatusNotFound
	case onboard.EConflict, onboard.ENodeOffline, onboard.ENodeFull, onboard.ECanceled:
		return http.StatusConflict
	case onboard.EGridFailed, onboard.EInstallFailed:
		return http.StatusBadGateway
	case onboard.ETimeout:
		return http.StatusGatewayTimeout
	case onboard.EUnavailable:
		return http.StatusServiceUnavailable
	case onboard.EUnauthorized:
		return http.StatusUnauthorized
	case onboard.EForbidden:
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// fromFiber turns Fiber's own errors, such as an unknown route or a body
// over the limit, into coded errors. It also returns the response status
// when it differs from the code's, or 0.
func fromFiber(err error) (error, int) {
	var fe *fiber.Error
	if !errors.As(err, &fe) {
		return err, 0
	}
	switch fe.Code {
	case http.StatusNotFound:
		return onboard.Errorf(onboard.ENotFound, "There is no page here. Check the address."), 0
	case http.StatusRequestEntityTooLarge:
		return onboard.Errorf(onboard.EInvalid, "The request body is too large: at most %d KiB.", bodyLimit/1024),
			http.StatusRequestEntityTooLarge
	case http.StatusMethodNotAllowed:
		return onboard.Errorf(onboard.EInvalid, "This address does not take that method."), http.StatusMethodNotAllowed
	case http.StatusRequestHeaderFieldsTooLarge:
		return onboard.Errorf(onboard.EInvalid, "The request's address and headers are over %d KiB together, "+
			"more than the deployer reads. Shorten the address, or clear this site's cookies in the browser.",
			fiber.DefaultReadBufferSize/1024), http.StatusRequestHeaderFieldsTooLarge
	}
	if fe.Code >= 400 && fe.Code < 500 {
		return onboard.Errorf(onboard.EInvalid, "The request could not be read: %s", fe.Message), fe.Code
	}
	return err, 0
}

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

type errorView struct {
	Code, Message, Field string
}

// handleError is the one place where errors become responses: JSON for the
// API, a fragment for htmx, a page for browsers. Internal errors are logged
// with the request id and shown as a plain message.
func (h *handler) handleError(c *fiber.Ctx, err error) error {
	// Fiber calls this without the middleware for requests it cannot read.
	h.setSecurityHeaders(c)
	err, status := fromFiber(err)
	code := onboard.ErrorCode(err)
	if status == 0 {
		status = statusOf(code)
	}
	msg := onboard.ErrorMessage(err)
	if status >= 500 && code == onboard.EInternal {
		h.log.Error("Request failed", "request_id", requestID(c), "method", c.Method(), "path", c.Path(), "error", err)
	}

	switch {
	// A request head too large to read has no known path, and no page of
	// the deployer makes one, so the response is JSON, which scripts parse
	// and people can still read. The same goes for a request that fasthttp
	// reset because its chunked body went over the limit: browsers send
	// forms with a Content-Length, so such a body comes from a script.
	case strings.HasPrefix(c.Path(), "/api/") || status == http.StatusRequestHeaderFieldsTooLarge ||
		(status == http.StatusRequestEntityTooLarge && requestWasReset(c)):
		return c.Status(status).JSON(errorBody{Error: errorJSON{Code: code, Message: msg, Field: onboard.ErrorField(err)}})
	case isHTMX(c):
		c.Set(hxRetarget, errorTarget(c))
		c.Set(hxReswap, "innerHTML")
		return h.renderFragment(c, status, "partials/error", errorView{Code: code, Message: msg, Field: onboard.ErrorField(err)})
	default:
		heading := http.StatusText(status)
		return h.renderPage(c, status, "pages/error", errorPage{page: h.page(c, heading, ""), Heading: heading, Message: msg})
	}
}

// requestWasReset reports, for a body over the limit, whether fasthttp
// cleared the request before the handler saw it, as it does when a chunked
// body goes over. Such a body has a length over the limit when it comes
// with one, or -1 when chunked, so a length of 0 means the head is gone.
func requestWasReset(c *fiber.Ctx) bool {
	return c.Request().Header.ContentLength() == 0
}

type errorPage struct {
	page
	Heading, Message string
}
