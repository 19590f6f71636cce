package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is an httptest server that counts the connections it accepted,
// so a test can prove the guard refused before connecting.
type testServer struct {
	*httptest.Server
	conns atomic.Int64
}

func startServer(t *testing.T, tlsOn bool, h http.HandlerFunc) *testServer {
	t.Helper()
	s := &testServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // failed TLS handshakes are expected
	if tlsOn {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// port returns the server's port, for URLs that name a fake host.
func (s *testServer) port(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// connections reports how many connections the server accepted; closing it
// first makes sure every accepted connection has been counted.
func (s *testServer) connections() int64 {
	s.Close()
	return s.conns.Load()
}

func newTestClient(t *testing.T, o Options) *http.Client {
	t.Helper()
	c := NewClient(o)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err == nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

func TestClientRefusesLoopbackLiteral(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false, ok)
	c := newTestClient(t, Options{})

	_, err := get(t, c, srv.URL) // http://127.0.0.1:port
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("err = %v, want ErrForbiddenAddress", err)
	}
	if !strings.Contains(err.Error(), `host "127.0.0.1" is loopback`) {
		t.Errorf("err = %q, want the host named and why it is refused", err)
	}
	if n := srv.connections(); n != 0 {
		t.Errorf("server saw %d connections, want 0", n)
	}
}

func TestClientRefusesNameResolvingToLoopback(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false, ok)
	res := newFakeResolver().set("hook.nanohook.test", []string{"127.0.0.1"})
	var log syncLog
	c := newTestClient(t, Options{Resolver: res, Logger: slog.New(slog.NewTextHandler(&log, nil))})

	_, err := get(t, c, "http://hook.nanohook.test:"+srv.port(t)+"/")
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("err = %v, want ErrForbiddenAddress", err)
	}
	// The error becomes the attempt's error, which the customer reads: it
	// must not say what the name resolved to. The operator's log does.
	if !strings.Contains(err.Error(), `"hook.nanohook.test" resolves to a private address`) || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("err = %q, want the host named and not its address", err)
	}
	if got := log.String(); !strings.Contains(got, "refusal.address=127.0.0.1") || !strings.Contains(got, "refusal.reason=loopback") {
		t.Errorf("log = %q, want the refused address and reason", got)
	}
	if n := srv.connections(); n != 0 {
		t.Errorf("server saw %d connections, want 0", n)
	}
}

func TestClientRefusesMixedResolution(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false, ok)
	// A public first answer must not hide the loopback one behind it.
	res := newFakeResolver().set("mixed.nanohook.test", []string{"93.184.215.14", "127.0.0.1"})
	c := newTestClient(t, Options{Resolver: res})

	url := "http://mixed.nanohook.test:" + srv.port(t) + "/"
	if err := CheckURL(context.Background(), res, url); err != nil {
		t.Fatalf("CheckURL = %v, want nil: mixed answers pass at creation", err)
	}
	if _, err := get(t, c, url); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("err = %v, want ErrForbiddenAddress", err)
	}
	if n := srv.connections(); n != 0 {
		t.Errorf("server saw %d connections, want 0", n)
	}
}

func TestClientRefusesLocalhostWithoutLookup(t *testing.T) {
	t.Parallel()
	res := newFakeResolver().set("localhost", []string{"93.184.215.14"})
	c := newTestClient(t, Options{Resolver: res})

	if _, err := get(t, c, "http://localhost:1/"); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("err = %v, want ErrForbiddenAddress", err)
	}
	if _, err := get(t, c, "http://2130706433:1/"); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("err = %v, want ErrForbiddenAddress", err)
	}
	if n := res.callsFor("localhost"); n != 0 {
		t.Errorf("resolver asked for localhost %d times, want 0", n)
	}
}

// TestClientRebinding models DNS rebinding: the name looks public when the
// endpoint is created, then answers 127.0.0.1. The dialer's own lookup is
// the one that is checked, and the one whose address is dialed.
func TestClientRebinding(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false, ok)
	res := newFakeResolver().set("rebind.nanohook.test",
		[]string{"93.184.215.14"}, // first lookup: public
		[]string{"127.0.0.1"},     // every later lookup: loopback
	)
	c := newTestClient(t, Options{Resolver: res})
	url := "http://rebind.nanohook.test:" + srv.port(t) + "/"

	if err := CheckURL(context.Background(), res, url); err != nil {
		t.Fatalf("CheckURL = %v, want nil for the public first answer", err)
	}
	_, err := get(t, c, url)
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("err = %v, want ErrForbiddenAddress", err)
	}
	if n := res.callsFor("rebind.nanohook.test"); n != 2 {
		t.Errorf("lookups = %d, want 2 (CheckURL, then the dialer)", n)
	}
	if n := srv.connections(); n != 0 {
		t.Errorf("server saw %d connections, want 0", n)
	}
}

