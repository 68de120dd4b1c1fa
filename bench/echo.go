// Package bench measures what the deployer adds to the grid's own time:
// event delivery, fan-out, orchestration, pages, capacity reads and idle
// cost. `make bench` runs its benchmarks; BENCHMARKS.md records the method
// and the figures.
package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// echoBuffer is how many events a stream of the echo server may fall behind
// before it drops them, the same depth as the deployer's hub.
const echoBuffer = 64

// EchoServer is the baseline of the stream benchmarks: a minimal net/http
// server-sent events server that sends each published event to every open
// stream, with no storage and no rendering. GET /events opens a stream and
// POST /publish sends one event. It is safe for concurrent use.
type EchoServer struct {
	mu      sync.Mutex
	seq     int64
	streams map[chan echoEvent]struct{}
}

type echoEvent struct {
	id   int64
	data []byte
}

// echoData mirrors the fields of the deployer's JSON events; TS is the time
// of publishing in RFC 3339 with nanoseconds.
type echoData struct {
	Stage   string `json:"stage"`
	Status  string `json:"status"`
	Message string `json:"message"`
	TS      string `json:"ts"`
}

// NewEchoServer returns an echo server with no open streams.
func NewEchoServer() *EchoServer {
	return &EchoServer{streams: map[chan echoEvent]struct{}{}}
}

// ServeHTTP serves /events and /publish.
func (s *EchoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/events" && r.Method == http.MethodGet:
		s.stream(w, r)
	case r.URL.Path == "/publish" && r.Method == http.MethodPost:
		id := s.Publish()
		fmt.Fprintf(w, "%d\n", id)
	default:
		http.NotFound(w, r)
	}
}

// Publish stamps one event with the current time and queues it for every
// open stream; a stream whose queue is full misses it. It returns the
// event's id.
func (s *EchoServer) Publish() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	data, _ := json.Marshal(echoData{
		Stage: "provisioning", Status: "running", Message: "echo",
		TS: time.Now().UTC().Format(time.RFC3339Nano),
	})
	e := echoEvent{id: s.seq, data: data}
	for c := range s.streams {
		select {
		case c <- e:
		default:
		}
	}
	return s.seq
}

// Streams returns the number of open streams.
func (s *EchoServer) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// stream sends events until the client goes away or a write fails.
func (s *EchoServer) stream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported", http.StatusInternalServerError)
		return
	}
	c := make(chan echoEvent, echoBuffer)
	s.mu.Lock()
	s.streams[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, c)
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	flusher.Flush()
	for {
		select {
		case e := <-c:
			if _, err := fmt.Fprintf(w, "id: %d\nevent: event\ndata: %s\n\n", e.id, e.data); err != nil {
				return
			}
			flusher.Flush()
		case <-r.Context().Done():
			return
		}
	}
}
