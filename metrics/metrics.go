// Package metrics exposes the deployer's metrics in the Prometheus text
// format through the official client library, github.com/prometheus/client_golang.
// It counts onboardings and their stages from the events the hub publishes,
// counts HTTP requests by route, and reads node capacity, the outbox and the
// open event streams at each scrape.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"deployer/onboard"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric the deployer defines.
const namespace = "deployer"

// stageBuckets are the bounds, in seconds, of the stage duration
// histograms: from instant simulated steps up to the 20-minute default
// install timeout and beyond.
var stageBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800}

// CapacityReader returns a node's capacity; *onboard.Service implements it.
type CapacityReader interface {
	Capacity(ctx context.Context, nodeID string) (onboard.Capacity, error)
}

// OutboxCounter counts outbox messages by status; *storage.DB implements it.
type OutboxCounter interface {
	CountMessages(ctx context.Context) (map[string]int, error)
}

// Sources are the readers that the metrics call at each scrape.
type Sources struct {
	// Version is the deployer's version, for deployer_build_info.
	Version string
	// Node is the configured node, whose capacity is reported.
	Node     string
	Capacity CapacityReader
	Outbox   OutboxCounter
	// Streams returns the number of open event streams.
	Streams func() int
	// Running returns the number of onboardings this process works on.
	Running func() int
	Log     *slog.Logger
}

// Metrics holds the deployer's metrics and serves them. It implements
// onboard.EventObserver and http.Handler, and is safe for concurrent use.
type Metrics struct {
	registry *prometheus.Registry
	handler  http.Handler

	started         prometheus.Counter
	resumed         prometheus.Counter
	succeeded       prometheus.Counter
	failed          *prometheus.CounterVec
	canceled        *prometheus.CounterVec
	stageDuration   *prometheus.HistogramVec
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec

	mu sync.Mutex
	// stageStarts holds when each running stage began, by onboarding id and
	// stage name, until the stage ends or the onboarding finishes.
	stageStarts map[string]map[string]time.Time
}

var _ onboard.EventObserver = (*Metrics)(nil)

// New registers the deployer's metrics, with the Go runtime and process
// metrics, in a registry of their own.
func New(src Sources) *Metrics {
	m := &Metrics{
		registry:    prometheus.NewRegistry(),
		stageStarts: map[string]map[string]time.Time{},
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "onboardings_started_total",
			Help: "Onboardings started with the one-click flow.",
		}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "onboardings_resumed_total",
			Help: "New attempts of failed or canceled onboardings.",
		}),
		succeeded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "onboardings_succeeded_total",
			Help: "Onboardings that reached the ready stage.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "onboardings_failed_total",
			Help: "Onboardings that failed, by the stage that failed and the error code.",
		}, []string{"stage", "code"}),
		canceled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "onboardings_canceled_total",
			Help: "Onboardings canceled by an admin, by the stage they were in.",
		}, []string{"stage"}),
		stageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "stage_duration_seconds",
			Help:    "Time from a stage's start to its end, by stage and the status it ended with.",
			Buckets: stageBuckets,
		}, []string{"stage", "status"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests by method, route pattern and status; " +
				"the route is /* for requests that middleware responded to before any route matched.",
		}, []string{"method", "route", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer HTTP requests other than event streams, by method and route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels carry the deployer's version and the Go version that built it.",
		ConstLabels: prometheus.Labels{"version": src.Version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)

	m.registry.MustRegister(
		m.started, m.resumed, m.succeeded, m.failed, m.canceled, m.stageDuration,
		m.requests, m.requestDuration, buildInfo, newStateCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	log := src.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// ContinueOnError serves the metrics that could be read when one source
	// fails, such as an unreachable grid, and logs the failure.
	m.handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      errorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	})
	return m
}

// ServeHTTP writes the metrics in the Prometheus text format, or in another
// format that the scraper's Accept header requests.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// ObserveRequest counts one HTTP request. Route is the route pattern, never
// the raw path, which would give a series per tester. An event stream's
// duration is how long it stayed open, not a response time, so streams are
// counted but kept out of the duration histogram.
func (m *Metrics) ObserveRequest(method, route string, status int, duration time.Duration, stream bool) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	if !stream {
		m.requestDuration.WithLabelValues(method, route).Observe(duration.Seconds())
	}
}

// errorLog passes promhttp's collection errors to the deployer's log.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Warn("Metrics incomplete", "error", fmt.Sprint(v...))
}
