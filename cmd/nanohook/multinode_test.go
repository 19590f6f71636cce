//go:build linux

// The multi-node tests (issue 3, items 5 and 6): real "nanohook serve"
// processes share one PostgreSQL schema, a loopback receiver verifies and
// counts every delivery, and the tests kill, restart and race the nodes.
// They need NANOHOOK_TEST_POSTGRES_URL and skip without it.

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook/internal/skipnote"
	"github.com/nanohook/nanohook/webhook"
)

const (
	// mnAdminToken is every node's NANOHOOK_ADMIN_TOKEN.
	mnAdminToken = "multinode-admin-token"
	// mnShutdownTimeout is every node's --shutdown-timeout, the time a
	// SIGTERM'd node has to finish its attempts in flight and exit.
	mnShutdownTimeout = 10 * time.Second
	// mnExitGrace is how long after its shutdown timeout a stopping node may
	// take to close storage and exit.
	mnExitGrace = 3 * time.Second
)

// mnServeFlags are the serve flags of every node besides its database and
// addresses: plain-http loopback endpoints, a retry schedule of seconds
// instead of hours, and 32 workers so that a killed node holds a bounded
// number of claims.
var mnServeFlags = []string{
	"--allow-http", "--allow-private-targets",
	"--retry-schedule", "200ms,500ms,1s,2s,4s",
	"--delivery-timeout", "5s",
	"--delivery-workers", "32",
	"--shutdown-timeout", mnShutdownTimeout.String(),
	"--log-format", "json",
}

// testPostgresURL returns the database the multi-node tests run on, or skips
// the test when none is configured.
func testPostgresURL(t *testing.T) string {
	t.Helper()
	return skipnote.SkipWithoutPostgres(t, "the PostgreSQL tests (several nodes, fan-out, bench)")
}

// cluster is a set of nanohook nodes sharing one fresh PostgreSQL schema,
// delivering to one receiver. Everything it starts is stopped, and the
// schema dropped, when the test ends, whether it passed or not.
type cluster struct {
	db            *pgx.Conn // the test's own connection; search_path is the schema; test goroutine only
	schema        string
	dbURL         string // the test database with search_path=schema; each node adds its application_name
	logDir        string // node logs, kept when the test fails
	rcv           *receiver
	nodes         []*nodeProc
	endpointPaths map[int64]string // endpoint id → its receiver path
}

// newCluster creates a schema nh_mn_<random>, starts a receiver and starts
// the nodes all at once (so that their migrations race, as in a real
// deployment), waiting until every node answers /healthz.
func newCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	return newClusterVia(t, nodes, nil)
}

