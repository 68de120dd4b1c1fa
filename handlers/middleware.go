package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"time"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

// Locals keys.
const (
	localRequestID = "request_id"
	localActor     = "actor"
	localCSRF      = "csrf"
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

func csrfFrom(c *fiber.Ctx) string {
	t, _ := c.Locals(localCSRF).(string)
	return t
}

// userContext returns the request's context carrying the admin for the
// audit log.
func userContext(c *fiber.Ctx) context.Context {
	return onboard.WithActor(c.UserContext(), actorFrom(c))
}

// tagRequest gives the request an id, sets the security headers, and logs
// the request when it ends. Event streams are logged by their handler when
// they close.
func (h *handler) tagRequest(c *fiber.Ctx) error {
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c.Locals(localRequestID, id)
	c.Set("X-Request-ID", id)
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	if h.cfg.SecureCookies {
		c.Set("Strict-Transport-Security", "max-age=31536000")
	}

	start := time.Now()
	err := c.Next()
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
// requests.
func (h *handler) authenticate(c *fiber.Ctx) error {
	api := strings.HasPrefix(c.Path(), "/api/")
	if authz := c.Get(fiber.HeaderAuthorization); authz != "" {
		token, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok || !api || h.cfg.APIToken == "" || !onboard.EqualSecret(token, h.cfg.APIToken) {
			return onboard.Errorf(onboard.EUnauthorized, "The bearer token is not valid for this address.")
		}
		c.Locals(localActor, "api")
		return c.Next()
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
	c.Locals(localActor, sess.Admin)
	c.Locals(localCSRF, onboard.CSRFToken(sid))

	if isStateChanging(c.Method()) {
		token := c.Get(csrfHeader)
		if token == "" {
			token = c.FormValue("_csrf")
		}
		if !onboard.EqualSecret(token, csrfFrom(c)) {
			h.log.Warn("CSRF token missing or stale", "request_id", requestID(c), "admin", sess.Admin, "path", c.Path())
			return onboard.Errorf(onboard.EForbidden,
				"This page is out of date (its security token does not match your session). Reload the page and try again.")
		}
	}
	return c.Next()
}

// unauthenticated answers a request without a valid session: 401 on the
// API, a redirect header for htmx, a closing event on event streams, and a
// redirect to the login page otherwise.
func (h *handler) unauthenticated(c *fiber.Ctx, api bool, cause error) error {
	switch {
	case isEventStream(c):
		return h.closeStream(c, c.Params("id"), onboard.ErrorMessage(cause)+" Reload the page after logging in.")
	case api:
		return cause
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
