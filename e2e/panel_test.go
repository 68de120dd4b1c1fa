package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stageNames are the onboarding's stages in the order the panel shows them.
var stageNames = []string{"adding", "provisioning", "installing", "ready"}

// Selectors of the start form on the testers page.
const (
	startButton = `#start-form button[type="submit"]`
	// slotPanel is the progress panel that the start form's response shows.
	slotPanel = `#panel-slot section.panel`
)

// fillStartForm types a new tester into the "Add and set up" form.
func (tb *tab) fillStartForm(username, fullName, email string) {
	tb.t.Helper()
	tb.do("fill in the start form",
		chromedp.SendKeys(chromedp.CSS(`#start-form input[name="username"]`), username),
		chromedp.SendKeys(chromedp.CSS(`#start-form input[name="full_name"]`), fullName),
		chromedp.SendKeys(chromedp.CSS(`#start-form input[name="email"]`), email),
	)
}

// startAdminTab starts a deployer and returns it with a browser tab logged
// in as admin.
func startAdminTab(t *testing.T, o serverOptions) (*server, *tab) {
	t.Helper()
	s := startServer(t, o)
	tb := newBrowser(t, s.URL).newTab("admin")
	tb.login(s.URL)
	return s, tb
}

// startOnboarding fills in the start form, presses "Add and set up" and
// returns the id of the onboarding whose panel appears.
func (tb *tab) startOnboarding(username, fullName, email string) string {
	tb.t.Helper()
	tb.fillStartForm(username, fullName, email)
	tb.click(startButton)
	return tb.waitPanel(slotPanel)
}

// waitPanel waits for a progress panel and returns its onboarding's id.
func (tb *tab) waitPanel(selector string) string {
	tb.t.Helper()
	tb.waitFor("the progress panel "+selector, pageTimeout,
		fmt.Sprintf(`!!document.querySelector(%q)?.id`, selector))
	id := eval[string](tb, fmt.Sprintf(`document.querySelector(%q).id`, selector))
	return strings.TrimPrefix(id, "ob-")
}

// panelSelector is the panel of one onboarding, on any page.
func panelSelector(id string) string {
	return "#ob-" + id
}

// panelStatus returns the onboarding status that the panel's head shows.
func (tb *tab) panelStatus(id string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(
		`document.querySelector(%q)?.dataset.status ?? ""`, panelSelector(id)+" .panel-head [data-status]"))
}

// waitPanelStatus waits until the panel's head shows the status.
func (tb *tab) waitPanelStatus(id, status string, timeout time.Duration) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("the panel of %s shows %s", id, status), timeout, fmt.Sprintf(
		`document.querySelector(%q)?.dataset.status === %q`, panelSelector(id)+" .panel-head [data-status]", status))
}

// waitStage waits until the panel shows a stage with the status.
func (tb *tab) waitStage(id, stage, status string, timeout time.Duration) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("the panel of %s shows %s %s", id, stage, status), timeout, fmt.Sprintf(
		`!!document.querySelector(%q)`,
		fmt.Sprintf(`%s .stage[data-stage=%q][data-status=%q]`, panelSelector(id), stage, status)))
}

// recordStages makes the page keep a log of what the panel that matches the
// CSS selector shows, one line per change, such as "running
// adding=done provisioning=running installing=pending ready=pending". A
// mutation observer writes the log, so no state is missed between two reads,
// and the log lives in the page, so a reload would lose it.
func (tb *tab) recordStages(selector string) {
	tb.t.Helper()
	eval[bool](tb, fmt.Sprintf(`(() => {
  const log = window.e2eStageLog = [];
  const snapshot = () => {
    const panel = document.querySelector(%q);
    if (!panel) return;
    const head = panel.querySelector(".panel-head [data-status]");
    const stages = [...panel.querySelectorAll(".stages .stage")].map(s => s.dataset.stage + "=" + s.dataset.status);
    const line = (head ? head.dataset.status : "none") + " " + stages.join(" ");
    if (log[log.length - 1] !== line) log.push(line);
  };
  new MutationObserver(snapshot).observe(document.body,
    {subtree: true, childList: true, attributes: true, characterData: true});
  snapshot();
  return true;
})()`, selector))
}

