//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook/internal/skipnote"
	"github.com/nanohook/nanohook/webhook"
)

// runBenchJSON runs the bench in-process as "nanohook bench --quick --json
// --deadline 20s" would, with set's changes to that configuration, and
// returns the parsed result and the progress output. Its serve children
// are a nanohook built for the tests.
func runBenchJSON(t *testing.T, set func(*Config)) (benchResult, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Quick, cfg.JSON, cfg.Deadline = true, true, 20*time.Second
	cfg.Serve, cfg.Version = Command{Path: nanohookBinary(t)}, "test"
	set(&cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := Run(ctx, cfg, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	var res benchResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not one JSON result: %v\n%s", err, stdout.String())
	}
	return res, stderr.String()
}

// checkFanOutRun asserts that a fan-out run of events × endpoints
// delivered everything, verified, with ordered latency percentiles.
func checkFanOutRun(t *testing.T, sc benchScenario, events, endpoints int) benchRun {
	t.Helper()
	if sc.Error != "" || len(sc.Runs) != 1 {
		t.Fatalf("%s: error %q, %d runs", sc.Name, sc.Error, len(sc.Runs))
	}
	r := sc.Runs[0]
	want := events * endpoints
	if r.Events != events || r.Deliveries != want || r.Expected != want || r.Delivered != want || r.Missing != 0 {
		t.Errorf("%s: events %d, deliveries created %d, expected %d, delivered %d, missing %d; want %d events, %d deliveries, none missing",
			sc.Name, r.Events, r.Deliveries, r.Expected, r.Delivered, r.Missing, events, want)
	}
	if r.InvalidSignatures != 0 {
		t.Errorf("%s: %d invalid signatures", sc.Name, r.InvalidSignatures)
	}
	if !(r.P50MS > 0 && r.P50MS <= r.P99MS && r.P99MS <= r.P999MS) {
		t.Errorf("%s: latency percentiles not ordered: p50 %v, p99 %v, p99.9 %v", sc.Name, r.P50MS, r.P99MS, r.P999MS)
	}
	if r.EventsPerSec <= 0 || r.DeliveriesPerSec <= 0 || r.RatioToCeiling <= 0 {
		t.Errorf("%s: events/s %v, deliveries/s %v, ratio %v: want all positive", sc.Name, r.EventsPerSec, r.DeliveriesPerSec, r.RatioToCeiling)
	}
	if r.CPUSecondsPer1k <= 0 || r.PeakRSSMiB <= 0 {
		t.Errorf("%s: CPU s/1k %v, peak RSS %v MiB: the server's /proc figures are missing", sc.Name, r.CPUSecondsPer1k, r.PeakRSSMiB)
	}
	return r
}

func TestBenchFastAndRetry(t *testing.T) {
	const events, endpoints = 200, 2
	res, progress := runBenchJSON(t, func(c *Config) {
		c.Scenarios, c.Endpoints, c.Events, c.Batch, c.Workers = []string{"retry", "fast"}, endpoints, events, 50, 32
	})

	if !res.OK {
		t.Errorf("ok is false: %v", res.problems())
	}
	if res.Ceiling.RequestsPerSec <= 0 || res.Ceiling.InvalidSignatures != 0 || res.Ceiling.Failed != 0 {
		t.Errorf("ceiling: %+v", res.Ceiling)
	}
	if res.Machine.CPUs <= 0 || res.Settings.Workers != 32 || res.Settings.DB != "sqlite" {
		t.Errorf("machine %+v, settings %+v", res.Machine, res.Settings)
	}
	names := []string{}
	for _, sc := range res.Scenarios {
		names = append(names, sc.Name)
	}
	if !slices.Equal(names, []string{"fast", "retry"}) {
		t.Fatalf("scenarios %v, want fast then retry", names)
	}
	checkFanOutRun(t, res.Scenarios[0], events, endpoints)
	if tg := res.Scenarios[0].Targets; len(tg) != 1 || tg[0].Pass == nil || tg[0].Value != res.Scenarios[0].Runs[0].RatioToCeiling {
		t.Errorf("fast targets %+v: want the ratio judged", tg)
	}
	retry := checkFanOutRun(t, res.Scenarios[1], events, endpoints)
	// One endpoint of two fails every first attempt: each of its events
	// takes a second attempt.
	if retry.Attempts < events*endpoints+events {
		t.Errorf("retry: %d attempts, want at least %d", retry.Attempts, events*endpoints+events)
	}
	for _, want := range []string{"ceiling: ", "fast: server pid ", "retry: server pid "} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}
}

