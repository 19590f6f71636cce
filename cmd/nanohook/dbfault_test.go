//go:build linux

// Database faults (issue 6, item 2), with real "nanohook serve" children:
// PostgreSQL connections terminated under load, PostgreSQL cut off behind a
// loopback proxy, and SQLite files locked by another process or made
// read-only. In every case a publish answers 2xx only when its event is
// stored, answers 503 storage_unavailable (or cannot connect) otherwise,
// within a bound and never hanging, and the node recovers by itself once
// the fault is gone; every acknowledged event is then delivered.
//
// The PostgreSQL server itself is never stopped: other packages' tests use
// it at the same time. Outages are made from the client side instead.

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store/sqlite"
)

const (
	// faultAnswerBound is how long any publish may take to be answered
	// while the database is failing: the longest wait the stores allow
	// (PostgreSQL's 8 s callTimeout, SQLite's 10 s lockWait for a writer
	// queued behind one waiting out the 5 s busy timeout) plus slack for
	// -race on a loaded machine. Longer is a hang.
	faultAnswerBound = 12 * time.Second
	// faultRecoverBound is how long after a fault ends the node may take to
	// answer /readyz 200 and publishes 2xx again.
	faultRecoverBound = 30 * time.Second
)

// newFaultCluster is newCluster for one node whose database URL passes
// through via (nil: straight to the server), so that a test can put a
// proxy between the node and PostgreSQL. The node's connections carry an
// application_name of their own, so that only they are ever terminated.
func newFaultCluster(t *testing.T, via func(dbURL string) string) *cluster {
	t.Helper()
	return newClusterVia(t, 1, via)
}

// faultRun is what every PostgreSQL fault test runs on: one node, one
// account with one endpoint, and publishers running until the test ends;
// ctx bounds the test.
type faultRun struct {
	c    *cluster
	n    *nodeProc
	acct testAccount
	l    *faultLoad
	ctx  context.Context
	// stopLoad stops the publishers and waits for them; the test's cleanup
	// calls it too.
	stopLoad func()
}

// startFaultRun starts a faultRun whose node's database URL passes through
// via (see newFaultCluster), with workers publishing.
func startFaultRun(t *testing.T, via func(dbURL string) string, workers int) faultRun {
	t.Helper()
	r := faultRun{c: newFaultCluster(t, via)}
	r.n = r.c.nodes[0]
	r.acct = r.c.setupAccounts(t, 1, 1)[0]
	r.l = newFaultLoad(t, r.n, r.acct.id, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	r.ctx = ctx
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); r.l.run(loadCtx, workers, 10*time.Millisecond) }()
	r.stopLoad = sync.OnceFunc(func() { stopLoad(); <-loadDone })
	t.Cleanup(r.stopLoad)
	return r
}

// startProxiedFaultRun is startFaultRun with a pgProxy between the node and
// PostgreSQL.
func startProxiedFaultRun(t *testing.T, workers int) (*pgProxy, faultRun) {
	t.Helper()
	var proxy *pgProxy
	r := startFaultRun(t, func(dbURL string) string {
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		proxy = startPGProxy(t, u.Host)
		u.Host = proxy.ln.Addr().String()
		return u.String()
	}, workers)
	return proxy, r
}

// publishTry is one publish request and what came of it.
type publishTry struct {
	task       string
	start, end time.Time
	status     int    // 0: no answer (transport error)
	code       string // error.code of a non-2xx answer
	message    string // error.message of a non-2xx answer
	retryAfter string // Retry-After of a non-2xx answer
	err        error  // transport error, or an answer that is not the envelope
	cancelled  bool   // the test stopped the load while it was in flight
	eventID    string
	deliveries int
	duplicate  bool
}

func (p publishTry) took() time.Duration { return p.end.Sub(p.start) }

// faultLoad publishes one job event at a time from several workers, each
// with its own task ids, and keeps every try.
type faultLoad struct {
	node      *nodeProc
	client    *http.Client
	account   int64
	endpoints int // deliveries each new event must report

	seq   atomic.Int64
	acked atomic.Int64

	mu    sync.Mutex
	tries []publishTry
}

func newFaultLoad(t *testing.T, node *nodeProc, account int64, endpoints int) *faultLoad {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	t.Cleanup(tr.CloseIdleConnections)
	// The client waits far longer than faultAnswerBound so that a slow
	// answer is measured (and reported) rather than cut short.
	return &faultLoad{node: node, client: &http.Client{Transport: tr, Timeout: time.Minute}, account: account, endpoints: endpoints}
}