// newClusterVia is newCluster with every node's database URL passed through
// via first, unless via is nil.
func newClusterVia(t *testing.T, nodes int, via func(dbURL string) string) *cluster {
	t.Helper()
	base := testPostgresURL(t)
	c := &cluster{endpointPaths: map[int64]string{}}

	// Cleanups run last-registered first: nodes are killed, then the
	// receiver closes, then the schema is dropped, then the logs are
	// reported or removed.
	dir, err := os.MkdirTemp("", "nanohook-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	c.logDir = dir
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
			return
		}
		for _, n := range c.nodes {
			t.Logf("%s (node id %q):\n%s", n.name, n.id, n.logTail(40))
		}
		t.Logf("node logs are kept in %s", dir)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, withoutPoolParams(t, base))
	if err != nil {
		t.Fatalf("connect to NANOHOOK_TEST_POSTGRES_URL: %v", err)
	}
	c.schema = "nh_mn_" + randomHex(t, 6)
	ident := pgx.Identifier{c.schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		conn.Close(ctx)
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", c.schema, err)
		}
		conn.Close(ctx)
	})
	if _, err := conn.Exec(ctx, "SET search_path TO "+ident); err != nil {
		t.Fatal(err)
	}
	c.db = conn
	c.dbURL = withParam(t, base, "search_path", c.schema)

	c.rcv = newReceiver()
	t.Cleanup(c.rcv.srv.Close)

	addrs := freeAddrs(t, 2*nodes)
	for i := range nodes {
		n := &nodeProc{
			name: fmt.Sprintf("node%d", i+1), addr: addrs[2*i], adminAddr: addrs[2*i+1], logDir: dir,
			env: childEnv("NANOHOOK_ADMIN_TOKEN=" + mnAdminToken),
		}
		db := withParam(t, c.dbURL, "application_name", c.appName(n))
		if via != nil {
			db = via(db)
		}
		n.args = append([]string{"serve", "--db", db, "--addr", n.addr, "--admin-addr", n.adminAddr}, mnServeFlags...)
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if err := n.kill(); err != nil {
				t.Error(err)
			}
		}
	})
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	// Generous: under -race three nodes migrate and start on few CPUs.
	rctx, rcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer rcancel()
	for _, n := range c.nodes {
		if err := n.waitReady(rctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// withParam returns the database URL with the query parameter key set to
// value. pgx sends parameters it does not know itself, such as search_path
// and application_name, as run-time settings of every connection.
func withParam(t *testing.T, base, key, value string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("NANOHOOK_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// appName is the application_name of n's database connections, unique
// across concurrent test runs, so that pg_stat_activity tells which server
// backends serve n.
func (c *cluster) appName(n *nodeProc) string { return c.schema + "_" + n.name }

// waitBackendsGone waits until PostgreSQL has no backend left serving n,
// which after a SIGKILL takes a moment: a backend finishes (and may commit)
// the statement it was running before it notices its client is gone. Only
// then does the database show everything n will ever have done.
func (c *cluster) waitBackendsGone(t *testing.T, ctx context.Context, n *nodeProc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var left int
		err := c.db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, c.appName(n)).Scan(&left)
		if err == nil && left == 0 {
			return
		}
		if err != nil && ctx.Err() == nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d database backends of %s still there %v after it was killed", left, n.name, 30*time.Second)
		case <-tick.C:
		}
	}
}

// withoutPoolParams drops pgxpool's own parameters (pool_max_conns, …),
// which the nodes' pools understand but a plain connection would send to
// the server as unknown settings.
func withoutPoolParams(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("NANOHOOK_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// randomHex returns n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testAccount is an account created through the admin API, with the
// receiver paths of its endpoints.
type testAccount struct {
	id    int64
	paths []string
}

// setupAccounts creates accounts on node 1's admin API and endpointsEach
// endpoints per account through the public API (spread over the nodes),
// each with its own path on the receiver and its own secret, subscribed to
// both job events.
func (c *cluster) setupAccounts(t *testing.T, accounts, endpointsEach int) []testAccount {
	t.Helper()
	out := make([]testAccount, accounts)
	for a := range out {
		status, env := apiCall(t, "POST", "http://"+c.nodes[0].adminAddr+"/admin/v1/accounts", mnAdminToken,
			fmt.Sprintf(`{"name":"multinode %d"}`, a))
		if status != http.StatusCreated {
			t.Fatalf("create account: %d %v", status, env)
		}
		d := dataOf(t, env)
		out[a].id = int64(d["id"].(float64))
		key := d["api_key"].(string)
		for range endpointsEach {
			n := len(c.endpointPaths)
			path := fmt.Sprintf("/hook/%02d", n)
			secret := fmt.Sprintf("whsec_mn%02d_%s", n, randomHex(t, 12))
			c.rcv.expect(path, secret)
			node := c.nodes[n%len(c.nodes)]
			status, env := apiCall(t, "POST", "http://"+node.addr+"/api/v1/webhooks", key,
				fmt.Sprintf(`{"url":%q,"events":["job.completed","job.failed"],"secret_key":%q}`, c.rcv.srv.URL+path, secret))
			if status != http.StatusCreated {
				t.Fatalf("create endpoint on %s: %d %v", node.name, status, env)
			}
			c.endpointPaths[int64(dataOf(t, env)["id"].(float64))] = path
			out[a].paths = append(out[a].paths, path)
		}
	}
	return out
}

// heldClaims returns the deliveries that node id holds claimed according
// to the database, as receiver keys.
func (c *cluster) heldClaims(t *testing.T, ctx context.Context, nodeID string) []receiptKey {
	t.Helper()
	rows, err := c.db.Query(ctx, `SELECT e.id, d.endpoint_id
		FROM deliveries d JOIN events e ON e.pk = d.event_pk
		WHERE d.lease_owner = $1 AND d.lease_token IS NOT NULL`, nodeID)
	if err != nil {
		t.Fatalf("read the claims of %s: %v", nodeID, err)
	}
	defer rows.Close()
	var keys []receiptKey
	for rows.Next() {
		var eventID string
		var endpointID int64
		if err := rows.Scan(&eventID, &endpointID); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, receiptKey{eventID: eventID, path: c.endpointPaths[endpointID]})
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the claims of %s: %v", nodeID, err)
	}
	return keys
}

// waitAllSucceeded waits until the database holds exactly want deliveries
// and every one of them is succeeded; then no node attempts anything any
// more and the receiver's counts are final.
func (c *cluster) waitAllSucceeded(t *testing.T, ctx context.Context, want int) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var total, succeeded int
		err := c.db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM deliveries`).
			Scan(&total, &succeeded)
		if err == nil && total == want && succeeded == want {
			return
		}
		if err != nil && ctx.Err() == nil {
			t.Fatalf("count deliveries: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deliveries in the database: %d, succeeded %d, want %d all succeeded; by status: %s",
				total, succeeded, want, c.statusCounts(t))
		case <-tick.C:
		}
	}
}

// statusCounts describes how many deliveries are in each status.
func (c *cluster) statusCounts(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := c.db.Query(ctx, `SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s=%d", status, n))
	}
	return strings.Join(parts, " ")
}

