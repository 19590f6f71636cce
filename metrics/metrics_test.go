package metrics

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the tests' "now".
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// openStore opens a real SQLite store in the test's temporary directory.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nanohook.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// scrape GETs the handler and parses the text exposition, as Prometheus
// would read it.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape answered %d: %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("scrape is not valid exposition text: %v", err)
	}
	return fams
}

// value is the value of the counter or gauge series of name whose labels
// include labels (name=value pairs); it fails when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s in the scrape", name)
	}
	for _, m := range f.GetMetric() {
		if hasLabels(m, labels) {
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v in the scrape", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// histogram is the only series of a label-free histogram.
func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].Histogram == nil {
		t.Fatalf("no single histogram %s in the scrape", name)
	}
	return f.GetMetric()[0].Histogram
}

// bucket is the cumulative count of h's bucket with upper bound le.
func bucket(t *testing.T, h *dto.Histogram, le float64) uint64 {
	t.Helper()
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("no bucket le=%v", le)
	return 0
}

func completion(status nanohook.DeliveryStatus, code int, errText string, took time.Duration) store.CompleteParams {
	return store.CompleteParams{
		Lease:   store.Lease{DeliveryID: 1, Token: 1},
		Attempt: nanohook.Attempt{DeliveryID: 1, Number: 1, ResponseStatus: code, Error: errText, Duration: took},
		Status:  status,
	}
}

