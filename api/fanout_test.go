package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nanohook/nanohook/store"
)

// TestPlanChunks: a request's events go in transactions of whole events,
// at most chunkRows rows (an event and its deliveries) and
// chunkPayloadBytes of payloads each, account by account, every event once.
func TestPlanChunks(t *testing.T) {
	t.Parallel()
	fanout := map[int64]int{1: 100, 2: 1, 3: 0, 4: chunkRows}
	var events []store.PublishEventParams
	add := func(account int64, n, payload int) {
		for range n {
			events = append(events, store.PublishEventParams{AccountID: account, Payload: make([]byte, payload)})
		}
	}
	add(2, 300, 10)
	add(1, 2*chunkRows/101+50, 100) // a few chunks' worth of rows
	add(3, 10, chunkPayloadBytes/8) // a chunk and a quarter of payloads, no deliveries
	add(2, 300, 10)
	add(4, 2, 10) // each alone: more deliveries than a chunk holds

	chunks := planChunks(events, func(a int64) int { return fanout[a] })
	seen := make([]bool, len(events))
	var accounts []int64
	for n, c := range chunks {
		rows, bytes, owners := 0, 0, map[int64]int{}
		for _, i := range c.idx {
			if seen[i] {
				t.Fatalf("event %d is in two chunks", i)
			}
			seen[i] = true
			e := events[i]
			rows += 1 + fanout[e.AccountID]
			bytes += len(e.Payload)
			owners[e.AccountID] += 1 + fanout[e.AccountID]
			if len(accounts) == 0 || accounts[len(accounts)-1] != e.AccountID {
				accounts = append(accounts, e.AccountID)
			}
		}
		if len(c.idx) > 1 && (rows > chunkRows || bytes > chunkPayloadBytes) {
			t.Errorf("chunk %d: %d events, %d rows, %d payload bytes", n, len(c.idx), rows, bytes)
		}
		for a, r := range owners {
			if r > owners[c.account] {
				t.Errorf("chunk %d waits as account %d, but account %d has more rows in it", n, c.account, a)
			}
		}
		if !slices.IsSorted(c.idx) && len(owners) == 1 {
			t.Errorf("chunk %d reorders one account's events: %v", n, c.idx)
		}
	}
	if slices.Contains(seen, false) {
		t.Fatal("an event is in no chunk")
	}
	if !slices.Equal(accounts, []int64{1, 2, 3, 4}) {
		t.Errorf("accounts in the order chunks take them: %v, want each once, ascending", accounts)
	}
	// Greedy: a chunk ends only where the next event would not fit in it,
	// so no chunk could have taken the first event of the next.
	for n := 0; n+1 < len(chunks); n++ {
		rows, bytes := 0, 0
		for _, i := range chunks[n].idx {
			rows += 1 + fanout[events[i].AccountID]
			bytes += len(events[i].Payload)
		}
		next := events[chunks[n+1].idx[0]]
		if rows+1+fanout[next.AccountID] <= chunkRows && bytes+len(next.Payload) <= chunkPayloadBytes {
			t.Errorf("chunk %d (%d rows, %d bytes) ends before an event that fits in it", n, rows, bytes)
		}
	}
	if len(chunks) < 5 {
		t.Errorf("%d chunks: the request was sized for more than five", len(chunks))
	}
}

// TestPublishGateTakesAccountsInTurn: with one turn held, waiters of the
// account that queued many and of one that queued a single transaction
// are served alternately, so the single one waits one turn, not the
// flood's whole queue.
func TestPublishGateTakesAccountsInTurn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g := newPublishGate(1)
	g.changed.Init()
	release, err := g.acquire(ctx, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan string, 10)
	waiters := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		n := 0
		for _, q := range g.waiting {
			n += len(q)
		}
		return n
	}
	// queue starts a waiter and returns once it is queued, so that the
	// order of arrival is the test's.
	queue := func(account int64, name string) {
		before := waiters()
		go func() {
			rel, err := g.acquire(ctx, account, time.Minute)
			if err != nil {
				served <- err.Error()
				return
			}
			served <- name
			rel()
		}()
		if !g.changed.Await(10*time.Second, func() bool { return waiters() > before }) {
			t.Fatalf("%s never queued", name)
		}
	}
	for i := range 4 {
		queue(1, fmt.Sprintf("flood %d", i))
	}
	queue(2, "single")
	release()
	var order []string
	for range 5 {
		order = append(order, <-served)
	}
	want := []string{"flood 0", "single", "flood 1", "flood 2", "flood 3"}
	if !slices.Equal(order, want) {
		t.Fatalf("served %v, want %v", order, want)
	}
	// The last one served releases its turn after saying so.
	var free, ring, waiting int
	if !g.changed.Await(10*time.Second, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		free, ring, waiting = g.free, len(g.ring), len(g.waiting)
		return free == 1 && ring == 0 && waiting == 0
	}) {
		t.Fatalf("gate not back at rest: free %d, ring %d, waiting %d", free, ring, waiting)
	}
}

// TestPublishGateGivesUp: a waiter gives up at its deadline (503) or when
// its request ends, leaves the queue, and a turn granted as it gave up is
// passed on, not lost.
func TestPublishGateGivesUp(t *testing.T) {
	t.Parallel()
	g := newPublishGate(1)
	release, err := g.acquire(t.Context(), 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.acquire(t.Context(), 2, 10*time.Millisecond); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("waiting past the deadline: %v, want store.ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := g.acquire(ctx, 3, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting with an ended request: %v", err)
	}
	g.mu.Lock()
	queued := len(g.ring) + len(g.waiting)
	g.mu.Unlock()
	if queued != 0 {
		t.Fatal("waiters that gave up are still queued")
	}

	// A turn handed to a waiter whose request ended at that moment goes on.
	w := &gateWaiter{ready: make(chan struct{})}
	g.mu.Lock()
	g.ring, g.waiting[4] = append(g.ring, 4), []*gateWaiter{w}
	g.mu.Unlock()
	release() // granted to w
	g.mu.Lock()
	granted := w.granted
	g.mu.Unlock()
	if !granted {
		t.Fatal("the turn was not handed to the waiter")
	}
	g.release() // what acquire does when it finds its turn granted too late
	if rel, err := g.acquire(t.Context(), 5, 10*time.Millisecond); err != nil {
		t.Fatalf("the turn was lost: %v", err)
	} else {
		rel()
	}
}
