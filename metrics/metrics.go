// Package metrics is nanohook's Prometheus instrumentation: counters and
// histograms fed by the delivery engine's completion hook and the admin
// API's publish hook, gauges of the delivery queue read from storage at
// scrape time, and the Go runtime and process collectors, all on a registry
// of their own that cmd serves as /metrics on the admin listener.
//
// Labels are bounded sets fixed here (outcomes, status classes, states),
// never endpoint or account ids: a per-tenant series would multiply with
// every customer, and the delivery history already answers per-endpoint
// questions.
package metrics

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// Outcomes of a committed attempt, the values of
// nanohook_deliveries_total's outcome label.
const (
	OutcomeSucceeded      = "succeeded"
	OutcomeRetryScheduled = "retry_scheduled"
	OutcomeFailed         = "failed"
)

// Results of one attempt, the values of nanohook_delivery_attempts_total's
// result label: the class of the endpoint's answer, or why there was none.
const (
	Result2xx     = "2xx"
	Result3xx     = "3xx"
	Result4xx     = "4xx"
	Result5xx     = "5xx"
	ResultOther   = "other" // a status outside 200–599
	ResultTimeout = "timeout"
	ResultNetwork = "network" // refused, reset, DNS, TLS, blocked by the egress guard
)

// deliveryBuckets span webhook answers from a receiver on the same network
// (5 ms) to the default 15 s timeout and a raised one (30 s).
var deliveryBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30}

// publishBuckets span one synced commit (about a millisecond) to a batch of
// a thousand events on a busy disk.
var publishBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Config configures Metrics. Stats is required.
type Config struct {
	// Stats is read at scrape time for the queue and endpoint gauges.
	Stats StatsSource
	// Version is exported as nanohook_build_info{version}.
	Version string
	// InFlight, when set, is read at scrape time for
	// nanohook_attempts_in_flight: this node's delivery attempts in flight.
	InFlight func() int
	// Logger receives failures to read the stats and to serve a scrape;
	// nil discards them.
	Logger *slog.Logger
	// Now is the clock of the queue gauges; nil means time.Now.
	Now func() time.Time
	// StatsTimeout bounds one read of the stats (default 2 s), so a hung
	// database cannot hang a scrape.
	StatsTimeout time.Duration
	// StatsMaxAge is how long a read of the stats is reused (default 1 s),
	// so that scrapers, however many and frequent, query storage at most
	// once per StatsMaxAge.
	StatsMaxAge time.Duration
}

// Metrics holds nanohook's collectors and the registry they are on.
type Metrics struct {
	reg             *prometheus.Registry
	log             *slog.Logger
	deliveries      *prometheus.CounterVec
	attempts        *prometheus.CounterVec
	attemptDuration prometheus.Histogram
	published       prometheus.Counter
	publishDuration prometheus.Histogram
}

// New registers every collector on a new registry.
func New(cfg Config) *Metrics {
	if cfg.Stats == nil {
		panic("metrics: Config.Stats is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: cfg.Logger,
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nanohook_deliveries_total",
			Help: "Delivery attempts committed, by what became of the delivery: succeeded, retry_scheduled (failed, another attempt is scheduled) or failed (no attempt left, or the endpoint answered 410 Gone).",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nanohook_delivery_attempts_total",
			Help: "Delivery attempts committed, by the class of the endpoint's answer (2xx, 3xx, 4xx, 5xx, other) or why there was none (timeout, network).",
		}, []string{"result"}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nanohook_delivery_duration_seconds",
			Help:    "Duration of delivery attempts, from sending the request to the end of the answer (or the failure).",
			Buckets: deliveryBuckets,
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nanohook_events_published_total",
			Help: "Events committed by the admin API's publish calls; republished duplicates (same idempotency key) are not counted.",
		}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nanohook_publish_duration_seconds",
			Help:    "Duration of admin API publish requests that committed, from the request's arrival to the commit of its events and deliveries; a batch counts once.",
			Buckets: publishBuckets,
		}),
	}
	// Every label value is present from the start, at zero, so that rates
	// and alerts work before the first failure rather than from it.
	for _, o := range []string{OutcomeSucceeded, OutcomeRetryScheduled, OutcomeFailed} {
		m.deliveries.WithLabelValues(o)
	}
	for _, r := range []string{Result2xx, Result3xx, Result4xx, Result5xx, ResultOther, ResultTimeout, ResultNetwork} {
		m.attempts.WithLabelValues(r)
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "nanohook_build_info",
		Help:        "Always 1; the version label says which nanohook is running.",
		ConstLabels: prometheus.Labels{"version": cfg.Version},
	})
	buildInfo.Set(1)
	if cfg.InFlight != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nanohook_attempts_in_flight",
			Help: "Delivery attempts in flight on this node: claimed and not yet finished (compare with --delivery-workers).",
		}, func() float64 { return float64(cfg.InFlight()) }))
	}
	m.reg.MustRegister(
		m.deliveries, m.attempts, m.attemptDuration, m.published, m.publishDuration, buildInfo,
		newQueueCollector(cfg),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry in the Prometheus exposition formats. A
// collector that fails (storage unreachable) leaves its metrics out of the
// answer instead of failing the whole scrape, so the counters and the
// process metrics stay visible during an outage.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// ObserveCompletion counts one committed attempt. It is the delivery
// engine's OnComplete hook: it runs on the engine's completion path, so it
// only touches counters.
func (m *Metrics) ObserveCompletion(p store.CompleteParams) {
	if o := Outcome(p.Status); o != "" {
		m.deliveries.WithLabelValues(o).Inc()
	}
	m.attempts.WithLabelValues(AttemptResult(p.Attempt)).Inc()
	m.attemptDuration.Observe(p.Attempt.Duration.Seconds())
}

// ObservePublish counts one committed publish request: newEvents events
// were created (duplicates excluded) and the request took took.
func (m *Metrics) ObservePublish(newEvents int, took time.Duration) {
	m.published.Add(float64(newEvents))
	m.publishDuration.Observe(took.Seconds())
}

// Outcome names what an attempt made of its delivery, from the delivery's
// status after it; "" for a status no attempt leaves (cancelled).
func Outcome(status nanohook.DeliveryStatus) string {
	switch status {
	case nanohook.DeliverySucceeded:
		return OutcomeSucceeded
	case nanohook.DeliveryPending:
		return OutcomeRetryScheduled
	case nanohook.DeliveryFailed:
		return OutcomeFailed
	}
	return ""
}

// AttemptResult classifies an attempt for nanohook_delivery_attempts_total.
// Without a response, the engine records a timeout as an error starting
// with "timeout" and any other transport failure otherwise.
func AttemptResult(a nanohook.Attempt) string {
	switch s := a.ResponseStatus; {
	case s >= 200 && s < 300:
		return Result2xx
	case s >= 300 && s < 400:
		return Result3xx
	case s >= 400 && s < 500:
		return Result4xx
	case s >= 500 && s < 600:
		return Result5xx
	case s != 0:
		return ResultOther
	case strings.HasPrefix(a.Error, "timeout"):
		return ResultTimeout
	}
	return ResultNetwork
}