// waitDelivered waits until the receiver has every expected delivery at
// least once, failing at once on a rejected signature or on a node of watch
// that exited, and at ctx's deadline otherwise. The full comparison runs
// only once enough distinct deliveries arrived: it holds the receiver's
// lock for a while, which would slow the deliveries being measured.
func (c *cluster) waitDelivered(t *testing.T, ctx context.Context, expected map[receiptKey]string, watch ...*nodeProc) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		distinct, rejected, msgs := c.rcv.progress()
		if rejected > 0 {
			t.Fatalf("the receiver rejected %d requests: %s", rejected, strings.Join(msgs, "; "))
		}
		if distinct >= len(expected) && len(c.rcv.tally(expected).missing) == 0 {
			return
		}
		for _, n := range watch {
			if n.exited() {
				t.Fatalf("%s exited unexpectedly: %v", n.name, n.waitErr)
			}
		}
		select {
		case <-ctx.Done():
			tl := c.rcv.tally(expected)
			if len(tl.missing) == 0 {
				return
			}
			t.Fatalf("%d of %d expected deliveries never reached the receiver (e.g. %+v); deliveries by status: %s",
				len(tl.missing), len(expected), tl.missing[0], c.statusCounts(t))
		case <-tick.C:
		}
	}
}

// stopGracefully sends SIGTERM to every node that still runs and requires a
// clean exit (status 0; a race report would make it 66) within the
// shutdown timeout.
func (c *cluster) stopGracefully(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		if n.exited() {
			continue
		}
		_, exit, err := n.terminate(mnShutdownTimeout + mnExitGrace)
		if err != nil {
			t.Error(err)
		} else if exit != nil {
			t.Errorf("%s exited with %v after SIGTERM, want status 0", n.name, exit)
		}
	}
	for _, n := range c.nodes {
		if races := n.logCount("WARNING: DATA RACE"); races > 0 {
			t.Errorf("%s reported %d data races (see its log)", n.name, races)
		}
	}
}

// receiptKey is one delivery as an endpoint sees it: an event at one
// endpoint (path).
type receiptKey struct{ eventID, path string }

// receipts is what the receiver saw of one receiptKey.
type receipts struct {
	times    []time.Time // arrival of every request
	inflight int         // requests being answered right now
	taskID   string      // task_id of the first body
}

// receiver is the loopback HTTP server every endpoint points at. It
// verifies each request's signature with its endpoint's secret, counts the
// requests of every delivery, and counts overlaps: a request for a delivery
// arriving while another for the same delivery is still being answered,
// which would mean two attempts of one delivery at once.
type receiver struct {
	srv *httptest.Server

	mu            sync.Mutex
	secrets       map[string]string // path → the endpoint's secret
	keys          map[receiptKey]*receipts
	overlaps      int
	laterAttempts int // requests with X-Nano-Delivery-Attempt above 1
	aborted       int // requests whose body was cut short: the sender died mid-request
	rejected      int
	rejectedMsgs  []string // the first few reasons
}

// newReceiver starts a receiver on a loopback port.
func newReceiver() *receiver {
	r := &receiver{secrets: map[string]string{}, keys: map[receiptKey]*receipts{}}
	r.srv = httptest.NewServer(r)
	return r
}

// expect registers an endpoint path and the secret its deliveries must be
// signed with.
func (r *receiver) expect(path, secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets[path] = secret
}

