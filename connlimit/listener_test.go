package connlimit

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// lockedBuffer collects log output from several goroutines.
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

// bundle is a limited listener on 127.0.0.1 with its accepted connections
// collected, or served by an http.Server.
type bundle struct {
	l        *Listener
	clock    *clock
	logs     *lockedBuffer
	accepted chan net.Conn
	release  chan struct{} // GET /block waits for it to close
}

// setup listens on 127.0.0.1 with cfg's caps and, unless serve is set,
// collects accepted connections on b.accepted; with serve it runs an
// http.Server wired to ConnState that answers "ok".
func setup(t *testing.T, cfg Config, serve bool) *bundle {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{clock: &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}, logs: &lockedBuffer{}, accepted: make(chan net.Conn, 100), release: make(chan struct{})}
	cfg.Now = b.clock.Now
	cfg.Logger = slog.New(slog.NewTextHandler(b.logs, nil))
	b.l = New(ln, cfg)
	done := make(chan struct{})
	if serve {
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/block" {
					<-b.release
				}
				io.WriteString(w, "ok")
			}),
			ConnState: b.l.ConnState,
		}
		go func() { defer close(done); _ = srv.Serve(b.l) }()
		t.Cleanup(func() { _ = srv.Close(); <-done })
		t.Cleanup(func() {
			select {
			case <-b.release:
			default:
				close(b.release)
			}
		})
		return b
	}
	go func() {
		defer close(done)
		for {
			c, err := b.l.Accept()
			if err != nil {
				return
			}
			b.accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = b.l.Close()
		<-done
		close(b.accepted)
		for c := range b.accepted {
			_ = c.Close()
		}
	})
	return b
}

// dial connects from the loopback address local ("" for any).
func (b *bundle) dial(t *testing.T, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", b.l.Addr().String())
	if err != nil {
		t.Fatalf("dial from %q: %v", local, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// next returns the next accepted connection, or fails after a while.
func (b *bundle) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-b.accepted:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// noneAccepted checks that nothing more was accepted.
func (b *bundle) noneAccepted(t *testing.T) {
	t.Helper()
	select {
	case c := <-b.accepted:
		t.Fatalf("connection from %v accepted over the cap", c.RemoteAddr())
	case <-time.After(50 * time.Millisecond):
	}
}

// refusedWith reads what the server wrote before closing c and checks that
// it is an HTTP answer with status.
func refusedWith(t *testing.T, c net.Conn, status int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status || resp.Header.Get("Retry-After") != "1" || !resp.Close {
		t.Fatalf("refusal %d %v %q, want %d with Retry-After and Connection: close", resp.StatusCode, resp.Header, body, status)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the refusal the connection gave %v, want EOF", err)
	}
}

// closedByServer checks that the server closed c.
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("connection still open (read %d bytes)", n)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("connection still open after 5s")
	}
}

// TestPerAddressCap: one address gets MaxPerAddr connections and then 429s
// closed at accept; another address is not affected; closing a connection
// frees its place.
func TestPerAddressCap(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxPerAddr: 3, Name: "public"}, false)
	var held []net.Conn
	for range 3 {
		b.dial(t, "127.0.0.1")
		held = append(held, b.next(t))
	}
	for range 2 {
		refusedWith(t, b.dial(t, "127.0.0.1"), 429)
	}
	b.noneAccepted(t)

	b.dial(t, "127.0.0.2")
	b.next(t)

	if err := held[0].Close(); err != nil {
		t.Fatal(err)
	}
	if err := held[0].Close(); err == nil {
		t.Error("a second Close succeeded")
	}
	b.dial(t, "127.0.0.1")
	b.next(t)
	refusedWith(t, b.dial(t, "127.0.0.1"), 429)

	if got, want := b.l.Stats(), (Stats{Open: 4, RefusedPerAddr: 3}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	// The log says so, once (lines are spaced by LogEvery), naming the address.
	logs := b.logs.String()
	if strings.Count(logs, "connections refused") != 1 || !strings.Contains(logs, "listener=public") ||
		!strings.Contains(logs, "last_refused_address=127.0.0.1") || !strings.Contains(logs, "refused_per_address=1") {
		t.Errorf("logs:\n%s", logs)
	}
	b.clock.Add(10 * time.Second)
	refusedWith(t, b.dial(t, "127.0.0.1"), 429)
	if logs := b.logs.String(); strings.Count(logs, "connections refused") != 2 || !strings.Contains(logs, "refused_per_address=3") {
		t.Errorf("after LogEvery the next refusal logs the count since the last line:\n%s", logs)
	}
}