// TestClientDialsCheckedAddress inverts the rebinding: the dialer's own
// lookup says loopback (allowed here), and any later lookup would say
// somewhere unreachable. Reaching the server proves the dialer used the
// address it checked and never handed the name on.
func TestClientDialsCheckedAddress(t *testing.T) {
	t.Parallel()
	var host atomic.Value
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		io.WriteString(w, "hello")
	})
	res := newFakeResolver().set("hook.nanohook.test",
		[]string{"127.0.0.1"},
		[]string{"192.0.2.1"}, // TEST-NET-1: never answers
	)
	c := newTestClient(t, Options{AllowPrivate: true, Resolver: res})

	resp, err := get(t, c, "http://hook.nanohook.test:"+srv.port(t)+"/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Errorf("got %d %q, want 200 \"hello\"", resp.StatusCode, body)
	}
	if got, want := host.Load(), "hook.nanohook.test:"+srv.port(t); got != want {
		t.Errorf("Host = %v, want %v", got, want)
	}
	if n := res.callsFor("hook.nanohook.test"); n != 1 {
		t.Errorf("lookups = %d, want 1", n)
	}
}

func TestClientAllowPrivateLiteral(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false, ok)
	c := newTestClient(t, Options{AllowPrivate: true})

	resp, err := get(t, c, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
}

func TestClientTriesAddressesInOrder(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false, ok)
	// The server listens on 127.0.0.1 only, so [::1]:port fails (refused, or
	// no IPv6 loopback at all) and the dialer must move on to 127.0.0.1.
	res := newFakeResolver().set("two.nanohook.test", []string{"::1", "127.0.0.1"})
	c := newTestClient(t, Options{AllowPrivate: true, Resolver: res})
	resp, err := get(t, c, "http://two.nanohook.test:"+srv.port(t)+"/")
	if err != nil {
		t.Fatalf("err = %v, want the second address to answer", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Store(true)
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	c := newTestClient(t, Options{AllowPrivate: true})

	resp, err := get(t, c, srv.URL+"/hook")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status = %d, want 302", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/elsewhere" {
		t.Errorf("Location = %q, want /elsewhere", loc)
	}
	if followed.Load() {
		t.Error("the redirect was followed")
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	const timeout = 300 * time.Millisecond
	c := newTestClient(t, Options{AllowPrivate: true, Timeout: timeout})

	start := time.Now()
	_, err := get(t, c, srv.URL)
	elapsed := time.Since(start)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("gave up after %v, want about %v", elapsed, timeout)
	}
}

func TestClientVerifiesTLS(t *testing.T) {
	t.Parallel()
	srv := startServer(t, true, ok)
	c := newTestClient(t, Options{AllowPrivate: true})

	_, err := get(t, c, srv.URL)
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a certificate verification error", err)
	}
}

func TestClientUserAgent(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.UserAgent())
	})
	c := newTestClient(t, Options{AllowPrivate: true, UserAgent: "nanohook/test"})

	for _, tt := range []struct{ set, want string }{
		{"", "nanohook/test"},
		{"caller/1.0", "caller/1.0"},
	} {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.set != "" {
			req.Header.Set("User-Agent", tt.set)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != tt.want {
			t.Errorf("User-Agent = %q, want %q", got, tt.want)
		}
		if tt.set == "" && req.Header.Get("User-Agent") != "" {
			t.Error("the caller's request was modified")
		}
	}
}

func TestClientIgnoresProxyEnvironment(t *testing.T) {
	// Not parallel: t.Setenv. A proxy would receive the request instead.
	proxy := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	srv := startServer(t, false, ok)
	c := newTestClient(t, Options{AllowPrivate: true})

	resp, err := get(t, c, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200 from the target itself", resp.StatusCode)
	}
	if n := proxy.connections(); n != 0 {
		t.Errorf("proxy saw %d connections, want 0", n)
	}
}

// syncLog is a log sink safe for the transport's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
