package bench

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"deployer/internal/testkit"
)

// Settings of BenchmarkFanOutProfile: the streams of each kind, and the
// events published to them, fanOutEchoGap apart.
const (
	fanOutProfileStreams = 1000
	fanOutProfileEvents  = 20
)

// BenchmarkFanOutProfile runs a fan-out of 1,000 HTML and 1,000 JSON
// streams inside this process, which the binary cannot offer, to save CPU,
// heap and goroutine profiles of the server's side of it. The clients are
// bare TCP connections that read the response header and nothing more, so
// the heap and stack that the streams add are the server's: it reports
// them per stream, after a garbage collection. BenchmarkFanOut gives the
// latencies and the resident memory; this benchmark shows where they go.
func BenchmarkFanOutProfile(b *testing.B) {
	s := testkit.StartServer(b, testkit.Options{Delay: time.Hour, Heartbeat: 15 * time.Second})
	o, status := s.Start(b, "profile")
	if status != http.StatusAccepted {
		b.Fatalf("start onboarding: status %d", status)
	}
	waitStage(b, s, o.ID, "provisioning")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	html := openBareStreams(b, s, "/onboardings/"+o.ID+"/events", "Cookie: "+sessionHeader(b, s).Get("Cookie"))
	json := openBareStreams(b, s, "/api/onboardings/"+o.ID+"/events", "Authorization: Bearer "+testkit.Token)
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	streams := float64(len(html) + len(json))
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1024/streams, "heap-KiB/stream")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/1024/streams, "stack-KiB/stream")
	writeProfile(b, "goroutine")
	writeProfile(b, "heap")

	publish := deployerPublisher(b, s, o.ID)
	stop := startCPUProfile(b)
	for range fanOutProfileEvents {
		publish()
		time.Sleep(fanOutEchoGap)
	}
	stop()
	for _, c := range append(html, json...) {
		c.Close()
	}
}

// openBareStreams opens fanOutProfileStreams streams on plain TCP
// connections with one extra header line, and reads only their response
// headers.
func openBareStreams(b *testing.B, s *testkit.Server, path, header string) []net.Conn {
	addr := strings.TrimPrefix(s.URL, "http://")
	conns := make([]net.Conn, 0, fanOutProfileStreams)
	for range fanOutProfileStreams {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: bench\r\n%s\r\nAccept: text/event-stream\r\n\r\n", path, header)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("open stream %s: status %d", path, resp.StatusCode)
		}
		conns = append(conns, c)
	}
	return conns
}
