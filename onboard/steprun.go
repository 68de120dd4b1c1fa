package onboard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// stepRun is one run of a step: a per-step button press or one stage of an
// onboarding. Its progress lines go to the stage log, and for an onboarding
// also to the event stream.
type stepRun struct {
	ID           string
	Username     string
	Stage        string
	OnboardingID string
	Attempt      int

	svc   *Service
	mu    sync.Mutex
	lines int
}

func (s *Service) newRun(username, stage, onboardingID string, attempt int) *stepRun {
	return &stepRun{
		ID: uuid.NewString(), Username: username, Stage: stage,
		OnboardingID: onboardingID, Attempt: attempt, svc: s,
	}
}

// say records one progress line. Lines past the stage's cap are dropped, and
// the last kept line says so.
func (r *stepRun) say(format string, args ...any) {
	line := strings.TrimSpace(fmt.Sprintf(format, args...))
	if line == "" {
		return
	}
	r.mu.Lock()
	r.lines++
	n := r.lines
	r.mu.Unlock()

	max := r.svc.opts.LogLinesPerStage
	switch {
	case n > max:
		return
	case n == max:
		line = "(log truncated: later lines are not kept)"
	}
	s := r.svc
	ctx := context.Background()
	l := LogLine{
		OnboardingID: r.OnboardingID, Attempt: r.Attempt, Stage: r.Stage,
		Line: clip(line, 1000), Time: s.now(),
	}
	var e *Event
	if r.OnboardingID != "" {
		e = &Event{OnboardingID: r.OnboardingID, Stage: r.Stage, Status: StageRunning, Message: l.Line,
			Kind: EventLog, Time: l.Time}
	}
	stored, err := s.store.AppendLog(ctx, r.ID, r.Username, l, e)
	if err != nil {
		s.log.Error("Stage log line not stored", "run_id", r.ID, "tester", r.Username, "error", err)
		return
	}
	if e != nil {
		s.hub.Publish(stored)
	}
}

// emit stores an event and then publishes it to the hub, so that a stream
// that reads stored events after subscribing misses nothing.
func (s *Service) emit(e Event) (Event, error) {
	e.Time = s.now()
	stored, err := s.store.AppendEvent(context.Background(), e)
	if err != nil {
		s.log.Error("Event not stored", "onboarding_id", e.OnboardingID, "stage", e.Stage, "error", err)
		return Event{}, err
	}
	s.hub.Publish(stored)
	return stored, nil
}

// stageContext bounds a stage run by its configured deadline.
func (s *Service) stageContext(ctx context.Context, stage string) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.opts.StageTimeouts[stage], errStageTimeout)
}

// stepError turns a step's failure into an *Error with the code and a plain
// message that says what to do next, telling timeouts, cancels and
// shutdowns apart by the context's cause.
func (s *Service) stepError(ctx context.Context, stage, code string, err error) error {
	var e *Error
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrShutdown):
		return &Error{Code: EUnavailable, Err: ErrShutdown, Message: fmt.Sprintf("The deployer is shutting down, "+
			"so %s stopped. Once it is back, the step shows as interrupted and can be retried.", stage)}
	case errors.Is(cause, errCanceled):
		return &Error{Code: ECanceled, Message: fmt.Sprintf("%s was canceled by an admin.", capitalize(stage)), Err: err}
	case errors.Is(cause, errStageTimeout):
		return &Error{Code: code, Message: fmt.Sprintf("%s timed out after %s.%s",
			capitalize(stage), formatDuration(s.opts.StageTimeouts[stage]), retryAdvice)}
	case errors.As(err, &e):
		return err
	default:
		return &Error{Code: code, Message: fmt.Sprintf("%s failed: %v.%s", capitalize(stage), err, retryAdvice)}
	}
}

// retryAdvice ends the message of a step that failed and may be retried.
const retryAdvice = " Press Retry to try again."

// withoutRetryAdvice returns a failure message without its closing advice
// to retry, for quoting where another step must come first.
func withoutRetryAdvice(message string) string {
	return strings.TrimSuffix(message, retryAdvice)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// formatDuration writes d without trailing zero units: 10m, 1m30s, 250ms.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// isShutdown reports whether err comes from the deployer stopping.
func isShutdown(err error) bool { return errors.Is(err, ErrShutdown) }
