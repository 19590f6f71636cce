package storetest

import (
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testQueueHeads covers QueueHeads, from which the engine plans its claims
// and learns when to wake: which endpoints are listed, and what their heads
// say about due, scheduled and leased deliveries.
func testQueueHeads(t *testing.T, open func(t *testing.T) store.Store) {
	head := func(t *testing.T, b *bundle, endpointID int64) (store.QueueHead, bool) {
		t.Helper()
		for _, h := range b.heads(t) {
			if h.EndpointID == endpointID {
				return h, true
			}
		}
		return store.QueueHead{}, false
	}

	t.Run("NothingPending", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		equal(t, "heads of an empty store", len(b.heads(t)), 0)
		_, ok := b.nextDue(t)
		equal(t, "anything due on an empty store", ok, false)

		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID), b.event(a.ID))
		cs := b.claim(t, b.now, 2)
		b.complete(t, cs[0], b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})
		b.complete(t, cs[1], b.now, nanohook.DeliveryFailed, 500, "", time.Time{})
		equal(t, "heads with only finished deliveries", len(b.heads(t)), 0)
	})

	t.Run("EveryEndpointWithPendingDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		o, _ := b.account(t, "other")
		a1 := b.endpoint(t, a.ID)
		o1 := b.endpoint(t, o.ID, nanohook.EventJobCompleted)
		b.endpoint(t, a.ID, nanohook.EventJobFailed) // nothing for it
		a2 := b.endpoint(t, a.ID)
		done := b.endpoint(t, o.ID, nanohook.EventJobFailed)

		early := b.event(a.ID)
		early.Now = b.now.Add(-time.Minute)
		b.publish(t, b.event(a.ID), early) // a1, a2: due at -1m (and at 0)
		late := b.event(o.ID)
		late.Now = b.now.Add(time.Hour)
		b.publish(t, late) // o1: due at +1h only
		failed := b.event(o.ID)
		failed.Type = nanohook.EventJobFailed
		b.publish(t, failed) // done, due at 0: finished below
		for _, c := range b.claimQuotas(t, b.now, b.now.Add(time.Minute), store.EndpointQuota{EndpointID: done.ID, Limit: 1}) {
			b.complete(t, c, b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})
		}

		want := []store.QueueHead{
			{EndpointID: a1.ID, AccountID: a.ID, DueAt: early.Now},
			{EndpointID: o1.ID, AccountID: o.ID, DueAt: late.Now},
			{EndpointID: a2.ID, AccountID: a.ID, DueAt: early.Now},
		}
		got := b.heads(t)
		equal(t, "heads", len(got), len(want))
		for i := range want {
			equal(t, "endpoint of head", got[i].EndpointID, want[i].EndpointID)
			equal(t, "account of head", got[i].AccountID, want[i].AccountID)
			sameTime(t, "due at of head", got[i].DueAt, want[i].DueAt)
		}
		equal(t, "heads due at now", len(store.DueHeads(got, b.now)), 2)
		at, ok := b.nextDue(t)
		equal(t, "anything pending", ok, true)
		sameTime(t, "next due", at, early.Now)
	})

	t.Run("ScheduledRetry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		h, ok := head(t, b, e.ID)
		equal(t, "listed", ok, true)
		sameTime(t, "head when published", h.DueAt, b.now)

		c := b.claim(t, b.now, 1)[0]
		retryAt := b.now.Add(5 * time.Minute)
		b.complete(t, c, b.now, nanohook.DeliveryPending, 500, "", retryAt)
		h, ok = head(t, b, e.ID)
		equal(t, "listed with only a retry", ok, true)
		sameTime(t, "head with only a retry", h.DueAt, retryAt)
		equal(t, "heads due before the retry", len(store.DueHeads(b.heads(t), retryAt.Add(-time.Microsecond))), 0)
	})

	t.Run("Leases", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		leaseUntil := b.now.Add(30 * time.Second)
		equal(t, "claimed", len(b.claimQuotas(t, b.now, leaseUntil, store.EndpointQuota{EndpointID: e.ID, Limit: 1})), 1)
		// A leased delivery leaves its endpoint's queue.
		_, ok := head(t, b, e.ID)
		equal(t, "listed with its only delivery leased", ok, false)

		// The next pending one is the head, whenever the lease expires.
		ev := b.event(a.ID)
		ev.Now = b.now.Add(time.Hour)
		b.publish(t, ev)
		h, ok := head(t, b, e.ID)
		equal(t, "listed with a later delivery", ok, true)
		sameTime(t, "head with a later pending delivery", h.DueAt, ev.Now)

		// Once the lease has expired and been rescued, the leased
		// delivery is back at the head, due at the lease's expiry.
		equal(t, "rescued before the lease expires", b.rescue(t, leaseUntil.Add(-time.Microsecond)), int64(0))
		equal(t, "rescued when the lease expires", b.rescue(t, leaseUntil), int64(1))
		h, _ = head(t, b, e.ID)
		sameTime(t, "head once rescued", h.DueAt, leaseUntil)
		at, _ := b.nextDue(t)
		sameTime(t, "next due", at, leaseUntil)
	})
}
