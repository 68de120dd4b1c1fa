package handlers

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"deployer/onboard"
	"deployer/views"
)

func renderView(t *testing.T, name string, data any) string {
	t.Helper()
	v, err := views.New()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := v.Render(&buf, name, data); err != nil {
		t.Fatalf("render %s: %v", name, err)
	}
	return buf.String()
}

func runningOnboarding(cancelRequested bool) *onboard.Onboarding {
	o := &onboard.Onboarding{ID: "ob1", Username: "dana", NodeID: "1", Status: onboard.StatusRunning,
		Attempt: 1, CancelRequest: cancelRequested}
	for _, name := range onboard.Stages {
		o.Stages = append(o.Stages, onboard.Stage{Name: name, Status: onboard.StagePending})
	}
	return o
}

func TestPanelOffersCancelWhileRunning(t *testing.T) {
	got := renderView(t, "partials/panel_result", newPanelView(runningOnboarding(false), ""))
	if !strings.Contains(got, `hx-post="/onboardings/ob1/cancel"`) {
		t.Fatalf("running panel without a cancel request has no Cancel button:\n%s", got)
	}
}

func TestPanelDisablesCancelOnceRequested(t *testing.T) {
	got := renderView(t, "partials/panel_result", newPanelView(runningOnboarding(true), ""))
	if strings.Contains(got, "/cancel") {
		t.Errorf("panel with a recorded cancel request still posts a cancel:\n%s", got)
	}
	if !strings.Contains(got, `<button type="button" class="danger" disabled>Canceling…</button>`) {
		t.Errorf("panel with a recorded cancel request lacks the disabled Canceling button:\n%s", got)
	}
}

func TestStepResultReplacesPanelFailure(t *testing.T) {
	got := renderView(t, "partials/step_result", stepResultView{Message: "Installed.", PanelID: "ob1"})
	for _, want := range []string{
		`id="ob-ob1-failure" hx-swap-oob="true"><strong>The retry succeeded.</strong>`,
		`<p class="next" id="ob-ob1-next" hidden hx-swap-oob="true"></p>`,
		`<span id="ob-ob1-retry" hx-swap-oob="true"></span>`,
		`<span id="ob-ob1-resume" hx-swap-oob="true"></span>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("step result for a ready tester lacks %s:\n%s", want, got)
		}
	}

	notReady := renderView(t, "partials/step_result", stepResultView{Message: "Provisioned.", PanelID: "ob1", ResumeID: "ob1"})
	if strings.Contains(notReady, "ob-ob1-resume") {
		t.Errorf("step result for a tester still to install removes Resume setup:\n%s", notReady)
	}
	if plain := renderView(t, "partials/step_result", stepResultView{Message: "Admin added."}); strings.Contains(plain, "hx-swap-oob") {
		t.Errorf("step result outside a panel swaps out of band:\n%s", plain)
	}
}

func TestCanceledPanelOffersResumeNotRetry(t *testing.T) {
	o := runningOnboarding(true)
	o.Status, o.ErrorCode = onboard.StatusCanceled, onboard.ECanceled
	o.Stages[1].Status = onboard.StageCanceled
	got := renderView(t, "partials/panel_result", newPanelView(o, ""))
	if strings.Contains(got, "/testers/dana/provision") {
		t.Errorf("canceled panel offers a per-step Retry:\n%s", got)
	}
	if !strings.Contains(got, "Resume setup") {
		t.Errorf("canceled panel lacks Resume setup:\n%s", got)
	}
}

func TestTesterDetailShowsStepNotice(t *testing.T) {
	v := testerView{Username: "dana", InstallState: onboard.InstallInstalled, Notice: "Installed: the cockpit answers at https://dana.example/."}
	got := renderView(t, "partials/tester_detail", v)
	if !strings.Contains(got, `<p class="notice" role="status">Installed: the cockpit answers at https://dana.example/.</p>`) {
		t.Errorf("tester block after a step lacks the step's notice:\n%s", got)
	}
	v.Notice = ""
	if got := renderView(t, "partials/tester_detail", v); strings.Contains(got, `class="notice"`) {
		t.Errorf("tester block without a step shows a notice:\n%s", got)
	}
}

func TestOrphanRowsGroupedByProject(t *testing.T) {
	c := func(id int64, node, project string) onboard.Contract {
		return onboard.Contract{ID: id, NodeID: node, Project: project}
	}
	rows := orphanRows([]onboard.Contract{c(5, "1", "p2"), c(3, "1", "p1"), c(4, "1", "p2"), c(1, "2", "p1"), c(9, "1", "p1")})
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s/%s/%d:%d", r.NodeID, r.Project, r.ID, r.ProjectContracts))
	}
	want := "[1/p1/3:2 1/p1/9:0 1/p2/4:2 1/p2/5:0 2/p1/1:1]"
	if fmt.Sprint(got) != want {
		t.Errorf("rows %v, want %s", got, want)
	}
}