// publish sends the job.completed event of task to the node's admin API.
func (l *faultLoad) publish(ctx context.Context, task string) publishTry {
	p := publishTry{task: task, start: time.Now()}
	defer func() { p.end = time.Now() }()
	body := fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image","data":{"url":"https://cdn.example.com/%s.png","credits_charged":6}}`,
		l.account, task, task)
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+l.node.adminAddr+"/admin/v1/events", strings.NewReader(body))
	if err != nil {
		p.err = err
		return p
	}
	req.Header.Set("Authorization", "Bearer "+mnAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		p.err = err
		p.end = time.Now()
		return p
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	p.end = time.Now()
	p.status = resp.StatusCode
	if err != nil {
		p.err = err
		return p
	}
	var env struct {
		Success bool `json:"success"`
		Data    struct {
			EventID    string `json:"event_id"`
			Deliveries int    `json:"deliveries"`
			Duplicate  bool   `json:"duplicate"`
		} `json:"data"`
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		p.err = fmt.Errorf("answer %d is not JSON: %v: %.200s", resp.StatusCode, err, raw)
		return p
	}
	p.eventID, p.deliveries, p.duplicate = env.Data.EventID, env.Data.Deliveries, env.Data.Duplicate
	p.code, p.message = env.Error.Code, env.Error.Message
	if resp.StatusCode/100 != 2 {
		p.retryAfter = resp.Header.Get("Retry-After")
	}
	return p
}

// run publishes from workers goroutines until ctx ends, each pausing pause
// between its publishes.
func (l *faultLoad) run(ctx context.Context, workers int, pause time.Duration) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				task := fmt.Sprintf("df_%06d", l.seq.Add(1))
				p := l.publish(ctx, task)
				// A try the test cut short is kept (it may have committed, and
				// is published again at the end) but judged by nobody.
				p.cancelled = ctx.Err() != nil && p.status == 0
				if p.status/100 == 2 {
					l.acked.Add(1)
				}
				l.mu.Lock()
				l.tries = append(l.tries, p)
				l.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		})
	}
	wg.Wait()
}

// snapshot returns the tries so far.
func (l *faultLoad) snapshot() []publishTry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]publishTry(nil), l.tries...)
}

// waitAcked waits until n more publishes than now were acknowledged, each
// started at or after since; it returns when the first of them ended.
func (l *faultLoad) waitAcked(t *testing.T, ctx context.Context, n int, since time.Time) time.Time {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var first time.Time
		count := 0
		for _, p := range l.snapshot() {
			if p.status/100 == 2 && !p.start.Before(since) {
				count++
				if first.IsZero() || p.end.Before(first) {
					first = p.end
				}
			}
		}
		if count >= n {
			return first
		}
		select {
		case <-ctx.Done():
			t.Fatalf("only %d publishes started after %s were acknowledged, want %d; tries: %s",
				count, since.Format("15:04:05.000"), n, summarizeTries(l.snapshot()))
		case <-tick.C:
		}
	}
}

// tryCounts sums up tries.
type tryCounts struct {
	tried, acked, unavailable, transport, other int
	longest                                     time.Duration
}

func countTries(tries []publishTry) tryCounts {
	var c tryCounts
	for _, p := range tries {
		if p.cancelled {
			continue
		}
		c.tried++
		c.longest = max(c.longest, p.took())
		switch {
		case p.status/100 == 2 && p.err == nil:
			c.acked++
		case p.status == http.StatusServiceUnavailable && p.code == nanohook.CodeUnavailable:
			c.unavailable++
		case p.status == 0:
			c.transport++
		default:
			c.other++
		}
	}
	return c
}

func summarizeTries(tries []publishTry) string {
	c := countTries(tries)
	return fmt.Sprintf("tried %d, acknowledged %d, 503 storage_unavailable %d, no answer %d, other %d, slowest %v",
		c.tried, c.acked, c.unavailable, c.transport, c.other, c.longest.Round(time.Millisecond))
}

