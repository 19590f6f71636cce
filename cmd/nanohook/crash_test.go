//go:build linux

// The crash-consistency test (issue 6, item 1): a SQLite-backed "nanohook
// serve" is killed with SIGKILL again and again under load, and nothing it
// acknowledged may be lost.

package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// crashWorkers is the child's --delivery-workers: the attempts it has in
	// flight at once, which with the engine's claim size bounds what a kill
	// can cut short.
	crashWorkers = 16
	// crashClaimSize is the delivery engine's ClaimSize (delivery.Config),
	// which serve leaves at its default of 256: the most outcomes the
	// completer commits in one transaction.
	crashClaimSize = 256
	// crashDeliveryTimeout is the child's --delivery-timeout. A claim's
	// lease is this plus the engine's lease margin (30 s, not a flag), so a
	// killed incarnation's claims are attempted again about 35 s after they
	// were taken. It is long enough that no attempt times out on a loaded
	// machine (the receiver answers within 3 ms): a timed-out attempt that
	// arrived would be a duplicate no kill explains.
	crashDeliveryTimeout = 5 * time.Second
	// crashShutdownTimeout is the child's --shutdown-timeout.
	crashShutdownTimeout = 10 * time.Second
)

// crashDuplicateBoundPerKill is the most deliveries one SIGKILL can make
// arrive twice. A delivery is received again only if an attempt reached the
// receiver and its outcome was not committed when the process died; the
// next incarnation then attempts it once more when the lease expires. Such
// an attempt is in one of three places of the engine (delivery/engine.go):
// on a worker (being sent, or sent and waiting to hand its outcome over:
// at most --delivery-workers together), in the results channel (capacity
// --delivery-workers), or in the completer's batch being committed (at
// most ClaimSize). Deliveries claimed but not yet sent are only sent later,
// once. So: 2 × workers + ClaimSize = 2 × 16 + 256 = 288.
const crashDuplicateBoundPerKill = 2*crashWorkers + crashClaimSize

