package handlers

import (
	"net/http"
	"strings"
	"time"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// Metrics counts requests and serves the metrics page; *metrics.Metrics
// implements it. It must be safe for concurrent use.
type Metrics interface {
	http.Handler
	// ObserveRequest counts one finished request; stream is true for an
	// event stream, which is counted when it opens.
	ObserveRequest(method, route string, status int, duration time.Duration, stream bool)
}

// metricsRealm is the realm named in the 401 responses of /metrics.
const metricsRealm = `Bearer realm="deployer metrics"`

// authenticateMetrics lets a scraper in with the metrics token or the API
// token as a bearer token, or an admin with a session. The route only reads,
// so it takes no CSRF token. Without metrics the route returns 404.
func (h *handler) authenticateMetrics(c *fiber.Ctx) error {
	if h.Metrics == nil {
		return fiber.ErrNotFound
	}
	if authz := c.Get(fiber.HeaderAuthorization); authz != "" {
		token, ok := strings.CutPrefix(authz, "Bearer ")
		switch {
		case ok && matchToken(token, h.cfg.MetricsToken):
			c.Locals(localActor, "scraper")
		case ok && matchToken(token, h.cfg.APIToken):
			c.Locals(localActor, "api")
		default:
			c.Set(fiber.HeaderWWWAuthenticate, metricsRealm)
			return onboard.Errorf(onboard.EUnauthorized, "The bearer token is not valid for /metrics.")
		}
		return c.Next()
	}

	sess, err := h.auth.Session(c.UserContext(), c.Cookies(sessionCookie))
	if err != nil {
		c.Set(fiber.HeaderWWWAuthenticate, metricsRealm)
		return err
	}
	c.Locals(localActor, sess.Admin)
	return c.Next()
}

// matchToken reports whether token is the configured one; an empty
// configured token matches nothing.
func matchToken(token, configured string) bool {
	return configured != "" && onboard.EqualSecret(token, configured)
}

// showMetrics serves the metrics in the Prometheus text format.
func (h *handler) showMetrics(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return adaptor.HTTPHandler(h.Metrics)(c)
}

// observeRequest passes a finished request to the metrics, when there are
// any.
func (h *handler) observeRequest(c *fiber.Ctx, route string, duration time.Duration) {
	if h.Metrics == nil {
		return
	}
	stream := c.Locals(localStreaming) != nil
	h.Metrics.ObserveRequest(c.Method(), route, c.Response().StatusCode(), duration, stream)
}

// routeLabel returns the route pattern that handled the request, for logs
// and metrics, so that /testers/alice and /testers/bob share one label. When
// middleware responded before any route matched, such as a 401 from
// authentication or the 404 for an unknown path, Fiber reports the
// middleware's prefix, and the label is that prefix followed by /*.
func routeLabel(c *fiber.Ctx) string {
	r := c.Route()
	if len(r.Params) > 0 || samePath(r.Path, c.Path()) {
		return r.Path
	}
	return strings.TrimSuffix(r.Path, "/") + "/*"
}

// samePath compares paths as Fiber's default routing does: without regard to
// case or a trailing slash.
func samePath(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/"))
}