// ServeHTTP verifies and records one delivery attempt and answers 200 after
// 0–3 ms, so that attempts are really in flight for a moment and overlaps
// can be seen.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	arrived := time.Now()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		// Not a bad delivery: a node killed while sending leaves a request
		// without its whole body. It never learns of an answer either.
		r.mu.Lock()
		r.aborted++
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	secret, known := r.secrets[req.URL.Path]
	r.mu.Unlock()
	if !known {
		r.reject(fmt.Sprintf("%s: no endpoint has this path", req.URL.Path))
		w.WriteHeader(http.StatusNotFound)
		return
	}
	v := webhook.Verifier{Secrets: []string{secret}}
	if err := v.Verify(req.Header, body); err != nil {
		r.reject(fmt.Sprintf("%s: %v", req.URL.Path, err))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p struct {
		TaskID string `json:"task_id"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		r.reject(fmt.Sprintf("%s: body is not JSON: %v", req.URL.Path, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	k := receiptKey{eventID: req.Header.Get(webhook.HeaderEventID), path: req.URL.Path}

	r.mu.Lock()
	rc := r.keys[k]
	if rc == nil {
		rc = &receipts{taskID: p.TaskID}
		r.keys[k] = rc
	}
	if rc.inflight > 0 {
		r.overlaps++
	}
	rc.inflight++
	rc.times = append(rc.times, arrived)
	if req.Header.Get(webhook.HeaderDeliveryAttempt) != "1" {
		r.laterAttempts++
	}
	r.mu.Unlock()

	time.Sleep(time.Duration(mathrand.IntN(3001)) * time.Microsecond)

	r.mu.Lock()
	rc.inflight--
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// progress returns how many distinct deliveries arrived and how many
// requests were rejected (with the first few reasons), cheaply.
func (r *receiver) progress() (distinct, rejected int, msgs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys), r.rejected, append([]string(nil), r.rejectedMsgs...)
}

// reject records a request that failed verification.
func (r *receiver) reject(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected++
	if len(r.rejectedMsgs) < 5 {
		r.rejectedMsgs = append(r.rejectedMsgs, msg)
	}
}

// tally is what the receiver saw, judged against the deliveries expected.
type tally struct {
	requests      int          // verified requests
	duplicates    int          // requests beyond the first of each delivery
	overlaps      int          // see receiver
	laterAttempts int          // requests that were a retry
	aborted       int          // requests cut short by their sender's death
	rejected      int          // requests that failed verification
	rejectedMsgs  []string     // why, the first few
	missing       []receiptKey // expected and never received
	unexpected    []receiptKey // received and not expected
	wrongTask     int          // received with a body of another task
	lastFirst     time.Time    // when the last expected delivery first arrived
}

// tally judges what arrived against expected (receipt key → task id).
func (r *receiver) tally(expected map[receiptKey]string) tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	tl := tally{overlaps: r.overlaps, laterAttempts: r.laterAttempts, aborted: r.aborted, rejected: r.rejected,
		rejectedMsgs: append([]string(nil), r.rejectedMsgs...)}
	for k, rc := range r.keys {
		tl.requests += len(rc.times)
		tl.duplicates += len(rc.times) - 1
		task, ok := expected[k]
		if !ok {
			tl.unexpected = append(tl.unexpected, k)
			continue
		}
		if rc.taskID != task {
			tl.wrongTask++
		}
		if rc.times[0].After(tl.lastFirst) {
			tl.lastFirst = rc.times[0]
		}
	}
	for k := range expected {
		if r.keys[k] == nil {
			tl.missing = append(tl.missing, k)
		}
	}
	return tl
}

// receivedAfter reports, for deliveries keys, when the last of them first
// arrived at or after since; late counts the keys that arrived only before
// since (their attempt's result was committed after all), absent the keys
// never received.
func (r *receiver) receivedAfter(keys []receiptKey, since time.Time) (last time.Time, late, absent int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		rc := r.keys[k]
		if rc == nil {
			absent++
			continue
		}
		found := false
		for _, at := range rc.times {
			if !at.Before(since) {
				found = true
				if at.After(last) {
					last = at
				}
				break
			}
		}
		if !found {
			late++
		}
	}
	return last, late, absent
}

// lastFirstArrival is when the last of the expected deliveries not in skip
// first arrived.
func (r *receiver) lastFirstArrival(expected map[receiptKey]string, skip map[receiptKey]bool) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Time
	for k := range expected {
		if rc := r.keys[k]; rc != nil && !skip[k] && rc.times[0].After(last) {
			last = rc.times[0]
		}
	}
	return last
}

// duplicatesSplit counts the requests beyond the first of every delivery
// not in held, and returns the most requests any delivery in held got.
func (r *receiver) duplicatesSplit(held map[receiptKey]bool) (outside, mostHeld int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, rc := range r.keys {
		if held[k] {
			mostHeld = max(mostHeld, len(rc.times))
		} else {
			outside += len(rc.times) - 1
		}
	}
	return outside, mostHeld
}

// receiptCount is how many requests arrived for k.
func (r *receiver) receiptCount(k receiptKey) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rc := r.keys[k]; rc != nil {
		return len(rc.times)
	}
	return 0
}

// liveSet is the nodes the publishers may send to, taken in turn. The test
// takes a node out when it kills or stops it and puts it back once the node
// is ready again.
type liveSet struct {
	mu    sync.Mutex
	nodes []*nodeProc
	next  int
}

// pick returns the next live node, preferring one other than avoid (the
// node that just failed), or nil when none is live.
func (l *liveSet) pick(avoid *nodeProc) *nodeProc {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range len(l.nodes) {
		n := l.nodes[l.next%len(l.nodes)]
		l.next++
		if n != avoid || len(l.nodes) == 1 {
			return n
		}
	}
	return nil
}

// remove takes n out of the rotation.
func (l *liveSet) remove(n *nodeProc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, m := range l.nodes {
		if m == n {
			l.nodes = append(l.nodes[:i:i], l.nodes[i+1:]...)
			return
		}
	}
}

// add puts n back into the rotation.
func (l *liveSet) add(n *nodeProc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = append(l.nodes, n)
}

// newPublishClient returns the HTTP client publishers use: it keeps enough
// connections to every node for the concurrent publishers and gives up on a
// hung node eventually.
func newPublishClient(t *testing.T) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// milestone is a number of acknowledged events; reached is closed once the
// publishers have that many, and when is the time that happened (readable
// once reached is closed).
type milestone struct {
	at      int64
	reached chan struct{}
	when    time.Time
}

// newMilestone returns a milestone at events acknowledged events.
func newMilestone(events int) *milestone {
	return &milestone{at: int64(events), reached: make(chan struct{})}
}

// publisher publishes the multi-node test's events in batches, round-robin
// over the live nodes, retrying a batch on another node when its node fails,
// and records what was acknowledged.
type publisher struct {
	live          *liveSet
	client        *http.Client
	accounts      []testAccount
	batchSize     int
	endpointsEach int // deliveries each event must create
	milestones    []*milestone
	gateFrom      int // batches from this index on wait for gate
	gate          chan struct{}

	eventIDs []string // event_id by event number; each batch writes its own range

	acked            atomic.Int64 // acknowledged events
	retriedBatches   atomic.Int64 // batches acknowledged only after a failed try
	failedTries      atomic.Int64 // tries that failed: node dead or stopping
	alreadyCommitted atomic.Int64 // acknowledged items a failed try had committed (duplicate: true)

	mu       sync.Mutex
	first    time.Time      // first request sent
	last     time.Time      // last batch acknowledged
	failures []string       // the first few failed tries, for the log
	gatedBy  map[string]int // node name → batches from gateFrom on it acknowledged
}

// maxBatchTries bounds the tries of one batch; with the back-off between
// tries they span about 8 seconds.
const maxBatchTries = 20

// taskID is the task id of event number n, unique within a test.
func taskID(n int) string { return fmt.Sprintf("task_%05d", n) }

// batchBody is the publish request of batch b: events b*batchSize onward,
// each for account n mod accounts, alternating job.completed and job.failed.
func (p *publisher) batchBody(b int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i := range p.batchSize {
		n := b*p.batchSize + i
		if i > 0 {
			buf.WriteByte(',')
		}
		event := "job.completed"
		if n%2 == 1 {
			event = "job.failed"
		}
		fmt.Fprintf(&buf, `{"account_id":%d,"event":%q,"task_id":%q,"task_type":"image","data":{"url":"https://cdn.example.com/%d.png","credits_charged":6}}`,
			p.accounts[n%len(p.accounts)].id, event, taskID(n), n)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// run publishes batches batches with workers concurrent publishers and
// returns the first error, after which the others stop too.
func (p *publisher) run(ctx context.Context, workers, batches int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				b := int(next.Add(1) - 1)
				if b >= batches || ctx.Err() != nil {
					return
				}
				if b >= p.gateFrom {
					select {
					case <-p.gate:
					case <-ctx.Done():
						return
					}
				}
				if err := p.sendBatch(ctx, b); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// sendBatch publishes batch b, trying another live node after a failure.
// That is safe because publishing is idempotent by (event, task_id): a try
// whose answer was lost may have committed, and the next try then reports
// the same events as duplicates.
func (p *publisher) sendBatch(ctx context.Context, b int) error {
	body := p.batchBody(b)
	var avoid *nodeProc
	for try := 1; ; try++ {
		n := p.live.pick(avoid)
		if n == nil {
			return fmt.Errorf("batch %d: no live node", b)
		}
		p.mu.Lock()
		if p.first.IsZero() {
			p.first = time.Now()
		}
		p.mu.Unlock()
		status, raw, err := p.post(ctx, n, body)
		if err == nil && status == http.StatusAccepted {
			if try > 1 {
				p.retriedBatches.Add(1)
			}
			if b >= p.gateFrom {
				p.mu.Lock()
				p.gatedBy[n.name]++
				p.mu.Unlock()
			}
			return p.record(b, try, raw)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && status < 500 {
			return fmt.Errorf("batch %d on %s: answered %d: %s", b, n.name, status, raw)
		}
		p.failedTries.Add(1)
		p.mu.Lock()
		if len(p.failures) < 10 {
			p.failures = append(p.failures, fmt.Sprintf("batch %d try %d on %s: status %d, %v", b, try, n.name, status, err))
		}
		p.mu.Unlock()
		if try == maxBatchTries {
			return fmt.Errorf("batch %d: no node accepted it in %d tries (last: %s: status %d, %v)", b, try, n.name, status, err)
		}
		avoid = n
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(try)*20*time.Millisecond, 500*time.Millisecond)):
		}
	}
}

// post sends one batch to n's admin API and returns the status and body.
// A transport error (refused, reset, a body cut short) is err.
func (p *publisher) post(ctx context.Context, n *nodeProc, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+n.adminAddr+"/admin/v1/events/batch", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+mnAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, raw, nil
}

// record checks a 202 answer of batch b and notes its event ids: every item
// must carry an event_id and the deliveries expected, and only a retried
// batch may report duplicates.
func (p *publisher) record(b, try int, raw []byte) error {
	var env struct {
		Data struct {
			Results []struct {
				EventID    string          `json:"event_id"`
				Deliveries int             `json:"deliveries"`
				Duplicate  bool            `json:"duplicate"`
				Error      json.RawMessage `json:"error"`
			} `json:"results"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("batch %d: answer is not JSON: %v", b, err)
	}
	res := env.Data.Results
	if len(res) != p.batchSize {
		return fmt.Errorf("batch %d: %d results for %d events: %s", b, len(res), p.batchSize, raw)
	}
	for i, r := range res {
		n := b*p.batchSize + i
		switch {
		case r.Error != nil || r.EventID == "":
			return fmt.Errorf("batch %d item %d: not accepted: %s", b, i, raw)
		case r.Deliveries != p.endpointsEach:
			return fmt.Errorf("batch %d item %d: %d deliveries, want %d", b, i, r.Deliveries, p.endpointsEach)
		case r.Duplicate && try == 1:
			return fmt.Errorf("batch %d item %d: a first publish is reported as a duplicate of %s", b, i, r.EventID)
		case r.Duplicate:
			p.alreadyCommitted.Add(1)
		}
		p.eventIDs[n] = r.EventID
	}
	p.mu.Lock()
	p.last = time.Now()
	p.mu.Unlock()
	total := p.acked.Add(int64(len(res)))
	for _, m := range p.milestones {
		if total-int64(len(res)) < m.at && total >= m.at {
			m.when = time.Now()
			close(m.reached)
		}
	}
	return nil
}