func TestMetricsFromCompletionsAndPublishes(t *testing.T) {
	t.Parallel()
	m := New(Config{Stats: openStore(t), Version: "9.9.9", InFlight: func() int { return 17 }})
	for _, p := range []store.CompleteParams{
		completion(nanohook.DeliverySucceeded, 200, "", 3*time.Millisecond),
		completion(nanohook.DeliverySucceeded, 204, "", 40*time.Millisecond),
		completion(nanohook.DeliveryPending, 500, "HTTP 500", 120*time.Millisecond),
		completion(nanohook.DeliveryPending, 302, "HTTP 302: redirects are not followed (Location: /x)", 8*time.Millisecond),
		completion(nanohook.DeliveryPending, 0, "timeout: no response within 15s", 15*time.Second),
		completion(nanohook.DeliveryFailed, 0, "connection refused", 2*time.Millisecond),
		completion(nanohook.DeliveryFailed, 410, "HTTP 410 Gone: endpoint disabled", 9*time.Millisecond),
	} {
		m.ObserveCompletion(p)
	}
	m.ObservePublish(3, 4*time.Millisecond)
	m.ObservePublish(0, 2*time.Millisecond) // all duplicates: a request, no new event

	fams := scrape(t, m.Handler())
	for outcome, want := range map[string]float64{"succeeded": 2, "retry_scheduled": 3, "failed": 2} {
		if got := value(t, fams, "nanohook_deliveries_total", "outcome", outcome); got != want {
			t.Errorf("deliveries_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	for result, want := range map[string]float64{"2xx": 2, "3xx": 1, "4xx": 1, "5xx": 1, "other": 0, "timeout": 1, "network": 1} {
		if got := value(t, fams, "nanohook_delivery_attempts_total", "result", result); got != want {
			t.Errorf("delivery_attempts_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	d := histogram(t, fams, "nanohook_delivery_duration_seconds")
	if d.GetSampleCount() != 7 || bucket(t, d, 0.005) != 2 || bucket(t, d, 0.01) != 4 || bucket(t, d, 10) != 6 || bucket(t, d, 15) != 7 {
		t.Errorf("delivery duration histogram: %v", d)
	}
	if got := value(t, fams, "nanohook_events_published_total"); got != 3 {
		t.Errorf("events_published_total = %v, want 3", got)
	}
	if p := histogram(t, fams, "nanohook_publish_duration_seconds"); p.GetSampleCount() != 2 || bucket(t, p, 0.0025) != 1 {
		t.Errorf("publish duration histogram: %v", p)
	}
	if got := value(t, fams, "nanohook_build_info", "version", "9.9.9"); got != 1 {
		t.Errorf("build_info = %v", got)
	}
	if got := value(t, fams, "nanohook_attempts_in_flight"); got != 17 {
		t.Errorf("attempts_in_flight = %v, want the engine's 17", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("the runtime and process collectors are missing: no %s", name)
		}
	}
}

func TestMetricsAttemptResult(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a    nanohook.Attempt
		want string
	}{
		{nanohook.Attempt{ResponseStatus: 299}, Result2xx},
		{nanohook.Attempt{ResponseStatus: 301, Error: "HTTP 301"}, Result3xx},
		{nanohook.Attempt{ResponseStatus: 429, Error: "HTTP 429"}, Result4xx},
		{nanohook.Attempt{ResponseStatus: 503, Error: "HTTP 503"}, Result5xx},
		{nanohook.Attempt{ResponseStatus: 600}, ResultOther},
		{nanohook.Attempt{Error: "timeout: no response within 5s"}, ResultTimeout},
		{nanohook.Attempt{Error: "DNS lookup of x.example failed: no such host"}, ResultNetwork},
		{nanohook.Attempt{Error: "blocked address 127.0.0.1"}, ResultNetwork},
	} {
		if got := AttemptResult(c.a); got != c.want {
			t.Errorf("AttemptResult(%d, %q) = %s, want %s", c.a.ResponseStatus, c.a.Error, got, c.want)
		}
	}
}

// countingStats counts the reads that reach the real store behind it.
type countingStats struct {
	StatsSource
	reads atomic.Int32
}

func (c *countingStats) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	c.reads.Add(1)
	return c.StatsSource.Stats(ctx, now)
}

// clock is a settable clock for the cache.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func TestMetricsQueueGaugesFromStorage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	acct, _, err := st.CreateAccount(ctx, store.CreateAccountParams{Name: "acme", KeyHash: []byte("k1"), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	var eps []nanohook.Endpoint
	for i := range 3 {
		e, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{
			AccountID: acct.ID, URL: fmt.Sprintf("https://hooks.example.com/%d", i),
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_metrics_test", Now: t0,
		})
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, e)
	}
	disabled := nanohook.EndpointDisabled
	if _, err := st.UpdateEndpoint(ctx, store.UpdateEndpointParams{AccountID: acct.ID, ID: eps[2].ID, Status: &disabled, Now: t0}); err != nil {
		t.Fatal(err)
	}
	publish := func(at time.Time, task string) {
		t.Helper()
		_, err := st.PublishEvents(ctx, []store.PublishEventParams{{
			ID: "evt_" + task, AccountID: acct.ID, Type: nanohook.EventJobCompleted, TaskID: task, TaskType: "image",
			IdempotencyKey: task, Payload: []byte(`{}`), OccurredAt: at, Now: at,
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	publish(t0, "a")                  // two deliveries due at t0
	publish(t0.Add(time.Minute), "b") // two due at t0+1m

	clk := &clock{now: t0.Add(90 * time.Second)}
	src := &countingStats{StatsSource: st}
	m := New(Config{Stats: src, Now: clk.Now})
	fams := scrape(t, m.Handler())
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nanohook_queue_depth", []string{"state", "due"}, 4},
		{"nanohook_queue_depth", []string{"state", "scheduled"}, 0},
		{"nanohook_oldest_pending_delivery_age_seconds", nil, 90},
		{"nanohook_endpoints", []string{"state", "active"}, 2},
		{"nanohook_endpoints", []string{"state", "disabled"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// Within a second the read is reused: more deliveries do not show yet,
	// and storage is not asked again.
	publish(clk.Now(), "c")
	clk.Add(500 * time.Millisecond)
	if got := value(t, scrape(t, m.Handler()), "nanohook_queue_depth", "state", "due"); got != 4 {
		t.Errorf("cached due depth = %v, want 4", got)
	}
	if n := src.reads.Load(); n != 1 {
		t.Errorf("%d reads within the cache's lifetime, want 1", n)
	}
	clk.Add(600 * time.Millisecond)
	fams = scrape(t, m.Handler())
	if got := value(t, fams, "nanohook_queue_depth", "state", "due"); got != 6 {
		t.Errorf("due depth after the cache expired = %v, want 6", got)
	}
	if got := value(t, fams, "nanohook_oldest_pending_delivery_age_seconds"); math.Abs(got-91.1) > 1e-9 {
		t.Errorf("oldest age after the cache expired = %v, want 91.1", got)
	}
	if n := src.reads.Load(); n != 2 {
		t.Errorf("%d reads, want 2", n)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMetricsStorageDownLeavesTheQueueGaugesOut(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	m := New(Config{Stats: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	m.ObserveCompletion(completion(nanohook.DeliverySucceeded, 200, "", time.Millisecond))
	fams := scrape(t, m.Handler())
	for _, name := range []string{"nanohook_queue_depth", "nanohook_oldest_pending_delivery_age_seconds", "nanohook_endpoints"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s is exported although storage is closed", name)
		}
	}
	if got := value(t, fams, "nanohook_deliveries_total", "outcome", "succeeded"); got != 1 {
		t.Errorf("the counters must survive a storage outage: deliveries_total{succeeded} = %v", got)
	}
	if !strings.Contains(logs.String(), "reading the queue stats failed") {
		t.Errorf("the failure was not logged:\n%s", logs.String())
	}
}

// hangingStats answers only when its context ends, as a database that
// accepted the connection and then went silent.
type hangingStats struct{}

func (hangingStats) Stats(ctx context.Context, _ time.Time) (store.Stats, error) {
	<-ctx.Done()
	return store.Stats{}, fmt.Errorf("stats: %w", ctx.Err())
}

func TestMetricsHungStorageCannotHangAScrape(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	m := New(Config{Stats: hangingStats{}, StatsTimeout: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	start := time.Now()
	fams := scrape(t, m.Handler())
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the scrape took %v with a 50ms stats timeout", took)
	}
	if _, ok := fams["nanohook_queue_depth"]; ok {
		t.Error("queue depth exported without stats")
	}
	if !strings.Contains(logs.String(), context.DeadlineExceeded.Error()) {
		t.Errorf("the timeout was not logged:\n%s", logs.String())
	}
}
