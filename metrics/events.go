package metrics

import (
	"time"

	"deployer/onboard"
)

// ObserveEvent counts onboardings and times stages from one published event.
// A stage's duration runs from its first running event to the stage event
// that ends it, so a stage that ends without running first, such as one
// skipped at once or one resumed after a restart, gives no duration.
func (m *Metrics) ObserveEvent(e onboard.Event) {
	switch e.Kind {
	case onboard.EventStage:
		if e.Stage == onboard.StageAdding && e.Status == onboard.StageRunning {
			// Only a new onboarding runs the adding stage.
			m.started.Inc()
		}
		m.timeStage(e)
	case onboard.EventResume:
		m.resumed.Inc()
	case onboard.EventFinish:
		m.countOutcome(e)
		m.mu.Lock()
		delete(m.stageStarts, e.OnboardingID)
		m.mu.Unlock()
	}
}

// timeStage notes when a stage starts running and observes its duration when
// a stage event ends it.
func (m *Metrics) timeStage(e onboard.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	starts := m.stageStarts[e.OnboardingID]
	switch e.Status {
	case onboard.StageRunning:
		if starts == nil {
			starts = map[string]time.Time{}
			m.stageStarts[e.OnboardingID] = starts
		}
		if _, ok := starts[e.Stage]; !ok {
			starts[e.Stage] = e.Time
		}
	case onboard.StagePending:
	default:
		start, ok := starts[e.Stage]
		if !ok {
			return
		}
		delete(starts, e.Stage)
		if len(starts) == 0 {
			delete(m.stageStarts, e.OnboardingID)
		}
		m.stageDuration.WithLabelValues(e.Stage, e.Status).Observe(max(e.Time.Sub(start), 0).Seconds())
	}
}

// countOutcome counts a finished onboarding by its status.
func (m *Metrics) countOutcome(e onboard.Event) {
	switch e.Status {
	case onboard.StatusSucceeded:
		m.succeeded.Inc()
	case onboard.StatusFailed:
		code := e.Code
		if code == "" {
			code = onboard.EInternal
		}
		m.failed.WithLabelValues(e.Stage, code).Inc()
	case onboard.StatusCanceled:
		m.canceled.WithLabelValues(e.Stage).Inc()
	}
}
