package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
	"github.com/nanohook/nanohook/webhook"
)

// received is one request as the test receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a loopback HTTP server whose answers a test scripts.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	arrived chan received
	answer  func(n int, w http.ResponseWriter, r *http.Request) // n: 1-based request number
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{arrived: make(chan received, 1000), answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := received{header: r.Header.Clone(), body: body}
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		n := len(rc.got)
		rc.mu.Unlock()
		rc.arrived <- got // before answering: tests may hold the answer back
		if rc.answer != nil {
			rc.answer(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) wait(t *testing.T) received {
	t.Helper()
	select {
	case r := <-rc.arrived:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery arrived within 10s")
		return received{}
	}
}

type bundle struct {
	store    *sqlite.Store
	engine   *delivery.Engine
	account  nanohook.Account
	endpoint nanohook.Endpoint
	rcv      *receiver
}

const testSecret = "whsec_test-secret-value"

// openWithAccount opens a real SQLite store in the test's temporary
// directory with one account in it.
func openWithAccount(t *testing.T) (*sqlite.Store, nanohook.Account) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, hash := nanohook.NewAPIKey()
	acct, _, err := st.CreateAccount(context.Background(), store.CreateAccountParams{Name: "a", KeyHash: hash, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return st, acct
}

// startEngine starts an engine that the test's cleanup stops.
func startEngine(t *testing.T, cfg delivery.Config) *delivery.Engine {
	t.Helper()
	e := delivery.New(cfg)
	e.InitTestSignals()
	e.Start(context.Background())
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(sctx)
	})
	return e
}

// setup opens a real SQLite store, registers one endpoint pointing at a
// scripted receiver, and starts an engine with the given config tweaks.
func setup(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request), tweak func(*delivery.Config)) *bundle {
	t.Helper()
	ctx := context.Background()
	st, acct := openWithAccount(t)
	rc := newReceiver(t, answer)
	ep, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{
		AccountID: acct.ID, URL: rc.srv.URL + "/hook", Secret: testSecret,
		Events: []nanohook.EventType{nanohook.EventJobCompleted}, Now: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := delivery.Config{
		Store:        st,
		Client:       egress.NewClient(egress.Options{AllowPrivate: true, Timeout: 2 * time.Second}),
		Schedule:     []time.Duration{20 * time.Millisecond, 20 * time.Millisecond},
		Timeout:      2 * time.Second,
		MaxInFlight:  8,
		PollInterval: time.Hour, // only Wake and due times may start work
		UserAgent:    "nanohook/test",
		Rand:         func() float64 { return 0.5 },
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e := startEngine(t, cfg)
	return &bundle{store: st, engine: e, account: acct, endpoint: ep, rcv: rc}
}

// publish commits one job.completed event and wakes the engine, as the
// admin API does. It returns the event id.
func (b *bundle) publish(t *testing.T, taskID string) string {
	t.Helper()
	body, err := webhook.EncodePayload(webhook.Payload{
		Event: "job.completed", TaskID: taskID, TaskType: "image", Status: "completed",
		Data: []byte(`{"url":"https://cdn.example.com/x.png","credits_charged":6}`), Timestamp: "2024-12-23T10:00:00Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.store.PublishEvents(context.Background(), []store.PublishEventParams{{
		ID: nanohook.NewEventID(), AccountID: b.account.ID, Type: nanohook.EventJobCompleted,
		TaskID: taskID, TaskType: "image", IdempotencyKey: taskID, Payload: body,
		OccurredAt: time.Now(), Now: time.Now(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Deliveries != 1 {
		t.Fatalf("publish made %d deliveries, want 1", res[0].Deliveries)
	}
	b.engine.Wake()
	return res[0].EventID
}

// waitDelivery returns a delivery of the test's endpoint once cond holds
// for it, looking again each time the engine has written to the store:
// deliveries finish asynchronously after the receiver answered.
func (b *bundle) waitDelivery(t *testing.T, id int64, cond func(nanohook.Delivery) bool) (nanohook.Delivery, []nanohook.Attempt) {
	t.Helper()
	var d nanohook.Delivery
	var atts []nanohook.Attempt
	if !b.engine.Stored().Await(10*time.Second, func() bool {
		var err error
		if d, atts, err = b.store.GetDelivery(context.Background(), b.account.ID, id); err != nil {
			t.Fatal(err)
		}
		return cond(d)
	}) {
		t.Fatalf("delivery %d stuck at %+v (%d attempts)", id, d, len(atts))
	}
	return d, atts
}

func statusIs(s nanohook.DeliveryStatus) func(nanohook.Delivery) bool {
	return func(d nanohook.Delivery) bool { return d.Status == s }
}

func TestDeliversSignedPayloadOnWake(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	evt := b.publish(t, "task_1")
	got := b.rcv.wait(t)

	want, err := b.store.GetEvent(context.Background(), b.account.ID, evt)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.body) != string(want.Payload) {
		t.Fatalf("body = %s\nwant   %s", got.body, want.Payload)
	}
	h := got.header
	for name, want := range map[string]string{
		"Content-Type":                  "application/json",
		"User-Agent":                    "nanohook/test",
		webhook.HeaderEventID:           evt,
		webhook.HeaderEvent:             "job.completed",
		webhook.HeaderDeliveryAttempt:   "1",
		webhook.HeaderSignaturePrevious: "",
	} {
		if h.Get(name) != want {
			t.Errorf("%s = %q, want %q", name, h.Get(name), want)
		}
	}
	ts, err := strconv.ParseInt(h.Get(webhook.HeaderTimestamp), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Errorf("timestamp %q is not now", h.Get(webhook.HeaderTimestamp))
	}
	if sig := h.Get(webhook.HeaderSignature); sig != webhook.Sign(testSecret, ts, got.body) {
		t.Errorf("signature %q does not match", sig)
	}
	v := webhook.Verifier{Secrets: []string{testSecret}}
	if err := v.Verify(h, got.body); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestSuccessIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "thanks")
	}, nil)
	b.publish(t, "task_ok")
	b.rcv.wait(t)
	d, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliverySucceeded))
	if d.Attempts != 1 || len(atts) != 1 {
		t.Fatalf("attempts = %d/%d, want 1", d.Attempts, len(atts))
	}
	a := atts[0]
	if a.Number != 1 || a.ResponseStatus != 202 || a.ResponseBody != "thanks" || a.Error != "" || a.Duration <= 0 {
		t.Fatalf("attempt = %+v", a)
	}
}

func TestRetriesUntilSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			http.Error(w, "down", http.StatusInternalServerError)
		}
	}, nil)
	b.publish(t, "task_retry")
	for want := 1; want <= 3; want++ {
		got := b.rcv.wait(t)
		if a := got.header.Get(webhook.HeaderDeliveryAttempt); a != strconv.Itoa(want) {
			t.Fatalf("request %d carried attempt %q", want, a)
		}
	}
	d, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliverySucceeded))
	if d.Attempts != 3 || len(atts) != 3 {
		t.Fatalf("attempts = %d/%d, want 3", d.Attempts, len(atts))
	}
	if atts[0].ResponseStatus != 500 || atts[0].Error != "HTTP 500" || atts[2].ResponseStatus != 200 {
		t.Fatalf("attempts = %+v", atts)
	}
	if atts[1].StartedAt.Sub(atts[0].StartedAt) < 20*time.Millisecond {
		t.Fatalf("retry came after %s, before the 20ms schedule step", atts[1].StartedAt.Sub(atts[0].StartedAt))
	}
}

func TestFailsWhenScheduleRunsOut(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}, nil)
	b.publish(t, "task_fail")
	d, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliveryFailed))
	if d.Attempts != 3 || len(atts) != 3 { // first try + two scheduled retries
		t.Fatalf("attempts = %d/%d, want 3", d.Attempts, len(atts))
	}
}

func TestRedirectIsAFailureWithLocation(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	b := setup(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hook" {
			followed.Store(true)
			return
		}
		http.Redirect(w, r, "/moved", http.StatusFound)
	}, func(c *delivery.Config) { c.NoRetry, c.Schedule = true, nil })
	b.publish(t, "task_redirect")
	_, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliveryFailed))
	if followed.Load() {
		t.Fatal("the redirect was followed")
	}
	if len(atts) != 1 || atts[0].ResponseStatus != 302 || atts[0].Location != "/moved" || atts[0].Error == "" {
		t.Fatalf("attempts = %+v", atts)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }, nil)
	b.publish(t, "task_gone")
	d, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliveryFailed))
	if d.Attempts != 1 || len(atts) != 1 {
		t.Fatalf("410 was retried: %d attempts", len(atts))
	}
	ep, err := b.store.GetEndpoint(context.Background(), b.account.ID, b.endpoint.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Status != nanohook.EndpointDisabled || ep.DisabledReason == "" {
		t.Fatalf("endpoint after 410 = %s %q", ep.Status, ep.DisabledReason)
	}
}

func TestTimeoutIsAFailure(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b := setup(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, func(c *delivery.Config) {
		c.Timeout = 100 * time.Millisecond
		c.NoRetry, c.Schedule = true, nil
	})
	b.publish(t, "task_slow")
	_, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliveryFailed))
	if len(atts) != 1 || atts[0].ResponseStatus != 0 || !strings.HasPrefix(atts[0].Error, "timeout") {
		t.Fatalf("attempts = %+v", atts)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	b := setup(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}, func(c *delivery.Config) {
		// The step is 20ms and the next 5s: Retry-After 1s lies between.
		c.Schedule = []time.Duration{20 * time.Millisecond, 5 * time.Second}
	})
	b.publish(t, "task_429")
	_, atts := b.waitDelivery(t, 1, statusIs(nanohook.DeliverySucceeded))
	if len(atts) != 2 {
		t.Fatalf("attempts = %+v", atts)
	}
	if gap := atts[1].StartedAt.Sub(atts[0].StartedAt); gap < time.Second {
		t.Fatalf("retried after %s despite Retry-After: 1", gap)
	}
}

