package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanohook/nanohook/webhook"
)

// behaviour is how one receiver endpoint answers.
type behaviour int

const (
	answerAtOnce     behaviour = iota // 200 at once
	answerSlowly                      // 200 after slowAnswer
	holdUntilFreed                    // no answer until release (then 503) or the request ends
	failFirstAttempt                  // 500 to attempt 1, 200 to every later one
	answerVerySlowly                  // 200 after verySlowAnswer; 503 at once after release
	failAlways                        // 500 at once to every attempt
)

// slowAnswer is how long an answerSlowly endpoint takes.
const slowAnswer = 100 * time.Millisecond

// verySlowAnswer is how long an answerVerySlowly endpoint takes: a
// customer's overloaded server, slow but successful, so no breaker ever
// holds it back (issue 12).
const verySlowAnswer = 3 * time.Second

// benchReceiver is the customers' side of the bench: one loopback HTTP
// server whose path /e/<n> is endpoint slot n. It verifies every request's
// signature and records each first successful receipt of an event at an
// awaited endpoint; other endpoints' answers are only counted per slot.
// Slots are fixed before it starts, so handlers read them without a lock;
// the records are one mutex-protected append.
type benchReceiver struct {
	srv   *http.Server
	base  string // http://127.0.0.1:port
	slots []receiverSlot

	released chan struct{} // closed by release: held requests answer
	freeOnce sync.Once

	requests  atomic.Int64 // every request, whatever its answer
	delivered atomic.Int64 // first 2xx per event and awaited slot
	dups      atomic.Int64 // 2xx answered again for an event and slot
	invalid   atomic.Int64 // signatures that did not verify
	held      atomic.Int64 // holdUntilFreed requests waiting right now
	heldPeak  atomic.Int64 // most held at once since the start or resetHeldPeak

	mu       sync.Mutex
	seen     map[deliveryKey]struct{}
	receipts []receipt
	firstBad error         // the first verification failure, for the report
	bad      chan struct{} // closed when firstBad is set: the run has failed
	want     int64         // delivered count that closes complete; 0: none
	complete chan struct{} // closed when delivered reaches want
}

// receiverSlot is one endpoint of the receiver.
type receiverSlot struct {
	verifier *webhook.Verifier
	does     behaviour
	// awaited slots' deliveries are the run's receipts: counted towards
	// the wait, timed, and counted in delivered. Others (a bad tenant's
	// slow endpoints) are background load, counted here only.
	awaited bool

	requests  atomic.Int64 // every request to this slot
	delivered atomic.Int64 // first 2xx per event here, awaited or not
}

type deliveryKey struct {
	eventID string
	slot    int32
}

// receipt is one delivery received and answered 2xx for the first time.
type receipt struct {
	eventID string
	at      time.Time
}

// startReceiver listens on a loopback port with one slot per secret.
// awaited tells the slots whose deliveries the run waits for and times (nil:
// every slot). expect is the number of deliveries the run waits for (0:
// none), which also sizes the records.
func startReceiver(secrets []string, does func(slot int) behaviour, awaited func(slot int) bool, expect int) (*benchReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &benchReceiver{
		base:     "http://" + ln.Addr().String(),
		released: make(chan struct{}),
		seen:     make(map[deliveryKey]struct{}, expect),
		receipts: make([]receipt, 0, expect),
		want:     int64(expect),
		complete: make(chan struct{}),
		bad:      make(chan struct{}),
	}
	r.slots = make([]receiverSlot, len(secrets))
	for i, s := range secrets {
		r.slots[i].verifier = &webhook.Verifier{Secrets: []string{s}}
		r.slots[i].does = does(i)
		r.slots[i].awaited = awaited == nil || awaited(i)
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go r.srv.Serve(ln)
	return r, nil
}

// url is the address of endpoint slot n.
func (r *benchReceiver) url(n int) string { return r.base + "/e/" + strconv.Itoa(n) }

// ServeHTTP verifies, applies the slot's behaviour, and records.
func (r *benchReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	r.requests.Add(1)
	n, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/e/"))
	if err != nil || n < 0 || n >= len(r.slots) || !strings.HasPrefix(req.URL.Path, "/e/") {
		http.NotFound(w, req)
		return
	}
	slot := &r.slots[n]
	slot.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err == nil {
		err = slot.verifier.Verify(req.Header, body)
	}
	if err != nil {
		r.reject(err)
		http.Error(w, "signature does not verify", http.StatusUnauthorized)
		return
	}
	if !r.behave(w, req, slot.does) {
		return
	}
	r.record(req.Header.Get(webhook.HeaderEventID), int32(n), at)
}

// behave answers as the slot does; it reports whether the answer is the
// 2xx that counts as delivered (written by the caller's default 200).
func (r *benchReceiver) behave(w http.ResponseWriter, req *http.Request, does behaviour) bool {
	switch does {
	case answerSlowly:
		t := time.NewTimer(slowAnswer)
		defer t.Stop()
		select {
		case <-t.C:
		case <-req.Context().Done():
			return false
		}
	case answerVerySlowly:
		t := time.NewTimer(verySlowAnswer)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.released:
			// The run is over: answer now, so the server stops at once
			// instead of waiting out the attempts in flight.
			http.Error(w, "the bench is over", http.StatusServiceUnavailable)
			return false
		case <-req.Context().Done():
			return false
		}
	case holdUntilFreed:
		r.hold(1)
		defer r.hold(-1)
		select {
		case <-r.released:
			http.Error(w, "the bench is over", http.StatusServiceUnavailable)
		case <-req.Context().Done():
		}
		return false
	case failFirstAttempt:
		if req.Header.Get(webhook.HeaderDeliveryAttempt) == "1" {
			http.Error(w, "failing every first attempt", http.StatusInternalServerError)
			return false
		}
	case failAlways:
		http.Error(w, "failing every attempt", http.StatusInternalServerError)
		return false
	}
	return true
}