// TestCrashConsistencySQLite publishes a steady stream of job events (single
// and batch publishes, three publishers) to one SQLite-backed serve child,
// SIGKILLs it six times at random moments (seeded; the seed is logged and
// NANOHOOK_CRASH_SEED repeats it) and restarts it with the same command line
// each time. At the end:
//
//   - every event that got a 202 has reached every endpoint subscribed to
//     its type, in its account, at least once, and nothing else arrived;
//   - every signature verified, and no delivery was attempted twice at once;
//   - duplicates come only from deliveries the killed incarnations held
//     (read from the file after each kill): each at most once per kill that
//     caught it, and in all at most kills × crashDuplicateBoundPerKill;
//   - the file passes PRAGMA integrity_check and foreign_key_check after
//     every kill (the state a restart recovers from) and after the final
//     graceful stop, and holds exactly the acknowledged events.
func TestCrashConsistencySQLite(t *testing.T) {
	const (
		kills       = 6
		publishers  = 3
		batchSize   = 20
		loadBudget  = 60 * time.Second // from the first publish to the last restart
		drainBudget = 75 * time.Second // then until everything is delivered: leases of the last kill expire after ~35 s
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NANOHOOK_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NANOHOOK_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("kill timing seed %d (NANOHOOK_CRASH_SEED=%d repeats it)", seed, seed)
	rng := mathrand.New(mathrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	started := time.Now()

	rcv := newReceiver() // the multi-node tests' verifying, counting receiver
	t.Cleanup(rcv.srv.Close)
	node := startSQLiteChild(t, "crash",
		"--retry-schedule", "200ms,500ms,1s,2s,4s",
		"--delivery-timeout", crashDeliveryTimeout.String(),
		"--delivery-workers", strconv.Itoa(crashWorkers),
		"--shutdown-timeout", crashShutdownTimeout.String())

	// Two accounts; account A's endpoints subscribe to different events, so
	// that "every matching endpoint" is a real condition, and account B's
	// endpoint must get none of A's events.
	acctA, keyA := node.createAccount(t, "crash A")
	acctB, keyB := node.createAccount(t, "crash B")
	paths := map[int64]string{} // endpoint id → receiver path
	endpoint := func(key, path string, events ...string) {
		secret := "whsec_crash_" + strings.ReplaceAll(path, "/", "_") + "_" + randomHex(t, 8)
		rcv.expect(path, secret)
		paths[node.createEndpoint(t, key, rcv.srv.URL+path, secret, events...)] = path
	}
	endpoint(keyA, "/a/completed", "job.completed")
	endpoint(keyA, "/a/failed", "job.failed")
	endpoint(keyA, "/a/both", "job.completed", "job.failed")
	endpoint(keyB, "/b/both", "job.completed", "job.failed")
	routes := crashRoutes{accounts: [2]int64{acctA, acctB}}

	ctx, cancel := context.WithTimeout(context.Background(), loadBudget+drainBudget)
	defer cancel()
	p := &crashPublisher{
		client: newPublishClient(t), adminAddr: node.adminAddr, routes: routes, batchSize: batchSize,
		stop: make(chan struct{}), acked: map[int]string{},
	}
	var pubWG sync.WaitGroup
	pubErr := make(chan error, publishers)
	for range publishers {
		pubWG.Go(func() {
			if err := p.run(ctx); err != nil {
				pubErr <- err
				cancel() // the others stop too
			}
		})
	}
	stopPublishing := sync.OnceFunc(func() { close(p.stop); pubWG.Wait() })
	t.Cleanup(func() { cancel(); stopPublishing() }) // publishers end before the child is killed

	// The kills. Each waits a random 200–1500 ms after the incarnation is
	// ready, SIGKILLs it, reads from the file what it held, checks the file
	// as the kill left it, and restarts the child on the same command line.
	loadStart := time.Now()
	heldBy := map[receiptKey]int{} // delivery → kills during which it was held
	heldTotal := 0
	var restartTimes []time.Duration
	for k := 1; k <= kills; k++ {
		wait := time.Duration(200+rng.IntN(1301)) * time.Millisecond
		select {
		case <-time.After(wait):
		case err := <-pubErr:
			t.Fatalf("publishing failed before kill %d: %v", k, err)
		}
		if time.Since(loadStart) > loadBudget {
			t.Fatalf("kill %d not reached within %v of load", k, loadBudget)
		}
		incarnation := node.id
		ackedAtKill := p.ackedEvents()
		if err := node.kill(); err != nil {
			t.Fatal(err)
		}
		held := crashHeldClaims(t, node.db, incarnation, paths)
		for _, key := range held {
			heldBy[key]++
		}
		heldTotal += len(held)
		restarting := time.Now()
		if err := node.start(); err != nil {
			t.Fatal(err)
		}
		node.mustBeReady(t)
		restartTimes = append(restartTimes, time.Since(restarting))
		t.Logf("kill %d after %v: %d events acknowledged, incarnation held %d claims; ready again %v after restart",
			k, wait, ackedAtKill, len(held), restartTimes[len(restartTimes)-1].Round(time.Millisecond))
	}
	// Let the last incarnation take publishes too, then stop: each publisher
	// finishes the request it has started (retrying it until it is
	// acknowledged), so no event is left committed but unacknowledged.
	select {
	case <-time.After(time.Second):
	case err := <-pubErr:
		t.Fatalf("publishing failed after the last restart: %v", err)
	}
	stopPublishing()
	select {
	case err := <-pubErr:
		t.Fatalf("publishing: %v", err)
	default:
	}
	loadTook := time.Since(loadStart)

	// Every acknowledged event must reach every endpoint matching it.
	expected := map[receiptKey]string{}
	p.mu.Lock()
	for n, id := range p.acked {
		for _, path := range routes.paths(n) {
			expected[receiptKey{eventID: id, path: path}] = taskID(n)
		}
	}
	ackedEvents := len(p.acked)
	p.mu.Unlock()
	drainStart := time.Now()
	crashWaitDelivered(t, ctx, rcv, node, expected)
	drainTook := time.Since(drainStart)
	// The receiver has everything; once the file says every delivery is
	// succeeded, nothing more can arrive and the counts are final.
	crashWaitAllSucceeded(t, ctx, node.db, len(expected))
	tl := rcv.tally(expected)

	if tl.rejected > 0 {
		t.Errorf("the receiver rejected %d requests: %s", tl.rejected, strings.Join(tl.rejectedMsgs, "; "))
	}
	if len(tl.missing) > 0 {
		t.Errorf("%d acknowledged deliveries missing, e.g. %+v", len(tl.missing), tl.missing[0])
	}
	if len(tl.unexpected) > 0 {
		t.Errorf("%d deliveries nobody expected (an unacknowledged event, or an endpoint not subscribed), e.g. %+v",
			len(tl.unexpected), tl.unexpected[0])
	}
	if tl.wrongTask > 0 {
		t.Errorf("%d deliveries carried another task's body", tl.wrongTask)
	}
	if tl.overlaps > 0 {
		t.Errorf("%d overlapping attempts: a delivery was attempted twice at once", tl.overlaps)
	}
	// Duplicates: a delivery may arrive once more for each kill that caught
	// it claimed; nothing else may repeat.
	unexplained := 0
	for key := range expected {
		if n := rcv.receiptCount(key); n > 1+heldBy[key] {
			unexplained += n - 1 - heldBy[key]
			if unexplained <= 5 {
				t.Errorf("delivery %+v arrived %d times, but only %d kills caught it claimed", key, n, heldBy[key])
			}
		}
	}
	if unexplained > 0 {
		t.Errorf("%d duplicates of deliveries no killed incarnation held", unexplained)
	}
	staticBound := kills * crashDuplicateBoundPerKill
	if tl.duplicates > heldTotal || tl.duplicates > staticBound {
		t.Errorf("%d duplicates, want at most the %d claims the killed incarnations held and at most %d kills × %d",
			tl.duplicates, heldTotal, kills, crashDuplicateBoundPerKill)
	}

	db := openReadOnly(t, node.db)
	var storedEvents, storedDeliveries int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries)`).
		Scan(&storedEvents, &storedDeliveries); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if storedEvents != ackedEvents || storedDeliveries != len(expected) {
		t.Errorf("the file holds %d events and %d deliveries, want the %d acknowledged events and their %d deliveries",
			storedEvents, storedDeliveries, ackedEvents, len(expected))
	}

	node.stopGracefully(t, crashShutdownTimeout)
	final := openReadOnly(t, node.db)
	checkSQLiteFile(t, final, "after the final graceful stop")
	final.Close()

	p.mu.Lock()
	singles, batches, failedTries, retriedDup := p.singles, p.batches, p.failedTries, p.alreadyCommitted
	p.mu.Unlock()
	t.Logf("publish requests acknowledged: %d single, %d batches of %d; %d tries failed (child down or dying) and were retried, "+
		"%d events were found already committed by a try whose answer was lost", singles, batches, batchSize, failedTries, retriedDup)
	t.Logf("requests cut short by a kill: %d; requests that were a retry (attempt > 1): %d; restarts took %v",
		tl.aborted, tl.laterAttempts, restartTimes)
	// all_received: from the end of publishing until every expected
	// delivery had arrived once; total includes waiting for the last
	// incarnations' leases to expire so that every row is succeeded.
	t.Logf("crash summary: kills=%d events_acknowledged=%d deliveries_expected=%d received=%d duplicates=%d "+
		"held_at_kills=%d bound=%d load=%v all_received=%v total=%v",
		kills, ackedEvents, len(expected), tl.requests, tl.duplicates, heldTotal, staticBound,
		loadTook.Round(time.Millisecond), drainTook.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
}

// crashRoutes decides, for event number n, its account, its type and the
// receiver paths that must get it. Three events in four go to account A,
// whose endpoints split by event type; the fourth to account B.
type crashRoutes struct{ accounts [2]int64 }

func (r crashRoutes) accountIndex(n int) int { return min(1, n%4/3) }

func (r crashRoutes) event(n int) string {
	if n%2 == 0 {
		return "job.completed"
	}
	return "job.failed"
}

// paths are the endpoints subscribed to event n.
func (r crashRoutes) paths(n int) []string {
	if r.accountIndex(n) == 1 {
		return []string{"/b/both"}
	}
	if r.event(n) == "job.completed" {
		return []string{"/a/completed", "/a/both"}
	}
	return []string{"/a/failed", "/a/both"}
}

// item is event n as a publish request.
func (r crashRoutes) item(n int) string {
	return fmt.Sprintf(`{"account_id":%d,"event":%q,"task_id":%q,"task_type":"image","data":{"url":"https://cdn.example.com/%d.png","credits_charged":6}}`,
		r.accounts[r.accountIndex(n)], r.event(n), taskID(n), n)
}

// crashPublisher publishes numbered events through the admin API, alone or
// in batches, retrying each request (same body, so the same idempotency
// keys) until it is acknowledged, and records every acknowledged event.
type crashPublisher struct {
	client    *http.Client
	adminAddr string
	routes    crashRoutes
	batchSize int
	stop      chan struct{} // closed: finish the current request, then return

	next     atomic.Int64 // next event number
	requests atomic.Int64 // requests started; even ones are batches

	mu               sync.Mutex
	acked            map[int]string // event number → event id
	singles, batches int            // requests acknowledged
	failedTries      int            // tries refused, reset or unanswered
	alreadyCommitted int            // items a retry found committed by a try whose answer was lost
}

// ackedEvents is how many events have been acknowledged so far.
func (p *crashPublisher) ackedEvents() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// run publishes until stop is closed or ctx ends; an error means the test
// fails (an answer that is neither a 2xx nor a sign of the child's death).
func (p *crashPublisher) run(ctx context.Context) error {
	for {
		select {
		case <-p.stop:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		if p.requests.Add(1)%2 == 1 {
			n := int(p.next.Add(1) - 1)
			if err := p.send(ctx, "/admin/v1/events", []byte(p.routes.item(n)), n, 1); err != nil {
				return err
			}
			continue
		}
		first := int(p.next.Add(int64(p.batchSize))) - p.batchSize
		var b bytes.Buffer
		b.WriteString(`{"events":[`)
		for i := range p.batchSize {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(p.routes.item(first + i))
		}
		b.WriteString(`]}`)
		if err := p.send(ctx, "/admin/v1/events/batch", b.Bytes(), first, p.batchSize); err != nil {
			return err
		}
	}
}

// publishAnswer is one published event's result, alone or in a batch.
type publishAnswer struct {
	EventID    string `json:"event_id"`
	Deliveries int    `json:"deliveries"`
	Duplicate  bool   `json:"duplicate"`
}

// send posts body (events first … first+count-1) until it gets a 202. A
// refused or broken connection and a 5xx are what a dead or dying child
// gives: the request is tried again after a short pause. Anything else is
// an error.
func (p *crashPublisher) send(ctx context.Context, path string, body []byte, first, count int) error {
	for try := 1; ; try++ {
		status, raw, err := p.post(ctx, path, body)
		if ctx.Err() != nil {
			return nil // the test is ending (or failed elsewhere)
		}
		if err == nil && status == http.StatusAccepted {
			return p.record(raw, first, count, try)
		}
		if err == nil && status < 500 {
			return fmt.Errorf("POST %s: answered %d: %s", path, status, raw)
		}
		p.mu.Lock()
		p.failedTries++
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(time.Duration(try)*20*time.Millisecond, 200*time.Millisecond)):
		}
	}
}

// post sends one try and returns the status and body; err is a transport
// failure (refused, reset, an answer cut short).
func (p *crashPublisher) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+p.adminAddr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+relAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// record checks a 202 and notes its events: each must have an id and one
// delivery per matching endpoint, and only a retried request may find its
// events already committed.
func (p *crashPublisher) record(raw []byte, first, count, try int) error {
	var results []publishAnswer
	if count == 1 {
		var env struct{ Data publishAnswer }
		if err := json.Unmarshal(raw, &env); err != nil {
			return fmt.Errorf("publish answer is not JSON: %v: %s", err, raw)
		}
		results = []publishAnswer{env.Data}
	} else {
		var env struct {
			Data struct{ Results []publishAnswer }
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			return fmt.Errorf("batch answer is not JSON: %v: %s", err, raw)
		}
		results = env.Data.Results
	}
	if len(results) != count {
		return fmt.Errorf("%d results for %d events: %s", len(results), count, raw)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range results {
		n := first + i
		switch {
		case r.EventID == "":
			return fmt.Errorf("event %d: no event_id in %s", n, raw)
		case r.Deliveries != len(p.routes.paths(n)):
			return fmt.Errorf("event %d (%s, account %d): %d deliveries, want %d",
				n, p.routes.event(n), p.routes.accounts[p.routes.accountIndex(n)], r.Deliveries, len(p.routes.paths(n)))
		case r.Duplicate && try == 1:
			return fmt.Errorf("event %d: its first publish is reported as a duplicate of %s", n, r.EventID)
		case r.Duplicate:
			p.alreadyCommitted++
		}
		p.acked[n] = r.EventID
	}
	if count == 1 {
		p.singles++
	} else {
		p.batches++
	}
	return nil
}

// crashHeldClaims reads, from the file a killed incarnation left, the
// deliveries it held claimed: the only ones it may have sent without
// recording the outcome, which the next incarnation sends again once the
// lease expires. It also checks the file as the kill left it.
func crashHeldClaims(t *testing.T, path, owner string, paths map[int64]string) []receiptKey {
	t.Helper()
	if owner == "" {
		t.Fatal("the killed incarnation's node id is unknown")
	}
	db := openReadOnly(t, path)
	defer db.Close()
	checkSQLiteFile(t, db, "right after a SIGKILL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT e.id, d.endpoint_id
		FROM deliveries d JOIN events e ON e.pk = d.event_pk
		WHERE d.lease_owner = ? AND d.lease_token IS NOT NULL AND d.status = 'pending'`, owner)
	if err != nil {
		t.Fatalf("read the claims of %s: %v", owner, err)
	}
	defer rows.Close()
	var keys []receiptKey
	for rows.Next() {
		var eventID string
		var endpointID int64
		if err := rows.Scan(&eventID, &endpointID); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, receiptKey{eventID: eventID, path: paths[endpointID]})
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the claims of %s: %v", owner, err)
	}
	return keys
}