// TestBenchSingles runs the singles scenario: every event its own publish
// request, each delivered once and verified, with the publish requests'
// own latency and the three SQLite targets judged.
func TestBenchSingles(t *testing.T) {
	res, _ := runBenchJSON(t, func(c *Config) {
		c.Scenarios, c.Endpoints, c.SinglePublishers, c.Workers = []string{"singles"}, 3, 8, 32
		// 2,000 requests one by one: about 10 s under -race alone, twice
		// that beside the other packages' tests in CI.
		c.Deadline = 60 * time.Second
	})
	if !res.OK {
		t.Errorf("ok is false: %v", res.problems())
	}
	if res.Settings.SinglePublishers != 8 || res.Settings.SinglesEvents != quickSizes.singles {
		t.Errorf("settings %+v: want 8 single publishers, %d events", res.Settings, quickSizes.singles)
	}
	if len(res.Scenarios) != 1 || res.Scenarios[0].Name != "singles" {
		t.Fatalf("scenarios %+v", res.Scenarios)
	}
	// Fan-out 1: as many deliveries as events, from three accounts.
	r := checkFanOutRun(t, res.Scenarios[0], quickSizes.singles, 1)
	if r.Attempts != int64(quickSizes.singles) {
		t.Errorf("%d attempts for %d events: want one each", r.Attempts, quickSizes.singles)
	}
	if !(r.PublishP50MS > 0 && r.PublishP50MS <= r.PublishP99MS) {
		t.Errorf("publish answer p50 %v, p99 %v: want both measured, in order", r.PublishP50MS, r.PublishP99MS)
	}
	if r.RatioToCeiling != r.DeliveriesPerSec/res.Ceiling.RequestsPerSec {
		t.Errorf("ratio %v, want deliveries/s %v over the ceiling %v", r.RatioToCeiling, r.DeliveriesPerSec, res.Ceiling.RequestsPerSec)
	}
	tg := res.Scenarios[0].Targets
	if len(tg) != 3 {
		t.Fatalf("targets %+v: want the ratio, the p99 and the CPU", tg)
	}
	for i, want := range []float64{r.RatioToCeiling, r.P99MS, r.CPUSecondsPer1k} {
		if tg[i].Pass == nil || tg[i].Value != want {
			t.Errorf("target %q: %+v, want %v judged", tg[i].Name, tg[i], want)
		}
	}
}

func TestBenchPostgres(t *testing.T) {
	base := skipnote.SkipWithoutPostgres(t, "the bench's PostgreSQL test")
	before := benchSchemas(t, base)
	res, _ := runBenchJSON(t, func(c *Config) {
		c.DB, c.Scenarios, c.Endpoints, c.Events, c.Workers = base, []string{"fast"}, 2, 100, 32
	})
	if !res.OK || res.Settings.DB == "sqlite" {
		t.Errorf("ok %v, settings.db %q: %v", res.OK, res.Settings.DB, res.problems())
	}
	if len(res.Scenarios) != 1 || res.Scenarios[0].DB != "postgres" {
		t.Fatalf("scenarios %+v", res.Scenarios)
	}
	checkFanOutRun(t, res.Scenarios[0], 100, 2)
	if tg := res.Scenarios[0].Targets; len(tg) != 1 || tg[0].Limit != targetFastPostgres {
		t.Errorf("targets %+v: want PostgreSQL's limit %v", tg, targetFastPostgres)
	}
	for _, s := range benchSchemas(t, base) {
		if !slices.Contains(before, s) {
			t.Errorf("schema %s left behind", s)
		}
	}
}