// stageLog returns the log that recordStages keeps. The test fails when the
// log is gone, which means the page was reloaded.
func (tb *tab) stageLog() []string {
	tb.t.Helper()
	log, err := tryEval[[]string](tb, `window.e2eStageLog ?? null`)
	if err != nil || log == nil {
		tb.t.Fatalf("tab %s: the stage log is gone, so the page was reloaded or left (error %v)", tb.name, err)
	}
	return log
}

// panelState is one line of a stage log, parsed.
type panelState struct {
	Status string
	Stages map[string]string
}

func parseStageLine(line string) (panelState, error) {
	fields := strings.Fields(line)
	if len(fields) != 1+len(stageNames) {
		return panelState{}, fmt.Errorf("panel state %q has %d fields, want %d", line, len(fields), 1+len(stageNames))
	}
	ps := panelState{Status: fields[0], Stages: map[string]string{}}
	for i, f := range fields[1:] {
		name, status, ok := strings.Cut(f, "=")
		if !ok || name != stageNames[i] {
			return panelState{}, fmt.Errorf("panel state %q: stage %d is %q, want %s", line, i+1, f, stageNames[i])
		}
		ps.Stages[name] = status
	}
	return ps, nil
}

// statusRank orders a stage's statuses by progress.
func statusRank(status string) int {
	switch status {
	case "pending":
		return 0
	case "running":
		return 1
	case "done", "skipped":
		return 2
	}
	return -1
}

// currentStage returns the first stage that is not done, or "" when every
// stage is done.
func currentStage(stages map[string]string) string {
	for _, name := range stageNames {
		if statusRank(stages[name]) < 2 {
			return name
		}
	}
	return ""
}

// checkStagesForward checks a stage log of a flow that ended ready. Each
// stage went forward only, and no stage ran before the stages ahead of it
// were done. The last line shows every stage done and the onboarding
// succeeded. It returns the parsed log.
func checkStagesForward(t *testing.T, tabName string, log []string) []panelState {
	t.Helper()
	if len(log) == 0 {
		t.Fatalf("tab %s: the panel showed nothing", tabName)
	}
	var states []panelState
	for _, line := range log {
		ps, err := parseStageLine(line)
		if err != nil {
			t.Fatalf("tab %s: %v", tabName, err)
		}
		states = append(states, ps)
	}
	for i, ps := range states {
		for j, name := range stageNames {
			if statusRank(ps.Stages[name]) < 0 {
				t.Errorf("tab %s: panel state %q: stage %s has the unknown status %q", tabName, log[i], name, ps.Stages[name])
			}
			if j > 0 && statusRank(ps.Stages[name]) > 0 && statusRank(ps.Stages[stageNames[j-1]]) < 2 {
				t.Errorf("tab %s: panel state %q: %s started before %s was done", tabName, log[i], name, stageNames[j-1])
			}
			if i > 0 && statusRank(ps.Stages[name]) < statusRank(states[i-1].Stages[name]) {
				t.Errorf("tab %s: stage %s went back from %q to %q", tabName, name, log[i-1], log[i])
			}
		}
	}
	last := states[len(states)-1]
	if last.Status != "succeeded" || currentStage(last.Stages) != "" {
		t.Errorf("tab %s: the panel ended at %q, want succeeded with every stage done", tabName, log[len(log)-1])
	}
	t.Logf("tab %s: the panel showed %q", tabName, log)
	return states
}

// checkStagesLive checks a stage log as checkStagesForward does, and also
// that provisioning and installing were each seen running, which the page
// can only show when the stream updates it.
func checkStagesLive(t *testing.T, tabName string, log []string) {
	t.Helper()
	states := checkStagesForward(t, tabName, log)
	for _, stage := range []string{"provisioning", "installing"} {
		seen := slices.ContainsFunc(states, func(ps panelState) bool { return ps.Stages[stage] == "running" })
		if !seen {
			t.Errorf("tab %s: the panel never showed %s running; it showed %q", tabName, stage, log)
		}
	}
}

