package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nanohook/nanohook/internal/testsignal"
	"github.com/nanohook/nanohook/store"
)

// publishGate lets a fixed number of publish transactions run at once on
// this node and hands the next free turn to the accounts that wait, round
// robin, one transaction each: an account with a thousand transactions
// queued and one with a single event each wait one turn at a time, so a
// flood from one account delays another's publish by about one of its
// transactions (planChunks bounds their size), not by the flood.
//
// Without it, SQLite's one writer connection, handed by database/sql to a
// waiter picked at random, would make a single event wait behind as many
// transactions as the flood had queued; PostgreSQL's pool the same.
type publishGate struct {
	mu      sync.Mutex
	free    int                     // turns not taken
	waiting map[int64][]*gateWaiter // per account, first come first served
	ring    []int64                 // accounts with waiters, in turn order
	// changed is a test-only hook (off, a no-op, in production): a
	// waiter queued, or a turn ended.
	changed testsignal.Signal
}

// gateWaiter is one transaction waiting for its turn.
type gateWaiter struct {
	ready   chan struct{} // closed when the turn is handed over
	granted bool          // the turn is this waiter's; guarded by publishGate.mu
}

func newPublishGate(slots int) *publishGate {
	return &publishGate{free: max(slots, 1), waiting: map[int64][]*gateWaiter{}}
}

// acquire waits, at most maxWait, for a turn to write a transaction of
// account's events and returns its release. Giving up is
// store.ErrUnavailable (503 with Retry-After): the node's writes are that
// far behind.
func (g *publishGate) acquire(ctx context.Context, account int64, maxWait time.Duration) (release func(), err error) {
	return g.acquireUnless(ctx, account, maxWait, nil)
}

// errNoLongerNeeded is acquireUnless's answer when its abandon channel
// closed first.
var errNoLongerNeeded = errors.New("api: publish: the turn is no longer needed")

// acquireUnless is acquire that also gives up, with errNoLongerNeeded,
// once abandon is closed (a nil abandon never is): a publish whose events
// another turn committed with its own (publishGroups) needs no turn.
func (g *publishGate) acquireUnless(ctx context.Context, account int64, maxWait time.Duration, abandon <-chan struct{}) (release func(), err error) {
	g.mu.Lock()
	if g.free > 0 && len(g.ring) == 0 {
		g.free--
		g.mu.Unlock()
		return g.release, nil
	}
	w := &gateWaiter{ready: make(chan struct{})}
	if len(g.waiting[account]) == 0 {
		g.ring = append(g.ring, account)
	}
	g.waiting[account] = append(g.waiting[account], w)
	g.mu.Unlock()
	g.changed.Notify()

	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return g.release, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-abandon:
		err = errNoLongerNeeded
	case <-timer.C:
		err = fmt.Errorf("api: publish: no turn to write within %v, the node's writes are too far behind: %w", maxWait, store.ErrUnavailable)
	}
	g.mu.Lock()
	if w.granted {
		// The turn came as we gave up: pass it on.
		g.mu.Unlock()
		g.release()
		return nil, err
	}
	g.leave(account, w)
	g.mu.Unlock()
	return nil, err
}

// release ends a turn and hands it to the account next in the ring.
func (g *publishGate) release() {
	defer g.changed.Notify()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.ring) == 0 {
		g.free++
		return
	}
	account := g.ring[0]
	g.ring = g.ring[1:]
	q := g.waiting[account]
	w := q[0]
	if len(q) > 1 {
		g.waiting[account] = q[1:]
		g.ring = append(g.ring, account) // its next transaction waits a round
	} else {
		delete(g.waiting, account)
	}
	w.granted = true
	close(w.ready)
}

// leave takes a waiter that gave up out of its queue. g.mu is held.
func (g *publishGate) leave(account int64, w *gateWaiter) {
	q := g.waiting[account]
	for i, x := range q {
		if x == w {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) > 0 {
		g.waiting[account] = q
		return
	}
	delete(g.waiting, account)
	for i, a := range g.ring {
		if a == account {
			g.ring = append(g.ring[:i:i], g.ring[i+1:]...)
			break
		}
	}
}