// crashWaitDelivered waits until the receiver has every expected delivery
// at least once, failing at once on a rejected signature or a child that
// exited, and listing what is missing at ctx's deadline.
func crashWaitDelivered(t *testing.T, ctx context.Context, rcv *receiver, node *sqliteChild, expected map[receiptKey]string) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		distinct, rejected, msgs := rcv.progress()
		if rejected > 0 {
			t.Fatalf("the receiver rejected %d requests: %s", rejected, strings.Join(msgs, "; "))
		}
		if distinct >= len(expected) && len(rcv.tally(expected).missing) == 0 {
			return
		}
		if node.exited() {
			t.Fatalf("%s exited unexpectedly: %v", node.name, node.waitErr)
		}
		select {
		case <-ctx.Done():
			missing := rcv.tally(expected).missing
			if len(missing) == 0 {
				return
			}
			var list []string
			for _, k := range missing[:min(20, len(missing))] {
				list = append(list, fmt.Sprintf("%s→%s (%s)", k.eventID, k.path, expected[k]))
			}
			t.Fatalf("%d of %d acknowledged deliveries never arrived: %s; deliveries in the file by status: %s",
				len(missing), len(expected), strings.Join(list, ", "), crashStatusCounts(node.db))
		case <-tick.C:
		}
	}
}

// crashWaitAllSucceeded waits until the file holds want deliveries, all
// succeeded.
func crashWaitAllSucceeded(t *testing.T, ctx context.Context, path string, want int) {
	t.Helper()
	db := openReadOnly(t, path)
	defer db.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var total, succeeded int
		err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM deliveries`).
			Scan(&total, &succeeded)
		if err == nil && total == want && succeeded == want {
			return
		}
		if err != nil && ctx.Err() == nil {
			t.Fatalf("count deliveries: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deliveries in the file: %d, %d succeeded; want %d, all succeeded (%s)",
				total, succeeded, want, crashStatusCounts(path))
		case <-tick.C:
		}
	}
}

// crashStatusCounts describes how many deliveries the file holds in each
// status, for failure messages.
func crashStatusCounts(path string) string {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status`)
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
