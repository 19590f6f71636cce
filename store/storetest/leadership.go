package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook/store"
)

// acquire asks for the leadership name for holder at now, for a term of 30s.
func (b *bundle) acquire(t *testing.T, name, holder string, now time.Time) bool {
	t.Helper()
	return b.acquireUntil(t, name, holder, now, now.Add(30*time.Second))
}

func (b *bundle) acquireUntil(t *testing.T, name, holder string, now, until time.Time) bool {
	t.Helper()
	ok, err := b.s.AcquireLeadership(b.ctx, store.LeadershipParams{Name: name, Holder: holder, Now: now, Until: until})
	requireNoError(t, err)
	return ok
}

func testLeadership(t *testing.T, open func(t *testing.T) store.Store) {
	// The boundary Now == Until is deliberately not tested: the suite only
	// passes times strictly inside or strictly beyond a term.
	t.Run("AcquireRenewExpire", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const name = "maintenance"
		equal(t, "first holder acquires", b.acquire(t, name, "node-a", b.now), true)
		equal(t, "second holder during the term", b.acquire(t, name, "node-b", b.now.Add(10*time.Second)), false)
		equal(t, "first holder renews", b.acquire(t, name, "node-a", b.now.Add(20*time.Second)), true)

		// The renewal moved the term to now+50s.
		equal(t, "second holder after the first term, during the renewed one",
			b.acquire(t, name, "node-b", b.now.Add(40*time.Second)), false)
		equal(t, "second holder after the renewed term", b.acquire(t, name, "node-b", b.now.Add(50*time.Second+time.Microsecond)), true)
		equal(t, "first holder after losing it", b.acquire(t, name, "node-a", b.now.Add(51*time.Second)), false)
		equal(t, "new holder renews", b.acquire(t, name, "node-b", b.now.Add(60*time.Second)), true)
	})

	t.Run("ResignHandsOverAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const name = "maintenance"
		equal(t, "first holder acquires", b.acquire(t, name, "node-a", b.now), true)
		requireNoError(t, b.s.ResignLeadership(b.ctx, name, "node-a"))
		equal(t, "second holder right after the resignation", b.acquire(t, name, "node-b", b.now.Add(time.Second)), true)
		equal(t, "resigned holder during the new term", b.acquire(t, name, "node-a", b.now.Add(2*time.Second)), false)
	})

	t.Run("ResignByNonHolderDoesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const name = "maintenance"
		requireNoError(t, b.s.ResignLeadership(b.ctx, name, "node-a")) // nobody holds it yet
		equal(t, "first holder acquires", b.acquire(t, name, "node-a", b.now), true)
		requireNoError(t, b.s.ResignLeadership(b.ctx, name, "node-b"))
		equal(t, "second holder after its own resignation", b.acquire(t, name, "node-b", b.now.Add(time.Second)), false)
		equal(t, "first holder still renews", b.acquire(t, name, "node-a", b.now.Add(2*time.Second)), true)
	})

	t.Run("NamesAreIndependent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		equal(t, "node-a takes maintenance", b.acquire(t, "maintenance", "node-a", b.now), true)
		equal(t, "node-b takes another name", b.acquire(t, "other", "node-b", b.now), true)
		equal(t, "node-b takes maintenance", b.acquire(t, "maintenance", "node-b", b.now), false)
		equal(t, "node-a takes the other name", b.acquire(t, "other", "node-a", b.now), false)
		requireNoError(t, b.s.ResignLeadership(b.ctx, "other", "node-b"))
		equal(t, "node-a still holds maintenance", b.acquire(t, "maintenance", "node-a", b.now.Add(time.Second)), true)
		equal(t, "node-a takes the resigned name", b.acquire(t, "other", "node-a", b.now.Add(time.Second)), true)
		// Resigning one name keeps the holder's other names.
		requireNoError(t, b.s.ResignLeadership(b.ctx, "other", "node-a"))
		equal(t, "node-b takes maintenance after node-a resigned the other name",
			b.acquire(t, "maintenance", "node-b", b.now.Add(2*time.Second)), false)
	})

	t.Run("ConcurrentAcquirersOneWins", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const name, nodes = "maintenance", 16
		p := store.LeadershipParams{Name: name, Now: b.now, Until: b.now.Add(30 * time.Second)}
		var (
			wg      sync.WaitGroup
			won     = make([]bool, nodes)
			errs    = make([]error, nodes)
			release = make(chan struct{})
		)
		for i := range nodes {
			wg.Go(func() {
				<-release // start together
				p := p
				p.Holder = fmt.Sprintf("node-%d", i)
				won[i], errs[i] = b.s.AcquireLeadership(b.ctx, p)
			})
		}
		close(release)
		wg.Wait()
		winner := -1
		for i := range nodes {
			requireNoError(t, errs[i])
			if won[i] {
				if winner >= 0 {
					t.Fatalf("node-%d and node-%d both acquired %q", winner, i, name)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("no node acquired %q", name)
		}
		equal(t, "winner renews", b.acquire(t, name, fmt.Sprintf("node-%d", winner), b.now.Add(time.Second)), true)
		equal(t, "another node afterwards", b.acquire(t, name, fmt.Sprintf("node-%d", (winner+1)%nodes), b.now.Add(time.Second)), false)
	})
}
