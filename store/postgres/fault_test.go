package postgres

// Database faults (issue 6, item 2) at the store level: a server that
// hangs instead of going away. The PostgreSQL server itself is shared with
// other tests, so the hang is made by a loopback proxy that stops passing
// bytes.

import (
	"errors"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook/store"
)

// stallProxy passes TCP traffic to target until stalled, then holds every
// byte (and every new connection) until resumed. Nothing is closed, so the
// client is told nothing, as with a frozen server or a network dropping
// packets.
type stallProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	flow  chan struct{} // closed while traffic flows
	conns []net.Conn
	wg    sync.WaitGroup
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, flow: make(chan struct{})}
	close(p.flow)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			p.wg.Add(1)
			go p.pipe(c)
		}
	}()
	t.Cleanup(func() {
		p.setStalled(false)
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *stallProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *stallProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	p.waitFlow()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.track(s)
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { p.forward(s, c); done <- struct{}{} }()
	go func() { p.forward(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
}

func (p *stallProxy) forward(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.waitFlow()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) waitFlow() {
	p.mu.Lock()
	flow := p.flow
	p.mu.Unlock()
	<-flow
}

func (p *stallProxy) setStalled(stalled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flow:
		if stalled {
			p.flow = make(chan struct{})
		}
	default:
		if !stalled {
			close(p.flow)
		}
	}
}

// TestHungServerFailsWithinCallTimeout opens a Store through a proxy,
// warms its pool, then makes the server hang. A read on a pooled
// connection must fail with store.ErrUnavailable after callTimeout (not
// wait for the caller's context, here a minute away), and once the server
// answers again the Store must work without being reopened; the connection
// that timed out mid-protocol must not come back from the pool.
func TestHungServerFailsWithinCallTimeout(t *testing.T) {
	t.Parallel()
	_, u := freshSchema(t)
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startStallProxy(t, parsed.Host)
	parsed.Host = proxy.ln.Addr().String()
	s := openURL(t, parsed.String())

	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(t.Context(), store.CreateAccountParams{Name: "acme", KeyHash: []byte("hung-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccount(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}

	proxy.setStalled(true)
	start := time.Now()
	_, err = s.GetAccount(t.Context(), a.ID)
	took := time.Since(start)
	proxy.setStalled(false)
	switch {
	case err == nil:
		t.Fatal("GetAccount succeeded while the server was hung")
	case !errors.Is(err, store.ErrUnavailable):
		t.Errorf("GetAccount on a hung server: %v, want store.ErrUnavailable", err)
	case took < callTimeout-time.Second || took > callTimeout+3*time.Second:
		t.Errorf("GetAccount on a hung server failed after %v, want about callTimeout (%v)", took.Round(time.Millisecond), callTimeout)
	}
	t.Logf("GetAccount on a hung server: %v after %v", err, took.Round(time.Millisecond))

	// Every later call works: the timed-out connection was destroyed, not
	// handed out again with half a reply in its buffer.
	for i := range 10 {
		got, err := s.GetAccount(t.Context(), a.ID)
		if err != nil || got.Name != "acme" {
			t.Fatalf("GetAccount %d after the server answers again: %+v, %v", i, got, err)
		}
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
}

// TestDeadlineDoesNotOutliveTheCall checks that the socket deadline of a
// call is lifted when its connection goes back to the pool: a connection
// left idle for longer than callTimeout must then serve the next call
// itself, not fail its health check and be replaced.
func TestDeadlineDoesNotOutliveTheCall(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	a, _, err := s.CreateAccount(t.Context(), store.CreateAccountParams{Name: "acme", KeyHash: []byte("idle-key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccount(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	before := s.pool.Stat()
	// Idle past the deadline the last call had; no timer can wake this
	// test sooner, since what is checked is that nothing happens.
	time.Sleep(callTimeout + 500*time.Millisecond)
	for range 3 {
		if _, err := s.GetAccount(t.Context(), a.ID); err != nil {
			t.Fatal(err)
		}
	}
	after := s.pool.Stat()
	if n := after.NewConnsCount() - before.NewConnsCount(); n != 0 {
		t.Errorf("%d connections were opened after an idle spell: the pooled ones kept an expired deadline", n)
	}
	t.Logf("pool: %d connections opened in all, %d idle", after.NewConnsCount(), after.IdleConns())
}
