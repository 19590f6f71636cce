package delivery_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/delivery"
	"github.com/nanohook/nanohook/egress"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/webhook"
)

// TestHostileReceivers points endpoints at each kind of receiver that
// misbehaves, several deliveries each, and checks that every delivery ends in
// its documented state (DESIGN §4) with an error that says what happened,
// within the attempt timeout (3 s); that the heap and the goroutine count stay
// bounded while they run; and that nothing is left running afterwards
// (goleak in TestMain).
//
// It does not call t.Parallel: it measures the process's heap and goroutines,
// which other tests running alongside would disturb.
func TestHostileReceivers(t *testing.T) {
	// Long enough for a TLS handshake under -race on a loaded machine: the
	// certificate case must fail on the certificate, not on the clock.
	const timeout = 3 * time.Second
	// Deliveries per case: fewer than the breaker's threshold (5), so every
	// one of them is attempted rather than held back by an open breaker.
	const perCase = 4
	// A failure waits the first step (30 s, ±10 %) before its retry; a 429's
	// Retry-After of 120 s is longer than that step and is honoured, up to
	// the next step (1 h).
	schedule := []time.Duration{30 * time.Second, time.Hour}
	const (
		retryStep = 1 // the attempt is followed by the first step's wait
		retry429  = 2 // by Retry-After's 120 s
		final     = 0 // no retry
	)
	cases := []struct {
		name    string
		url     string
		status  nanohook.DeliveryStatus
		retry   int    // retryStep, retry429 or final
		code    int    // the recorded response status; 0: none
		errHas  string // in the attempt's error, alternatives split by "|" ("": no error)
		maxBody int    // most response bytes kept
		disable bool   // the endpoint ends disabled
	}{
		{name: "accepts and never answers", url: "http://" + rawServer(t, holdOpen),
			status: nanohook.DeliveryPending, retry: retryStep, errHas: "timeout"},
		{name: "headers, then a byte a second", url: "http://" + rawServer(t, trickle),
			status: nanohook.DeliverySucceeded, code: 200}, // the status decides; the body is cut at the timeout
		{name: "resets the connection", url: "http://" + rawServer(t, reset),
			status: nanohook.DeliveryPending, retry: retryStep, errHas: "connection reset|EOF"}, // RST while reading; either wording
		{name: "malformed status line", url: "http://" + rawServer(t, malformed),
			status: nanohook.DeliveryPending, retry: retryStep, errHas: "malformed HTTP status code"},
		{name: "self-signed certificate", url: tlsServer(t),
			status: nanohook.DeliveryPending, retry: retryStep, errHas: "certificate"},
		{name: "endless body", url: httpServer(t, endless),
			status: nanohook.DeliverySucceeded, code: 200, maxBody: nanohook.MaxStoredResponseBody},
		{name: "redirect", url: httpServer(t, redirect),
			status: nanohook.DeliveryPending, retry: retryStep, code: http.StatusFound, errHas: "redirects are not followed"},
		{name: "gone", url: httpServer(t, answer(http.StatusGone)),
			status: nanohook.DeliveryFailed, code: http.StatusGone, errHas: "endpoint disabled", disable: true},
		{name: "too many requests", url: httpServer(t, tooMany),
			status: nanohook.DeliveryPending, retry: retry429, code: http.StatusTooManyRequests, errHas: "HTTP 429"},
		{name: "name that does not resolve", url: "http://no-such-host.invalid/hook",
			status: nanohook.DeliveryPending, retry: retryStep, errHas: "no such host"},
	}

	ctx := context.Background()
	st, acct := openWithAccount(t)
	endpoints := make(map[int64]int) // endpoint id → case
	for i, c := range cases {
		ep, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID, URL: c.url, Secret: testSecret,
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		endpoints[ep.ID] = i
	}
	body, err := webhook.EncodePayload(webhook.Payload{Event: "job.completed", TaskID: "hostile", TaskType: "image",
		Status: "completed", Data: []byte(`{}`), Timestamp: "2024-12-23T10:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	for range perCase {
		res, err := st.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: acct.ID,
			Type: nanohook.EventJobCompleted, TaskID: "hostile", TaskType: "image", Payload: body, OccurredAt: time.Now(), Now: time.Now()}})
		if err != nil || res[0].Deliveries != len(cases) {
			t.Fatalf("publish: %+v, %v; want %d deliveries", res, err, len(cases))
		}
	}

	// The baseline is taken with the receivers listening and nothing sent.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap, baseGoroutines := ms.HeapAlloc, runtime.NumGoroutine()
	peak := sampleRuntime(t)

	e := startEngine(t, delivery.Config{
		Store: st,
		Client: egress.NewClient(egress.Options{AllowPrivate: true, Timeout: timeout,
			Resolver: noSuchHost{}}), // no lookup leaves the machine
		Schedule: schedule, Timeout: timeout, MaxInFlight: 64, PollInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	e.Wake()

	deadline := time.Now().Add(20 * time.Second)
	for id, i := range endpoints {
		c := cases[i]
		t.Run(c.name, func(t *testing.T) {
			var ds []nanohook.Delivery
			if !e.Stored().Await(time.Until(deadline), func() bool {
				var err error
				ds, err = st.ListDeliveries(ctx, store.ListDeliveriesParams{AccountID: acct.ID, EndpointID: id, Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				return len(ds) == perCase && attemptedOnce(ctx, t, st, acct.ID, ds)
			}) {
				t.Fatalf("deliveries not all attempted: %+v", ds)
			}
			for _, listed := range ds {
				d, atts, err := st.GetDelivery(ctx, acct.ID, listed.ID)
				if err != nil {
					t.Fatal(err)
				}
				if d.Status != c.status || len(atts) != 1 {
					t.Fatalf("status %s after %d attempts, want %s after 1 (%+v)", d.Status, len(atts), c.status, atts)
				}
				a := atts[0]
				if a.ResponseStatus != c.code {
					t.Errorf("response status %d, want %d", a.ResponseStatus, c.code)
				}
				if !errorMatches(a.Error, c.errHas) {
					t.Errorf("attempt error %q, want one containing %q", a.Error, c.errHas)
				}
				if len(a.ResponseBody) > max(c.maxBody, nanohook.MaxStoredResponseBody) {
					t.Errorf("kept %d bytes of the response, more than %d", len(a.ResponseBody), nanohook.MaxStoredResponseBody)
				}
				if a.Duration > timeout+time.Second {
					t.Errorf("the attempt took %v, beyond its %v timeout", a.Duration, timeout)
				}
				// The retry is scheduled from the attempt's end; the window
				// allows the ±10 % jitter and the attempt's own length.
				wait := d.NextAttemptAt.Sub(a.StartedAt)
				switch c.retry {
				case retryStep:
					if lo, hi := 27*time.Second, 33*time.Second+timeout+time.Second; wait < lo || wait > hi {
						t.Errorf("next attempt %v after the first, want the first step's 30 s ±10 %%", wait)
					}
				case retry429:
					if lo, hi := 120*time.Second, 120*time.Second+timeout+time.Second; wait < lo || wait > hi {
						t.Errorf("next attempt %v after a 429 with Retry-After: 120, want 120 s", wait)
					}
				}
			}
			ep, err := st.GetEndpoint(ctx, acct.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			if disabled := ep.Status == nanohook.EndpointDisabled; disabled != c.disable {
				t.Errorf("endpoint status %s, want disabled: %v", ep.Status, c.disable)
			}
		})
	}

	heap, goroutines := peak()
	t.Logf("%d deliveries to %d hostile receivers: peak heap %.1f MiB over a %.1f MiB baseline, peak goroutines %d over %d",
		perCase*len(cases), len(cases), float64(heap-min(heap, baseHeap))/(1<<20), float64(baseHeap)/(1<<20), goroutines-baseGoroutines, baseGoroutines)
	// Each attempt may hold its kept prefix of the answer (64 KiB at most),
	// its request and a transport's buffers: well under 1 MiB. An attempt
	// that read a whole endless body would pass this bound in a second.
	if limit := uint64(32 << 20); heap > baseHeap+limit {
		t.Errorf("peak heap %d MiB above the %d MiB baseline, want under %d MiB", (heap-baseHeap)>>20, baseHeap>>20, limit>>20)
	}
	// Per delivery in flight: the worker, the transport's read and write
	// loops and the receiver's connection; plus the engine's own loops.
	if limit := 8*perCase*len(cases) + 64; goroutines > baseGoroutines+limit {
		t.Errorf("peak of %d goroutines over a baseline of %d, want at most %d more", goroutines, baseGoroutines, limit)
	}
}

// attemptedOnce reports whether every one of ds has its first attempt
// recorded. Being final is not enough: a 410 disables the endpoint and
// fails its other deliveries in the same commit, while their own attempts,
// made at the same time, may commit in the completer's next batch.
func attemptedOnce(ctx context.Context, t *testing.T, st store.Store, accountID int64, ds []nanohook.Delivery) bool {
	t.Helper()
	for _, d := range ds {
		_, atts, err := st.GetDelivery(ctx, accountID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(atts) == 0 {
			return false
		}
	}
	return true
}

// sampleRuntime samples the heap in use and the goroutine count every 20 ms
// until the returned function is called, which stops sampling and returns
// the peaks seen.
func sampleRuntime(t *testing.T) (peaks func() (heap uint64, goroutines int)) {
	stop := make(chan struct{})
	done := make(chan struct{})
	var heap uint64
	var goroutines int
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = max(heap, ms.HeapAlloc)
		goroutines = max(goroutines, runtime.NumGoroutine())
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stopNow := func() { once.Do(func() { close(stop); <-done }) }
	t.Cleanup(stopNow)
	return func() (uint64, int) {
		stopNow()
		return heap, goroutines - 1 // not counting the sampler itself
	}
}

// rawServer serves each connection with handle on a loopback TCP listener
// and returns its address; the test's cleanup closes the listener and every
// connection, so handlers that wait forever end too.
func rawServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); handle(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String() + "/hook"
}

// readRequest consumes the request's head and body so that the client has
// sent it all.
func readRequest(c net.Conn) bool {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err == nil
}

func holdOpen(c net.Conn) { io.Copy(io.Discard, c) } // reads until the client gives up

func trickle(c net.Conn) {
	if !readRequest(c) {
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"); err != nil {
		return
	}
	for {
		if _, err := c.Write([]byte("x")); err != nil {
			return
		}
		time.Sleep(time.Second)
	}
}

func reset(c net.Conn) {
	readRequest(c)
	c.(*net.TCPConn).SetLinger(0) // close sends RST, not FIN
	c.Close()
}

func malformed(c net.Conn) {
	if readRequest(c) {
		io.WriteString(c, "HTTP/1.1 abc\r\n\r\n")
	}
	c.Close()
}

func tlsServer(t *testing.T) string {
	srv := httptest.NewTLSServer(answer(http.StatusOK))
	t.Cleanup(srv.Close)
	return srv.URL + "/hook"
}

func httpServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/hook"
}

func answer(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) })
}

var endless = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	chunk := []byte(strings.Repeat("endless ", 512))
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
})

var redirect = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "https://elsewhere.example.com/hook", http.StatusFound)
})

var tooMany = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Retry-After", "120")
	w.WriteHeader(http.StatusTooManyRequests)
})

// noSuchHost answers every lookup as a name that does not exist.
type noSuchHost struct{}

func (noSuchHost) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// errorMatches reports whether msg is empty when want is, or contains one
// of want's "|"-separated alternatives.
func errorMatches(msg, want string) bool {
	if want == "" {
		return msg == ""
	}
	for _, alt := range strings.Split(want, "|") {
		if strings.Contains(msg, alt) {
			return true
		}
	}
	return false
}
