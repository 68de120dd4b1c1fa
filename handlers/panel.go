package handlers

import (
	"deployer/onboard"
)

// stageLabels name the stages in the panel.
var stageLabels = map[string]string{
	onboard.StageAdding:       "Adding account",
	onboard.StageProvisioning: "Provisioning VM",
	onboard.StageInstalling:   "Installing stack",
	onboard.StageReady:        "Ready",
}

type stageView struct {
	Name, Label, Status, Message string
}

// panelView is the progress panel of one onboarding.
type panelView struct {
	ID, Username, NodeID, Status string
	Attempt                      int
	Stages                       []stageView
	CockpitURL                   string
	ErrorCode, ErrorMessage      string
	FailedLabel, NextStep        string
	RetryStep, RetryLabel        string
	CurrentLabel                 string
	CanResume                    bool
	// Canceling marks a running onboarding whose cancel was requested.
	Canceling       bool
	OneTimePassword string
	// Live makes the panel subscribe to the event stream.
	Live bool
	// OOB marks the parts for out-of-band swaps, in stream messages.
	OOB bool
	// OnDetailsPage leaves out the link to the page the panel is on.
	OnDetailsPage bool
}

func newPanelView(o *onboard.Onboarding, oneTimePassword string) panelView {
	v := panelView{
		ID: o.ID, Username: o.Username, NodeID: o.NodeID, Status: o.Status, Attempt: o.Attempt,
		CockpitURL: o.CockpitURL, ErrorCode: o.ErrorCode, ErrorMessage: o.ErrorMessage,
		OneTimePassword: oneTimePassword, Live: !o.Finished(),
		CurrentLabel: lowerLabel(o.CurrentStage().Name),
		Canceling:    o.CancelRequest && o.Status == onboard.StatusRunning,
	}
	for _, name := range onboard.Stages {
		s := o.Stage(name)
		v.Stages = append(v.Stages, stageView{Name: name, Label: stageLabels[name], Status: s.Status, Message: s.Message})
	}
	if o.Status != onboard.StatusFailed && o.Status != onboard.StatusCanceled {
		return v
	}

	v.CanResume = true
	failed := o.FailedStage()
	if failed == "" {
		failed = o.CurrentStage().Name
	}
	v.FailedLabel = lowerLabel(failed)
	// A canceled onboarding undid its steps, so Resume setup, which its
	// advice names, runs them again; a Retry of one step is for failures.
	switch {
	case o.Status == onboard.StatusCanceled:
	case failed == onboard.StageProvisioning:
		v.RetryStep, v.RetryLabel = "provision", "provisioning"
	case failed == onboard.StageInstalling:
		v.RetryStep, v.RetryLabel = "install", "install"
	}
	v.NextStep = nextStep(o.ErrorCode, failed)
	return v
}

func lowerLabel(stage string) string {
	switch stage {
	case onboard.StageAdding:
		return "adding the account"
	case onboard.StageProvisioning:
		return "provisioning the VM"
	case onboard.StageInstalling:
		return "installing the stack"
	case onboard.StageReady:
		return "the last checks"
	}
	return stage
}

// nextStep says what the admin can do about a failure.
func nextStep(code, stage string) string {
	switch code {
	case onboard.ENodeOffline:
		return "Nothing was created. Resume setup once the node is back, or start again on another node."
	case onboard.ENodeFull:
		return "Nothing was created. Tear down a tester to free room, then Resume setup, or start again on another node."
	case onboard.ECanceled:
		return "What this onboarding created was undone, except the account. Resume setup runs it again."
	case onboard.EGridFailed:
		return "What this attempt created on the grid was canceled. Retry provisioning alone, or Resume setup to run the remaining stages."
	case onboard.EInstallFailed:
		return "The VM is kept. Retry the install alone, or Resume setup. The stage log on the details page shows the install output."
	}
	if stage == onboard.StageInstalling {
		return "The VM is kept. Retry the install alone, or Resume setup."
	}
	return "Resume setup runs the remaining stages again."
}