func TestStopReleasesAttemptsCutShort(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	b := setup(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}, nil)
	b.publish(t, "task_shutdown")
	b.rcv.wait(t) // the attempt is in flight

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.engine.Stop(ctx); err == nil {
		t.Fatal("Stop reported a clean finish while an attempt was blocked")
	}
	// Released: claimable again at once, and no attempt was counted.
	d, atts, err := b.store.GetDelivery(context.Background(), b.account.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != nanohook.DeliveryPending || d.Attempts != 0 || len(atts) != 0 {
		t.Fatalf("after stop: %+v, %d attempts", d, len(atts))
	}
	claimed, err := store.ClaimDue(context.Background(), b.store, store.ClaimDueParams{
		Now: time.Now(), LeaseUntil: time.Now().Add(time.Minute), Limit: 10,
	})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim after stop = %d, %v; want the released delivery", len(claimed), err)
	}
}

func TestRestartResumesPendingDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "restart.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	_, hash := nanohook.NewAPIKey()
	acct, _, _ := st.CreateAccount(ctx, store.CreateAccountParams{Name: "a", KeyHash: hash, Now: time.Now()})
	rc := newReceiver(t, nil)
	if _, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID, URL: rc.srv.URL, Secret: testSecret,
		Events: []nanohook.EventType{nanohook.EventJobCompleted}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Published while no engine runs, then the process "restarts".
	if _, err := st.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: acct.ID,
		Type: nanohook.EventJobCompleted, TaskID: "t", TaskType: "image", IdempotencyKey: "k", Payload: []byte(`{}`),
		OccurredAt: time.Now(), Now: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := delivery.New(delivery.Config{Store: st, Client: egress.NewClient(egress.Options{AllowPrivate: true}), PollInterval: time.Hour})
	e.Start(ctx)
	defer e.Stop(ctx)
	if got := rc.wait(t); string(got.body) != "{}" {
		t.Fatalf("resumed delivery body = %s", got.body)
	}
}

func TestManyDeliveriesAllArriveOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, func(c *delivery.Config) { c.ClaimSize = 16 })
	const n = 300
	seen := map[string]int{}
	for i := range n {
		b.publish(t, "task_many_"+strconv.Itoa(i))
	}
	for range n {
		got := b.rcv.wait(t)
		seen[got.header.Get(webhook.HeaderEventID)]++
	}
	if len(seen) != n {
		t.Fatalf("%d distinct events arrived, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("event %s arrived %d times", id, c)
		}
	}
	// Every delivery is recorded as one successful attempt, and nothing
	// arrived again meanwhile.
	for id := int64(1); id <= n; id++ {
		d, atts := b.waitDelivery(t, id, statusIs(nanohook.DeliverySucceeded))
		if d.Attempts != 1 || len(atts) != 1 {
			t.Fatalf("delivery %d: %d attempts recorded", id, len(atts))
		}
	}
	if extra := len(b.rcv.arrived); extra != 0 {
		t.Fatalf("%d requests arrived after all %d deliveries", extra, n)
	}
}

// hangingStore is a real store whose result writes hang until their context
// ends, as a storage outage does.
type hangingStore struct {
	*sqlite.Store
	hung chan struct{}
}

func (h *hangingStore) CompleteDeliveries(ctx context.Context, _ []store.CompleteParams) error {
	select {
	case h.hung <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestStopHonoursItsDeadlineWhenStorageHangs(t *testing.T) {
	t.Parallel()
	var hs *hangingStore
	b := setup(t, nil, func(c *delivery.Config) {
		hs = &hangingStore{Store: c.Store.(*sqlite.Store), hung: make(chan struct{}, 1)}
		c.Store = hs
	})
	b.publish(t, "task_hang")
	b.rcv.wait(t)
	<-hs.hung // the outcome is being written, and the write hangs

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- b.engine.Stop(ctx) }()
	select {
	case err := <-stopped:
		if err == nil {
			t.Fatal("Stop reported success although the outcome was never recorded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop ignored its deadline while storage hung")
	}
}

func TestGracefulStopRecordsAttemptsInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := setup(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		<-release
		w.WriteHeader(http.StatusOK)
	}, nil)
	b.publish(t, "task_graceful")
	b.rcv.wait(t) // in flight now
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- b.engine.Stop(ctx)
	}()
	close(release) // the receiver answers while the engine is stopping
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	d, atts, err := b.store.GetDelivery(context.Background(), b.account.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != nanohook.DeliverySucceeded || len(atts) != 1 {
		t.Fatalf("after a graceful stop: %s with %d attempts", d.Status, len(atts))
	}
}

func TestStopBeforeStartIsHarmless(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := delivery.New(delivery.Config{Store: st})
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.Start(context.Background())
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
