package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

// Locals keys.
const (
	localRequestID   = "request_id"
	localActor       = "actor"
	localCSRF        = "csrf"
	localSessionHash = "session_hash"
)

// sessionCookie is the name of the admin session cookie.
const sessionCookie = "deployer_session"

// contentSecurityPolicy allows only the deployer's own scripts, styles and
// connections; htmx is configured not to inject styles or evaluate code.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

func actorFrom(c *fiber.Ctx) string {
	a, _ := c.Locals(localActor).(string)
	return a
}

// sessionHashFrom returns the stored form of the request's session id, or
// "" for a request made with the API token.
func sessionHashFrom(c *fiber.Ctx) string {
	h, _ := c.Locals(localSessionHash).(string)
	return h
}

func csrfFrom(c *fiber.Ctx) string {
	t, _ := c.Locals(localCSRF).(string)
	return t
}

// userContext returns the request's context, which carries the admin for
// the audit log once authenticate let the request through.
func userContext(c *fiber.Ctx) context.Context {
	return c.UserContext()
}

// setSecurityHeaders sets the headers every response carries, error
// responses that Fiber makes before any handler runs included.
func (h *handler) setSecurityHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	if h.secure(c) {
		c.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// tagRequest gives the request an id, sets the security headers, turns a
// panic into a 500, and logs the request when it ends. Event streams are
// logged by their handler when they close.
func (h *handler) tagRequest(c *fiber.Ctx) error {
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c.Locals(localRequestID, id)
	c.Set("X-Request-ID", id)
	h.setSecurityHeaders(c)

	start := time.Now()
	err := h.nextRecovered(c)
	if err != nil {
		if herr := h.handleError(c, err); herr != nil {
			h.log.Error("Error response failed", "request_id", id, "error", herr)
		}
	}
	route := routeLabel(c)
	h.observeRequest(c, route, time.Since(start))
	if c.Locals(localStreaming) == nil {
		h.log.Info("Request", "request_id", id, "method", c.Method(), "route", route,
			"status", c.Response().StatusCode(), "duration_ms", time.Since(start).Milliseconds(), "admin", actorFrom(c))
	}
	return nil
}

// nextRecovered runs the rest of the chain and returns a panic in it as an
// internal error, so that one bad request cannot stop the deployer.
func (h *handler) nextRecovered(c *fiber.Ctx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("Request panicked", "request_id", requestID(c), "method", c.Method(), "path", c.Path(),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return c.Next()
}

// clientAddr returns the client's IP address. Behind a trusted proxy it is
// the last X-Forwarded-For entry, the one the proxy appended, because the
// entries before it come from the client and can be anything.
func (h *handler) clientAddr(c *fiber.Ctx) string {
	remote := c.Context().RemoteIP().String()
	if !h.cfg.TrustProxy {
		return remote
	}
	values := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)
	if len(values) == 0 {
		return remote
	}
	last := string(values[len(values)-1])
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	if ip := net.ParseIP(strings.TrimSpace(last)); ip != nil {
		return ip.String()
	}
	return remote
}

// isStateChanging reports whether the method may change state.
func isStateChanging(method string) bool {
	switch method {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return false
	}
	return true
}

// authenticate lets a request through with the API token on /api/, or with
// an admin session, which must also carry the CSRF token on state-changing
// requests. Every state-changing request it lets in ends up in the audit
// log, also when it fails before reaching a service.
func (h *handler) authenticate(c *fiber.Ctx) error {
	api := isAPI(c)
	if authz := c.Get(fiber.HeaderAuthorization); authz != "" {
		// The scheme name is case-insensitive (RFC 9110, section 11.1).
		scheme, token, ok := strings.Cut(authz, " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		if !ok || !api || h.cfg.APIToken == "" || !onboard.EqualSecret(token, h.cfg.APIToken) {
			return onboard.Errorf(onboard.EUnauthorized, "The bearer token is not valid for this address.")
		}
		h.admit(c, "api")
		return h.auditUnrecorded(c, c.Next)
	}

	sid := c.Cookies(sessionCookie)
	sess, err := h.auth.Session(c.UserContext(), sid)
	if err != nil {
		if onboard.ErrorCode(err) != onboard.EUnauthorized {
			return err
		}
		if sid != "" {
			h.clearSessionCookie(c)
		}
		return h.unauthenticated(c, api, err)
	}
	h.admit(c, sess.Admin)
	c.Locals(localCSRF, onboard.CSRFToken(sid))
	c.Locals(localSessionHash, sess.IDHash)
	return h.auditUnrecorded(c, func() error {
		if err := h.checkCSRF(c); err != nil {
			return err
		}
		return c.Next()
	})
}

// admit names the admin on the request and in its context.
func (h *handler) admit(c *fiber.Ctx, admin string) {
	c.Locals(localActor, admin)
	c.SetUserContext(onboard.WithActor(c.UserContext(), admin))
}

// checkCSRF requires the session's CSRF token, from the X-CSRF-Token header
// or the _csrf form field, on a state-changing request. A token of an
// earlier session is rejected with a message to reload the page.
func (h *handler) checkCSRF(c *fiber.Ctx) error {
	if !isStateChanging(c.Method()) {
		return nil
	}
	// Only the header or the request body: a token in the query string
	// would end up in logs and browser history.
	token := c.Get(csrfHeader)
	if token == "" {
		token = string(c.Request().PostArgs().Peek("_csrf"))
	}
	if token == "" {
		if form, err := c.MultipartForm(); err == nil && len(form.Value["_csrf"]) == 1 {
			token = form.Value["_csrf"][0]
		}
	}
	if onboard.EqualSecret(token, csrfFrom(c)) {
		return nil
	}
	h.log.Warn("CSRF token missing or stale", "request_id", requestID(c), "admin", actorFrom(c),
		"method", c.Method(), "path", c.Path(), "token_sent", token != "")
	if token == "" {
		return onboard.Errorf(onboard.EForbidden,
			"This request has no security token. Reload the page and try again.")
	}
	return onboard.Errorf(onboard.EForbidden,
		"This page is out of date (its security token does not match your session). Reload the page and try again.")
}

// unauthenticated responds to a request without a valid session: 401 on the
// API, a redirect header for htmx, a closing event on a page's event
// stream, and a redirect to the login page otherwise.
func (h *handler) unauthenticated(c *fiber.Ctx, api bool, cause error) error {
	switch {
	case api:
		return cause
	case isEventStream(c):
		// The SSE extension reconnects after any status but 200, so the
		// stream closes with the message instead.
		id := strings.TrimSuffix(strings.TrimPrefix(c.Path(), "/onboardings/"), "/events")
		return h.closeStream(c, id, onboard.ErrorMessage(cause)+" Reload the page after logging in.")
	case c.Get(hxRequest) == "true":
		c.Set(hxRedirect, "/login")
		return c.SendStatus(fiber.StatusUnauthorized)
	default:
		next := c.OriginalURL()
		if c.Method() != fiber.MethodGet || next == "/" {
			return c.Redirect("/login", fiber.StatusSeeOther)
		}
		return c.Redirect("/login?next="+url.QueryEscape(next), fiber.StatusSeeOther)
	}
}

func (h *handler) setSessionCookie(c *fiber.Ctx, sid string) {
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: sid, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
		Secure: h.secure(c),
	})
}

func (h *handler) clearSessionCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: "", Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
		Secure: h.secure(c), Expires: time.Unix(1, 0), MaxAge: -1,
	})
}

// secure reports whether cookies get the Secure flag: always when
// configured, or when the request came over TLS, directly or through a
// trusted proxy.
func (h *handler) secure(c *fiber.Ctx) bool {
	if h.cfg.SecureCookies {
		return true
	}
	if c.Context().IsTLS() {
		return true
	}
	return h.cfg.TrustProxy && strings.EqualFold(c.Get("X-Forwarded-Proto"), "https")
}
