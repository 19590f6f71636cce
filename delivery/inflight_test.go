package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/internal/testsignal"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
)

// inflightHeapPerAttempt bounds the engine's heap per attempt in flight to
// a receiver that does not answer: the goroutine's state, the request, the
// connection's buffers and the lease, not a copy of anything large.
const inflightHeapPerAttempt = 64 << 10

// TestThousandsInFlightInBoundedMemory: attempts wait on the network, so
// the engine holds thousands in flight at once, to receivers that hang,
// with the default per-endpoint and per-account limits (spread over
// accounts and endpoints as a real node's load would be), in bounded
// memory; when the receivers answer,
// every delivery succeeds. 5,000 in flight (1,000 under the race detector,
// whose goroutine limit the receiver's side alone would exceed).
func TestThousandsInFlightInBoundedMemory(t *testing.T) {
	t.Parallel()
	accounts, perAccount := 10, 500 // 5,000 endpoints, one delivery each
	if raceEnabled {
		accounts, perAccount = 4, 250
	}
	want := accounts * perAccount
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "inflight.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	release := make(chan struct{})
	var held, answered atomic.Int64
	var counted testsignal.Signal // held or answered counted one more
	counted.Init()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		held.Add(1)
		counted.Notify()
		select {
		case <-release:
			answered.Add(1)
			counted.Notify()
		case <-r.Context().Done():
		}
	}))
	srv.Config.MaxHeaderBytes = 4 << 10
	srv.Start()
	t.Cleanup(srv.Close)

	now := time.Now()
	var events []store.PublishEventParams
	for a := range accounts {
		_, hash := nanohook.NewAPIKey()
		acct, _, err := st.CreateAccount(ctx, store.CreateAccountParams{Name: "a" + strconv.Itoa(a), KeyHash: hash, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		for e := range perAccount {
			if _, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID,
				URL: srv.URL + "/" + strconv.Itoa(a) + "/" + strconv.Itoa(e), Secret: testSecret,
				Events: []nanohook.EventType{nanohook.EventJobCompleted}, Now: now}); err != nil {
				t.Fatal(err)
			}
		}
		events = append(events, store.PublishEventParams{ID: nanohook.NewEventID(), AccountID: acct.ID,
			Type: nanohook.EventJobCompleted, TaskID: "t", TaskType: "image", IdempotencyKey: "t",
			Payload: []byte(`{"event":"job.completed","task_id":"t"}`), OccurredAt: now, Now: now})
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	e := startEngine(t, delivery.Config{
		Store:  st,
		Client: egress.NewClient(egress.Options{AllowPrivate: true, Timeout: time.Minute}),
		// One minute: nothing may time out while the test looks.
		Timeout:     time.Minute,
		MaxInFlight: want,
		Logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	if _, err := st.PublishEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	e.Wake()
	if !counted.Await(60*time.Second, func() bool { return held.Load() >= int64(want) }) {
		t.Fatalf("only %d of %d attempts in flight after 60 s", held.Load(), want)
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	grown := int64(during.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d attempts in flight: heap %.1f MiB over the idle %.1f MiB (%.1f KiB each, engine and receiver together), %d goroutines over %d",
		want, float64(grown)/(1<<20), float64(before.HeapInuse)/(1<<20), float64(grown)/float64(want)/1024,
		runtime.NumGoroutine()-goroutinesBefore, goroutinesBefore)
	if per := grown / int64(want); per > inflightHeapPerAttempt {
		t.Errorf("%d bytes of heap per attempt in flight, want at most %d", per, inflightHeapPerAttempt)
	}

	close(release)
	if !counted.Await(60*time.Second, func() bool { return answered.Load() >= int64(want) }) {
		t.Fatalf("only %d of %d held attempts were answered after the release", answered.Load(), want)
	}
}
