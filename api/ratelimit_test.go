package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
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
	Store
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
// a right key that never authenticated, without the key being looked up (a
// key that did is served: TestAuthLimitProvenCredentials); X-Forwarded-For does not
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
	d := jsonData(t, admin, "POST", "/admin/v1/accounts", `{"name":"limited"}`, 201, adminAuth...)
	key := d["api_key"].(string)
	good := []string{"Authorization", "Bearer " + key}
	// A right key that has not authenticated yet when the client is limited.
	fresh := []string{"Authorization", "Bearer " + jsonData(t, admin, "POST", fmt.Sprintf("/admin/v1/accounts/%d/keys", int64(d["id"].(float64))), "", 201, adminAuth...)["api_key"].(string)}
	wrong := func(i int) []string { return []string{"Authorization", fmt.Sprintf("Bearer nhk_wrong%04d", i)} }
	requests := 2 // the account and the fresh key
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
	wantLimited(status(public, fresh...)) // a right key that never authenticated waits too
	wantLimited(status(public, append(fresh, "X-Forwarded-For", "198.51.100.7")...))
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
	res, raw = exchangeVia(t, other, public, "GET", "/api/v1/webhooks", "", fresh...)
	want(res, raw, http.StatusOK, "a right key from another address")

	// The admin listener counts on its own, and still serves its token,
	// which authenticated before (creating the account).
	for i := range DefaultAuthFailureLimit {
		res, raw = ex(admin, "POST", "/admin/v1/accounts", `{"name":"x"}`, wrong(i)...)
		want(res, raw, http.StatusUnauthorized, "a wrong admin token")
	}
	wantLimited(ex(admin, "POST", "/admin/v1/accounts", `{"name":"x"}`, wrong(99)...))
	res, raw = ex(admin, "POST", "/admin/v1/accounts", `{"name":"x"}`, adminAuth...)
	want(res, raw, http.StatusCreated, "the admin token after 20 failures")

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
// cap, and clients beyond it are limited too (by the overflow bucket,
// TestAuthLimiterFlood); it drops clients that are no longer limited to
// make room, and forgets everyone once they have been quiet long enough to
// refill.
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
// with twice as many clients failing, and holds it under 8 MiB; then the
// same for the proven credentials, with twice their cap authenticating.
// Not parallel, so that the heap measured is this test's.
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

	runtime.GC()
	runtime.ReadMemStats(&before)
	l = newAuthLimiter(Config{}, clock.now, slog.New(slog.DiscardHandler))
	for i := range 2 * authProvenMax {
		tk, _, ok := l.admit("192.0.2.1", sha256.Sum256(fmt.Appendf(nil, "nhk_key%d", i)))
		if !ok {
			t.Fatalf("credential %d refused", i)
		}
		l.done(ctx, tk, nil)
		clock.advance(time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	l.mu.Lock()
	n = len(l.proven.at)
	l.mu.Unlock()
	if n != authProvenMax {
		t.Fatalf("%d proven credentials after %d, want the cap %d", n, 2*authProvenMax, authProvenMax)
	}
	heap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("rate limiter: %d proven credentials (cap), heap %.2f MiB, %d bytes a credential", n, float64(heap)/(1<<20), heap/int64(n))
	if heap > 4<<20 {
		t.Fatalf("the limiter holds %d bytes for %d proven credentials, want under 4 MiB", heap, n)
	}
	runtime.KeepAlive(l)
}

// TestAuthProvenSet: the proven credentials expire authProvenTTL after
// their last success, and at the cap the least recently successful goes
// first (the probe sees the whole of a small set).
func TestAuthProvenSet(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	p := provenSet{ttl: time.Hour, max: 4, at: map[credential]int64{}}
	cred := func(i int) credential { return sha256.Sum256(fmt.Appendf(nil, "nhk_%d", i)) }
	for i := range 4 {
		p.add(cred(i), clock.now())
		clock.advance(time.Minute)
	}
	p.add(cred(0), clock.now()) // used again: now the most recent
	p.add(cred(4), clock.now()) // full: the oldest, 1, goes
	for i, want := range []bool{true, false, true, true, true} {
		if got := p.has(cred(i), clock.now()); got != want {
			t.Errorf("credential %d proven: %v, want %v", i, got, want)
		}
	}
	if len(p.at) != 4 {
		t.Fatalf("%d credentials, cap 4", len(p.at))
	}
	clock.advance(time.Hour - time.Minute)
	if p.has(cred(2), clock.now()) || !p.has(cred(0), clock.now()) {
		t.Fatal("a credential outlived its hour since its last success, or one did not reach it")
	}
	p.forget(cred(0))
	if p.has(cred(0), clock.now()) {
		t.Fatal("a forgotten credential is still proven")
	}
}

// TestAuthLimiterTickets: an authentication holds a token while it runs
// and gives it back unless it fails, also when it panics; a proven
// credential holds none, and a failure forgets it.
func TestAuthLimiterTickets(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	ctx := context.Background()
	l := newAuthLimiter(Config{AuthFailureLimit: 2}, clock.now, slog.New(slog.DiscardHandler))
	const client = "192.0.2.1"
	key, other := sha256.Sum256([]byte("nhk_right")), sha256.Sum256([]byte("nhk_other"))
	t1, _, ok1 := l.admit(client, key)
	t2, _, ok2 := l.admit(client, other)
	if !ok1 || !ok2 {
		t.Fatal("the first two authentications were refused")
	}
	if _, secs, ok := l.admit(client, credential{}); ok || secs < 1 {
		t.Fatalf("a third authentication while two hold the 2 tokens: admitted %v, Retry-After %d", ok, secs)
	}
	l.done(ctx, t1, nil) // a success gives its token back and proves the key
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic of authenticate was swallowed")
			}
		}()
		l.settle(ctx, t2, func() (*http.Request, error) { panic("a bug in authenticate") })
	}()
	// A storage outage gives its token back too.
	t3, _, ok := l.admit(client, other)
	if !ok {
		t.Fatal("refused after a success and a panic gave their tokens back")
	}
	l.done(ctx, t3, errors.New("storage unavailable"))
	// Two failures spend the allowance.
	for i := range 2 {
		tk, _, ok := l.admit(client, other)
		if !ok {
			t.Fatalf("failure %d refused: a token was lost", i+1)
		}
		l.done(ctx, tk, errUnauthorized)
	}
	if _, _, ok := l.admit(client, other); ok {
		t.Fatal("admitted after 2 failures of 2")
	}
	// The proven key is still admitted, holding no token; when it fails
	// (revoked) it is forgotten and waits like the rest.
	tk, _, ok := l.admit(client, key)
	if !ok || tk.b != nil {
		t.Fatalf("the proven key from a limited client: admitted %v, holding a token %v", ok, tk.b != nil)
	}
	l.done(ctx, tk, errUnauthorized)
	if _, _, ok := l.admit(client, key); ok {
		t.Fatal("the proven key is still admitted after it failed")
	}
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