// checkTries holds every try to the contract: a 2xx is a new event with its
// deliveries; anything else is a 503 storage_unavailable with Retry-After
// and a message (or, when allowNoAnswer, no answer at all); and every try
// was answered within faultAnswerBound.
func checkTries(t *testing.T, tries []publishTry, allowNoAnswer bool) {
	t.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, p := range tries {
		if p.cancelled {
			continue
		}
		if p.took() > faultAnswerBound {
			report("publish %s took %v to be answered (status %d), want at most %v", p.task, p.took().Round(time.Millisecond), p.status, faultAnswerBound)
		}
		switch {
		case p.status/100 == 2:
			if p.err != nil || p.eventID == "" || p.deliveries != 1 || p.duplicate {
				report("publish %s: 2xx with event %q, %d deliveries, duplicate=%v, err %v; want a new event with 1 delivery",
					p.task, p.eventID, p.deliveries, p.duplicate, p.err)
			}
		case p.status == http.StatusServiceUnavailable:
			if p.code != nanohook.CodeUnavailable || p.message == "" || p.retryAfter == "" {
				report("publish %s: 503 with code %q, message %q, Retry-After %q; want storage_unavailable, a message and Retry-After",
					p.task, p.code, p.message, p.retryAfter)
			}
		case p.status == 0 && allowNoAnswer:
		default:
			report("publish %s: status %d code %q message %q err %v; want 2xx or 503 storage_unavailable",
				p.task, p.status, p.code, p.message, p.err)
		}
	}
	if bad > 10 {
		t.Errorf("... and %d more bad tries", bad-10)
	}
}

