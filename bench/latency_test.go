package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"deployer/internal/testkit"
	"deployer/onboard"
)

// latencyEvents is how many events each stream of BenchmarkStageToBrowser
// measures, after latencyWarmup events that it does not count.
const (
	latencyEvents = 10000
	latencyWarmup = 200
)

// BenchmarkStageToBrowser measures the time from storing an onboarding's
// event to a client on loopback parsing it, one event at a time, over the
// JSON stream, over the HTML stream, and over the echo server in the same
// process for comparison. Each event is stored and published as the runner
// does it: the store first, then the hub.
func BenchmarkStageToBrowser(b *testing.B) {
	s := testkit.StartServer(b, testkit.Options{Delay: time.Hour, Heartbeat: 15 * time.Second})
	o, status := s.Start(b, "latency")
	if status != http.StatusAccepted {
		b.Fatalf("start onboarding: status %d", status)
	}
	waitStage(b, s, o.ID, onboard.StageProvisioning)

	stop := startCPUProfile(b)
	jsonRun := measureStream(b, s.URL+"/api/onboardings/"+o.ID+"/events",
		http.Header{"Authorization": {"Bearer " + testkit.Token}}, deployerPublisher(b, s, o.ID))
	cookie := sessionHeader(b, s)
	htmlRun := measureStream(b, s.URL+"/onboardings/"+o.ID+"/events", cookie, deployerPublisher(b, s, o.ID))
	stop()
	writeProfile(b, "heap")

	echo := NewEchoServer()
	ts := httptest.NewServer(echo)
	defer ts.Close()
	echoRun := measureStream(b, ts.URL+"/events", nil, func() published {
		return published{id: echo.Publish()}
	})

	reportLatency(b, "json", jsonRun.fromStored)
	reportLatency(b, "json-delivery", jsonRun.fromCommit)
	reportLatency(b, "store", jsonRun.commit)
	reportLatency(b, "html", htmlRun.fromStored)
	reportLatency(b, "html-delivery", htmlRun.fromCommit)
	reportLatency(b, "echo", echoRun.fromStored)
	echoP99 := ms(percentile(echoRun.fromStored, 0.99))
	b.ReportMetric(ms(percentile(jsonRun.fromStored, 0.99))/echoP99, "json-p99/echo-p99")
	b.ReportMetric(ms(percentile(jsonRun.fromCommit, 0.99))/echoP99, "json-delivery-p99/echo-p99")
	b.ReportMetric(ms(percentile(htmlRun.fromStored, 0.99))/echoP99, "html-p99/echo-p99")
}

// published is one event that a publisher stored or sent.
type published struct {
	id int64
	// stored is the event's stored time, zero when its data carries it.
	stored time.Time
	// committed is when the store returned, zero without a store.
	committed time.Time
}

// publisher stores or sends one event.
type publisher func() published

// deployerPublisher stores a log event of the onboarding and publishes it,
// as the runner's emit does.
func deployerPublisher(b *testing.B, s *testkit.Server, id string) publisher {
	n := 0
	return func() published {
		n++
		e := onboard.Event{
			OnboardingID: id, Stage: onboard.StageProvisioning, Status: onboard.StageRunning,
			Kind: onboard.EventLog, Message: fmt.Sprintf("Benchmark line %d", n), Time: time.Now(),
		}
		stored, err := s.DB.AppendEvent(context.Background(), e)
		if err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		s.Hub.Publish(stored)
		return published{id: stored.Seq, stored: stored.Time, committed: committed}
	}
}

// streamRun holds the latencies of one stream's events.
type streamRun struct {
	// fromStored runs from the event's stored time: its ts for JSON.
	fromStored []time.Duration
	// fromCommit runs from the store's return; it is empty without a store.
	fromCommit []time.Duration
	// commit is the time the store took.
	commit []time.Duration
}

// measureStream opens one stream, publishes events one at a time, waits for
// each to arrive, and returns the latencies of all but the warm-up events.
// A JSON event's latency runs from its ts, an HTML event's from the stored
// time that the publisher returns.
func measureStream(b *testing.B, url string, header http.Header, publish publisher) streamRun {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body, err := openStream(ctx, streamClient(1), url, header)
	if err != nil {
		b.Fatal(err)
	}
	defer body.Close()
	events := make(chan received, 16)
	go func() {
		defer close(events)
		err := readEvents(body, func(e received) bool {
			events <- e
			return true
		})
		if err != nil && ctx.Err() == nil {
			b.Error(err)
		}
	}()

	var run streamRun
	for i := range latencyWarmup + latencyEvents {
		p := publish()
		e := awaitEvent(b, events, p.id)
		if i < latencyWarmup {
			continue
		}
		from := e.TS
		if from.IsZero() {
			from = p.stored
		}
		run.fromStored = append(run.fromStored, e.At.Sub(from))
		if !p.committed.IsZero() {
			run.fromCommit = append(run.fromCommit, e.At.Sub(p.committed))
			run.commit = append(run.commit, p.committed.Sub(from))
		}
	}
	return run
}

// awaitEvent returns the event with the id, skipping older ones.
func awaitEvent(b *testing.B, events <-chan received, id int64) received {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				b.Fatalf("stream ended before event %d", id)
			}
			if e.ID >= id {
				return e
			}
		case <-timeout:
			b.Fatalf("event %d did not arrive within 10 s", id)
		}
	}
}

// waitStage waits until the onboarding's stage runs.
func waitStage(b *testing.B, s *testkit.Server, id, stage string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		o, err := s.Runner.Onboarding(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if o.Stage(stage).Status == onboard.StageRunning {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("stage %s of onboarding %s did not start within 10 s", stage, id)
}

// sessionHeader logs in and returns the session's cookie header.
func sessionHeader(tb testing.TB, s *testkit.Server) http.Header {
	browser := s.Login(tb)
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	h := http.Header{}
	for _, c := range browser.Jar.Cookies(req.URL) {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	return h
}