// TestAuthLimitProvenCredentials: behind a reverse proxy every customer
// shares one address, so a guesser (or a cron job with a revoked key) gets
// it limited for all. Credentials that authenticated before, from any
// address, are still looked up and served from a limited address; a
// guessed key, and a right key that never authenticated, wait without a
// lookup; a revoked key that had authenticated is looked up once more,
// answers 401 and then waits like the rest. The admin token likewise.
func TestAuthLimitProvenCredentials(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	var counted *countingStore
	public, admin := startAPIs(t, func(c *Config) {
		counted = &countingStore{Store: c.Store}
		c.Store, c.Now = counted, clock.now
	})
	adminAuth := []string{"Authorization", "Bearer " + openAPIAdminToken}
	d := jsonData(t, admin, "POST", "/admin/v1/accounts", `{"name":"proxied"}`, 201, adminAuth...)
	acct, used := int64(d["id"].(float64)), d["api_key"].(string)
	newKey := func() (string, int64) {
		d := jsonData(t, admin, "POST", fmt.Sprintf("/admin/v1/accounts/%d/keys", acct), "", 201, adminAuth...)
		return d["api_key"].(string), int64(d["id"].(float64))
	}
	unused, _ := newKey()
	revoked, revokedID := newKey()
	bearerOf := func(key string) []string { return []string{"Authorization", "Bearer " + key} }
	status := func(srv *httptest.Server, method, path, body string, key string) int {
		t.Helper()
		res, _ := exchange(t, srv, method, path, body, bearerOf(key)...)
		return res.StatusCode
	}
	list := func(key string) int {
		t.Helper()
		return status(public, "GET", "/api/v1/webhooks", "", key)
	}

	// Two customers' keys authenticate, then one is revoked.
	for _, k := range []string{used, revoked} {
		if got := list(k); got != http.StatusOK {
			t.Fatalf("a new key: %d, want 200", got)
		}
	}
	if got := status(admin, "DELETE", fmt.Sprintf("/admin/v1/accounts/%d/keys/%d", acct, revokedID), "", openAPIAdminToken); got != http.StatusOK {
		t.Fatalf("revoke a key: %d", got)
	}
	// Someone behind the same proxy guesses until the address is limited.
	for i := range DefaultAuthFailureLimit {
		if got := list(fmt.Sprintf("nhk_guess%04d", i)); got != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, got)
		}
	}
	before := counted.lookups.Load()
	if got := list("nhk_guess9999"); got != http.StatusTooManyRequests {
		t.Fatalf("a guess from the limited address: %d, want 429", got)
	}
	if got := list(unused); got != http.StatusTooManyRequests {
		t.Fatalf("a right key that never authenticated, from the limited address: %d, want 429", got)
	}
	if n := counted.lookups.Load() - before; n != 0 {
		t.Fatalf("%d key lookups for unproven credentials while limited, want none", n)
	}
	for range 5 {
		if got := list(used); got != http.StatusOK {
			t.Fatalf("a key that authenticated before, from the limited address: %d, want 200", got)
		}
	}
	if n := counted.lookups.Load() - before; n != 5 {
		t.Fatalf("%d key lookups for the proven key, want 5", n)
	}
	// The revoked key is looked up once, refused, and forgotten.
	if got := list(revoked); got != http.StatusUnauthorized {
		t.Fatalf("a revoked key that had authenticated: %d, want 401", got)
	}
	if got := list(revoked); got != http.StatusTooManyRequests {
		t.Fatalf("the revoked key again: %d, want 429", got)
	}
	if n := counted.lookups.Load() - before; n != 6 {
		t.Fatalf("%d key lookups, want 6 (5 for the proven key, 1 for the revoked one)", n)
	}

	// The admin listener: its token authenticated above, so it outlives a
	// guesser; a guess does not.
	for i := range DefaultAuthFailureLimit {
		if got := status(admin, "POST", "/admin/v1/accounts", `{"name":"x"}`, fmt.Sprintf("guess%d", i)); got != http.StatusUnauthorized {
			t.Fatalf("admin guess %d: %d, want 401", i, got)
		}
	}
	if got := status(admin, "POST", "/admin/v1/accounts", `{"name":"x"}`, "guess-again"); got != http.StatusTooManyRequests {
		t.Fatalf("an admin guess from the limited address: %d, want 429", got)
	}
	if got := status(admin, "POST", "/admin/v1/accounts", `{"name":"still-served"}`, openAPIAdminToken); got != http.StatusCreated {
		t.Fatalf("the admin token, which authenticated before, from the limited address: %d, want 201", got)
	}
}

