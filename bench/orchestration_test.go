package bench

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"deployer/internal/testkit"
	"deployer/onboard"
)

// orchestrationStep is the fixed time of each simulated step. An
// onboarding has two timed steps, provisioning and installing, so its own
// time is twice the step.
const (
	orchestrationStep    = 50 * time.Millisecond
	orchestrationOwnTime = 2 * orchestrationStep
)

// lockErrors matches what SQLite reports when a writer meets a lock.
var lockErrors = regexp.MustCompile(`(?i)SQLITE_BUSY|database is locked|database table is locked`)

// BenchmarkOrchestration starts 1, 20 and 200 onboardings at once on the
// simulated grid with every step taking a fixed 50 ms. It measures each
// onboarding's wall time, from its first stored event to its last, against
// the 100 ms its steps take. It counts lock errors in the server's log, and
// onboardings that did not succeed.
func BenchmarkOrchestration(b *testing.B) {
	for _, n := range []int{1, 20, 200} {
		b.Run(fmt.Sprintf("onboardings=%d", n), func(b *testing.B) { benchmarkOrchestration(b, n) })
	}
}

func benchmarkOrchestration(b *testing.B, onboardings int) {
	s := testkit.StartServer(b, testkit.Options{
		Delay: orchestrationStep, FixedDelay: true, Slots: 2 * onboard.BundleSlots * onboardings,
		Heartbeat: 15 * time.Second,
	})
	// The server's shutdown waits for open connections, so the client's
	// idle ones close first; cleanups run last registered first.
	b.Cleanup(s.Client.CloseIdleConnections)
	stop := startCPUProfile(b)
	start := time.Now()
	ids := make([]string, onboardings)
	var wg sync.WaitGroup
	var apiErrors sync.Map
	for i := range ids {
		wg.Go(func() {
			o, status := s.Start(b, fmt.Sprintf("orch-%03d", i))
			if status != http.StatusAccepted {
				apiErrors.Store(i, status)
				return
			}
			ids[i] = o.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != "" {
			s.WaitFinished(b, id, 5*time.Minute)
		}
	}
	batch := time.Since(start)
	stop()
	writeProfile(b, "heap")
	logs := s.Logs.String()
	writeResult(b, "log", []byte(logs))

	var overheads []time.Duration
	failed := 0
	for _, id := range ids {
		if id == "" {
			failed++
			continue
		}
		wall, ok := onboardingWall(b, s, id)
		if !ok {
			failed++
			continue
		}
		overheads = append(overheads, wall-orchestrationOwnTime)
	}
	apiErrors.Range(func(k, v any) bool {
		b.Logf("onboarding %v: start status %v", k, v)
		return true
	})
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(float64(len(lockErrors.FindAllString(logs, -1))), "lock-errors")
	b.ReportMetric(ms(batch), "batch-wall-ms")
	b.ReportMetric(100*float64(percentile(overheads, 0.50))/float64(orchestrationOwnTime), "overhead-p50-%")
	b.ReportMetric(100*float64(percentile(overheads, 0.99))/float64(orchestrationOwnTime), "overhead-p99-%")
	b.ReportMetric(100*float64(percentile(overheads, 1))/float64(orchestrationOwnTime), "overhead-max-%")
	slept := stepTimers()
	b.ReportMetric(ms(slept), "timers-ms")
	b.ReportMetric(100*float64(percentile(overheads, 0.50)+orchestrationOwnTime-slept)/float64(slept),
		"overhead-p50-vs-timers-%")
}

// stepTimers sleeps the timers of one simulated onboarding in a row and
// returns how long they took. The simulated grid waits 20, 50 and 30 % of
// the step for its three contracts, and the installer five times 20 % for
// its lines. Each timer wakes a little late, which is part of the steps'
// own time rather than the deployer's.
func stepTimers() time.Duration {
	start := time.Now()
	for _, percent := range []int{20, 50, 30, 20, 20, 20, 20, 20} {
		time.Sleep(orchestrationStep * time.Duration(percent) / 100)
	}
	return time.Since(start)
}

// onboardingWall returns the time from the onboarding's first stored event
// to its last, and whether it succeeded.
func onboardingWall(b *testing.B, s *testkit.Server, id string) (time.Duration, bool) {
	events, err := s.Runner.Events(context.Background(), id, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	if len(events) == 0 {
		return 0, false
	}
	last := events[len(events)-1]
	if last.Kind != onboard.EventFinish || last.Status != onboard.StatusSucceeded {
		b.Logf("onboarding %s ended %s at %s: %s", id, last.Status, last.Stage, last.Message)
		return 0, false
	}
	return last.Time.Sub(events[0].Time), true
}
