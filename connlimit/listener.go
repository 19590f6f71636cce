// Package connlimit bounds the connections a listener holds open: in
// total, so that a flood of connections cannot take the file descriptors
// that the database, the delivery engine and the other listener need, and
// per client address, so that one client cannot take the whole total.
//
// It is a net.Listener wrapper. A connection over a cap is answered with a
// minimal HTTP error (429 over the per-address cap, 503 over the total)
// and closed at accept, so it holds its descriptor for no longer than that.
//
// With the http.Server's ConnState hook set to Listener.ConnState, a
// listener at its total cap makes room by closing the connection that has
// waited longest between requests (or, accepted, has sent nothing for a
// second) instead of refusing the newcomer: a flood of cheap connections
// is mostly idle ones, and HTTP clients reopen a closed idle connection by
// themselves. A connection whose request is being handled is never closed
// (http.Server counts a connection active once it has read a request's
// headers; one still sending them is idle, to this as to http.Server's own
// Shutdown).
package connlimit

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Config sets a Listener's caps.
type Config struct {
	// Max is the most connections open at once; 0: no limit.
	Max int
	// MaxPerAddr is the most connections open at once from one client
	// address, an IPv4 address or an IPv6 /64 (one host usually owns a
	// whole /64 and could otherwise use a new address per connection);
	// 0: no limit.
	MaxPerAddr int
	// Name names the listener in log lines ("public", "admin").
	Name string
	// Logger receives a warning when connections are refused or closed to
	// make room, at most one line per LogEvery with the counts since the
	// previous line; nil discards them.
	Logger *slog.Logger
	// LogEvery spaces those lines; 0 means 10 s.
	LogEvery time.Duration
	// NewGrace is how long an accepted connection may stay silent before
	// it may be closed to make room; 0 means 1 s.
	NewGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Listener is a net.Listener that holds at most Config.Max connections, at
// most Config.MaxPerAddr of them from one client address. Its connections
// count until they are closed. It is safe for concurrent use.
type Listener struct {
	net.Listener
	max, maxPerAddr int
	name            string
	log             *slog.Logger
	logEvery        time.Duration
	grace           time.Duration
	now             func() time.Time

	mu      sync.Mutex
	open    int
	perAddr map[netip.Addr]int
	silent  list.List // accepted connections that have not started a request, oldest first
	idle    list.List // connections between requests, longest idle first
	stats   Stats
	pending Stats     // counts not yet logged
	lastLog time.Time // when a line was last logged
	lastKey netip.Addr
}

// Stats counts what a Listener did since it was made.
type Stats struct {
	Open           int   // connections open now
	RefusedPerAddr int64 // refused over the per-address cap
	RefusedTotal   int64 // refused over the total cap, with none to close instead
	Evicted        int64 // idle or silent connections closed to admit a new one
}

// Refusals are written to the refused connection before it is closed, so
// that an HTTP client can tell what happened; a client that already sent
// its request may see the connection reset instead.
var (
	refusePerAddr = refusal("429 Too Many Requests", "too many connections from your address")
	refuseTotal   = refusal("503 Service Unavailable", "the server has too many connections")
)

// refusal is a complete HTTP/1.1 answer that closes the connection.
func refusal(status, text string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"+
		"Connection: close\r\nContent-Length: %d\r\n\r\n%s\n", status, len(text)+1, text)
}

// refuseWriteTimeout bounds the write of a refusal. It never waits in
// practice (the answer fits an empty socket buffer), but the accept loop
// must not depend on the client.
const refuseWriteTimeout = 50 * time.Millisecond