// TestTotalCapRefusesWithoutIdleConnections: without the ConnState hook
// nothing is known to be idle, so a connection over Max is refused with 503
// until one closes.
func TestTotalCapRefusesWithoutIdleConnections(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Max: 2}, false)
	b.dial(t, "127.0.0.1")
	first := b.next(t)
	b.dial(t, "127.0.0.2")
	b.next(t)
	refusedWith(t, b.dial(t, "127.0.0.3"), 503)
	b.noneAccepted(t)
	_ = first.Close()
	b.dial(t, "127.0.0.3")
	b.next(t)
	if got, want := b.l.Stats(), (Stats{Open: 2, RefusedTotal: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// get sends a keep-alive GET / on c and reads the answer, leaving c idle.
func get(t *testing.T, c net.Conn, br *bufio.Reader) int {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitStats waits until the listener's stats satisfy ok.
func waitStats(t *testing.T, l *Listener, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(l.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats stay %+v", l.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTotalCapClosesTheLongestIdle: with the http.Server's ConnState hook,
// a listener at Max closes the connection idle longest to admit a new one,
// never one in the middle of a request, and refuses when none is idle.
func TestTotalCapClosesTheLongestIdle(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Max: 2}, true)
	older := b.dial(t, "127.0.0.1")
	olderR := bufio.NewReader(older)
	if s := get(t, older, olderR); s != 200 {
		t.Fatalf("GET %d", s)
	}
	// The server reports a connection idle a moment after the client has
	// read its answer; the order of the two matters here.
	waitStats(t, b.l, func(Stats) bool { return b.l.idleCount() == 1 })
	b.clock.Add(time.Second)
	newer := b.dial(t, "127.0.0.2")
	newerR := bufio.NewReader(newer)
	if s := get(t, newer, newerR); s != 200 {
		t.Fatalf("GET %d", s)
	}
	waitStats(t, b.l, func(Stats) bool { return b.l.idleCount() == 2 })

	third := b.dial(t, "127.0.0.3")
	thirdR := bufio.NewReader(third)
	if s := get(t, third, thirdR); s != 200 {
		t.Fatalf("GET on the third connection: %d", s)
	}
	closedByServer(t, older)
	if s := get(t, newer, newerR); s != 200 {
		t.Fatalf("GET on the newer idle connection after the eviction: %d", s)
	}
	waitStats(t, b.l, func(s Stats) bool { return s == Stats{Open: 2, Evicted: 1} })

	// Both connections have a request being handled: neither may be
	// closed, so a newcomer is refused.
	_ = newer.SetDeadline(time.Now().Add(5 * time.Second))
	_ = third.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(newer, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	_, _ = io.WriteString(third, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	waitStats(t, b.l, func(Stats) bool { return b.l.idleCount() == 0 })
	refusedWith(t, b.dial(t, "127.0.0.4"), 503)
	close(b.release)
	resp, err := http.ReadResponse(newerR, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the request in progress during the refusal: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.ReadResponse(thirdR, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the other request in progress during the refusal: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestSilentConnectionsGetAGrace: a connection that has sent nothing is
// closed to make room only after NewGrace, so a client between its
// connect and its first request is not cut.
func TestSilentConnectionsGetAGrace(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Max: 1, NewGrace: time.Second}, true)
	silent := b.dial(t, "127.0.0.1")
	waitStats(t, b.l, func(Stats) bool { return b.l.idleCount() == 1 }) // the server reported it new
	refusedWith(t, b.dial(t, "127.0.0.2"), 503)
	b.clock.Add(time.Second)
	c := b.dial(t, "127.0.0.2")
	if s := get(t, c, bufio.NewReader(c)); s != 200 {
		t.Fatalf("GET after the grace: %d", s)
	}
	closedByServer(t, silent)
}

// TestClientKey: IPv4 by address (also when mapped into IPv6), IPv6 by /64.
func TestClientKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:1234", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1234", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "2001:db8:1:2::"},
		{"[2001:db8:1:2::1]:443", "2001:db8:1:2::"},
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::"},
		{"[::1]:80", "::"},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		got := ClientKey(net.TCPAddrFromAddrPort(ap))
		if got.String() != tc.want {
			t.Errorf("ClientKey(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := ClientKey(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}); got.IsValid() {
		t.Errorf("ClientKey of a unix address = %s, want the zero key", got)
	}
}

// TestCountsUnderConcurrency: many clients connecting, being served and
// closing at once leave the counts at zero, and the caps are never
// exceeded (run with -race).
func TestCountsUnderConcurrency(t *testing.T) {
	t.Parallel()
	const clients, rounds, maxOpen = 16, 20, 8
	b := setup(t, Config{Max: maxOpen, MaxPerAddr: 4}, true)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range clients {
		local := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}[i%4]
		wg.Go(func() {
			for range rounds {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
				c, err := d.Dial("tcp", b.l.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				status := 0
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err == nil {
					if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						status = resp.StatusCode
						resp.Body.Close()
					}
				}
				_ = c.Close()
				mu.Lock()
				statuses[status]++
				mu.Unlock()
				if s := b.l.Stats(); s.Open > maxOpen {
					t.Errorf("%d connections open, over the cap of %d", s.Open, maxOpen)
				}
			}
		})
	}
	wg.Wait()
	waitStats(t, b.l, func(s Stats) bool { return s.Open == 0 })
	if statuses[200] == 0 {
		t.Errorf("no request was served: %v", statuses)
	}
	t.Logf("answers: %v; stats %+v", statuses, b.l.Stats())
}

// idleCount is how many connections may be closed to make room.
func (l *Listener) idleCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle.Len() + l.silent.Len()
}
