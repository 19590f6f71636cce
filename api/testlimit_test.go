package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
)

// holdingReceiver answers 204 after a short hold and records the most
// requests it had in flight at once.
type holdingReceiver struct {
	*httptest.Server
	inFlight, most, total atomic.Int64
}

func newHoldingReceiver(t *testing.T, hold time.Duration) *holdingReceiver {
	r := &holdingReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := r.inFlight.Add(1)
		defer r.inFlight.Add(-1)
		r.total.Add(1)
		for m := r.most.Load(); n > m && !r.most.CompareAndSwap(m, n); m = r.most.Load() {
		}
		time.Sleep(hold)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

// TestTestCallsRateLimited: 300 concurrent test calls of one account, made
// through the real delivery engine to a real receiver, are admitted up to
// the account's allowance (DefaultTestCallBurst) and the rest answer 429
// rate_limited with Retry-After, before anything is sent or stored. The
// receiver never has more than the allowance in flight. Another account
// keeps its own allowance. Before the limit all 300 were sent at once.
func TestTestCallsRateLimited(t *testing.T) {
	t.Parallel()
	rcv := newHoldingReceiver(t, 20*time.Millisecond)
	client := egress.NewClient(egress.Options{AllowPrivate: true, UserAgent: "nanohook/test"})
	t.Cleanup(client.CloseIdleConnections)
	b := setup(t, func(c *api.Config) {
		c.AllowHTTP = true
		c.Tester = delivery.New(delivery.Config{Store: c.Store.(delivery.Store), Client: client, UserAgent: "nanohook/test", MaxInFlight: 4})
	})
	_, key := b.newAccount(t, "a")
	_, otherKey := b.newAccount(t, "b")
	id := b.newWebhook(t, key, rcv.URL+"/a")
	otherID := b.newWebhook(t, otherKey, rcv.URL+"/b")

	const calls = 300
	admitted, denied, retryAfter := testCallsAtOnce(t, b, id, key, calls)
	t.Logf("%d concurrent test calls: %d admitted, %d refused (Retry-After %v); receiver: %d requests, at most %d at once",
		calls, admitted, denied, retryAfter, rcv.total.Load(), rcv.most.Load())
	if admitted > api.DefaultTestCallBurst || admitted+denied != calls {
		t.Fatalf("%d admitted and %d refused, want at most %d admitted", admitted, denied, api.DefaultTestCallBurst)
	}
	if most := rcv.most.Load(); most > api.DefaultTestCallBurst {
		t.Fatalf("the receiver had %d test requests in flight at once", most)
	}
	// The test clock stands still: a token comes back in the whole refill.
	if want := strconv.Itoa(int(api.DefaultTestCallRefill / time.Second)); retryAfter[want] != denied {
		t.Fatalf("Retry-After of the refusals: %v, want %s on each", retryAfter, want)
	}
	b.pub(t, "POST", fmt.Sprintf("/api/v1/webhooks/%d/test", otherID), otherKey, "").wantData(t, http.StatusOK)
}

// TestTestCallAllowanceRefills: beyond the allowance a call waits for the
// refill, one call per TestCallRefill, and Retry-After says how long.
func TestTestCallAllowanceRefills(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	b := setup(t, func(c *api.Config) {
		c.Tester = okTester{}
		c.TestCallBurst, c.TestCallRefill = 2, 10*time.Second
		c.Now = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	})
	_, key := b.newAccount(t, "a")
	path := fmt.Sprintf("/api/v1/webhooks/%d/test", b.newWebhook(t, key, "https://example.com/hook"))
	b.pub(t, "POST", path, key, "").wantData(t, http.StatusOK)
	b.pub(t, "POST", path, key, "").wantData(t, http.StatusOK)
	r := b.pub(t, "POST", path, key, "")
	r.wantError(t, http.StatusTooManyRequests, "rate_limited", "")
	if got := r.header.Get("Retry-After"); got != "10" {
		t.Fatalf("Retry-After %q, want 10", got)
	}
	now.Add(int64(4 * time.Second))
	if got := b.pub(t, "POST", path, key, "").header.Get("Retry-After"); got != "6" {
		t.Fatalf("Retry-After %q 4 s later, want 6", got)
	}
	now.Add(int64(6 * time.Second))
	b.pub(t, "POST", path, key, "").wantData(t, http.StatusOK)
	b.pub(t, "POST", path, key, "").wantError(t, http.StatusTooManyRequests, "rate_limited", "")
}

// TestTestCallsHoldToTheEndpointCap: with the account's allowance out of
// the way, 300 concurrent test calls to one endpoint never put more than
// the endpoint's cap (the engine's MaxPerEndpoint, 64 by default) in flight
// at its receiver: the calls beyond it answer 429 rate_limited with
// Retry-After, and write no delivery. Before the engine counted test calls,
// every one of the 300 went out at once.
func TestTestCallsHoldToTheEndpointCap(t *testing.T) {
	t.Parallel()
	rcv := newHoldingReceiver(t, 300*time.Millisecond)
	client := egress.NewClient(egress.Options{AllowPrivate: true, UserAgent: "nanohook/test"})
	t.Cleanup(client.CloseIdleConnections)
	b := setup(t, func(c *api.Config) {
		c.AllowHTTP = true
		c.TestCallBurst = -1 // no account allowance: the endpoint's cap is what is tested
		c.Tester = delivery.New(delivery.Config{Store: c.Store.(delivery.Store), Client: client, UserAgent: "nanohook/test"})
	})
	_, key := b.newAccount(t, "a")
	id := b.newWebhook(t, key, rcv.URL+"/a")

	const calls = 300
	admitted, denied, _ := testCallsAtOnce(t, b, id, key, calls)
	most := rcv.most.Load()
	t.Logf("%d concurrent test calls: %d admitted, %d refused; receiver: %d requests, at most %d at once",
		calls, admitted, denied, rcv.total.Load(), most)
	if most > delivery.DefaultMaxPerEndpoint {
		t.Fatalf("the receiver had %d test requests in flight at once, the endpoint cap is %d", most, delivery.DefaultMaxPerEndpoint)
	}
	if denied == 0 || admitted+denied != calls || int64(admitted) != rcv.total.Load() {
		t.Fatalf("%d admitted, %d refused, %d received: the refused calls must not be sent", admitted, denied, rcv.total.Load())
	}
	page := b.pub(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=100", id), key, "")
	if got := len(page.wantSuccess(t, http.StatusOK).([]any)); got != admitted {
		t.Fatalf("%d deliveries recorded for %d admitted test calls: refused calls must write nothing", got, admitted)
	}
}

// testCallsAtOnce makes n test calls to endpoint id at once, and counts the
// admitted (200) and the refused (429 rate_limited, by Retry-After); any
// other answer, or a refusal without rate_limited, fails the test.
func testCallsAtOnce(t *testing.T, b *bundle, id int64, key string, n int) (admitted, denied int, retryAfter map[string]int) {
	t.Helper()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	retryAfter = map[string]int{}
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			r := b.pub(t, "POST", fmt.Sprintf("/api/v1/webhooks/%d/test", id), key, "")
			mu.Lock()
			defer mu.Unlock()
			switch r.status {
			case http.StatusOK:
				admitted++
			case http.StatusTooManyRequests:
				denied++
				retryAfter[r.header.Get("Retry-After")]++
				if e, _ := r.body["error"].(map[string]any); e["code"] != "rate_limited" || r.header.Get("Retry-After") == "" {
					t.Errorf("refusal without rate_limited and Retry-After: %s", r.raw)
				}
			default:
				t.Errorf("test call: %d %s", r.status, r.raw)
			}
		})
	}
	close(start)
	wg.Wait()
	return admitted, denied, retryAfter
}
