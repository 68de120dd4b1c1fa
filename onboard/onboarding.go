package onboard

import "time"

// Stage names, in the order an onboarding runs them.
const (
	StageAdding       = "adding"
	StageProvisioning = "provisioning"
	StageInstalling   = "installing"
	StageReady        = "ready"
	// StageTeardown names teardown work in events and fault injection; it is
	// not part of the one-click flow.
	StageTeardown = "teardown"
)

// Stages lists the one-click flow's stages in order.
var Stages = []string{StageAdding, StageProvisioning, StageInstalling, StageReady}

// Stage statuses.
const (
	StagePending  = "pending"
	StageRunning  = "running"
	StageDone     = "done"
	StageFailed   = "failed"
	StageSkipped  = "skipped"
	StageCanceled = "canceled"
)

// Onboarding statuses.
const (
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCanceled  = "canceled"
)

// Onboarding is one run of the one-click flow for one tester.
type Onboarding struct {
	ID       string
	Username string
	NodeID   string
	Status   string
	Stages   []Stage
	Attempt  int
	// FormKey is the key of the form that started it, so that a resubmitted
	// form finds the same onboarding.
	FormKey      string
	CockpitURL   string
	ErrorCode    string
	ErrorMessage string
	// CreatedAccount records that this onboarding created the tester's account.
	CreatedAccount bool
	LeaseOwner     string
	LeaseExpiresAt time.Time
	CancelRequest  bool
	StartedBy      string
	// LastSeq is the sequence number of the newest event.
	LastSeq    int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time
}

// Stage is the state of one stage of an onboarding.
type Stage struct {
	Name       string
	Status     string
	Message    string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Finished reports whether the onboarding has stopped, whatever the outcome.
func (o *Onboarding) Finished() bool { return o.Status != StatusRunning }

// Stage returns the named stage, or a pending stage when it is missing.
func (o *Onboarding) Stage(name string) Stage {
	for _, s := range o.Stages {
		if s.Name == name {
			return s
		}
	}
	return Stage{Name: name, Status: StagePending}
}

// CurrentStage returns the stage that is running or failed, or the last
// stage that is done, which is where the onboarding stands.
func (o *Onboarding) CurrentStage() Stage {
	current := o.Stage(StageAdding)
	for _, s := range o.Stages {
		switch s.Status {
		case StageRunning, StageFailed, StageCanceled:
			return s
		case StageDone, StageSkipped:
			current = s
		}
	}
	return current
}

// ActiveStage returns the name of the stage that a running onboarding is
// at: the running stage, or else the first pending one, which runs next.
// For a finished onboarding it returns where it stopped.
func (o *Onboarding) ActiveStage() string {
	current := o.CurrentStage()
	if o.Finished() || current.Status == StageRunning {
		return current.Name
	}
	for _, s := range o.Stages {
		if s.Status == StagePending {
			return s.Name
		}
	}
	return current.Name
}

// FailedStage returns the name of the stage that failed, or "".
func (o *Onboarding) FailedStage() string {
	for _, s := range o.Stages {
		if s.Status == StageFailed {
			return s.Name
		}
	}
	return ""
}

// Event is one stored change of an onboarding, numbered per onboarding.
type Event struct {
	OnboardingID string
	Seq          int64
	Stage        string
	Status       string
	Message      string
	// Kind tells stream readers what changed: "stage" for a stage status,
	// "log" for a progress line, "finish" for the onboarding's outcome.
	Kind string
	// Code is the error code of a failed onboarding, on finish events.
	Code string
	Time time.Time
}

// Event kinds.
const (
	EventStage  = "stage"
	EventLog    = "log"
	EventFinish = "finish"
	// EventResume starts a new attempt: failed and canceled stages go back
	// to pending.
	EventResume = "resume"
	// EventCancel records an admin's cancel request. The worker stops at
	// its next checkpoint and undoes what the attempt created, and the
	// panels stop offering Cancel.
	EventCancel = "cancel"
)

// LogLine is one line of a stage's log.
type LogLine struct {
	OnboardingID string
	Attempt      int
	Stage        string
	Seq          int64
	Line         string
	Time         time.Time
}

// StartInput is the one-click form.
type StartInput struct {
	TesterInput
	NodeID  string
	FormKey string
}

// Apply changes o as the stored event e does, so that a stream that read o
// once can follow its events without reading it again. It mirrors what the
// store does when it appends e.
func (o *Onboarding) Apply(e Event) {
	if e.Seq > o.LastSeq {
		o.LastSeq = e.Seq
	}
	o.UpdatedAt = e.Time
	switch e.Kind {
	case EventStage:
		o.setStage(e.Stage, func(s *Stage) {
			s.Status, s.Message = e.Status, e.Message
			if e.Status == StageRunning && s.StartedAt.IsZero() {
				s.StartedAt = e.Time
			}
			s.FinishedAt = time.Time{}
			if e.Status != StagePending && e.Status != StageRunning {
				s.FinishedAt = e.Time
			}
		})
	case EventLog:
		o.setStage(e.Stage, func(s *Stage) { s.Message = e.Message })
	case EventFinish:
		o.Status, o.ErrorCode, o.FinishedAt = e.Status, e.Code, e.Time
		o.ErrorMessage, o.CockpitURL = e.Message, ""
		if e.Status == StatusSucceeded {
			o.ErrorMessage, o.CockpitURL = "", e.Message
		}
	case EventCancel:
		o.CancelRequest = true
	case EventResume:
		o.Status, o.ErrorCode, o.ErrorMessage, o.FinishedAt = StatusRunning, "", "", time.Time{}
		o.CancelRequest = false
		o.Attempt++
		for i := range o.Stages {
			switch o.Stages[i].Status {
			case StageFailed, StageCanceled, StagePending:
				o.Stages[i] = Stage{Name: o.Stages[i].Name, Status: StagePending}
			}
		}
	}
}

func (o *Onboarding) setStage(name string, change func(*Stage)) {
	for i := range o.Stages {
		if o.Stages[i].Name == name {
			change(&o.Stages[i])
			return
		}
	}
}

// Clone returns a copy of o that shares nothing with it.
func (o *Onboarding) Clone() *Onboarding {
	c := *o
	c.Stages = append([]Stage(nil), o.Stages...)
	return &c
}