// benchSchemas lists the schemas the bench creates in the database.
func benchSchemas(t *testing.T, dbURL string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'nanohook_bench_%'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestBenchReceiverCounts checks the receiver's bookkeeping the end-to-end
// figures rest on: a bad signature is refused, counted and fails the wait,
// a delivery counts once, a second 2xx for it is a duplicate, and a
// failFirstAttempt endpoint refuses attempt 1 only.
func TestBenchReceiverCounts(t *testing.T) {
	secrets := []string{"whsec_receiver_test_0", "whsec_receiver_test_1"}
	rcv, err := startReceiver(secrets, func(slot int) behaviour { return []behaviour{answerAtOnce, failFirstAttempt}[slot] }, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.close()
	post := func(slot int, secret, eventID, attempt string) int {
		t.Helper()
		return postToReceiver(t, rcv, slot, secret, eventID, attempt)
	}
	for _, c := range []struct {
		slot            int
		secret, id, try string
		want            int
	}{
		{0, "whsec_wrong_secret", "evt_1", "1", http.StatusUnauthorized},
		{0, secrets[0], "evt_1", "1", http.StatusOK},
		{0, secrets[0], "evt_1", "2", http.StatusOK}, // duplicate
		{1, secrets[1], "evt_1", "1", http.StatusInternalServerError},
		{1, secrets[1], "evt_1", "2", http.StatusOK},
	} {
		if got := post(c.slot, c.secret, c.id, c.try); got != c.want {
			t.Errorf("slot %d, event %s, attempt %s: answered %d, want %d", c.slot, c.id, c.try, got, c.want)
		}
	}
	// Every delivery arrived, but a run with a bad signature has failed.
	if err := rcv.wait(t.Context()); err == nil || !errors.Is(err, webhook.ErrSignatureMismatch) {
		t.Errorf("wait: %v, want the signature mismatch", err)
	}
	receipts, bad := rcv.snapshot()
	if len(receipts) != 2 || rcv.delivered.Load() != 2 || rcv.dups.Load() != 1 || rcv.invalid.Load() != 1 || rcv.requests.Load() != 5 {
		t.Errorf("receipts %d, delivered %d, duplicates %d, invalid %d, requests %d; want 2, 2, 1, 1, 5",
			len(receipts), rcv.delivered.Load(), rcv.dups.Load(), rcv.invalid.Load(), rcv.requests.Load())
	}
	if bad == nil {
		t.Error("the bad signature's error was not kept")
	}
}

// postToReceiver sends one signed delivery attempt to a receiver slot and
// returns the answer's status.
func postToReceiver(t *testing.T, rcv *benchReceiver, slot int, secret, eventID, attempt string) int {
	t.Helper()
	body := []byte(`{"event":"job.completed","task_id":"t","task_type":"image","status":"completed","data":{},"timestamp":"2024-12-23T10:00:00Z"}`)
	req, err := http.NewRequest(http.MethodPost, rcv.url(slot), bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0
	}
	ts := time.Now().Unix()
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(secret, ts, body))
	req.Header.Set(webhook.HeaderEventID, eventID)
	req.Header.Set(webhook.HeaderDeliveryAttempt, attempt)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err) // Error, not Fatal: some callers are goroutines
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBenchReceiverBadTenants checks the behaviours of the isolation and
// inflight scenarios: failAlways refuses every attempt, held requests are
// counted at once and at their peak and answer on release, as a very slow
// answer does, and a slot that is not awaited counts its deliveries apart
// from the run's receipts.
func TestBenchReceiverBadTenants(t *testing.T) {
	does := []behaviour{answerAtOnce, answerVerySlowly, holdUntilFreed, failAlways, answerAtOnce}
	secrets := benchSecrets(len(does))
	rcv, err := startReceiver(secrets, func(slot int) behaviour { return does[slot] }, func(slot int) bool { return slot == 0 }, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.close()
	for _, try := range []string{"1", "2", "3"} {
		if got := postToReceiver(t, rcv, 3, secrets[3], "evt_fail", try); got != http.StatusInternalServerError {
			t.Errorf("failAlways, attempt %s: answered %d, want 500", try, got)
		}
	}
	// Two held requests and one very slow one, answered by release.
	answers := make(chan int, 3)
	for i, slot := range []int{2, 2, 1} {
		go func() { answers <- postToReceiver(t, rcv, slot, secrets[slot], "evt_wait_"+strconv.Itoa(i), "1") }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for rcv.held.Load() < 2 || rcv.counts(1, 2).requests < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("held %d, very slow requests %d: want 2 and 1", rcv.held.Load(), rcv.counts(1, 2).requests)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := postToReceiver(t, rcv, 4, secrets[4], "evt_other", "1"); got != http.StatusOK {
		t.Errorf("unawaited slot answered %d, want 200", got)
	}
	if got := postToReceiver(t, rcv, 0, secrets[0], "evt_awaited", "1"); got != http.StatusOK {
		t.Errorf("awaited slot answered %d, want 200", got)
	}
	if err := rcv.wait(t.Context()); err != nil {
		t.Errorf("wait: %v", err)
	}
	receipts, _ := rcv.snapshot()
	if len(receipts) != 1 || receipts[0].eventID != "evt_awaited" || rcv.delivered.Load() != 1 {
		t.Errorf("receipts %v, delivered %d: want only the awaited slot's delivery", receipts, rcv.delivered.Load())
	}
	if c := rcv.counts(0, len(does)); c.delivered != 2 || c.requests != 8 {
		t.Errorf("counts %+v: want 2 delivered (awaited or not) of 8 requests", c)
	}
	rcv.release()
	for range 3 {
		if got := <-answers; got != http.StatusServiceUnavailable {
			t.Errorf("a held or very slow request answered %d after release, want 503", got)
		}
	}
	for rcv.held.Load() != 0 { // the handler returns just after answering
		time.Sleep(time.Millisecond)
	}
	if rcv.heldPeak.Load() != 2 {
		t.Errorf("held peak %d, want 2", rcv.heldPeak.Load())
	}
	if rcv.resetHeldPeak(); rcv.heldPeak.Load() != 0 {
		t.Errorf("held peak %d after reset with none held, want 0", rcv.heldPeak.Load())
	}
	if rcv.counts(1, 2).delivered != 0 || rcv.invalid.Load() != 0 {
		t.Errorf("very slow slot delivered %d, invalid %d: want 0, 0", rcv.counts(1, 2).delivered, rcv.invalid.Load())
	}
}

// TestBenchIsolation runs the quick isolation scenario: the healthy
// tenant alone delivers everything, verified; beside the bad tenants its
// deliveries arrive or are counted late (the engine decides which, the
// bench only that nothing else happens), the bad tenants were really
// loaded, and the target is judged either way.
func TestBenchIsolation(t *testing.T) {
	res, progress := runBenchJSON(t, func(c *Config) { c.Scenarios, c.Deadline = []string{"isolation"}, 60*time.Second })
	if !res.OK {
		t.Errorf("ok is false: %v", res.problems())
	}
	if len(res.Scenarios) != 1 || res.Scenarios[0].Name != "isolation" || res.Scenarios[0].Error != "" || len(res.Scenarios[0].Runs) != 2 {
		t.Fatalf("scenarios %+v: want isolation with two runs", res.Scenarios)
	}
	sc := res.Scenarios[0]
	alone, bad := sc.Runs[0], sc.Runs[1]
	if alone.Label != "isolation alone" || bad.Label != "isolation +bad" {
		t.Fatalf("runs %q, %q", alone.Label, bad.Label)
	}
	want := int(quickSizes.steady.Seconds()) * isolationRate * isolationHealthyEndpoints
	if alone.Expected != want || alone.Delivered != want || alone.Missing != 0 || alone.Late != 0 {
		t.Errorf("alone: expected %d, delivered %d, missing %d, late %d; want all %d delivered", alone.Expected, alone.Delivered, alone.Missing, alone.Late, want)
	}
	if !(alone.P50MS > 0 && alone.P50MS <= alone.P99MS && alone.P99MS <= alone.MaxMS) {
		t.Errorf("alone: p50 %v, p99 %v, max %v: want ordered and measured", alone.P50MS, alone.P99MS, alone.MaxMS)
	}
	if bad.Expected != want || bad.Delivered+bad.Late != want || bad.Missing != 0 {
		t.Errorf("+bad: expected %d, delivered %d, late %d, missing %d: want delivered + late = %d", bad.Expected, bad.Delivered, bad.Late, bad.Missing, want)
	}
	var names []string
	var requests int64
	for _, tn := range bad.Tenants {
		names = append(names, tn.Name)
		requests += tn.Requests
		if tn.Endpoints != isolationBadEndpoints || tn.Backlog != quickSizes.isolationBacklog*isolationBadEndpoints {
			t.Errorf("tenant %+v: want %d endpoints and a backlog of %d", tn, isolationBadEndpoints, quickSizes.isolationBacklog*isolationBadEndpoints)
		}
	}
	if !slices.Equal(names, []string{"slow", "hanging", "failing"}) || requests == 0 || bad.WindowSeconds <= 0 {
		t.Errorf("tenants %v with %d requests in %v s: want slow, hanging, failing, loaded", names, requests, bad.WindowSeconds)
	}
	for _, r := range sc.Runs {
		if r.InvalidSignatures != 0 {
			t.Errorf("%s: %d invalid signatures", r.Label, r.InvalidSignatures)
		}
	}
	tg := sc.Targets
	if len(tg) != 1 || tg[0].Limit != targetIsolationRatio || tg[0].Pass == nil {
		t.Fatalf("targets %+v: want the ratio judged", tg)
	}
	if bad.Late > 0 && *tg[0].Pass {
		t.Errorf("target passed with %d healthy deliveries late", bad.Late)
	}
	if bad.Late == 0 && tg[0].Value != bad.P99RatioToAlone {
		t.Errorf("target value %v, run ratio %v", tg[0].Value, bad.P99RatioToAlone)
	}
	if !strings.Contains(progress, "deliveries pending for the bad tenants") {
		t.Errorf("progress does not tell the backlog:\n%s", progress)
	}
}

// TestBenchInflight runs the quick inflight scenario: the server holds
// attempts to a receiver that never answers them, every request verified,
// and the report has the count and the memory figures.
func TestBenchInflight(t *testing.T) {
	res, _ := runBenchJSON(t, func(c *Config) { c.Scenarios, c.Deadline = []string{"inflight"}, 60*time.Second })
	if !res.OK {
		t.Errorf("ok is false: %v", res.problems())
	}
	if res.Settings.InflightTarget != quickSizes.inflight || res.Settings.InflightEndpoints != quickSizes.inflightAccounts*inflightEndpoints {
		t.Errorf("settings %+v", res.Settings)
	}
	if len(res.Scenarios) != 1 || res.Scenarios[0].Name != "inflight" || res.Scenarios[0].Error != "" || len(res.Scenarios[0].Runs) != 1 {
		t.Fatalf("scenarios %+v: want inflight with one run", res.Scenarios)
	}
	r := res.Scenarios[0].Runs[0]
	events := quickSizes.inflightAccounts * inflightBacklog
	if r.Events != events || r.Deliveries != events*inflightEndpoints || r.Delivered != 0 {
		t.Errorf("events %d, deliveries %d, delivered %d: want %d, %d, 0", r.Events, r.Deliveries, r.Delivered, events, events*inflightEndpoints)
	}
	if r.InFlight <= 0 || r.InFlight > int64(quickSizes.inflight) || r.Attempts < r.InFlight || r.InvalidSignatures != 0 {
		t.Errorf("in flight %d of %d asked, attempts %d, invalid signatures %d", r.InFlight, quickSizes.inflight, r.Attempts, r.InvalidSignatures)
	}
	if r.IdleRSSMiB <= 0 || r.InFlightRSSMiB <= 0 || r.PeakRSSMiB < r.InFlightRSSMiB {
		t.Errorf("RSS idle %v, in flight %v, peak %v MiB: the server's /proc figures are missing or out of order", r.IdleRSSMiB, r.InFlightRSSMiB, r.PeakRSSMiB)
	}
}

// TestBenchFileLimit: the bench raises its soft limit of open files as far
// as the hard limit allows, and says so when a scenario needs more.
func TestBenchFileLimit(t *testing.T) {
	if err := ensureFileLimit(1); err != nil {
		t.Fatal(err)
	}
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if l.Cur != l.Max {
		t.Errorf("soft limit %d, hard %d: want raised to the hard limit", l.Cur, l.Max)
	}
	if l.Max < math.MaxInt {
		if err := ensureFileLimit(int(l.Max) + 1); err == nil || !strings.Contains(err.Error(), "hard limit of open files") {
			t.Errorf("needing more than the hard limit: %v, want an error that says so", err)
		}
	}
}