// TestMultiNodeKillAndRollingRestart runs three nodes on one database and
// publishes 20,000 events through them while one node is killed with
// SIGKILL and another goes through a rolling restart. Every acknowledged
// event must reach both of its endpoints; no delivery may be attempted by
// two nodes at once; duplicates may come only from the claims the killed
// node held.
//
// It does not run in parallel with other tests: it measures throughput and
// its time bounds assume the CPUs are its own.
func TestMultiNodeKillAndRollingRestart(t *testing.T) {
	const (
		accounts      = 10
		endpointsEach = 2
		events        = 20_000
		batchSize     = 100
		publishers    = 4
		budget        = 4 * time.Minute // from the first publish to the last check
	)
	c := newCluster(t, 3)
	node2, node3 := c.nodes[1], c.nodes[2]
	// Each event goes to the 2 endpoints of its account, not to all 20:
	// 20,000 events × 2 = 40,000 deliveries keeps the test bounded in time
	// while every endpoint and every node still carries a share.
	accts := c.setupAccounts(t, accounts, endpointsEach)

	batches := events / batchSize
	killAt, restartAt := newMilestone(events*4/10), newMilestone(events*7/10)
	// The last tenth waits for node 3 to be back, so that publishing goes on
	// through the restarted node rather than ending while it is down.
	gateFrom := batches * 9 / 10
	ungated := newMilestone(gateFrom * batchSize)
	p := &publisher{
		live:          &liveSet{nodes: append([]*nodeProc(nil), c.nodes...)},
		client:        newPublishClient(t),
		accounts:      accts,
		batchSize:     batchSize,
		endpointsEach: endpointsEach,
		milestones:    []*milestone{killAt, restartAt, ungated},
		gateFrom:      gateFrom,
		gate:          make(chan struct{}),
		eventIDs:      make([]string, events),
		gatedBy:       map[string]int{},
	}

	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	pubErr := make(chan error, 1)
	pubFinished := make(chan struct{})
	go func() {
		defer close(pubFinished)
		pubErr <- p.run(ctx, publishers, batches)
	}()
	t.Cleanup(func() { cancel(); <-pubFinished }) // publishers end before the nodes are killed

	// SIGKILL node 2 in the middle of the load, then read what it held.
	select {
	case <-killAt.reached:
	case err := <-pubErr:
		t.Fatalf("publishing ended before the kill: %v", err)
	}
	killed := time.Now()
	if err := node2.kill(); err != nil {
		t.Fatal(err)
	}
	p.live.remove(node2)
	// Once node 2's backends are gone nothing changes its rows: its claims
	// stay until their leases expire. Each could have been attempted already
	// without its result being recorded, so they bound the duplicates.
	c.waitBackendsGone(t, ctx, node2)
	held := c.heldClaims(t, ctx, node2.id)
	t.Logf("SIGKILL node2 (%s) at %d acknowledged events: it held %d claims (read %v after the kill)",
		node2.id, p.acked.Load(), len(held), time.Since(killed).Round(time.Millisecond))

	// Rolling restart of node 3: out of rotation, SIGTERM, exit 0 within
	// its shutdown timeout, back on the same ports, back in rotation.
	select {
	case <-restartAt.reached:
	case err := <-pubErr:
		t.Fatalf("publishing ended before the restart: %v", err)
	}
	p.live.remove(node3)
	stopTook, exit, err := node3.terminate(mnShutdownTimeout + mnExitGrace)
	if err != nil {
		t.Fatal(err)
	}
	if exit != nil {
		t.Fatalf("node3 exited with %v after SIGTERM, want status 0", exit)
	}
	if node3.logCount("stopped cleanly") != 1 {
		t.Errorf("node3 did not log a clean stop")
	}
	restarting := time.Now()
	if err := node3.start(); err != nil {
		t.Fatal(err)
	}
	if err := node3.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	restartTook := time.Since(restarting)
	p.live.add(node3)
	close(p.gate)
	t.Logf("rolling restart of node3 at %d acknowledged events: exited 0 %v after SIGTERM, ready again %v after start",
		restartAt.at, stopTook.Round(time.Millisecond), restartTook.Round(time.Millisecond))

	if err := <-pubErr; err != nil {
		t.Fatalf("publishing: %v", err)
	}
	p.mu.Lock()
	firstPublish, lastAck := p.first, p.last
	afterRestart := p.gatedBy[node3.name]
	p.mu.Unlock()
	if afterRestart == 0 {
		t.Errorf("no batch was acknowledged by node3 after its restart (after-restart batches by node: %v)", p.gatedBy)
	}

	// Every event was acknowledged (run fails otherwise); each must reach
	// both endpoints of its account.
	expected := make(map[receiptKey]string, events*endpointsEach)
	for n, id := range p.eventIDs {
		if id == "" {
			t.Fatalf("event %d was never acknowledged", n)
		}
		for _, path := range accts[n%accounts].paths {
			expected[receiptKey{eventID: id, path: path}] = taskID(n)
		}
	}
	if len(expected) != events*endpointsEach {
		t.Fatalf("%d distinct deliveries expected from %d events; event ids repeat", len(expected), events)
	}
	c.waitDelivered(t, ctx, expected, c.nodes[0], node3)
	allReceived := time.Now()
	c.waitAllSucceeded(t, ctx, events*endpointsEach)
	tl := c.rcv.tally(expected) // final: nothing is pending, so nothing more arrives

	var storedEvents int
	if err := c.db.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&storedEvents); err != nil {
		t.Fatal(err)
	}
	if storedEvents != events {
		t.Errorf("%d events stored, want %d", storedEvents, events)
	}
	if tl.rejected > 0 {
		t.Errorf("the receiver rejected %d requests: %s", tl.rejected, strings.Join(tl.rejectedMsgs, "; "))
	}
	if len(tl.missing) > 0 {
		t.Errorf("%d acknowledged deliveries missing", len(tl.missing))
	}
	if len(tl.unexpected) > 0 {
		t.Errorf("%d deliveries of events that were never acknowledged, e.g. %+v", len(tl.unexpected), tl.unexpected[0])
	}
	if tl.wrongTask > 0 {
		t.Errorf("%d deliveries carried another task's body", tl.wrongTask)
	}
	if tl.overlaps > 0 {
		t.Errorf("%d overlapping attempts: a delivery was attempted by two workers at once", tl.overlaps)
	}
	if tl.duplicates > len(held) {
		t.Errorf("%d duplicate deliveries, but the killed node held only %d claims", tl.duplicates, len(held))
	}
	// Sharper: each held delivery may come twice (node 2's attempt and the
	// one after its lease expired), every other delivery exactly once, so
	// the rolling restart and the surviving nodes add no duplicate at all.
	heldSet := map[receiptKey]bool{}
	for _, k := range held {
		heldSet[k] = true
	}
	outside, mostHeld := c.rcv.duplicatesSplit(heldSet)
	if outside > 0 {
		t.Errorf("%d duplicates of deliveries node2 did not hold: the rolling restart or a surviving node repeated work", outside)
	}
	if mostHeld > 2 {
		t.Errorf("a delivery node2 held arrived %d times, want at most 2", mostHeld)
	}

	recovered, late, absent := c.rcv.receivedAfter(held, killed)
	recovery := "n/a (node2 held nothing)"
	if !recovered.IsZero() {
		recovery = recovered.Sub(killed).Round(time.Millisecond).String()
	}
	deliverySpan := tl.lastFirst.Sub(firstPublish)
	othersSpan := c.rcv.lastFirstArrival(expected, heldSet).Sub(firstPublish)
	publishSpan := lastAck.Sub(firstPublish)
	<-ungated.reached // long since: every event was acknowledged
	ungatedSpan := ungated.when.Sub(firstPublish)
	t.Logf("deliveries: %d in %v from the first publish to the last first receipt = %.0f deliveries/s "+
		"(the %d that were not waiting for node2's leases to expire: %v = %.0f/s)",
		len(expected), deliverySpan.Round(time.Millisecond), float64(len(expected))/deliverySpan.Seconds(),
		len(expected)-len(heldSet), othersSpan.Round(time.Millisecond), float64(len(expected)-len(heldSet))/othersSpan.Seconds())
	t.Logf("events accepted: %d in %v = %.0f events/s (the first %d, before publishing paused for node3's restart: %v = %.0f/s)",
		events, publishSpan.Round(time.Millisecond), float64(events)/publishSpan.Seconds(),
		ungated.at, ungatedSpan.Round(time.Millisecond), float64(ungated.at)/ungatedSpan.Seconds())
	t.Logf("duplicates seen: %d, bound (claims node2 held at its death): %d; overlaps: %d; "+
		"requests with attempt > 1: %d; requests cut short by the kill: %d",
		tl.duplicates, len(held), tl.overlaps, tl.laterAttempts, tl.aborted)
	t.Logf("recovery: every delivery node2 held was received %s after the kill (%d had only been received before it, %d never)",
		recovery, late, absent)
	t.Logf("batches retried on another node: %d (%d failed tries, %d items already committed by a failed try); "+
		"batches after node3's restart by node: %v",
		p.retriedBatches.Load(), p.failedTries.Load(), p.alreadyCommitted.Load(), p.gatedBy)
	p.mu.Lock()
	for _, f := range p.failures {
		t.Logf("  failed try: %s", f)
	}
	p.mu.Unlock()
	for _, n := range c.nodes {
		t.Logf("%s: %d ERROR log lines", n.name, n.logCount(`"level":"ERROR"`))
	}
	t.Logf("all delivered %v after the first publish; %d requests received in all", allReceived.Sub(firstPublish).Round(time.Millisecond), tl.requests)

	c.stopGracefully(t)
}