// readyStatus returns the status of GET /readyz on addr (0: no answer).
func readyStatus(addr string) int {
	c := &http.Client{Timeout: faultAnswerBound}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReadyz waits until /readyz on addr answers 200 and returns when.
func waitReadyz(t *testing.T, ctx context.Context, addr string) time.Time {
	t.Helper()
	for {
		if readyStatus(addr) == http.StatusOK {
			return time.Now()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/readyz on %s did not answer 200 again: %v", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// settleAndVerify ends a PostgreSQL fault test: every publish that was not
// acknowledged is published again (a client retrying its 503s), which must
// now be acknowledged, either as a new event or as a duplicate of one that
// was committed although its answer was lost. Then every acknowledged event
// must be in the database and reach its endpoint, and the database must
// hold exactly one event per task. It returns how many unacknowledged tries
// had been committed after all.
func settleAndVerify(t *testing.T, ctx context.Context, c *cluster, l *faultLoad, acct testAccount) (committedAnyway int) {
	t.Helper()
	tries := l.snapshot()
	eventOf := map[string]string{} // task → event id
	for _, p := range tries {
		if p.status/100 == 2 && p.eventID != "" {
			eventOf[p.task] = p.eventID
		}
	}
	ackedEvents := len(eventOf)
	for _, p := range tries {
		if _, ok := eventOf[p.task]; ok {
			continue
		}
		again := l.publish(ctx, p.task)
		if again.status != http.StatusAccepted || again.eventID == "" {
			t.Fatalf("republishing %s after recovery: status %d %q %q, %v", p.task, again.status, again.code, again.message, again.err)
		}
		if again.duplicate {
			committedAnyway++
		}
		eventOf[p.task] = again.eventID
	}

	// Everything acknowledged is stored, with its delivery.
	rows, err := c.db.Query(ctx, `SELECT e.task_id, e.id, count(d.id) FROM events e LEFT JOIN deliveries d ON d.event_pk = e.pk GROUP BY e.task_id, e.id`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for rows.Next() {
		var task, id string
		var deliveries int
		if err := rows.Scan(&task, &id, &deliveries); err != nil {
			t.Fatal(err)
		}
		if deliveries != len(acct.paths) {
			t.Errorf("event %s (%s) has %d deliveries, want %d", id, task, deliveries, len(acct.paths))
		}
		stored[task] = id
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for task, id := range eventOf {
		if stored[task] != id {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged event %s of %s is not in the database (stored: %q)", id, task, stored[task])
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged events lost", lost)
	}
	if len(stored) != len(eventOf) {
		t.Errorf("%d events stored for %d tasks published", len(stored), len(eventOf))
	}

	expected := map[receiptKey]string{}
	for task, id := range eventOf {
		for _, path := range acct.paths {
			expected[receiptKey{eventID: id, path: path}] = task
		}
	}
	c.waitDelivered(t, ctx, expected, c.nodes...)
	c.waitAllSucceeded(t, ctx, len(expected))
	tl := c.rcv.tally(expected)
	if tl.rejected > 0 || tl.wrongTask > 0 || len(tl.unexpected) > 0 {
		t.Errorf("receiver: %d rejected %v, %d with another task's body, %d unexpected", tl.rejected, tl.rejectedMsgs, tl.wrongTask, len(tl.unexpected))
	}
	t.Logf("verified: %d events acknowledged during the load, %d republished after recovery (%d of them committed although unacknowledged), "+
		"%d deliveries all received (%d requests, %d retried attempts)",
		ackedEvents, len(eventOf)-ackedEvents, committedAnyway, len(expected), tl.requests, tl.laterAttempts)
	return committedAnyway
}

// TestPostgresTerminatedBackendsUnderLoad terminates every PostgreSQL
// backend of a serving node, again and again for several seconds, from a
// separate admin connection while publishers run. Publishes may fail only
// with 503 storage_unavailable, promptly; the node must reconnect by itself
// (/readyz 200, publishes 2xx) once the terminations stop; and every
// acknowledged event must be stored and delivered.
func TestPostgresTerminatedBackendsUnderLoad(t *testing.T) {
	const (
		workers   = 4
		storm     = 8 * time.Second        // how long backends are being terminated
		interval  = 150 * time.Millisecond // between two rounds of terminations
		publishes = 30                     // acknowledged before and after the storm
	)
	r := startFaultRun(t, nil, workers)
	c, n, acct, l, ctx := r.c, r.n, r.acct, r.l, r.ctx

	l.waitAcked(t, ctx, publishes, time.Time{})

	// The storm: terminate the node's backends, pool, lazy pool and
	// listener alike, from the test's own connection.
	app := c.appName(n)
	stormStart := time.Now()
	var terminated, rounds int
	for time.Since(stormStart) < storm {
		var k int
		err := c.db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
			FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&k)
		if err != nil {
			t.Fatalf("pg_terminate_backend: %v", err)
		}
		terminated += k
		rounds++
		time.Sleep(interval)
	}
	stormEnd := time.Now()
	during := l.snapshot()

	ready := waitReadyz(t, ctx, n.adminAddr)
	firstAck := l.waitAcked(t, ctx, publishes, stormEnd)
	r.stopLoad()

	all := l.snapshot()
	checkTries(t, all, false)
	var inStorm []publishTry
	for _, p := range during {
		if !p.start.Before(stormStart) {
			inStorm = append(inStorm, p)
		}
	}
	sc := countTries(inStorm)
	t.Logf("storm: %d rounds of pg_terminate_backend over %v terminated %d backends of %s",
		rounds, stormEnd.Sub(stormStart).Round(time.Millisecond), terminated, app)
	t.Logf("publishes during the storm: %s", summarizeTries(inStorm))
	t.Logf("all publishes: %s", summarizeTries(all))
	t.Logf("recovery: /readyz 200 %v after the storm, first publish started after it acknowledged %v after it",
		ready.Sub(stormEnd).Round(time.Millisecond), firstAck.Sub(stormEnd).Round(time.Millisecond))
	if terminated == 0 {
		t.Fatalf("no backend of %s was terminated: the test did not test anything", app)
	}
	if sc.unavailable == 0 {
		t.Errorf("no publish failed during the storm: the terminations did not reach the publish path")
	}
	if sc.acked == 0 {
		t.Errorf("no publish succeeded during the storm: the node does not reconnect between terminations")
	}
	if ready.Sub(stormEnd) > faultRecoverBound {
		t.Errorf("/readyz took %v to answer 200 after the storm", ready.Sub(stormEnd))
	}

	settleAndVerify(t, ctx, c, l, acct)
	t.Logf("node log: %d ERROR lines, %d WARN lines", n.logCount(`"level":"ERROR"`), n.logCount(`"level":"WARN"`))
	c.stopGracefully(t)
}

// pgProxy is a TCP proxy on loopback between a node and PostgreSQL that
// the test can cut: every proxied connection is closed and new ones are
// accepted and closed at once, as when the database's host goes away.
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	// flow is closed while traffic flows; while the proxy is stalled it is
	// open, and every byte (and every new connection) waits on it.
	flow chan struct{}

	accepted, refused atomic.Int64
	wg                sync.WaitGroup
}

func startPGProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, flow: make(chan struct{})}
	close(p.flow)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *pgProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			p.refused.Add(1)
			c.Close()
			continue
		}
		p.accepted.Add(1)
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.pipe(c)
	}
}

// pipe copies between the client c and a new connection to the server
// until either side ends or the proxy cuts both.
func (p *pgProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	p.waitFlow()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		s.Close()
		p.drop(c)
		return
	}
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.forward(s, c); done <- struct{}{} }()
	go func() { p.forward(c, s); done <- struct{}{} }()
	<-done
	p.drop(c)
	p.drop(s)
	<-done
}

