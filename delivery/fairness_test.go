package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
	"github.com/nanohook/nanohook/webhook"
)

// The case issue 12 reported, with the default settings: customer B has 8
// endpoints that answer 200 after 3 s and a backlog of 300 job events (2,400
// deliveries); customer A, whose endpoint answers at once, then publishes 40
// events at 10 a second. With oldest-first claims and a fixed per-endpoint
// cap, none of A's deliveries arrived within 24 s: B's backlog held every
// worker. Now every one of A's must arrive within 300 ms of its publish,
// while B keeps getting deliveries meanwhile.
const (
	slowEndpoints   = 8
	slowAnswer      = 3 * time.Second
	slowBacklog     = 300 // events, each to every slow endpoint
	healthyEvents   = 40
	healthyInterval = 100 * time.Millisecond
	healthyP99      = 300 * time.Millisecond
	slowProgressMin = 50 // B's deliveries answered while A's arrive
	// healthyP99Race is the bound under the race detector, which
	// multiplies the CPU every step costs: on a 2-core machine running
	// other packages' tests beside it, one of the 40 deliveries now and
	// then waits 300–800 ms for a CPU, with the old engine and the new
	// alike. It still fails the old scheduler, under which none of A's
	// deliveries arrived. .ci/run also runs this test alone in the plain
	// build, where the 300 ms bound holds.
	healthyP99Race = time.Second
)

func TestSlowAccountDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fair.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		runSlowAccountCase(t, st, 1)
	})
	t.Run("postgres two nodes", func(t *testing.T) {
		t.Parallel()
		st, _, _ := openPostgres(t)
		runSlowAccountCase(t, st, 2)
	})
}

// fairStore is what the case needs from a driver.
type fairStore interface {
	delivery.Store
	CreateAccount(ctx context.Context, p store.CreateAccountParams) (nanohook.Account, nanohook.APIKey, error)
	CreateEndpoint(ctx context.Context, p store.CreateEndpointParams) (nanohook.Endpoint, error)
	PublishEvents(ctx context.Context, events []store.PublishEventParams) ([]store.PublishResult, error)
}

// runSlowAccountCase runs the case on st with the given number of engines
// (nodes) sharing it, each with the default settings.
func runSlowAccountCase(t *testing.T, st fairStore, nodes int) {
	ctx := context.Background()
	now := time.Now()
	newAccount := func(name string) int64 {
		_, hash := nanohook.NewAPIKey()
		a, _, err := st.CreateAccount(ctx, store.CreateAccountParams{Name: name, KeyHash: hash, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	addEndpoint := func(account int64, u string) {
		if _, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: account, URL: u, Secret: testSecret,
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Now: now}); err != nil {
			t.Fatal(err)
		}
	}

	// B: slow endpoints. answered counts the deliveries they answered, with
	// the time of each answer.
	var mu sync.Mutex
	var answered []time.Time
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(slowAnswer):
		case <-stop:
		case <-r.Context().Done():
			return
		}
		mu.Lock()
		answered = append(answered, time.Now())
		mu.Unlock()
	}))
	// A: answers at once, recording when each event arrived.
	arrived := make(chan struct {
		id string
		at time.Time
	}, healthyEvents*2)
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- struct {
			id string
			at time.Time
		}{r.Header.Get(webhook.HeaderEventID), time.Now()}
	}))
	t.Cleanup(fast.Close)
	t.Cleanup(slow.Close)

	b := newAccount("slow customer")
	for i := range slowEndpoints {
		addEndpoint(b, slow.URL+"/hook/"+strconv.Itoa(i))
	}
	a := newAccount("healthy customer")
	addEndpoint(a, fast.URL+"/hook")

	var engines []*delivery.Engine
	for i := range nodes {
		engines = append(engines, startEngine(t, delivery.Config{
			Store:  st,
			Client: egress.NewClient(egress.Options{AllowPrivate: true}),
			NodeID: "node-" + strconv.Itoa(i),
			Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		}))
	}
	// Registered after the engines': runs before they stop, so the held
	// answers end first and the engines stop without waiting them out.
	t.Cleanup(func() { close(stop) })
	wake := func() {
		for _, e := range engines {
			e.Wake()
		}
	}
	publish := func(account int64, task string) string {
		body := []byte(`{"event":"job.completed","task_id":"` + task + `"}`)
		res, err := st.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: account,
			Type: nanohook.EventJobCompleted, TaskID: task, TaskType: "image", IdempotencyKey: task,
			Payload: body, OccurredAt: time.Now(), Now: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		wake()
		return res[0].EventID
	}

	backlog := make([]store.PublishEventParams, slowBacklog)
	for i := range backlog {
		task := "slow_" + strconv.Itoa(i)
		backlog[i] = store.PublishEventParams{ID: nanohook.NewEventID(), AccountID: b, Type: nanohook.EventJobCompleted,
			TaskID: task, TaskType: "image", IdempotencyKey: task, Payload: []byte(`{}`), OccurredAt: now, Now: now}
	}
	if _, err := st.PublishEvents(ctx, backlog); err != nil {
		t.Fatal(err)
	}
	wake()

	// A publishes at 10 a second from now on.
	published := map[string]time.Time{}
	start := time.Now()
	tick := time.NewTicker(healthyInterval)
	defer tick.Stop()
	for i := range healthyEvents {
		if i > 0 {
			<-tick.C
		}
		published[publish(a, "fast_"+strconv.Itoa(i))] = time.Now()
	}
	var latencies []time.Duration
	deadline := time.After(10 * time.Second)
	for len(latencies) < healthyEvents {
		select {
		case got := <-arrived:
			p, ok := published[got.id]
			if !ok {
				t.Fatalf("the healthy endpoint got an event that was not published to it: %q", got.id)
			}
			latencies = append(latencies, got.at.Sub(p))
		case <-deadline:
			t.Fatalf("only %d of %d healthy deliveries arrived within 10 s of the last publish", len(latencies), healthyEvents)
		}
	}
	end := time.Now()
	slices.Sort(latencies)
	p50, p99 := latencies[len(latencies)/2], latencies[(len(latencies)*99+99)/100-1]
	mu.Lock()
	progress := 0
	for _, at := range answered {
		if !at.Before(start) && !at.After(end) {
			progress++
		}
	}
	mu.Unlock()
	t.Logf("%d nodes: healthy p50 %v, p99 %v, max %v; slow account answered %d deliveries in the %v window",
		nodes, p50.Round(time.Millisecond), p99.Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond),
		progress, end.Sub(start).Round(time.Millisecond))
	bound := healthyP99
	if raceEnabled {
		bound = healthyP99Race
	}
	if p99 > bound {
		t.Errorf("the healthy account's p99 is %v beside the slow account's backlog, want at most %v", p99, bound)
	}
	if progress < slowProgressMin {
		t.Errorf("the slow account got %d deliveries answered while the healthy one's arrived, want at least %d: fairness must not park it",
			progress, slowProgressMin)
	}
}
