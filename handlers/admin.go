package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

type loginPage struct {
	page
	Error, Username, Next string
}

// safeNext returns a local path to go to after login, or "/".
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || !strings.HasPrefix(next, "/") ||
		strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/"
	}
	return next
}

func (h *handler) showLoginPage(c *fiber.Ctx) error {
	return h.renderPage(c, http.StatusOK, "pages/login",
		loginPage{page: h.page(c, "Log in", ""), Next: safeNext(c.Query("next"))})
}

type loginForm struct {
	Username string `form:"username" json:"username" maxlen:"64"`
	Password string `form:"password" json:"password" maxlen:"72"`
	Next     string `form:"next" json:"next" maxlen:"2048"`
}

// login checks the credentials, then replaces any session the browser had
// with a new one, so that an id set before login is never kept. Every
// attempt that reaches the password check goes into the audit log; attempts
// rejected while blocked do not, so that they cannot fill it.
func (h *handler) login(c *fiber.Ctx) error {
	var f loginForm
	if err := parseBody(c, &f); err != nil {
		return h.renderLoginError(c, f, err)
	}
	username := strings.ToLower(strings.TrimSpace(f.Username))
	addr := h.clientAddr(c)
	ctx := onboard.WithActor(c.UserContext(), username)
	old := c.Cookies(sessionCookie)
	sid, err := h.auth.Login(c.UserContext(), username, f.Password, addr)
	if err != nil {
		if onboard.ErrorCode(err) == onboard.EUnauthorized && !errors.Is(err, onboard.ErrLoginBlocked) {
			h.svc.RecordAudit(ctx, "admin.login", "", "", err, "from "+addr)
		}
		return h.renderLoginError(c, f, err)
	}
	if old != "" {
		if err := h.auth.Logout(c.UserContext(), old); err != nil {
			h.log.Warn("Earlier session not ended at login", "request_id", requestID(c), "error", err)
		}
	}
	h.setSessionCookie(c, sid)
	h.svc.RecordAudit(ctx, "admin.login", "", "", nil, "from "+addr)
	return c.Redirect(safeNext(f.Next), fiber.StatusSeeOther)
}

// renderLoginError shows the login page again with the error: 400 for bad
// input, 429 while logins are blocked, 401 for wrong credentials.
func (h *handler) renderLoginError(c *fiber.Ctx, f loginForm, err error) error {
	status := http.StatusUnauthorized
	switch {
	case errors.Is(err, onboard.ErrLoginBlocked):
		status = http.StatusTooManyRequests
	case onboard.ErrorCode(err) == onboard.EInvalid:
		status = http.StatusBadRequest
	case onboard.ErrorCode(err) != onboard.EUnauthorized:
		return err
	}
	return h.renderPage(c, status, "pages/login", loginPage{
		page: h.page(c, "Log in", ""), Error: onboard.ErrorMessage(err), Username: clip(f.Username, 64),
		Next: safeNext(clip(f.Next, 2048)),
	})
}

// logout ends the session and clears its cookie; the audit entry comes
// first, while the session still names the admin.
func (h *handler) logout(c *fiber.Ctx) error {
	err := h.auth.Logout(c.UserContext(), c.Cookies(sessionCookie))
	h.svc.RecordAudit(userContext(c), "admin.logout", "", "", err, "")
	if err != nil {
		return err
	}
	h.clearSessionCookie(c)
	return c.Redirect("/login", fiber.StatusSeeOther)
}

type accountPage struct {
	page
	Admins []onboard.Admin
}

func (h *handler) showAccountPage(c *fiber.Ctx) error {
	admins, err := h.auth.Admins(c.UserContext())
	if err != nil {
		return err
	}
	return h.renderPage(c, http.StatusOK, "pages/account", accountPage{page: h.page(c, "Admins", "account"), Admins: admins})
}

type adminForm struct {
	Username        string `form:"username" json:"username" maxlen:"64"`
	Password        string `form:"password" json:"password" maxlen:"72"`
	CurrentPassword string `form:"current_password" json:"current_password" maxlen:"72"`
}

func (h *handler) addAdmin(c *fiber.Ctx) error {
	var f adminForm
	if err := parseBody(c, &f); err != nil {
		return err
	}
	username := strings.ToLower(strings.TrimSpace(f.Username))
	err := h.auth.AddAdmin(c.UserContext(), username, f.Password)
	h.svc.RecordAudit(userContext(c), "admin.add", "", "", err, "admin "+username)
	if err != nil {
		return err
	}
	return h.renderFragment(c, http.StatusOK, "partials/step_result",
		stepResultView{Message: "Admin " + username + " added. Reload the page to see the list."})
}