// forward copies src to dst, holding what it read while the proxy is
// stalled.
func (p *pgProxy) forward(dst, src net.Conn) {
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

// waitFlow returns once traffic flows.
func (p *pgProxy) waitFlow() {
	p.mu.Lock()
	flow := p.flow
	p.mu.Unlock()
	<-flow
}

// setStalled stops (true) or resumes (false) all traffic without closing
// anything: the database looks hung, as a frozen server or a network that
// drops packets does. Nothing tells the node; only its own deadlines can.
func (p *pgProxy) setStalled(stalled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flow: // flowing
		if stalled {
			p.flow = make(chan struct{})
		}
	default:
		if !stalled {
			close(p.flow)
		}
	}
}

func (p *pgProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// setCut cuts the database off (true) or restores it (false). Cutting
// closes every proxied connection; it returns how many it closed.
func (p *pgProxy) setCut(cut bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if !cut {
		return 0
	}
	closed := 0
	for c := range p.conns {
		c.Close()
		closed++
	}
	return closed
}

func (p *pgProxy) close() {
	p.setStalled(false)
	p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}

// TestPostgresOutageThroughProxy cuts a serving node off PostgreSQL for a
// few seconds under load, through a proxy: every open connection is closed
// and new ones are closed as soon as they are accepted. Publishes started
// during the cut must all fail (503 storage_unavailable, never a 2xx: the
// database could not have stored them) within the bound, /readyz must say
// 503; after the restore the node must serve 2xx again by itself, and
// every acknowledged event must be stored and delivered.
func TestPostgresOutageThroughProxy(t *testing.T) {
	var closed int
	runProxyFault(t, proxyFault{
		what: "outage", length: 5 * time.Second, allowNoAnswer: true,
		set: func(p *pgProxy, on bool) {
			if on {
				closed = p.setCut(true)
			} else {
				p.setCut(false)
			}
		},
		report: func(p *pgProxy) string {
			return fmt.Sprintf("the cut closed %d proxied connections; connections accepted %d, closed on arrival during the cut %d",
				closed, p.accepted.Load(), p.refused.Load())
		},
	})
}

// proxyFault is one way for runProxyFault to take PostgreSQL away.
type proxyFault struct {
	what          string        // "outage", "stall": for messages
	length        time.Duration // how long the fault lasts
	set           func(p *pgProxy, on bool)
	report        func(p *pgProxy) string // the proxy's own figures, logged
	allowNoAnswer bool                    // see checkTries
}

// runProxyFault puts a node under publish load behind a pgProxy, applies
// the fault for its length, and requires: every publish started and
// answered during it failed (503 storage_unavailable, never a 2xx: the
// database could not have stored it), /readyz said 503 half-way through,
// the node recovered by itself within faultRecoverBound, and every
// acknowledged event was stored and delivered.
func runProxyFault(t *testing.T, f proxyFault) {
	const (
		workers   = 4
		publishes = 30
	)
	proxy, r := startProxiedFaultRun(t, workers)
	c, n, acct, l, ctx := r.c, r.n, r.acct, r.l, r.ctx

	l.waitAcked(t, ctx, publishes, time.Time{})

	start := time.Now()
	f.set(proxy, true)
	applied := time.Now()
	time.Sleep(f.length / 2)
	midReady := readyStatus(n.adminAddr)
	time.Sleep(f.length - time.Since(start))
	ended := time.Now()
	f.set(proxy, false)

	ready := waitReadyz(t, ctx, n.adminAddr)
	firstAck := l.waitAcked(t, ctx, publishes, ended)
	r.stopLoad()

	all := l.snapshot()
	checkTries(t, all, f.allowNoAnswer)
	var during []publishTry
	for _, p := range all {
		if p.start.After(applied) && p.end.Before(ended) {
			during = append(during, p)
		}
	}
	dc := countTries(during)
	t.Logf("%s: %v; %s", f.what, ended.Sub(start).Round(time.Millisecond), f.report(proxy))
	t.Logf("publishes started and answered during the %s: %s", f.what, summarizeTries(during))
	t.Logf("all publishes: %s", summarizeTries(all))
	t.Logf("recovery: /readyz 200 %v after the %s ended, first publish started after it acknowledged %v after it",
		ready.Sub(ended).Round(time.Millisecond), f.what, firstAck.Sub(ended).Round(time.Millisecond))
	if dc.acked > 0 {
		t.Errorf("%d publishes started during the %s were answered 2xx: the database could not have stored them", dc.acked, f.what)
	}
	if dc.unavailable == 0 {
		t.Errorf("no publish was answered 503 during the %s", f.what)
	}
	if midReady != http.StatusServiceUnavailable {
		t.Errorf("/readyz in the middle of the %s answered %d, want 503", f.what, midReady)
	}
	if ready.Sub(ended) > faultRecoverBound {
		t.Errorf("/readyz took %v to answer 200 after the %s", ready.Sub(ended), f.what)
	}

	settleAndVerify(t, ctx, c, l, acct)
	t.Logf("node log: %d ERROR lines, %d WARN lines", n.logCount(`"level":"ERROR"`), n.logCount(`"level":"WARN"`))
	c.stopGracefully(t)
}

// sqliteNode starts a "nanohook serve" child on the SQLite file path,
// with one account whose one endpoint is a path on a fresh receiver.
func sqliteNode(t *testing.T, path string) (*cluster, testAccount) {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{endpointPaths: map[int64]string{}, logDir: dir}
	c.rcv = newReceiver()
	t.Cleanup(c.rcv.srv.Close)
	addrs := freeAddrs(t, 2)
	n := &nodeProc{
		name: "node1", addr: addrs[0], adminAddr: addrs[1], logDir: dir,
		env: childEnv("NANOHOOK_ADMIN_TOKEN=" + mnAdminToken),
	}
	n.args = append([]string{"serve", "--db", path, "--addr", n.addr, "--admin-addr", n.adminAddr}, mnServeFlags...)
	c.nodes = []*nodeProc{n}
	t.Cleanup(func() {
		if err := n.kill(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("%s:\n%s", n.name, n.logTail(60))
		}
	})
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return c, c.setupAccounts(t, 1, 1)[0]
}

// waitReceived waits until the receiver has every event of ids at the
// account's endpoint, for tests without a PostgreSQL connection to report
// from.
func waitReceived(t *testing.T, ctx context.Context, c *cluster, acct testAccount, ids map[string]string) time.Time {
	t.Helper()
	expected := map[receiptKey]string{}
	for task, id := range ids {
		for _, path := range acct.paths {
			expected[receiptKey{eventID: id, path: path}] = task
		}
	}
	for {
		tl := c.rcv.tally(expected)
		if tl.rejected > 0 {
			t.Fatalf("the receiver rejected %d requests: %v", tl.rejected, tl.rejectedMsgs)
		}
		if len(tl.missing) == 0 {
			return time.Now()
		}
		if c.nodes[0].exited() {
			t.Fatalf("the node exited: %v", c.nodes[0].waitErr)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d acknowledged deliveries never arrived", len(tl.missing), len(expected))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestServeSQLiteBusy holds SQLite's write lock on a serving node's file
// from another connection (as the sqlite3 shell or a backup in the middle
// of a transaction would) for longer than the busy timeout, while
// publishes keep arriving. Each must be answered 503 storage_unavailable
// within the busy timeout plus slack, never 2xx; once the lock is released
// publishes succeed again and the delivery engine, whose claims failed
// meanwhile, delivers everything that was acknowledged.
func TestServeSQLiteBusy(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nanohook.db")
	c, acct := sqliteNode(t, path)
	n := c.nodes[0]
	l := newFaultLoad(t, n, acct.id, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ids := map[string]string{}
	before := l.publish(ctx, "busy_before")
	if before.status != http.StatusAccepted {
		t.Fatalf("publish before the lock: %d %s %v", before.status, before.message, before.err)
	}
	ids[before.task] = before.eventID

	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		t.Fatalf("BEGIN EXCLUSIVE: %v", err)
	}
	lockedAt := time.Now()

	// Concurrent publishers while the lock is held for 12 s: longer than
	// the 5 s busy timeout, and than the 10 s a publisher queued behind
	// another may wait for the writer (lockWait in store/sqlite).
	const hold = 12 * time.Second
	loadCtx, stopLoad := context.WithTimeout(ctx, hold)
	l.run(loadCtx, 3, 50*time.Millisecond)
	stopLoad()
	if _, err := lock.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatalf("ROLLBACK: %v", err)
	}
	releasedAt := time.Now()
	lock.Close()

	locked := l.snapshot()
	checkTries(t, locked, false)
	lc := countTries(locked)
	if lc.acked > 0 {
		t.Errorf("%d publishes were acknowledged while another connection held the write lock", lc.acked)
	}
	if lc.unavailable == 0 {
		t.Errorf("no publish was answered 503 while the lock was held")
	}
	var messages []string
	for _, p := range locked {
		if p.status == http.StatusServiceUnavailable && len(messages) == 0 {
			messages = append(messages, p.message)
		}
	}
	t.Logf("lock held %v: %s; 503 message %q", releasedAt.Sub(lockedAt).Round(time.Millisecond), summarizeTries(locked), messages)

	// After the release: publishes succeed at once, and the engine delivers
	// them and the one from before.
	var firstAck time.Time
	for i := range 5 {
		p := l.publish(ctx, fmt.Sprintf("busy_after_%d", i))
		if p.status != http.StatusAccepted {
			t.Fatalf("publish %d after the lock was released: %d %q %v", i, p.status, p.message, p.err)
		}
		if firstAck.IsZero() {
			firstAck = p.end
		}
		ids[p.task] = p.eventID
	}
	delivered := waitReceived(t, ctx, c, acct, ids)
	t.Logf("after the release: first publish acknowledged %v later, all %d acknowledged events delivered %v after the release",
		firstAck.Sub(releasedAt).Round(time.Millisecond), len(ids), delivered.Sub(releasedAt).Round(time.Millisecond))
	if ready := readyStatus(n.adminAddr); ready != http.StatusOK {
		t.Errorf("/readyz after the lock was released: %d", ready)
	}
	c.stopGracefully(t)
}

// chattrOrChmod makes paths unwritable: chmod 0400 for an ordinary user,
// chattr +i for root (which ignores permission bits; immutability stops
// root too). It returns the function that undoes it, or skips the test when
// neither works here.
func chattrOrChmod(t *testing.T, paths ...string) (undo func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		modes := map[string]os.FileMode{}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			modes[p] = fi.Mode().Perm()
			ro := os.FileMode(0o400)
			if fi.IsDir() {
				ro = 0o500
			}
			if err := os.Chmod(p, ro); err != nil {
				t.Fatal(err)
			}
		}
		undo = func() {
			for p, m := range modes {
				_ = os.Chmod(p, m)
			}
		}
		t.Cleanup(undo)
		return undo
	}
	bin, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("running as root without chattr: cannot make the database read-only")
	}
	if out, err := exec.Command(bin, append([]string{"+i"}, paths...)...).CombinedOutput(); err != nil {
		t.Skipf("running as root and chattr +i fails here: %v: %s", err, out)
	}
	var once sync.Once
	undo = func() {
		once.Do(func() {
			if out, err := exec.Command(bin, append([]string{"-i"}, paths...)...).CombinedOutput(); err != nil {
				t.Errorf("chattr -i: %v: %s", err, out)
			}
		})
	}
	t.Cleanup(undo)
	return undo
}

