package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanohook/nanohook/store"
)

// StatsSource is what the queue gauges read at scrape time; store.Store
// implements it.
type StatsSource interface {
	Stats(ctx context.Context, now time.Time) (store.Stats, error)
}

// queueCollector exports store.Stats as gauges. It reads storage at scrape
// time rather than counting in process, so the numbers include other
// nodes' work and survive restarts; each read is bounded by a timeout and
// reused for a short while, so scrapes cannot load the database.
type queueCollector struct {
	src     StatsSource
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	maxAge  time.Duration

	depth     *prometheus.Desc
	oldestAge *prometheus.Desc
	endpoints *prometheus.Desc

	mu     sync.Mutex // held during a read, so concurrent scrapes share it
	readAt time.Time  // zero: never read
	stats  store.Stats
	err    error
}

func newQueueCollector(cfg Config) *queueCollector {
	c := &queueCollector{
		src:     cfg.Stats,
		log:     cfg.Logger,
		now:     cfg.Now,
		timeout: cfg.StatsTimeout,
		maxAge:  cfg.StatsMaxAge,
		depth: prometheus.NewDesc("nanohook_queue_depth",
			"Pending deliveries: due (waiting for a worker, or held back by an endpoint's cap or open circuit breaker) or scheduled (retries waiting out their backoff, and deliveries being attempted, until their lease expires). Read from storage, so every node sharing a database reports the same numbers.",
			[]string{"state"}, nil),
		oldestAge: prometheus.NewDesc("nanohook_oldest_pending_delivery_age_seconds",
			"How long the longest-waiting due delivery has been due (0 when none is): the delivery lag. Deliveries held back by an open circuit breaker count, so one dead endpoint raises it.",
			nil, nil),
		endpoints: prometheus.NewDesc("nanohook_endpoints",
			"Live (not deleted) webhook endpoints by state: active or disabled.",
			[]string{"state"}, nil),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.timeout <= 0 {
		c.timeout = 2 * time.Second
	}
	if c.maxAge <= 0 {
		c.maxAge = time.Second
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldestAge
	ch <- c.endpoints
}

// Collect implements prometheus.Collector. When storage cannot be read the
// gauges are left out of the scrape (the failure is logged): a stale or
// zero queue depth would look healthy exactly when it is not.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	st, at, err := c.read()
	if err != nil {
		return
	}
	age := 0.0
	if !st.OldestDueAt.IsZero() {
		age = max(at.Sub(st.OldestDueAt).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.DueDeliveries), "due")
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.ScheduledDeliveries), "scheduled")
	ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.endpoints, prometheus.GaugeValue, float64(st.ActiveEndpoints), "active")
	ch <- prometheus.MustNewConstMetric(c.endpoints, prometheus.GaugeValue, float64(st.DisabledEndpoints), "disabled")
}

// read returns the last stats and when they were read, reading them again
// once they are older than maxAge. A failure is kept as long as a success
// would be, so an unreachable database is asked once per maxAge too.
func (c *queueCollector) read() (store.Stats, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.readAt.IsZero() && now.Sub(c.readAt) < c.maxAge {
		return c.stats, c.readAt, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	c.stats, c.err = c.src.Stats(ctx, now)
	c.readAt = now
	if c.err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "metrics: reading the queue stats failed; the queue gauges are left out of this scrape",
			slog.Any("error", c.err))
	}
	return c.stats, c.readAt, c.err
}