func (h *handler) changePassword(c *fiber.Ctx) error {
	var f adminForm
	if err := parseBody(c, &f); err != nil {
		return err
	}
	err := h.auth.ChangePassword(c.UserContext(), actorFrom(c), f.CurrentPassword, f.Password)
	h.svc.RecordAudit(userContext(c), "admin.change_password", "", "", err, "")
	if err != nil {
		return err
	}
	c.Set(hxRedirect, "/login")
	return h.renderFragment(c, http.StatusOK, "partials/step_result",
		stepResultView{Message: "Password changed. Log in again with the new one."})
}

type auditPage struct {
	page
	Filter    onboard.AuditFilter
	Entries   []onboard.AuditEntry
	ExportURL string
}

func auditFilter(c *fiber.Ctx) onboard.AuditFilter {
	return onboard.AuditFilter{
		Actor: clipQuery(c.Query("actor")), Action: clipQuery(c.Query("action")),
		Tester: clipQuery(c.Query("tester")), NodeID: clipQuery(c.Query("node_id")),
		Limit: c.QueryInt("limit", 500),
	}
}

func clipQuery(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

func (h *handler) showAuditPage(c *fiber.Ctx) error {
	f := auditFilter(c)
	entries, err := h.svc.Audit(userContext(c), f)
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"actor": f.Actor, "action": f.Action, "tester": f.Tester, "node_id": f.NodeID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	export := "/api/audit"
	if len(q) > 0 {
		export += "?" + q.Encode()
	}
	return h.renderPage(c, http.StatusOK, "pages/audit",
		auditPage{page: h.page(c, "Audit log", "audit"), Filter: f, Entries: entries, ExportURL: export})
}

type auditJSON struct {
	ID      int64  `json:"id"`
	Actor   string `json:"actor"`
	Action  string `json:"action"`
	Tester  string `json:"tester,omitempty"`
	NodeID  string `json:"node_id,omitempty"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
	Time    string `json:"time"`
}

// exportAudit returns the filtered audit log as JSON.
func (h *handler) exportAudit(c *fiber.Ctx) error {
	entries, err := h.svc.Audit(userContext(c), auditFilter(c))
	if err != nil {
		return err
	}
	out := make([]auditJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, auditJSON{ID: e.ID, Actor: e.Actor, Action: e.Action, Tester: e.Tester, NodeID: e.NodeID,
			Outcome: e.Outcome, Detail: e.Detail, Time: formatJSONTime(e.Time)})
	}
	return c.JSON(fiber.Map{"entries": out})
}

type outboxPage struct {
	page
	Messages []onboard.Message
	SMTP     string
}

func (h *handler) showOutboxPage(c *fiber.Ctx) error {
	list, err := h.Outbox.Messages(userContext(c), 200)
	if err != nil {
		return err
	}
	return h.renderPage(c, http.StatusOK, "pages/outbox",
		outboxPage{page: h.page(c, "Outbox", "outbox"), Messages: list, SMTP: h.cfg.MailDescription})
}

type messageJSON struct {
	ID       int64  `json:"id"`
	Tester   string `json:"tester"`
	To       string `json:"to"`
	Subject  string `json:"subject"`
	Body     string `json:"body"`
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	LastErr  string `json:"last_error,omitempty"`
	Created  string `json:"created_at"`
	SentAt   string `json:"sent_at,omitempty"`
}

func (h *handler) listOutbox(c *fiber.Ctx) error {
	list, err := h.Outbox.Messages(userContext(c), 200)
	if err != nil {
		return err
	}
	out := make([]messageJSON, 0, len(list))
	for _, m := range list {
		out = append(out, messageJSON{ID: m.ID, Tester: m.Tester, To: m.To, Subject: m.Subject, Body: m.Body,
			Status: m.Status, Attempts: m.Attempts, LastErr: m.LastErr, Created: formatJSONTime(m.Created),
			SentAt: formatJSONTime(m.SentAt)})
	}
	return c.JSON(fiber.Map{"messages": out})
}

// checkHealth answers 200 when the database answers.
func (h *handler) checkHealth(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := h.Health(ctx); err != nil {
		h.log.Error("Health check failed", "error", err)
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "version": h.cfg.Version})
	}
	return c.JSON(fiber.Map{"status": "ok", "version": h.cfg.Version})
}
