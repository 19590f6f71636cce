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

// TestHostileReceivers points one endpoint at each kind of receiver that
// misbehaves and checks that every delivery ends in its documented state,
// with an error that says what happened, within the attempt timeout (3 s), and
// that nothing is left running afterwards (goleak in TestMain).
func TestHostileReceivers(t *testing.T) {
	t.Parallel()
	// Long enough for a TLS handshake under -race on a loaded machine: the
	// certificate case must fail on the certificate, not on the clock.
	const timeout = 3 * time.Second
	cases := []struct {
		name    string
		url     string
		status  nanohook.DeliveryStatus
		code    int    // the recorded response status; 0: none
		errHas  string // in the attempt's error, alternatives split by "|" ("": no error)
		maxBody int    // most response bytes kept
	}{
		{name: "accepts and never answers", url: "http://" + rawServer(t, holdOpen),
			status: nanohook.DeliveryFailed, errHas: "timeout"},
		{name: "headers, then a byte a second", url: "http://" + rawServer(t, trickle),
			status: nanohook.DeliverySucceeded, code: 200}, // the status decides; the body is cut at the timeout
		{name: "resets the connection", url: "http://" + rawServer(t, reset),
			status: nanohook.DeliveryFailed, errHas: "connection reset|EOF"}, // RST while reading; either wording
		{name: "malformed status line", url: "http://" + rawServer(t, malformed),
			status: nanohook.DeliveryFailed, errHas: "malformed HTTP status code"},
		{name: "self-signed certificate", url: tlsServer(t),
			status: nanohook.DeliveryFailed, errHas: "certificate"},
		{name: "endless body", url: httpServer(t, endless),
			status: nanohook.DeliverySucceeded, code: 200, maxBody: nanohook.MaxStoredResponseBody},
		{name: "redirect", url: httpServer(t, redirect),
			status: nanohook.DeliveryFailed, code: http.StatusFound, errHas: "redirects are not followed"},
		{name: "gone", url: httpServer(t, answer(http.StatusGone)),
			status: nanohook.DeliveryFailed, code: http.StatusGone, errHas: "endpoint disabled"},
		{name: "too many requests", url: httpServer(t, tooMany),
			status: nanohook.DeliveryFailed, code: http.StatusTooManyRequests, errHas: "HTTP 429"},
		{name: "name that does not resolve", url: "http://no-such-host.invalid/hook",
			status: nanohook.DeliveryFailed, errHas: "no such host"},
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
	e := startEngine(t, delivery.Config{
		Store: st,
		Client: egress.NewClient(egress.Options{AllowPrivate: true, Timeout: timeout,
			Resolver: noSuchHost{}}), // no lookup leaves the machine
		NoRetry: true, Timeout: timeout, Workers: 16, PollInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	body, err := webhook.EncodePayload(webhook.Payload{Event: "job.completed", TaskID: "hostile", TaskType: "image",
		Status: "completed", Data: []byte(`{}`), Timestamp: "2024-12-23T10:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: acct.ID,
		Type: nanohook.EventJobCompleted, TaskID: "hostile", TaskType: "image", Payload: body, OccurredAt: time.Now(), Now: time.Now()}})
	if err != nil || res[0].Deliveries != len(cases) {
		t.Fatalf("publish: %+v, %v; want %d deliveries", res, err, len(cases))
	}
	e.Wake()

	deadline := time.Now().Add(15 * time.Second)
	for id, i := range endpoints {
		c := cases[i]
		t.Run(c.name, func(t *testing.T) {
			var ds []nanohook.Delivery
			for {
				var err error
				ds, err = st.ListDeliveries(ctx, store.ListDeliveriesParams{AccountID: acct.ID, EndpointID: id, Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				if len(ds) == 1 && ds[0].Status != nanohook.DeliveryPending {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("delivery still not final: %+v", ds)
				}
				time.Sleep(10 * time.Millisecond)
			}
			d, atts, err := st.GetDelivery(ctx, acct.ID, ds[0].ID)
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
		})
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
