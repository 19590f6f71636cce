package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// twoEndpoints is a store with one account, a "bad" endpoint subscribed to
// job.failed and `healthy` "good" ones subscribed to job.completed (all
// served by the good handler), and an engine.
type twoEndpoints struct {
	st      *sqlite.Store
	engine  *delivery.Engine
	account int64
}

func setupTwo(t *testing.T, bad, good http.Handler, healthy int, tweak func(*delivery.Config)) *twoEndpoints {
	t.Helper()
	ctx := context.Background()
	st, acct := openWithAccount(t)
	type ep struct {
		h  http.Handler
		ev nanohook.EventType
	}
	eps := []ep{{bad, nanohook.EventJobFailed}}
	for range healthy {
		eps = append(eps, ep{good, nanohook.EventJobCompleted})
	}
	for _, ep := range eps {
		srv := httptest.NewServer(ep.h)
		t.Cleanup(srv.Close)
		if _, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID, URL: srv.URL, Secret: testSecret,
			Events: []nanohook.EventType{ep.ev}, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := delivery.Config{
		Store: st, Client: egress.NewClient(egress.Options{AllowPrivate: true, Timeout: time.Minute}),
		Timeout: time.Minute, MaxInFlight: 4, MaxPerEndpoint: 2, PollInterval: time.Hour,
		Schedule: []time.Duration{time.Hour}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e := startEngine(t, cfg)
	return &twoEndpoints{st: st, engine: e, account: acct.ID}
}

// publish commits n events of type t, oldest first, and wakes the engine.
func (b *twoEndpoints) publish(t *testing.T, typ nanohook.EventType, prefix string, n int) {
	t.Helper()
	events := make([]store.PublishEventParams, n)
	for i := range events {
		task := prefix + strconv.Itoa(i)
		events[i] = store.PublishEventParams{ID: nanohook.NewEventID(), AccountID: b.account, Type: typ,
			TaskID: task, TaskType: "image", IdempotencyKey: task, Payload: []byte(`{}`),
			OccurredAt: time.Now(), Now: time.Now()}
	}
	if _, err := b.st.PublishEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	b.engine.Wake()
}

// TestDeadEndpointDoesNotHoldUpHealthyOnes: an endpoint that never answers
// gets at most MaxPerEndpoint workers, so a healthy endpoint's deliveries,
// published after a backlog to the dead one, all arrive while every attempt
// to the dead one is still hanging. Without the cap the dead endpoint's
// backlog would take all four workers for the whole (one minute) timeout.
func TestDeadEndpointDoesNotHoldUpHealthyOnes(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var deadNow, deadMax atomic.Int32
	dead := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices when the client gives up
		n := deadNow.Add(1)
		for {
			m := deadMax.Load()
			if n <= m || deadMax.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		deadNow.Add(-1)
	})
	healthy := make(chan struct{}, 200)
	good := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		healthy <- struct{}{}
	})
	b := setupTwo(t, dead, good, 5, nil)               // five healthy endpoints
	t.Cleanup(func() { close(release) })               // runs first: the hanging handlers end before the servers close
	b.publish(t, nanohook.EventJobFailed, "dead_", 20) // due first
	b.publish(t, nanohook.EventJobCompleted, "ok_", 20)
	for i := range 100 { // 20 events × 5 healthy endpoints
		select {
		case <-healthy:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 100 healthy deliveries arrived while the dead endpoint hangs", i)
		}
	}
	if m := deadMax.Load(); m > 2 {
		t.Fatalf("the dead endpoint had %d attempts in flight at once, cap is 2", m)
	}
}

// TestBreakerStopsHammeringAndProbes: after BreakerThreshold consecutive
// unanswered attempts, spanning over a second, an endpoint gets no attempts while its
// breaker is open (its deliveries stay pending, their schedule untouched);
// after the cooldown one probe goes out, and a success closes the breaker
// so the rest flow.
func TestBreakerStopsHammeringAndProbes(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	failing.Store(true)
	var requests atomic.Int32
	flaky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if failing.Load() {
			// Three failures in a row without an answer (the connection
			// is dropped) that take 1.2 s in all: an endpoint that is down.
			time.Sleep(400 * time.Millisecond)
			panic(http.ErrAbortHandler)
		}
	})
	healthy := make(chan string, 100)
	good := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		healthy <- r.Header.Get(webhook.HeaderEventID)
	})
	cooldown := make(chan struct{})
	b := setupTwo(t, flaky, good, 1, func(c *delivery.Config) {
		c.MaxInFlight, c.MaxPerEndpoint = 1, 1 // one attempt at a time: failures count in order
		c.BreakerThreshold, c.BreakerCooldown = 3, time.Hour
		c.Now = func() time.Time {
			select {
			case <-cooldown: // the test "waits" the hour out
				return time.Now().Add(2 * time.Hour)
			default:
				return time.Now()
			}
		}
	})
	b.publish(t, nanohook.EventJobFailed, "flaky_", 10)
	// A healthy delivery published after the flaky backlog arrives only once
	// the engine has passed over the flaky endpoint: by then the breaker is
	// open after exactly three attempts.
	b.publish(t, nanohook.EventJobCompleted, "ok_", 1)
	select {
	case <-healthy:
	case <-time.After(10 * time.Second):
		t.Fatal("the healthy delivery never arrived")
	}
	if n := requests.Load(); n != 3 {
		t.Fatalf("%d attempts reached the failing endpoint, want 3 before the breaker opened", n)
	}
	// Cooled down and healthy again: a probe succeeds, the breaker closes,
	// and every flaky delivery is delivered.
	failing.Store(false)
	close(cooldown)
	b.engine.Wake()
	if done := b.waitSucceeded(t, 10, 10*time.Second); done != 10 {
		t.Fatalf("%d of 10 flaky deliveries succeeded after the breaker's cooldown", done)
	}
}

// TestBreakerSparesAnEndpointThatRetriesDeliver: an endpoint that fails
// every first attempt and accepts every retry fails in runs (here 40 first
// attempts come before any retry is due), but it works: the breaker must
// not cut it off. With a one-hour cooldown, an open breaker would leave
// deliveries undelivered past the test's deadline.
func TestBreakerSparesAnEndpointThatRetriesDeliver(t *testing.T) {
	t.Parallel()
	firstFails := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(webhook.HeaderDeliveryAttempt) == "1" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	b := setupTwo(t, firstFails, http.NotFoundHandler(), 0, func(c *delivery.Config) {
		c.MaxInFlight, c.MaxPerEndpoint = 4, 4
		c.BreakerThreshold, c.BreakerCooldown = 3, time.Hour
		c.Schedule = []time.Duration{100 * time.Millisecond}
	})
	b.publish(t, nanohook.EventJobFailed, "first_fails_", 40)
	if done := b.waitSucceeded(t, 40, 10*time.Second); done != 40 {
		t.Fatalf("%d of 40 deliveries succeeded: the breaker held back an endpoint whose retries all succeed", done)
	}
}

// waitSucceeded waits up to timeout for want deliveries of the first
// endpoint to have succeeded, looking each time the engine has written to
// the store, and returns how many have.
func (b *twoEndpoints) waitSucceeded(t *testing.T, want int, timeout time.Duration) int {
	t.Helper()
	done := 0
	b.engine.Stored().Await(timeout, func() bool {
		ds, err := b.st.ListDeliveries(context.Background(), store.ListDeliveriesParams{AccountID: b.account, EndpointID: 1, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		done = 0
		for _, d := range ds {
			if d.Status == nanohook.DeliverySucceeded {
				done++
			}
		}
		return done >= want
	})
	return done
}
