package main

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
)

// slowAnswer is how long an answerSlowly endpoint takes.
const slowAnswer = 100 * time.Millisecond

// benchReceiver is the customers' side of the bench: one loopback HTTP
// server whose path /e/<n> is endpoint slot n. It verifies every request's
// signature and records each first successful receipt of an event at an
// endpoint. Slots are fixed before it starts, so handlers read them without
// a lock; the records are one mutex-protected append.
type benchReceiver struct {
	srv   *http.Server
	base  string // http://127.0.0.1:port
	slots []receiverSlot

	released chan struct{} // closed by release: held requests answer
	freeOnce sync.Once

	requests  atomic.Int64 // every request, whatever its answer
	delivered atomic.Int64 // first 2xx per event and slot
	dups      atomic.Int64 // 2xx answered again for an event and slot
	invalid   atomic.Int64 // signatures that did not verify

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
// expect is the number of deliveries the run waits for (0: none), which
// also sizes the records.
func startReceiver(secrets []string, does func(slot int) behaviour, expect int) (*benchReceiver, error) {
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
	for i, s := range secrets {
		r.slots = append(r.slots, receiverSlot{verifier: &webhook.Verifier{Secrets: []string{s}}, does: does(i)})
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
	case holdUntilFreed:
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
	}
	return true
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
// any later one a duplicate.
func (r *benchReceiver) record(eventID string, slot int32, at time.Time) {
	k := deliveryKey{eventID, slot}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.seen[k]; dup {
		r.dups.Add(1)
		return
	}
	r.seen[k] = struct{}{}
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
