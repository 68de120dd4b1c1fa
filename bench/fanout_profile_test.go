package bench

import (
	"context"
	"net/http"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// fanOutProfileEvents is how many events BenchmarkFanOutProfile publishes
// to its streams, fanOutEchoGap apart.
const fanOutProfileEvents = 20

// BenchmarkFanOutProfile runs the fan-out of 1,000 HTML streams and 1,000
// JSON streams inside this process, which the binary cannot offer, to
// save CPU, heap and goroutine profiles of the server's side of it. Its
// latencies share the CPU with the clients, so BenchmarkFanOut gives the
// figures and this benchmark shows where the time goes.
func BenchmarkFanOutProfile(b *testing.B) {
	s := testkit.StartServer(b, testkit.Options{Delay: time.Hour, Heartbeat: 15 * time.Second})
	o, status := s.Start(b, "profile")
	if status != http.StatusAccepted {
		b.Fatalf("start onboarding: status %d", status)
	}
	waitStage(b, s, o.ID, "provisioning")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	html, _ := openClients(ctx, b, 1000, s.URL+"/onboardings/"+o.ID+"/events", sessionHeader(b, s))
	json, _ := openClients(ctx, b, 1000, s.URL+"/api/onboardings/"+o.ID+"/events",
		http.Header{"Authorization": {"Bearer " + testkit.Token}})
	html.first.Wait()
	json.first.Wait()
	writeProfile(b, "goroutine")
	writeProfile(b, "heap")

	publish := deployerPublisher(b, s, o.ID)
	stop := startCPUProfile(b)
	for range fanOutProfileEvents {
		publish()
		time.Sleep(fanOutEchoGap)
	}
	stop()
	cancel()
}
