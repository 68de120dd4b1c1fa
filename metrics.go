package main

import (
	"log/slog"

	"deployer/metrics"
	"deployer/storage"
)

// newMetrics builds the metrics over the assembled deployer and makes the
// hub pass every published event to them. It must run before the runner
// starts, so that the metrics see the onboardings that a restart resumes.
func newMetrics(cfg Config, a *app, db *storage.DB, log *slog.Logger) *metrics.Metrics {
	m := metrics.New(metrics.Sources{
		Version: version, Node: cfg.Node, Capacity: a.svc, Outbox: db,
		Streams: a.hub.Subscribers, Running: a.runner.Running, Log: log,
	})
	a.hub.Observe(m)
	return m
}
