package storetest

import (
	"testing"
	"time"

	"github.com/nanohook/nanohook/store"
)

// testSkipEndpoints: a claim leaves the deliveries of skipped endpoints
// alone, however early they are due, so the engine can cap what one endpoint
// takes of its workers.
func testSkipEndpoints(t *testing.T, open func(t *testing.T) store.Store) {
	b := setup(t, open)
	a, _ := b.account(t, "acme")
	slow := b.endpoint(t, a.ID)
	b.publish(t, b.event(a.ID), b.event(a.ID), b.event(a.ID)) // due first, all to slow
	fast := b.endpoint(t, a.ID)
	later := b.now.Add(time.Second)
	ev := b.event(a.ID)
	ev.Now = later
	b.publish(t, ev) // one more delivery to each of slow and fast

	got, err := b.s.ClaimDeliveries(b.ctx, store.ClaimParams{Now: later, LeaseUntil: later.Add(time.Minute),
		Limit: 10, SkipEndpoints: []int64{slow.ID}})
	requireNoError(t, err)
	equal(t, "claimed while skipping the slow endpoint", len(got), 1)
	equal(t, "the claimed delivery's endpoint", got[0].EndpointID, fast.ID)

	// Without the skip list the slow endpoint's four come out, oldest first.
	got, err = b.s.ClaimDeliveries(b.ctx, store.ClaimParams{Now: later, LeaseUntil: later.Add(time.Minute), Limit: 10})
	requireNoError(t, err)
	equal(t, "claimed without skipping", len(got), 4)
	for _, c := range got {
		equal(t, "endpoint", c.EndpointID, slow.ID)
	}
}