// raceAnswer is one racer's view of publishing the same job event.
type raceAnswer struct {
	status     int
	err        error
	eventID    string
	deliveries int
	duplicate  bool
}

// TestIdempotencyRaceAcrossNodes publishes the same job event from 30
// goroutines spread over three nodes at once: every answer must be a 202
// with the same event id and exactly one of them a first publish; the
// database must hold one event with its 2 deliveries, and each delivery
// must reach its endpoint once. Several rounds, each with its own task, make
// a lucky interleaving unlikely to hide a check-then-insert.
func TestIdempotencyRaceAcrossNodes(t *testing.T) {
	const rounds, racers = 5, 30
	c := newCluster(t, 3)
	acct := c.setupAccounts(t, 1, 2)[0]
	client := newPublishClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	expected := map[receiptKey]string{}
	for r := range rounds {
		task := fmt.Sprintf("race_task_%d", r)
		body := fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"video","data":{"url":"https://cdn.example.com/%s.mp4","credits_charged":40}}`,
			acct.id, task, task)
		answers := make([]raceAnswer, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			n := c.nodes[i%len(c.nodes)]
			wg.Go(func() {
				<-start
				answers[i] = publishOne(ctx, client, n, body)
			})
		}
		close(start)
		wg.Wait()

		var id, winner string // the event id all must agree on; the node that created it
		for _, a := range answers {
			if a.eventID != "" {
				id = a.eventID
				break
			}
		}
		firsts := 0
		for i, a := range answers {
			node := c.nodes[i%len(c.nodes)].name
			switch {
			case a.err != nil || a.status != http.StatusAccepted:
				t.Errorf("round %d racer %d (%s): status %d, %v", r, i, node, a.status, a.err)
			case a.eventID != id:
				t.Errorf("round %d racer %d (%s): event %s, another racer got %s", r, i, node, a.eventID, id)
			case a.deliveries != 2:
				t.Errorf("round %d racer %d (%s): %d deliveries, want 2", r, i, node, a.deliveries)
			}
			if !a.duplicate && a.err == nil && a.status == http.StatusAccepted {
				firsts++
				winner = node
			}
		}
		if firsts != 1 {
			t.Errorf("round %d: %d answers say duplicate=false, want exactly 1", r, firsts)
		}
		t.Logf("round %d: %d racers on %d nodes, event %s created by %s", r, racers, len(c.nodes), id, winner)
		var storedEvents, storedDeliveries int
		if err := c.db.QueryRow(ctx, `SELECT count(*) FROM events WHERE task_id = $1`, task).Scan(&storedEvents); err != nil {
			t.Fatal(err)
		}
		if err := c.db.QueryRow(ctx, `SELECT count(*) FROM deliveries d JOIN events e ON e.pk = d.event_pk
			WHERE e.task_id = $1 AND e.id = $2`, task, id).Scan(&storedDeliveries); err != nil {
			t.Fatal(err)
		}
		if storedEvents != 1 || storedDeliveries != 2 {
			t.Errorf("round %d: %d events and %d deliveries of them stored, want 1 and 2", r, storedEvents, storedDeliveries)
		}
		for _, path := range acct.paths {
			expected[receiptKey{eventID: id, path: path}] = task
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	c.waitDelivered(t, ctx, expected, c.nodes...)
	c.waitAllSucceeded(t, ctx, 2*rounds)
	tl := c.rcv.tally(expected)
	for k := range expected {
		if n := c.rcv.receiptCount(k); n != 1 {
			t.Errorf("delivery %+v received %d times, want once", k, n)
		}
	}
	if len(tl.unexpected) > 0 || tl.overlaps > 0 || tl.rejected > 0 || tl.wrongTask > 0 {
		t.Errorf("receiver: %d unexpected deliveries, %d overlaps, %d rejected %v, %d with another task's body",
			len(tl.unexpected), tl.overlaps, tl.rejected, tl.rejectedMsgs, tl.wrongTask)
	}
	c.stopGracefully(t)
}

// publishOne publishes one event on n's admin API and decodes the answer.
func publishOne(ctx context.Context, client *http.Client, n *nodeProc, body string) raceAnswer {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+n.adminAddr+"/admin/v1/events", strings.NewReader(body))
	if err != nil {
		return raceAnswer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+mnAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return raceAnswer{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	a := raceAnswer{status: resp.StatusCode, err: err}
	if err != nil {
		return a
	}
	var env struct {
		Data struct {
			EventID    string `json:"event_id"`
			Deliveries int    `json:"deliveries"`
			Duplicate  bool   `json:"duplicate"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		a.err = fmt.Errorf("answer is not JSON: %v: %s", err, raw)
		return a
	}
	if a.status != http.StatusAccepted {
		a.err = errors.New(string(raw))
	}
	a.eventID, a.deliveries, a.duplicate = env.Data.EventID, env.Data.Deliveries, env.Data.Duplicate
	return a
}