// New wraps ln with the caps of cfg.
func New(ln net.Listener, cfg Config) *Listener {
	l := &Listener{
		Listener:   ln,
		max:        max(cfg.Max, 0),
		maxPerAddr: max(cfg.MaxPerAddr, 0),
		name:       cfg.Name,
		log:        cfg.Logger,
		logEvery:   cfg.LogEvery,
		grace:      cfg.NewGrace,
		now:        cfg.Now,
		perAddr:    map[netip.Addr]int{},
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.logEvery <= 0 {
		l.logEvery = 10 * time.Second
	}
	if l.grace <= 0 {
		l.grace = time.Second
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Accept returns the next connection within the caps. Connections over a
// cap are refused here and never returned; errors of the wrapped listener
// are returned as they are (http.Server retries temporary ones).
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.admit(nc); c != nil {
			return c, nil
		}
	}
}

// admit counts nc in, closing an idle connection to make room if the total
// is reached, or refuses it and returns nil.
func (l *Listener) admit(nc net.Conn) net.Conn {
	key := ClientKey(nc.RemoteAddr())
	now := l.now()
	l.mu.Lock()
	var answer []byte
	var victim *conn
	switch {
	case l.maxPerAddr > 0 && l.perAddr[key] >= l.maxPerAddr:
		answer = refusePerAddr
		l.stats.RefusedPerAddr++
		l.pending.RefusedPerAddr++
		l.lastKey = key
	case l.max > 0 && l.open >= l.max:
		if victim = l.evictable(now); victim == nil {
			answer = refuseTotal
			l.stats.RefusedTotal++
			l.pending.RefusedTotal++
			l.lastKey = key
		} else {
			l.release(victim)
			l.stats.Evicted++
			l.pending.Evicted++
		}
	}
	var c *conn
	if answer == nil {
		c = &conn{Conn: nc, l: l, key: key}
		l.open++
		l.perAddr[key]++
	}
	report := l.takeReport(now)
	l.mu.Unlock()

	if report != nil {
		report()
	}
	if victim != nil {
		_ = victim.Conn.Close()
	}
	if answer != nil {
		_ = nc.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		_, _ = nc.Write(answer)
		_ = nc.Close()
	}
	if c == nil {
		return nil
	}
	return c
}

// evictable returns the connection to close to make room, or nil: the one
// idle longest between requests, or failing that the oldest accepted one
// that has sent nothing for the grace period.
func (l *Listener) evictable(now time.Time) *conn {
	if e := l.idle.Front(); e != nil {
		return e.Value.(*conn)
	}
	if e := l.silent.Front(); e != nil {
		if c := e.Value.(*conn); now.Sub(c.since) >= l.grace {
			return c
		}
	}
	return nil
}

// release uncounts c once; l.mu is held.
func (l *Listener) release(c *conn) {
	if c.released {
		return
	}
	c.released = true
	l.unlist(c)
	l.open--
	if n := l.perAddr[c.key] - 1; n > 0 {
		l.perAddr[c.key] = n
	} else {
		delete(l.perAddr, c.key)
	}
}

// unlist takes c off the silent or idle list; l.mu is held.
func (l *Listener) unlist(c *conn) {
	if c.elem != nil {
		c.list.Remove(c.elem)
		c.elem, c.list = nil, nil
	}
}

// ConnState is the http.Server ConnState hook that lets a listener at its
// total cap close an idle connection instead of refusing a new one. Set
// it on the server that serves this listener; connections of other
// listeners are ignored.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok || c.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released {
		return
	}
	l.unlist(c)
	switch state {
	case http.StateNew:
		c.list = &l.silent
	case http.StateIdle:
		c.list = &l.idle
	default: // active, hijacked or closed: not to be closed by us
		return
	}
	c.since = l.now()
	c.elem = c.list.PushBack(c)
}

// Stats returns the listener's counts.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Open = l.open
	return s
}

// takeReport returns the function that logs the counts not yet logged, if
// there are some and a line is due; l.mu is held, the function is called
// without it.
func (l *Listener) takeReport(now time.Time) func() {
	p := l.pending
	if p == (Stats{}) || (!l.lastLog.IsZero() && now.Sub(l.lastLog) < l.logEvery) {
		return nil
	}
	l.pending, l.lastLog = Stats{}, now
	open, key := l.open, l.lastKey
	return func() {
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "connections refused or closed at the connection limits",
			slog.String("listener", l.name),
			slog.Int64("refused_per_address", p.RefusedPerAddr),
			slog.Int64("refused_total", p.RefusedTotal),
			slog.Int64("idle_closed", p.Evicted),
			slog.Int("open", open),
			slog.Int("max", l.max),
			slog.Int("max_per_address", l.maxPerAddr),
			slog.String("last_refused_address", keyString(key)))
	}
}

func keyString(k netip.Addr) string {
	if !k.IsValid() {
		return ""
	}
	if k.Is6() {
		return netip.PrefixFrom(k, 64).String()
	}
	return k.String()
}

// ClientKey is the address a connection from a counts against: its IP
// address (an IPv4-mapped IPv6 address as IPv4), or for IPv6 the first
// address of its /64. Addresses that are not TCP share the zero key.
func ClientKey(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// conn is an admitted connection; closing it frees its place.
type conn struct {
	net.Conn
	l   *Listener
	key netip.Addr

	// Guarded by l.mu.
	released bool
	list     *list.List    // the silent or idle list c is on, or nil
	elem     *list.Element // c's element there
	since    time.Time     // when c went on it
}

// Close closes the connection and frees its place under the caps.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return err
}
