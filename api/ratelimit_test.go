package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2024, 12, 23, 10, 0, 0, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countingStore is the real store, counting the key lookups made through
// it, to show that a limited client's credentials are not looked up.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (s *countingStore) APIKeyByHash(ctx context.Context, hash []byte) (nanohook.APIKey, error) {
	s.lookups.Add(1)
	return s.Store.APIKeyByHash(ctx, hash)
}

// clientFrom returns a client whose connections leave from the loopback
// address local (127.0.0.2 is another client of a server on 127.0.0.1), or
// skips the test where the system cannot do that.
func clientFrom(t *testing.T, local string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	conn, err := d.Dial("tcp", probe.Addr().String())
	if err != nil {
		t.Skipf("cannot connect from %s on this system: %v", local, err)
	}
	conn.Close()
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestAuthRateLimit: after DefaultAuthFailureLimit failed authentications a
// client's requests with credentials answer 429 with Retry-After, even with
// a right key, without the key being looked up; X-Forwarded-For does not
// change who the client is; another address is not affected; successful
// requests cost nothing; once Retry-After has passed the client is heard
// again, for one failure per second. Both listeners are limited, each on
// its own.
func TestAuthRateLimit(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	logs := &lockedBuffer{}
	var counted *countingStore
	public, admin := startAPIs(t, func(c *Config) {
		counted = &countingStore{Store: c.Store}
		c.Store, c.Now = counted, clock.now
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	adminAuth := []string{"Authorization", "Bearer " + openAPIAdminToken}
	key := jsonData(t, admin, "POST", "/admin/v1/accounts", `{"name":"limited"}`, 201, adminAuth...)["api_key"].(string)
	good := []string{"Authorization", "Bearer " + key}
	wrong := func(i int) []string { return []string{"Authorization", fmt.Sprintf("Bearer nhk_wrong%04d", i)} }
	requests := 1
	ex := func(srv *httptest.Server, method, path, body string, header ...string) (*http.Response, []byte) {
		t.Helper()
		requests++
		return exchange(t, srv, method, path, body, header...)
	}
	status := func(srv *httptest.Server, header ...string) (*http.Response, []byte) {
		t.Helper()
		return ex(srv, "GET", "/api/v1/webhooks", "", header...)
	}
	want := func(res *http.Response, raw []byte, code int, what string) {
		t.Helper()
		if res.StatusCode != code {
			t.Fatalf("%s: %d %s, want %d", what, res.StatusCode, raw, code)
		}
	}
	wantLimited := func(res *http.Response, raw []byte) int {
		t.Helper()
		what := res.Request.Method + " " + res.Request.URL.Path + " while limited"
		want(res, raw, http.StatusTooManyRequests, what)
		var env struct {
			Success bool
			Error   struct{ Code, Message string }
		}
		if err := json.Unmarshal(raw, &env); err != nil || env.Success || env.Error.Code != "rate_limited" || env.Error.Message == "" {
			t.Fatalf("%s: the 429 is not the rate_limited envelope: %s", what, raw)
		}
		secs, err := strconv.Atoi(res.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			t.Fatalf("%s: Retry-After %q, want whole seconds ≥ 1", what, res.Header.Get("Retry-After"))
		}
		return secs
	}

	// Successes cost nothing: 19 failures, many successes, one more
	// failure, and only the next one is limited.
	for i := range DefaultAuthFailureLimit - 1 {
		res, raw := status(public, wrong(i)...)
		want(res, raw, http.StatusUnauthorized, "a wrong key")
	}
	for range 50 {
		res, raw := status(public, good...)
		want(res, raw, http.StatusOK, "the right key, not yet limited")
	}
	res, raw := status(public, wrong(99)...)
	want(res, raw, http.StatusUnauthorized, "the 20th wrong key")
	lookups := counted.lookups.Load()

	secs := wantLimited(status(public, wrong(100)...))
	if secs != 1 {
		t.Fatalf("Retry-After %d, want 1 (one failure is forgiven per second)", secs)
	}
	wantLimited(status(public, good...)) // the right key waits too
	wantLimited(status(public, append(good, "X-Forwarded-For", "198.51.100.7")...))
	// The dashboard's probes and the document need no credentials.
	res, raw = ex(public, "GET", "/healthz", "")
	want(res, raw, http.StatusOK, "/healthz while limited")
	// Without credentials there is nothing to guess: the usual 401.
	res, raw = status(public)
	want(res, raw, http.StatusUnauthorized, "no credentials while limited")
	if n := counted.lookups.Load(); n != lookups {
		t.Fatalf("%d key lookups while limited, want none", n-lookups)
	}

	// Another address is not affected.
	other := clientFrom(t, "127.0.0.2")
	requests++
	res, raw = exchangeVia(t, other, public, "GET", "/api/v1/webhooks", "", good...)
	want(res, raw, http.StatusOK, "the right key from another address")

	// The admin listener counts on its own, and limits the right token too.
	for i := range DefaultAuthFailureLimit {
		res, raw = ex(admin, "POST", "/admin/v1/accounts", `{"name":"x"}`, wrong(i)...)
		want(res, raw, http.StatusUnauthorized, "a wrong admin token")
	}
	res, raw = ex(admin, "POST", "/admin/v1/accounts", `{"name":"x"}`, adminAuth...)
	wantLimited(res, raw) // the admin token after 20 failures

	// Once Retry-After has passed, one failure is allowed again.
	clock.advance(time.Duration(secs) * time.Second)
	res, raw = status(public, good...)
	want(res, raw, http.StatusOK, "the right key after Retry-After")
	res, raw = status(public, wrong(101)...)
	want(res, raw, http.StatusUnauthorized, "a wrong key after Retry-After")
	wantLimited(status(public, wrong(102)...))
	// After burst seconds the client has its whole allowance back.
	clock.advance(DefaultAuthFailureLimit * DefaultAuthFailureRefill)
	for i := range DefaultAuthFailureLimit {
		res, raw = status(public, wrong(200+i)...)
		want(res, raw, http.StatusUnauthorized, "a wrong key after a full refill")
	}
	wantLimited(status(public, wrong(300)...))

	// Each episode (from a full allowance to limited) of each listener is
	// logged once, naming the client and never a credential: the public
	// listener's first and the one after the full refill, the admin's.
	log := logs.String()
	if n := strings.Count(log, "too many failed authentications"); n != 3 {
		t.Fatalf("%d warnings about limited clients, want 3:\n%s", n, log)
	}
	if !strings.Contains(log, "client=127.0.0.1") {
		t.Fatalf("the warning does not name the client:\n%s", log)
	}
	if strings.Contains(log, key) || strings.Contains(log, "nhk_wrong") || strings.Contains(log, openAPIAdminToken) {
		t.Fatalf("the log shows a credential:\n%s", log)
	}
	t.Logf("rate limit: %d requests, %d key lookups in all", requests, counted.lookups.Load())
}

// TestAuthRateLimitOff: a negative limit never answers 429.
func TestAuthRateLimitOff(t *testing.T) {
	t.Parallel()
	public, _ := startAPIs(t, func(c *Config) { c.AuthFailureLimit = -1 })
	for i := range 3 * DefaultAuthFailureLimit {
		res, raw := exchange(t, public, "GET", "/api/v1/webhooks", "", "Authorization", fmt.Sprintf("Bearer nhk_%d", i))
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d with the limit off: %d %s", i+1, res.StatusCode, raw)
		}
	}
}

// TestAuthLimiterRetryAfter: Retry-After is the time until one failure is
// forgiven, rounded up to whole seconds, never 0.
func TestAuthLimiterRetryAfter(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	l := newAuthLimiter(Config{AuthFailureLimit: 2, AuthFailureRefill: 10 * time.Second}, clock.now, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	l.fail(ctx, "192.0.2.1")
	if _, limited := l.retryAfter("192.0.2.1"); limited {
		t.Fatal("limited after 1 failure of 2")
	}
	l.fail(ctx, "192.0.2.1")
	second := clock.now()
	for _, c := range []struct {
		after time.Duration
		want  int // 0: not limited
	}{{0, 10}, {3 * time.Second, 7}, {9500 * time.Millisecond, 1}, {9999 * time.Millisecond, 1}, {10 * time.Second, 0}} {
		l.now = func() time.Time { return second.Add(c.after) }
		got, limited := l.retryAfter("192.0.2.1")
		if limited != (c.want > 0) || got != c.want {
			t.Errorf("%v after the 2nd failure: Retry-After %d (limited %v), want %d", c.after, got, limited, c.want)
		}
	}
	if _, limited := l.retryAfter("192.0.2.2"); limited {
		t.Error("another client is limited")
	}
}

// TestAuthLimiterBounded: the limiter never tracks more clients than its
// cap, keeps the most recent limited client when it must drop one, drops
// clients that are no longer limited first, and forgets everyone once they
// have been quiet long enough to refill.
func TestAuthLimiterBounded(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	ctx := context.Background()
	l := newAuthLimiter(Config{AuthFailureClients: 100}, clock.now, slog.New(slog.DiscardHandler))
	most := 0
	for i := range 1000 {
		c := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		for range DefaultAuthFailureLimit {
			l.fail(ctx, c)
		}
		if _, limited := l.retryAfter(c); !limited {
			t.Fatalf("client %s not limited after %d failures", c, DefaultAuthFailureLimit)
		}
		most = max(most, l.tracked())
	}
	if most > 100 {
		t.Fatalf("tracked %d clients, cap 100", most)
	}
	// Quiet for longer than a refill and a sweep interval: the next new
	// client finds everyone else gone.
	clock.advance(max(authSweepEvery, DefaultAuthFailureLimit*DefaultAuthFailureRefill) + time.Second)
	l.fail(ctx, "192.0.2.1")
	if n := l.tracked(); n != 1 {
		t.Fatalf("%d clients tracked after everyone refilled, want 1", n)
	}

	// At the cap, a refilled client goes before limited ones.
	l = newAuthLimiter(Config{AuthFailureClients: 3}, clock.now, slog.New(slog.DiscardHandler))
	l.fail(ctx, "192.0.2.1") // one failure: refilled 30 s later
	clock.advance(30 * time.Second)
	for _, c := range []string{"192.0.2.2", "192.0.2.3"} {
		for range DefaultAuthFailureLimit {
			l.fail(ctx, c)
		}
	}
	l.fail(ctx, "192.0.2.4")
	if n := l.tracked(); n != 3 {
		t.Fatalf("%d clients tracked, want 3", n)
	}
	for _, c := range []string{"192.0.2.2", "192.0.2.3"} {
		if _, limited := l.retryAfter(c); !limited {
			t.Fatalf("limited client %s was dropped while a refilled one was there", c)
		}
	}
}

// TestAuthLimiterMemory measures what the default cap of clients costs,
// with twice as many clients failing, and holds it under 8 MiB. Not
// parallel, so that the heap measured is this test's.
func TestAuthLimiterMemory(t *testing.T) {
	clock := newTestClock()
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := newAuthLimiter(Config{}, clock.now, slog.New(slog.DiscardHandler))
	for i := range 2 * DefaultAuthFailureClients {
		l.fail(ctx, fmt.Sprintf("2001:db8:%x:%x::/64", i/65536, i%65536))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := l.tracked()
	if n != DefaultAuthFailureClients {
		t.Fatalf("tracked %d clients after %d, want the cap %d", n, 2*DefaultAuthFailureClients, DefaultAuthFailureClients)
	}
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("rate limiter: %d clients tracked (cap), heap %.2f MiB, %d bytes a client", n, float64(heap)/(1<<20), heap/int64(n))
	if heap > 8<<20 {
		t.Fatalf("the limiter holds %d bytes for %d clients, want under 8 MiB", heap, n)
	}
	runtime.KeepAlive(l)
}

// TestClientOf: clients are told apart by the connection's address; an
// IPv6 client by its /64; X-Forwarded-For is the client's word and is
// ignored.
func TestClientOf(t *testing.T) {
	t.Parallel()
	for remote, want := range map[string]string{
		"192.0.2.1:1234":              "192.0.2.1",
		"[::ffff:192.0.2.1]:1234":     "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:8080": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:8080":      "2001:db8:1:3::/64",
		"[fe80::1%eth0]:80":           "fe80::/64",
		"not an address":              "not an address",
	} {
		r := httptest.NewRequest("GET", "/api/v1/webhooks", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		r.Header.Set("X-Real-Ip", "203.0.113.9")
		if got := clientOf(r); got != want {
			t.Errorf("RemoteAddr %q: client %q, want %q", remote, got, want)
		}
	}
}