// gatedStore is the real store whose key lookups wait at a gate until the
// test opens it, so that every request of a burst is in the server at once.
type gatedStore struct {
	Store
	entered chan struct{} // one value per lookup that reached the gate
	gate    chan struct{} // closed by the test
}

func (s *gatedStore) APIKeyByHash(ctx context.Context, hash []byte) (nanohook.APIKey, error) {
	s.entered <- struct{}{}
	<-s.gate
	return s.Store.APIKeyByHash(ctx, hash)
}

// TestAuthLimitConcurrentGuesses: wrong keys sent all at once cannot
// outrun the limit. Each lookup holds one of the client's tokens until its
// answer is known, so however many requests arrive together, at most
// DefaultAuthFailureLimit keys are looked up; the rest answer 429 at once.
// The lookups wait at a gate that opens only when every request is either
// inside a lookup or answered: no timing is involved, and without the
// limit every request would be inside a lookup.
func TestAuthLimitConcurrentGuesses(t *testing.T) {
	t.Parallel()
	const n = 300
	gated := &gatedStore{entered: make(chan struct{}, n), gate: make(chan struct{})}
	opened := false
	open := func() {
		if !opened {
			opened = true
			close(gated.gate)
		}
	}
	t.Cleanup(open) // never leave a handler waiting
	public, _ := startAPIs(t, func(c *Config) {
		gated.Store = c.Store
		c.Store, c.Now = gated, newTestClock().now
	})
	client := public.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = n
	answered := make(chan int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			req, err := http.NewRequest("GET", public.URL+"/api/v1/webhooks", nil)
			if err != nil {
				t.Error(err)
				answered <- 0
				return
			}
			req.Header.Set("Authorization", fmt.Sprintf("Bearer nhk_concurrent%04d", i))
			res, err := client.Do(req)
			if err != nil {
				t.Error(err)
				answered <- 0
				return
			}
			res.Body.Close()
			if res.StatusCode == http.StatusTooManyRequests {
				if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || secs < 1 {
					t.Errorf("429 with Retry-After %q", res.Header.Get("Retry-After"))
				}
			}
			answered <- res.StatusCode
		})
	}
	close(start)
	codes := map[int]int{}
	inside, done := 0, 0
	for done < n {
		if inside+done == n {
			open() // every request is looked up or answered
		}
		select {
		case <-gated.entered:
			inside++
		case code := <-answered:
			codes[code]++
			done++
		case <-time.After(time.Minute):
			open()
			wg.Wait()
			t.Fatalf("stuck: %d lookups, %d answers of %d", inside, done, n)
		}
	}
	wg.Wait()
	t.Logf("concurrent guesses: %d requests at once, %d key lookups (limit %d), answers %v", n, inside, DefaultAuthFailureLimit, codes)
	if inside > DefaultAuthFailureLimit {
		t.Fatalf("%d wrong keys looked up from one client sending %d at once, want at most %d", inside, n, DefaultAuthFailureLimit)
	}
	if codes[http.StatusUnauthorized] != inside || codes[http.StatusTooManyRequests] != n-inside {
		t.Fatalf("answers %v, want %d × 401 (one per lookup) and the rest 429", codes, inside)
	}
}

