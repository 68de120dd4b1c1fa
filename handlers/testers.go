package handlers

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// registerForm is the create-or-register body.
type registerForm struct {
	Username string `json:"username" form:"username" maxlen:"64"`
	FullName string `json:"full_name" form:"full_name" maxlen:"200"`
	Email    string `json:"email" form:"email" maxlen:"254"`
	Account  string `json:"account" form:"account" maxlen:"20"`
	CSRF     string `json:"-" form:"_csrf"`
}

func (f registerForm) input() (onboard.TesterInput, error) {
	existing, err := existingAccount(f.Account)
	return onboard.TesterInput{Username: f.Username, FullName: f.FullName, Email: f.Email, Existing: existing}, err
}

// existingAccount reads the account field: "created" (the default) or
// "existing".
func existingAccount(account string) (bool, error) {
	switch account {
	case "", onboard.AccountCreated:
		return false, nil
	case onboard.AccountExisting:
		return true, nil
	}
	return false, onboard.FieldError("account", "Account must be created (a new account with a one-time password) "+
		"or existing (the tester already has an account); %q is neither.", clipValue(account))
}

func clipValue(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// testerForm is the one-click form: create-or-register with the node and
// the form key.
type testerForm struct {
	Username string      `json:"username" form:"username" maxlen:"64"`
	FullName string      `json:"full_name" form:"full_name" maxlen:"200"`
	Email    string      `json:"email" form:"email" maxlen:"254"`
	NodeID   nodeIDParam `json:"node_id" form:"node_id" maxlen:"20"`
	FormKey  string      `json:"form_key" form:"form_key" maxlen:"64"`
	Account  string      `json:"account" form:"account" maxlen:"20"`
	CSRF     string      `json:"-" form:"_csrf"`
}

func (f testerForm) input() (onboard.TesterInput, error) {
	existing, err := existingAccount(f.Account)
	return onboard.TesterInput{Username: f.Username, FullName: f.FullName, Email: f.Email, Existing: existing}, err
}

// testerRow is one line of the testers table.
type testerRow struct {
	Username, FullName, Email, NodeID, DeploymentState, InstallState, CockpitURL string
}

type testersPage struct {
	page
	Form     startFormView
	Capacity capacityView
	List     testerListView
	Running  []panelView
	SimPanel *simView
}

// testerListView is one page of the testers table with its search box.
type testerListView struct {
	Rows                          []testerRow
	Query                         string
	Page, Pages, Total            int
	SelfURL, PreviousURL, NextURL string
}

func listURL(query string, page int) string {
	v := url.Values{}
	if query != "" {
		v.Set("q", query)
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/testers-list"
	}
	return "/testers-list?" + v.Encode()
}

// testerList reads the page of the testers table that the query asks for.
func (h *handler) testerList(c *fiber.Ctx) (testerListView, error) {
	page, _ := strconv.Atoi(c.Query("page", "1"))
	found, err := h.svc.SearchTesters(userContext(c), c.Query("q"), page)
	if err != nil {
		return testerListView{}, err
	}
	v := testerListView{Query: found.Text, Page: found.Page, Pages: found.Pages, Total: found.Total,
		SelfURL: listURL(found.Text, found.Page)}
	if found.Page > 1 {
		v.PreviousURL = listURL(found.Text, found.Page-1)
	}
	if found.Page < found.Pages {
		v.NextURL = listURL(found.Text, found.Page+1)
	}
	for _, t := range found.Testers {
		v.Rows = append(v.Rows, testerRow{
			Username: t.Username, FullName: t.FullName, Email: t.Email, NodeID: t.Deployment.NodeID,
			DeploymentState: t.Deployment.State, InstallState: t.InstallState, CockpitURL: t.CockpitURL,
		})
	}
	return v, nil
}

// showTesterList renders the testers card: one page of the table.
func (h *handler) showTesterList(c *fiber.Ctx) error {
	v, err := h.testerList(c)
	if err != nil {
		return err
	}
	return h.renderFragment(c, http.StatusOK, "partials/testers_card", v)
}

type startFormView struct {
	FormKey string
	NodeID  string
}

func (h *handler) showTestersPage(c *fiber.Ctx) error {
	ctx := userContext(c)
	list, err := h.testerList(c)
	if err != nil {
		return err
	}
	p := testersPage{
		page:     h.page(c, "Testers", "testers"),
		Form:     startFormView{FormKey: uuid.NewString(), NodeID: h.cfg.DefaultNode},
		Capacity: h.capacityView(c, h.cfg.DefaultNode),
		List:     list,
	}
	running, err := h.Runner.Onboardings(ctx, "", 20)
	if err != nil {
		return err
	}
	for _, o := range running {
		if !o.Finished() {
			p.Running = append(p.Running, newPanelView(o, ""))
		}
	}
	if h.sim != nil {
		sv, err := h.simView(c, "")
		if err != nil {
			return err
		}
		p.SimPanel = &sv
	}
	return h.renderPage(c, http.StatusOK, "pages/testers", p)
}

// testerView is the tester detail block with the step buttons that make
// sense in its state.
type testerView struct {
	Username, FullName, Email, Account, InstallState, InstallError, CockpitURL string
	DeploymentState, NodeID, Gateway, DeploymentError                          string
	Contracts                                                                  []onboard.Contract
	CanProvision, CanInstall, CanTeardown, CanResetPassword, CanDelete         bool
	ProvisionNode, ResumeID, BusyReason                                        string
	Busy                                                                       bool
	// Notice is the outcome of the step a button just ran.
	Notice string
}

func (h *handler) newTesterView(t *onboard.Tester, active, latest *onboard.Onboarding) testerView {
	d := t.Deployment
	v := testerView{
		Username: t.Username, FullName: t.FullName, Email: t.Email, Account: t.Account,
		InstallState: t.InstallState, InstallError: t.InstallError, CockpitURL: t.CockpitURL,
		DeploymentState: d.State, NodeID: d.NodeID, Gateway: d.Gateway, DeploymentError: d.Error,
		Contracts: d.Contracts, ProvisionNode: d.NodeID, CanResetPassword: t.Account == onboard.AccountCreated,
	}
	if v.ProvisionNode == "" {
		v.ProvisionNode = h.cfg.DefaultNode
	}
	switch d.State {
	case onboard.DeploymentProvisioning, onboard.DeploymentTearingDown:
		v.Busy = true
	}
	if t.InstallState == onboard.InstallInstalling {
		v.Busy = true
	}
	if active != nil {
		v.Busy = true
		v.BusyReason = "An onboarding is running for this tester; its panel above shows the progress. The step buttons come back when it ends."
		return v
	}
	if v.Busy {
		v.BusyReason = "A step is running for this tester. This block refreshes by itself, and the step buttons come back when it ends."
		return v
	}
	v.CanProvision = d.State == onboard.DeploymentNone || d.State == onboard.DeploymentFailed
	v.CanInstall = d.State == onboard.DeploymentActive
	v.CanTeardown = t.HasDeployment() && d.State != onboard.DeploymentProvisioning && d.State != onboard.DeploymentTearingDown
	v.CanDelete = !t.HoldsContracts() && !v.Busy
	// A teardown that failed must finish before anything else can run, so
	// Retry teardown is the only step offered. The install's error advises
	// a retry of the install, which no longer applies, so it is hidden.
	if latest != nil && (latest.Status == onboard.StatusFailed || latest.Status == onboard.StatusCanceled) &&
		!t.IsReady() && d.State != onboard.DeploymentTeardownFail {
		v.ResumeID = latest.ID
	}
	if d.State == onboard.DeploymentTeardownFail {
		v.InstallError = ""
	}
	return v
}

type testerPage struct {
	page
	Tester   testerView
	Running  []panelView
	History  []historyRow
	Activity []onboard.AuditEntry
	StepLog  []onboard.LogLine
}

type historyRow struct {
	ID, Username, StartedBy, NodeID, Status, Stage string
	Attempt                                        int
	CreatedAt                                      time.Time
}

func historyRows(list []*onboard.Onboarding) []historyRow {
	rows := make([]historyRow, 0, len(list))
	for _, o := range list {
		rows = append(rows, historyRow{
			ID: o.ID, Username: o.Username, StartedBy: o.StartedBy, NodeID: o.NodeID, Status: o.Status,
			Stage: o.CurrentStage().Name, Attempt: o.Attempt, CreatedAt: o.CreatedAt,
		})
	}
	return rows
}

func (h *handler) showTesterPage(c *fiber.Ctx) error {
	ctx := userContext(c)
	username := strings.ToLower(c.Params("username"))
	t, err := h.svc.Tester(ctx, username)
	if err != nil {
		return err
	}
	history, err := h.Runner.Onboardings(ctx, username, 50)
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
	p := testerPage{page: h.page(c, t.Username, "testers"), Tester: h.newTesterView(t, active, latest)}
	p.History = historyRows(history)
	if p.Activity, err = h.svc.Audit(ctx, onboard.AuditFilter{Tester: username, Limit: 30}); err != nil {
		return err
	}
	// The tester block refreshes itself over htmx, and takes the history
	// and the activity along, which its hx-select-oob swaps in.
	if isHTMX(c) {
		return h.renderFragment(c, http.StatusOK, "partials/tester_refresh", p)
	}
	if active != nil {
		p.Running = append(p.Running, newPanelView(active, ""))
	}
	if p.StepLog, err = h.svc.TesterLog(ctx, username, 200); err != nil {
		return err
	}
	return h.renderPage(c, http.StatusOK, "pages/tester", p)
}

// listTesters returns every tester as JSON.
func (h *handler) listTesters(c *fiber.Ctx) error {
	testers, err := h.svc.Testers(userContext(c))
	if err != nil {
		return err
	}
	list := make([]testerJSON, 0, len(testers))
	for _, t := range testers {
		list = append(list, newTesterJSON(t))
	}
	return c.JSON(fiber.Map{"testers": list})
}

func (h *handler) getTester(c *fiber.Ctx) error {
	t, err := h.svc.Tester(userContext(c), strings.ToLower(c.Params("username")))
	if err != nil {
		return err
	}
	return c.JSON(newTesterJSON(t))
}

// createTester creates an account (201, with the one-time password in this
// response only), or registers a known tester or an existing account (200).
func (h *handler) createTester(c *fiber.Ctx) error {
	var f registerForm
	if err := parseBody(c, &f); err != nil {
		return err
	}
	in, err := f.input()
	if err != nil {
		return err
	}
	reg, err := h.svc.CreateOrRegister(userContext(c), in)
	if err != nil {
		return err
	}
	body := newTesterJSON(reg.Tester)
	status := http.StatusOK
	if reg.OneTimePassword != "" {
		status = http.StatusCreated
		body.OneTimePassword = reg.OneTimePassword
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).JSON(body)
}

type stepForm struct {
	NodeID nodeIDParam `json:"node_id" form:"node_id"`
}

func (h *handler) provisionTester(c *fiber.Ctx) error {
	var f stepForm
	if err := parseBody(c, &f); err != nil {
		return err
	}
	if f.NodeID == "" && !isAPI(c) {
		f.NodeID = nodeIDParam(h.cfg.DefaultNode)
	}
	username := strings.ToLower(c.Params("username"))
	t, err := h.svc.Provision(userContext(c), username, string(f.NodeID))
	return h.stepDone(c, username, t, err, func(t *onboard.Tester) string {
		return "Provisioned on node " + t.Deployment.NodeID + ": gateway " + t.Deployment.Gateway + "."
	})
}

func (h *handler) installTester(c *fiber.Ctx) error {
	username := strings.ToLower(c.Params("username"))
	t, err := h.svc.Install(userContext(c), username)
	return h.stepDone(c, username, t, err, func(t *onboard.Tester) string {
		return "Installed: the cockpit answers at " + t.CockpitURL + "."
	})
}

func (h *handler) teardownTester(c *fiber.Ctx) error {
	username := strings.ToLower(c.Params("username"))
	t, err := h.svc.Teardown(userContext(c), username)
	return h.stepDone(c, username, t, err, func(*onboard.Tester) string {
		return "Torn down: every contract canceled and the slots freed."
	})
}
