package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/internal/testsignal"
	"github.com/nanohook/nanohook/store"
)

// probeStore is the real store with its write probe under the test's
// control: it counts the probes, fails them while fail is set, and holds
// each until gate lets it through when gate is non-nil.
type probeStore struct {
	api.Store
	probes atomic.Int64
	began  testsignal.Signal // a probe began; off unless the test inits it
	fail   atomic.Bool
	gate   chan struct{}
}

func (s *probeStore) ProbeWrite(ctx context.Context) error {
	s.probes.Add(1)
	s.began.Notify()
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.fail.Load() {
		return fmt.Errorf("sqlite: write probe: %w: database or disk is full (13)", store.ErrUnavailable)
	}
	return s.Store.ProbeWrite(ctx)
}

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// withProbeStore sets up a bundle whose store is ps around the real one and
// whose clock is clock.
func withProbeStore(t *testing.T, ps *probeStore, clock *testClock) *bundle {
	t.Helper()
	return setup(t, func(c *api.Config) {
		ps.Store = c.Store
		c.Store = ps
		c.Now = clock.Now
	})
}

// TestReadyzProbesAWrite: /readyz answers 503 when storage answers a ping
// but a write fails (issue 13, item 10), logs the cause once per probe,
// and answers 200 again once a write succeeds. Outcomes are reused for
// one second, so the change shows after at most that.
func TestReadyzProbesAWrite(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: testNow}
	ps := &probeStore{}
	b := withProbeStore(t, ps, clock)

	call(t, b.admin, "GET", "/readyz", "", "", "").wantSuccess(t, 200)
	ps.fail.Store(true)
	call(t, b.admin, "GET", "/readyz", "", "", "").wantSuccess(t, 200) // the outcome of a moment ago
	clock.Add(time.Second)
	for range 3 {
		r := call(t, b.admin, "GET", "/readyz", "", "", "")
		msg := r.wantError(t, 503, "storage_unavailable", "")
		if msg != "storage does not take writes" || r.header.Get("Retry-After") != "1" || strings.Contains(string(r.raw), "disk") {
			t.Fatalf("503: %v %s", r.header, r.raw)
		}
	}
	if got := strings.Count(b.logs.String(), "api: readiness write probe failed"); got != 1 {
		t.Errorf("the failed probe was logged %d times, want once:\n%s", got, b.logs)
	}
	if !strings.Contains(b.logs.String(), "disk is full") {
		t.Errorf("the log does not carry the probe's error:\n%s", b.logs)
	}
	call(t, b.public, "GET", "/healthz", "", "", "").wantSuccess(t, 200)

	ps.fail.Store(false)
	clock.Add(time.Second)
	call(t, b.admin, "GET", "/readyz", "", "", "").wantSuccess(t, 200)
	if got := ps.probes.Load(); got != 3 {
		t.Errorf("%d write probes for 6 requests spread over 3 seconds, want 3", got)
	}
}

// TestReadyzFloodProbesOnce: many concurrent /readyz requests while a
// probe is slow share that one probe, and requests within a second after
// it reuse its outcome: a flood cannot queue writes on the writer.
func TestReadyzFloodProbesOnce(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: testNow}
	ps := &probeStore{gate: make(chan struct{})}
	ps.began.Init()
	b := withProbeStore(t, ps, clock)

	const flood = 50
	statuses := make(chan int, flood)
	var wg sync.WaitGroup
	for range flood {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", b.public.URL+"/readyz", nil)
			res, err := b.public.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		})
	}
	// Let the probe through once every request is waiting on it: the
	// first has started it, and the rest are given a moment to arrive
	// (those that come later reuse its outcome, as the clock stands still).
	ps.began.Await(10*time.Second, func() bool { return ps.probes.Load() > 0 })
	time.Sleep(100 * time.Millisecond)
	close(ps.gate)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("/readyz answered %d", s)
		}
	}
	for range 20 {
		call(t, b.public, "GET", "/readyz", "", "", "").wantSuccess(t, 200)
	}
	if got := ps.probes.Load(); got != 1 {
		t.Errorf("%d write probes for %d requests within a second, want 1", got, flood+20)
	}
}

// TestReadyzBoundsAHungProbe: a write probe that never returns (a writer
// stuck behind another process's lock) makes /readyz answer 503 within
// its bound instead of hanging.
func TestReadyzBoundsAHungProbe(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: testNow}
	ps := &probeStore{gate: make(chan struct{})} // never opened
	b := withProbeStore(t, ps, clock)
	start := time.Now()
	call(t, b.admin, "GET", "/readyz", "", "", "").wantError(t, 503, "storage_unavailable", "")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("/readyz took %v with a hung probe", took)
	}
}
