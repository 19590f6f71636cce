package storetest

import (
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testStats covers Stats: what counts as due and scheduled, where the oldest
// due time comes from, and which endpoints are counted.
func testStats(t *testing.T, open func(t *testing.T) store.Store) {
	stats := func(t *testing.T, b *bundle, now time.Time) store.Stats {
		t.Helper()
		st, err := b.s.Stats(b.ctx, now)
		requireNoError(t, err)
		return st
	}
	counts := func(t *testing.T, what string, st store.Stats, due, scheduled int64) {
		t.Helper()
		equal(t, what+": due", st.DueDeliveries, due)
		equal(t, what+": scheduled", st.ScheduledDeliveries, scheduled)
	}

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		equal(t, "stats of an empty store", stats(t, b, b.now), store.Stats{})
	})

	t.Run("DueScheduledAndOldest", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e1, e2 := b.endpoint(t, a.ID), b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID)) // two deliveries due at t0
		later := b.event(a.ID)
		later.Now = b.now.Add(time.Minute)
		b.publish(t, later) // two more due at t0+1m

		before := stats(t, b, b.now.Add(-time.Second))
		counts(t, "before anything is due", before, 0, 4)
		sameTime(t, "oldest due before anything is due", before.OldestDueAt, time.Time{})

		// Due exactly at now counts as due, like a claim at now takes it.
		st := stats(t, b, b.now)
		counts(t, "at t0", st, 2, 2)
		sameTime(t, "oldest due at t0", st.OldestDueAt, b.now)

		now := b.now.Add(2 * time.Minute)
		counts(t, "at t0+2m", stats(t, b, now), 4, 0)

		// A claimed delivery is in flight: no longer waiting for an attempt,
		// it counts as scheduled (at its lease's expiry) until its outcome
		// is recorded or its lease expires.
		cs := b.claimQuotas(t, now, now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e1.ID, Limit: 1}, store.EndpointQuota{EndpointID: e2.ID, Limit: 1})
		st = stats(t, b, now)
		counts(t, "with two leased", st, 2, 2)
		sameTime(t, "oldest due with the t0 deliveries leased", st.OldestDueAt, later.Now)
		counts(t, "when the leases have expired", stats(t, b, now.Add(time.Minute)), 4, 0)

		// One fails and waits an hour; one succeeds and leaves the queue.
		b.complete(t, cs[0], now, nanohook.DeliveryPending, 500, "", now.Add(time.Hour))
		b.complete(t, cs[1], now, nanohook.DeliverySucceeded, 200, "", time.Time{})
		st = stats(t, b, now)
		counts(t, "after a retry and a success", st, 2, 1)
		sameTime(t, "oldest due after the t0 deliveries left", st.OldestDueAt, later.Now)

		// A failed delivery is no longer pending.
		c := b.claim(t, now, 1)[0]
		b.complete(t, c, now, nanohook.DeliveryFailed, 500, "", time.Time{})
		counts(t, "after a final failure", stats(t, b, now), 1, 1)
	})

	t.Run("Endpoints", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		b.endpoint(t, a.ID)
		b.endpoint(t, other.ID) // every account counts
		disabled := b.endpoint(t, a.ID)
		deleted := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID)) // one pending delivery per endpoint of a

		status := nanohook.EndpointDisabled
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: disabled.ID, Status: &status, Now: b.now})
		requireNoError(t, err)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, deleted.ID, b.now))

		st := stats(t, b, b.now)
		equal(t, "active endpoints", st.ActiveEndpoints, 2)
		equal(t, "disabled endpoints", st.DisabledEndpoints, 1)
		// Disabling failed its delivery and deleting cancelled the other:
		// only the live, active endpoint's delivery is still queued.
		counts(t, "queue", st, 1, 0)
	})
}