// panelStages returns the status of each stage that the panel shows.
func (tb *tab) panelStages(id string) map[string]string {
	tb.t.Helper()
	return eval[map[string]string](tb, fmt.Sprintf(`Object.fromEntries(
  [...document.querySelectorAll(%q)].map(s => [s.dataset.stage, s.dataset.status]))`,
		panelSelector(id)+" .stages .stage"))
}

// stageIndex returns the position of the current stage: 0 while adding
// runs, up to len(stageNames) when every stage is done.
func stageIndex(stages map[string]string) int {
	current := currentStage(stages)
	if current == "" {
		return len(stageNames)
	}
	return slices.Index(stageNames, current)
}

// apiStages returns the onboarding's stage statuses by name.
func apiStages(o onboardingJSON) map[string]string {
	stages := map[string]string{}
	for _, s := range o.Stages {
		stages[s.Name] = s.Status
	}
	return stages
}

// checkShowsCurrentStage checks that the tab's panel of a running onboarding
// shows the stage the server is at: it catches up with what the API returned
// before, within the page deadline, and is never ahead of what the API
// returns after. The onboarding must still be running, because a finished
// one has no live panel on the testers page.
func (tb *tab) checkShowsCurrentStage(s *server, id string) {
	tb.t.Helper()
	tb.waitPanel(panelSelector(id))
	before := s.onboarding(tb.t, id)
	if before.Status != "running" {
		tb.t.Fatalf("tab %s: onboarding %s is %s already; the test needs it running (a slower simulated grid helps)",
			tb.name, id, before.Status)
	}
	want := stageIndex(apiStages(before))
	deadline := time.Now().Add(pageTimeout)
	shown := tb.panelStages(id)
	for stageIndex(shown) < want {
		if time.Now().After(deadline) {
			tb.t.Fatalf("tab %s: the panel shows %v, behind the API's %v after %s", tb.name, shown, apiStages(before), pageTimeout)
		}
		time.Sleep(pollInterval)
		shown = tb.panelStages(id)
	}
	after := s.onboarding(tb.t, id)
	if stageIndex(shown) > stageIndex(apiStages(after)) {
		tb.t.Errorf("tab %s: the panel shows %v, ahead of the API's %v", tb.name, shown, apiStages(after))
	}
	tb.t.Logf("tab %s: the panel shows %v; the API showed %v, then %v", tb.name, shown, apiStages(before), apiStages(after))
}

// doubleClick presses the mouse button twice on the centre of the first
// element that matches the CSS selector, as a person's double click does:
// two clicks, the second with a click count of 2. chromedp's DoubleClick
// sends a single press with a count of 2, which the page handles as one
// click.
func (tb *tab) doubleClick(selector string) {
	tb.t.Helper()
	tb.waitSettled()
	tb.do("scroll to "+selector, chromedp.ScrollIntoView(chromedp.CSS(selector)))
	centre := eval[[]float64](tb, fmt.Sprintf(
		`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2] })()`,
		selector))
	x, y := centre[0], centre[1]
	tb.do("double-click "+selector,
		chromedp.MouseClickXY(x, y),
		chromedp.MouseClickXY(x, y, chromedp.ClickCount(2)),
	)
}

// reload reloads the page and waits until it has loaded.
func (tb *tab) reload() {
	tb.t.Helper()
	tb.do("reload", chromedp.Reload())
}

// readClipboard returns the clipboard's text through the page.
func (tb *tab) readClipboard() string {
	tb.t.Helper()
	return eval[string](tb, `navigator.clipboard.readText()`)
}

// writeClipboard puts text on the clipboard through the page.
func (tb *tab) writeClipboard(text string) {
	tb.t.Helper()
	eval[bool](tb, fmt.Sprintf(`navigator.clipboard.writeText(%q).then(() => true)`, text))
}

// waitClipboard waits until the clipboard holds want.
func (tb *tab) waitClipboard(want string, timeout time.Duration) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("the clipboard holds %q", want), timeout,
		fmt.Sprintf(`navigator.clipboard.readText().then(text => text === %q)`, want))
}
