package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fanOutEchoEvents is how many events the echo server sends to every
// stream, one at a time; fanOutEchoGap separates them.
const (
	fanOutEchoEvents = 12
	fanOutEchoGap    = 100 * time.Millisecond
)

// BenchmarkFanOut opens many streams on one onboarding of the deployer
// binary. It measures the time to open them, the resident memory each one
// adds to the server, and the delivery of the onboarding's live events to
// all of them, and then the same against the echo server's binary. The
// deployer runs twice, once with JSON streams and once with HTML streams,
// each in a fresh process so that the memory of one does not hide the
// other's. The server processes are separate from this one, which runs the
// clients.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			echo := fanOutEcho(b, n)
			report := func(prefix string, r fanOutResult) {
				reportLatency(b, prefix, r.latencies)
				b.ReportMetric(float64(r.eventSize), prefix+"-bytes/event")
				b.ReportMetric(ms(r.open), prefix+"-open-ms")
				b.ReportMetric(r.kibPerStream, prefix+"-KiB/stream")
			}
			report("echo", echo)
			for _, kind := range []string{"json", "html"} {
				r := fanOutDeployer(b, n, kind)
				report(kind, r)
				b.ReportMetric(ms(percentile(r.latencies, 0.99))/ms(percentile(echo.latencies, 0.99)),
					kind+"-p99/echo-p99")
				if r.missed > 0 {
					b.ReportMetric(float64(r.missed), kind+"-missed")
				}
			}
		})
	}
}

// fanOutResult is one fan-out measurement.
type fanOutResult struct {
	latencies    []time.Duration
	open         time.Duration
	kibPerStream float64
	// missed counts live events that a stream did not receive.
	missed int
	// eventSize is the median length of a live event's data.
	eventSize int
}

// fanOutClients are the open streams of one measurement.
type fanOutClients struct {
	mu     sync.Mutex
	events [][]received
	// first is done when every stream has received its first event, and
	// ended when every stream has ended.
	first   sync.WaitGroup
	ended   sync.WaitGroup
	failure atomic.Value
}

// openClients opens n streams at once and returns when every response
// header arrived, with the time that took. Each stream's events are kept
// until it ends or ctx ends.
func openClients(ctx context.Context, b *testing.B, n int, url string, header http.Header) (*fanOutClients, time.Duration) {
	c := &fanOutClients{events: make([][]received, n)}
	client := streamClient(n)
	var opened sync.WaitGroup
	opened.Add(n)
	c.first.Add(n)
	c.ended.Add(n)

	start := time.Now()
	for i := range n {
		go func() {
			defer c.ended.Done()
			body, err := openStream(ctx, client, url, header)
			opened.Done()
			if err != nil {
				c.failure.Store(err)
				c.first.Done()
				return
			}
			defer body.Close()

			firstDone := false
			err = readEvents(body, func(e received) bool {
				c.mu.Lock()
				c.events[i] = append(c.events[i], e)
				c.mu.Unlock()
				if !firstDone {
					firstDone = true
					c.first.Done()
				}
				return e.Name != "done"
			})
			if !firstDone {
				c.first.Done()
			}
			if err != nil && ctx.Err() == nil {
				c.failure.Store(err)
			}
		}()
	}

	opened.Wait()
	took := time.Since(start)
	if err, ok := c.failure.Load().(error); ok {
		b.Fatal(err)
	}
	return c, took
}

// fanOutEcho measures the echo server's binary with n streams.
func fanOutEcho(b *testing.B, n int) fanOutResult {
	p := startProcess(b, echoPath(b), nil, nil)
	defer p.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	time.Sleep(200 * time.Millisecond)
	before := p.rssKiB(b)
	clients, open := openClients(ctx, b, n, p.URL+"/events", nil)
	time.Sleep(500 * time.Millisecond)
	after := p.rssKiB(b)

	for range fanOutEchoEvents {
		if _, _, err := post(ctx, p.URL, "/publish", ""); err != nil {
			b.Fatal(err)
		}
		time.Sleep(fanOutEchoGap)
	}
	time.Sleep(time.Second)
	r := fanOutResult{open: open, kibPerStream: float64(after-before) / float64(n)}
	clients.mu.Lock()
	defer clients.mu.Unlock()
	var sizes []int
	for _, events := range clients.events {
		got := 0
		for _, e := range events {
			if !e.TS.IsZero() {
				r.latencies = append(r.latencies, e.At.Sub(e.TS))
				sizes = append(sizes, e.Size)
				got++
			}
		}
		r.missed += fanOutEchoEvents - got
	}
	r.eventSize = percentile(sizes, 0.5)
	return r
}

// fanOutDelay is the simulated step delay of the deployer in the fan-out
// benchmark: long enough for every stream to open while provisioning runs.
const fanOutDelay = "2s"

// fanOutDeployer measures a fresh deployer process with n streams of the
// kind, json or html, on one onboarding. A reference JSON stream records
// each event's ts, from which the latency of an HTML update with the same
// id runs. Only events stored after every stream opened count.
func fanOutDeployer(b *testing.B, n int, kind string) fanOutResult {
	p := startDeployer(b, "DEPLOYER_SIM_DELAY="+fanOutDelay, "DEPLOYER_LOG_LEVEL=warn")
	defer p.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	status, body, err := post(ctx, p.URL, "/api/onboardings",
		`{"username":"fanout","full_name":"Fan Out","email":"fanout@example.org","node_id":"1"}`)
	if err != nil || status != http.StatusAccepted {
		b.Fatalf("start onboarding: status %d, %s, %v", status, body, err)
	}
	var o struct{ ID string }
	if err := json.Unmarshal(body, &o); err != nil {
		b.Fatal(err)
	}
	path := "/api/onboardings/" + o.ID + "/events"
	header := apiHeader()
	if kind == "html" {
		path, header = "/onboardings/"+o.ID+"/events", p.login(b)
	}
	reference, _ := openClients(ctx, b, 1, p.URL+"/api/onboardings/"+o.ID+"/events", apiHeader())
	reference.first.Wait()
	time.Sleep(200 * time.Millisecond)

	before := p.rssKiB(b)
	clients, open := openClients(ctx, b, n, p.URL+path, header)
	clients.first.Wait()
	time.Sleep(300 * time.Millisecond)
	after := p.rssKiB(b)
	live := lastID(reference)
	clients.ended.Wait()
	reference.ended.Wait()
	writeResult(b, kind+".log", p.log())
	if err, ok := clients.failure.Load().(error); ok {
		b.Fatal(err)
	}

	stored := map[int64]time.Time{}
	for _, e := range reference.events[0] {
		if e.ID > live && !e.TS.IsZero() {
			stored[e.ID] = e.TS
		}
	}
	r := fanOutResult{open: open, kibPerStream: float64(after-before) / float64(n)}
	var sizes []int
	for _, events := range clients.events {
		got := 0
		for _, e := range events {
			if ts, ok := stored[e.ID]; ok {
				r.latencies = append(r.latencies, e.At.Sub(ts))
				sizes = append(sizes, e.Size)
				got++
			}
		}
		if kind == "json" {
			r.missed += len(stored) - got
		}
	}
	r.eventSize = percentile(sizes, 0.5)
	if len(stored) < 3 {
		b.Fatalf("only %d live events after the streams opened; raise fanOutDelay", len(stored))
	}
	return r
}

// lastID returns the newest event id of the single stream.
func lastID(c *fanOutClients) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var id int64
	for _, e := range c.events[0] {
		id = max(id, e.ID)
	}
	return id
}