// TestServeRefusesReadOnlyDatabase starts "nanohook serve" on a database
// file that cannot be written, and on a file in a directory where SQLite
// cannot create its WAL: the process must exit at once, non-zero, with an
// error naming the file, rather than serve answers it could not store.
func TestServeRefusesReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		target func(dir, path string) []string // what to make read-only
	}{
		{"File", func(dir, path string) []string { return []string{path} }},
		{"Directory", func(dir, path string) []string { return []string{dir} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "nanohook.db")
			st, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			chattrOrChmod(t, tc.target(dir, path)...)

			addrs := freeAddrs(t, 2)
			n := &nodeProc{
				name: "node1", addr: addrs[0], adminAddr: addrs[1], logDir: t.TempDir(),
				env:  childEnv("NANOHOOK_ADMIN_TOKEN=" + mnAdminToken),
				args: append([]string{"serve", "--db", path, "--addr", addrs[0], "--admin-addr", addrs[1]}, mnServeFlags...),
			}
			t.Cleanup(func() { _ = n.kill() })
			start := time.Now()
			if err := n.start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-n.done:
			case <-time.After(faultAnswerBound + 5*time.Second):
				t.Fatalf("serve on a read-only database still runs after %v:\n%s", time.Since(start).Round(time.Millisecond), n.logTail(20))
			}
			took := time.Since(start)
			out, _ := os.ReadFile(n.logs[0])
			var exit *exec.ExitError
			if !errors.As(n.waitErr, &exit) || exit.ExitCode() == 0 {
				t.Errorf("serve on a read-only database exited with %v, want a non-zero status", n.waitErr)
			}
			if !strings.Contains(string(out), path) {
				t.Errorf("the error does not name the file %s:\n%s", path, out)
			}
			if !strings.Contains(string(out), "read-only") {
				t.Errorf("the error does not say what is wrong (read-only):\n%s", out)
			}
			if healthy(t.Context(), n.adminAddr) {
				t.Errorf("something still answers on the admin address")
			}
			t.Logf("serve refused to start after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(string(out)))
		})
	}
}