// hold counts a request starting (+1) or ending (-1) its hold, and keeps
// the peak.
func (r *benchReceiver) hold(d int64) {
	n := r.held.Add(d)
	for {
		peak := r.heldPeak.Load()
		if n <= peak || r.heldPeak.CompareAndSwap(peak, n) {
			return
		}
	}
}

// resetHeldPeak starts a new peak from the requests held now, so the peak
// read later is the most held at once in between.
func (r *benchReceiver) resetHeldPeak() { r.heldPeak.Store(r.held.Load()) }

// slotCounts is what slots [from, to) have received so far.
type slotCounts struct {
	requests  int64 // every request
	delivered int64 // first 2xx per event and slot
}

// counts sums the per-slot counters of slots [from, to).
func (r *benchReceiver) counts(from, to int) slotCounts {
	var c slotCounts
	for i := from; i < to; i++ {
		c.requests += r.slots[i].requests.Load()
		c.delivered += r.slots[i].delivered.Load()
	}
	return c
}

func (r *benchReceiver) reject(err error) {
	r.invalid.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstBad == nil {
		r.firstBad = err
		close(r.bad)
	}
}

// record counts a 2xx answer: the first per event and slot is a delivery,
// any later one a duplicate. Only an awaited slot's deliveries are
// receipts.
func (r *benchReceiver) record(eventID string, slot int32, at time.Time) {
	k := deliveryKey{eventID, slot}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.seen[k]; dup {
		r.dups.Add(1)
		return
	}
	r.seen[k] = struct{}{}
	r.slots[slot].delivered.Add(1)
	if !r.slots[slot].awaited {
		return
	}
	r.receipts = append(r.receipts, receipt{eventID: eventID, at: at})
	if r.delivered.Add(1) == r.want { // once: counts only grow, under mu
		close(r.complete)
	}
}

// wait returns when every expected delivery arrived, a signature did not
// verify (its delivery could never arrive) or ctx ends. A bad signature is
// an error even when every delivery arrived.
func (r *benchReceiver) wait(ctx context.Context) error {
	select {
	case <-r.complete:
	case <-r.bad:
	case <-ctx.Done():
		return fmt.Errorf("%s of %s deliveries received: %w", thousands(r.delivered.Load()), thousands(r.want), ctx.Err())
	}
	if _, bad := r.snapshot(); bad != nil {
		return fmt.Errorf("a signature did not verify: %w", bad)
	}
	return nil
}

// snapshot returns the receipts so far and the first verification failure.
// Later receipts are appended past the returned length, never over it, so
// the caller may read the slice without the lock.
func (r *benchReceiver) snapshot() ([]receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clip(r.receipts), r.firstBad
}

// release lets every held request answer.
func (r *benchReceiver) release() { r.freeOnce.Do(func() { close(r.released) }) }

// close releases held requests and stops the server, cutting connections.
func (r *benchReceiver) close() {
	r.release()
	r.srv.Close()
}