// TestAuthLimiterFlood: an attacker with more addresses than the limiter
// tracks (IPv6 /64s are cheap) cannot get limited clients dropped to start
// afresh. Limited clients stay; new clients beyond the cap share one
// overflow bucket, so the flood as a whole is limited once it is spent,
// and memory stays at the cap.
func TestAuthLimiterFlood(t *testing.T) {
	t.Parallel()
	const capacity = 3
	clock := newTestClock()
	ctx := context.Background()
	l := newAuthLimiter(Config{AuthFailureClients: capacity}, clock.now, slog.New(slog.DiscardHandler))
	limited := func(c string) bool {
		_, lim := l.retryAfter(c)
		return lim
	}
	for i := range capacity {
		c := fmt.Sprintf("2001:db8:%x::/64", i)
		for range DefaultAuthFailureLimit {
			l.fail(ctx, c)
		}
	}
	// The next address fails its allowance (the overflow's) and is limited.
	for range DefaultAuthFailureLimit {
		l.fail(ctx, "2001:db8:ff::/64")
	}
	if !limited("2001:db8:ff::/64") {
		t.Fatal("a client beyond the cap is not limited after its failures")
	}
	// Every later address finds the overflow spent, and no limited client
	// was dropped to make room.
	for i := range 1000 {
		c := fmt.Sprintf("2001:db8:1:%x::/64", i)
		if !limited(c) {
			t.Fatalf("new client %d of a flood beyond the cap is not limited", i)
		}
		l.fail(ctx, c)
	}
	for i := range capacity {
		if c := fmt.Sprintf("2001:db8:%x::/64", i); !limited(c) {
			t.Fatalf("limited client %s was dropped during the flood", c)
		}
	}
	if n := l.tracked(); n > capacity {
		t.Fatalf("tracked %d clients, cap %d", n, capacity)
	}
	// Once the tracked clients have refilled, a new client has a bucket
	// of its own again.
	clock.advance(max(authSweepEvery, DefaultAuthFailureLimit*DefaultAuthFailureRefill) + time.Second)
	if limited("2001:db8:2:1::/64") {
		t.Fatal("a new client is limited after the flood refilled")
	}
}

// TestAuthLimitIgnoresRequestsWithoutCredentials: a request with no
// Authorization header guesses nothing and causes no lookup, so it costs
// nothing. Behind a shared proxy, a crawler sending none must not get
// every customer's not yet proven keys refused.
func TestAuthLimitIgnoresRequestsWithoutCredentials(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	public, admin := startAPIs(t, func(c *Config) { c.Now = clock.now })
	adminAuth := []string{"Authorization", "Bearer " + openAPIAdminToken}
	key := jsonData(t, admin, "POST", "/admin/v1/accounts", `{"name":"crawled"}`, 201, adminAuth...)["api_key"].(string)
	for i := range 3 * DefaultAuthFailureLimit {
		if res, raw := exchange(t, public, "GET", "/api/v1/webhooks", ""); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d without credentials: %d %s, want 401", i, res.StatusCode, raw)
		}
	}
	if res, raw := exchange(t, public, "GET", "/api/v1/webhooks", "", "Authorization", "Bearer "+key); res.StatusCode != http.StatusOK {
		t.Fatalf("a right key after %d requests without credentials: %d %s, want 200", 3*DefaultAuthFailureLimit, res.StatusCode, raw)
	}
}