// TestServeDatabaseTurnsReadOnly makes a serving node's database file and
// WAL unwritable while it runs. Publishes must then be
// answered 503 storage_unavailable promptly, never 2xx, and /readyz must
// answer 503 too (its write probe fails; a ping alone still succeeded);
// once the files are writable again, publishes succeed without a restart,
// /readyz answers 200, and everything acknowledged is delivered.
func TestServeDatabaseTurnsReadOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nanohook.db")
	c, acct := sqliteNode(t, path)
	n := c.nodes[0]
	l := newFaultLoad(t, n, acct.id, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ids := map[string]string{}
	before := l.publish(ctx, "ro_before")
	if before.status != http.StatusAccepted {
		t.Fatalf("publish before: %d %s %v", before.status, before.message, before.err)
	}
	ids[before.task] = before.eventID

	// Not the -shm file: SQLite maps it into memory, and a write to a
	// mapped page of an immutable file is a SIGBUS that kills the process,
	// a fault no storage code can answer.
	files := []string{path}
	if _, err := os.Stat(path + "-wal"); err == nil {
		files = append(files, path+"-wal")
	}
	undo := chattrOrChmod(t, files...)
	roAt := time.Now()
	var ro []publishTry
	for i := range 5 {
		p := l.publish(ctx, fmt.Sprintf("ro_%d", i))
		ro = append(ro, p)
		if p.status/100 == 2 {
			ids[p.task] = p.eventID // it claims to be stored: it must be delivered
		}
	}
	roReady := readyStatus(n.adminAddr)
	undo()
	writableAt := time.Now()
	checkTries(t, ro, false)
	rc := countTries(ro)
	if rc.acked > 0 {
		t.Errorf("%d publishes were acknowledged while the database files were read-only", rc.acked)
	}
	msg := ""
	if len(ro) > 0 {
		msg = ro[0].message
	}
	t.Logf("read-only for %v: %s; 503 message %q; /readyz answered %d", writableAt.Sub(roAt).Round(time.Millisecond), summarizeTries(ro), msg, roReady)
	if roReady != http.StatusServiceUnavailable {
		t.Errorf("/readyz answered %d while the database files were read-only, want 503: a load balancer would go on sending publishes that all fail", roReady)
	}

	var after []publishTry
	var firstAck time.Time
	for i := 0; i < 20 && len(after) < 5; i++ {
		p := l.publish(ctx, fmt.Sprintf("ro_after_%d", i))
		if p.status/100 == 2 {
			if firstAck.IsZero() {
				firstAck = p.end
			}
			ids[p.task] = p.eventID
			after = append(after, p)
			continue
		}
		t.Logf("publish %d after the files were writable again: %d %q %v", i, p.status, p.message, p.err)
		time.Sleep(200 * time.Millisecond)
	}
	if len(after) < 5 {
		t.Fatalf("the node does not publish again once its database is writable")
	}
	readyAgain := waitReadyz(t, ctx, n.adminAddr)
	delivered := waitReceived(t, ctx, c, acct, ids)
	t.Logf("writable again: first publish acknowledged %v later, /readyz 200 %v later, all %d acknowledged events delivered %v after",
		firstAck.Sub(writableAt).Round(time.Millisecond), readyAgain.Sub(writableAt).Round(time.Millisecond),
		len(ids), delivered.Sub(writableAt).Round(time.Millisecond))
	c.stopGracefully(t)
}

// TestPostgresStalledThroughProxy makes PostgreSQL hang rather than go
// away, under load: the proxy stops passing bytes, in both directions and
// for new connections, without closing anything, for longer than the
// answer bound, then lets everything through again. Nothing tells the node
// the database is gone, so only its own deadlines can keep a publish from
// hanging: each must still be answered (503 storage_unavailable, never 2xx)
// within the bound; afterwards the node must serve 2xx again by itself and
// deliver everything it acknowledged.
func TestPostgresStalledThroughProxy(t *testing.T) {
	runProxyFault(t, proxyFault{
		what: "stall", length: faultAnswerBound + 5*time.Second,
		set: func(p *pgProxy, on bool) { p.setStalled(on) },
		report: func(p *pgProxy) string {
			return fmt.Sprintf("connections accepted %d", p.accepted.Load())
		},
	})
}
