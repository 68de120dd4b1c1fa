package metrics

import (
	"context"
	"time"

	"deployer/onboard"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the reads of one scrape, which Prometheus cancels
// after 10 s by default.
const scrapeTimeout = 5 * time.Second

// outboxStatuses are the outbox message statuses that always get a series,
// so that an empty backlog shows as 0 rather than as no data.
var outboxStatuses = []string{onboard.MessagePending, onboard.MessageSent, onboard.MessageFailed}

// stateCollector reads the deployer's current state at each scrape, so
// that the figures are as fresh as the scrape and no timer runs between
// scrapes.
type stateCollector struct {
	src Sources

	nodeOnline    *prometheus.Desc
	nodeDegraded  *prometheus.Desc
	nodeTotal     *prometheus.Desc
	nodeFree      *prometheus.Desc
	nodeReserved  *prometheus.Desc
	nodeRoom      *prometheus.Desc
	outbox        *prometheus.Desc
	streams       *prometheus.Desc
	runningWorker *prometheus.Desc
}

var _ prometheus.Collector = (*stateCollector)(nil)

func newStateCollector(src Sources) *stateCollector {
	node := []string{"node_id"}
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &stateCollector{
		src: src,
		nodeOnline: prometheus.NewDesc(name("node_online"),
			"1 when the node is usable by the deployer, 0 when it is down, standby, unhealthy, "+
				"rented by another twin, degraded or unreachable.", node, nil),
		nodeDegraded: prometheus.NewDesc(name("node_degraded"),
			"1 when the deployer stopped provisioning on the node after failures in a row.", node, nil),
		nodeTotal: prometheus.NewDesc(name("node_capacity_slots"),
			"Slots (4 GiB of memory each) the node has in all.", node, nil),
		nodeFree: prometheus.NewDesc(name("node_free_slots"),
			"Slots the grid reports free on the node.", node, nil),
		nodeReserved: prometheus.NewDesc(name("node_reserved_slots"),
			"Slots held by provisions in flight that the grid does not count yet.", node, nil),
		nodeRoom: prometheus.NewDesc(name("node_room_for_testers"),
			"How many more testers (2 slots each) fit on the node; 0 when it is not usable.", node, nil),
		outbox: prometheus.NewDesc(name("outbox_messages"),
			"Welcome emails in the outbox by status; pending is the backlog still to deliver.",
			[]string{"status"}, nil),
		streams: prometheus.NewDesc(name("event_streams_open"),
			"Event streams open to browsers and API clients.", nil, nil),
		runningWorker: prometheus.NewDesc(name("onboardings_running"),
			"Onboardings this process is working on now.", nil, nil),
	}
}

// Describe sends the descriptors of every metric Collect may send.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.nodeOnline, c.nodeDegraded, c.nodeTotal, c.nodeFree, c.nodeReserved, c.nodeRoom,
		c.outbox, c.streams, c.runningWorker,
	} {
		ch <- d
	}
}

// Collect reads the node's capacity, the outbox, the open streams and the
// running onboardings. A source that fails sends an invalid metric, which
// the handler logs while it serves the rest.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if c.src.Capacity != nil && c.src.Node != "" {
		c.collectNode(ctx, ch)
	}
	if c.src.Outbox != nil {
		c.collectOutbox(ctx, ch)
	}
	if c.src.Streams != nil {
		ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(c.src.Streams()))
	}
	if c.src.Running != nil {
		ch <- prometheus.MustNewConstMetric(c.runningWorker, prometheus.GaugeValue, float64(c.src.Running()))
	}
}

func (c *stateCollector) collectNode(ctx context.Context, ch chan<- prometheus.Metric) {
	capacity, err := c.src.Capacity.Capacity(ctx, c.src.Node)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.nodeOnline, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, capacity.NodeID)
	}
	gauge(c.nodeOnline, boolValue(capacity.Online))
	gauge(c.nodeDegraded, boolValue(capacity.Degraded))
	gauge(c.nodeTotal, float64(capacity.TotalSlots))
	gauge(c.nodeFree, float64(capacity.FreeSlots))
	gauge(c.nodeReserved, float64(capacity.ReservedSlots))
	gauge(c.nodeRoom, float64(capacity.RoomForTesters))
}

func (c *stateCollector) collectOutbox(ctx context.Context, ch chan<- prometheus.Metric) {
	counts, err := c.src.Outbox.CountMessages(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.outbox, err)
		return
	}
	for _, status := range outboxStatuses {
		ch <- prometheus.MustNewConstMetric(c.outbox, prometheus.GaugeValue, float64(counts[status]), status)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
