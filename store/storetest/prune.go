package storetest

import (
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// prune runs one PruneHistory step.
func (b *bundle) prune(t *testing.T, before time.Time, limit int) int {
	t.Helper()
	n, err := b.s.PruneHistory(b.ctx, store.PruneParams{Before: before, Limit: limit})
	requireNoError(t, err)
	return n
}

// eventAt is a job.completed event published at now.
func (b *bundle) eventAt(accountID int64, now time.Time) store.PublishEventParams {
	ev := b.event(accountID)
	ev.OccurredAt, ev.Now = now.Add(-time.Second), now
	return ev
}

func requireDeliveryGone(t *testing.T, b *bundle, accountID, id int64) {
	t.Helper()
	_, _, err := b.s.GetDelivery(b.ctx, accountID, id)
	requireNotFound(t, err, "GetDelivery of a pruned delivery")
}

func requireEventGone(t *testing.T, b *bundle, accountID int64, id string) {
	t.Helper()
	_, err := b.s.GetEvent(b.ctx, accountID, id)
	requireNotFound(t, err, "GetEvent of a pruned event "+id)
}

func requireEventKept(t *testing.T, b *bundle, accountID int64, id string) {
	t.Helper()
	_, err := b.s.GetEvent(b.ctx, accountID, id)
	if err != nil {
		t.Fatalf("GetEvent of %s, which must stay: %v", id, err)
	}
}

func testPrune(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("OldFinishedGoNothingElse", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		before := b.now.Add(time.Hour)
		later := b.now.Add(2 * time.Hour)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID, nanohook.EventJobCompleted)
		mixed, _ := b.account(t, "two endpoints")
		eMixed1 := b.endpoint(t, mixed.ID, nanohook.EventJobCompleted)
		b.endpoint(t, mixed.ID, nanohook.EventJobCompleted)
		cancelled, _ := b.account(t, "deletes its endpoint")
		eCancelled := b.endpoint(t, cancelled.ID, nanohook.EventJobCompleted)

		// Finished after before: an old event delivered late, and a new one.
		evLate, evNew := b.eventAt(a.ID, b.now), b.eventAt(a.ID, later)
		b.publish(t, evLate, evNew)
		kept := b.claim(t, later, 10)
		equal(t, "claimed late", len(kept), 2)
		for _, c := range kept {
			b.complete(t, c, later, nanohook.DeliverySucceeded, 200, "", time.Time{})
		}

		// Finished long before: succeeded, failed, one of two deliveries of
		// an event (the other stays pending), cancelled.
		evSucc, evFail, evMixed := b.eventAt(a.ID, b.now), b.eventAt(a.ID, b.now), b.eventAt(mixed.ID, b.now)
		b.publish(t, evSucc, evFail, evMixed)
		claimed := b.claim(t, b.now, 10)
		equal(t, "claimed early", len(claimed), 4)
		var pruned []store.ClaimedDelivery
		for _, c := range claimed {
			switch {
			case c.EventID == evSucc.ID:
				b.complete(t, c, b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})
			case c.EventID == evFail.ID:
				b.complete(t, c, b.now, nanohook.DeliveryFailed, 500, "", time.Time{})
			case c.EndpointID == eMixed1.ID:
				b.complete(t, c, b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})
			default:
				requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{c.Lease}))
				continue
			}
			pruned = append(pruned, c)
		}
		equal(t, "deliveries finished early", len(pruned), 3)
		evCancelled := b.eventAt(cancelled.ID, b.now)
		b.publish(t, evCancelled)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, cancelled.ID, eCancelled.ID, b.now.Add(time.Second)))

		// Pending since long before, and events no endpoint subscribed to.
		evPending := b.eventAt(a.ID, b.now)
		evNone, evNoneNew := b.eventAt(a.ID, b.now), b.eventAt(a.ID, later)
		evNone.Type, evNoneNew.Type = nanohook.EventJobFailed, nanohook.EventJobFailed
		res := b.publish(t, evPending, evNone, evNoneNew)
		equal(t, "deliveries of an unsubscribed event", res[1].Deliveries, 0)

		equal(t, "deliveries pruned", b.prune(t, before, 100), 4)
		for _, c := range pruned {
			requireDeliveryGone(t, b, c.AccountID, c.DeliveryID)
		}
		requireEventGone(t, b, a.ID, evSucc.ID)
		requireEventGone(t, b, a.ID, evFail.ID)
		requireEventGone(t, b, cancelled.ID, evCancelled.ID)
		requireEventGone(t, b, a.ID, evNone.ID)

		requireEventKept(t, b, mixed.ID, evMixed.ID)
		requireEventKept(t, b, a.ID, evPending.ID)
		requireEventKept(t, b, a.ID, evLate.ID)
		requireEventKept(t, b, a.ID, evNew.ID)
		requireEventKept(t, b, a.ID, evNoneNew.ID)
		for _, c := range kept {
			d, attempts := b.delivery(t, a.ID, c.DeliveryID)
			equal(t, "kept delivery status", d.Status, nanohook.DeliverySucceeded)
			equal(t, "kept delivery attempts", len(attempts), 1)
		}
		// Both pending deliveries are still there, and still claimable.
		pending := b.claim(t, later, 10)
		equal(t, "pending deliveries left", len(pending), 2)
		for _, c := range pending {
			if c.EventID != evPending.ID && c.EventID != evMixed.ID {
				t.Fatalf("claimed a delivery of event %s, want %s or %s", c.EventID, evPending.ID, evMixed.ID)
			}
			d, _ := b.delivery(t, c.AccountID, c.DeliveryID)
			equal(t, "pending delivery status", d.Status, nanohook.DeliveryPending)
		}

		equal(t, "deliveries pruned again", b.prune(t, before, 100), 0)
	})

	t.Run("LimitOldestFirstAndRepeat", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		before := b.now.Add(time.Hour)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		events := make([]store.PublishEventParams, 5)
		for i := range events {
			events[i] = b.eventAt(a.ID, b.now)
		}
		b.publish(t, events...)
		claimed := b.claim(t, b.now, 10)
		equal(t, "claimed", len(claimed), 5)
		// Finished in reverse claim order, a second apart: the last claimed
		// is the oldest and goes first.
		for i := range claimed {
			c := claimed[len(claimed)-1-i]
			b.complete(t, c, b.now.Add(time.Duration(i)*time.Second), nanohook.DeliverySucceeded, 200, "", time.Time{})
		}
		evPending := b.eventAt(a.ID, b.now)
		b.publish(t, evPending)

		equal(t, "first step", b.prune(t, before, 2), 2)
		requireDeliveryGone(t, b, a.ID, claimed[4].DeliveryID)
		requireDeliveryGone(t, b, a.ID, claimed[3].DeliveryID)
		for _, c := range claimed[:3] {
			b.delivery(t, a.ID, c.DeliveryID) // still there
			requireEventKept(t, b, a.ID, c.EventID)
		}

		equal(t, "second step", b.prune(t, before, 2), 2)
		requireDeliveryGone(t, b, a.ID, claimed[2].DeliveryID)
		requireDeliveryGone(t, b, a.ID, claimed[1].DeliveryID)
		b.delivery(t, a.ID, claimed[0].DeliveryID)
		equal(t, "last step", b.prune(t, before, 2), 1)
		equal(t, "nothing left to prune", b.prune(t, before, 2), 0)

		for _, c := range claimed {
			requireDeliveryGone(t, b, a.ID, c.DeliveryID)
			requireEventGone(t, b, a.ID, c.EventID)
		}
		requireEventKept(t, b, a.ID, evPending.ID)
		pending := b.claim(t, b.now, 10)
		equal(t, "pending deliveries left", len(pending), 1)
		equal(t, "pending delivery's event", pending[0].EventID, evPending.ID)
	})

	t.Run("LimitZeroDeletesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		ev := b.eventAt(a.ID, b.now)
		b.publish(t, ev)
		c := b.claim(t, b.now, 1)[0]
		b.complete(t, c, b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})

		before := b.now.Add(time.Hour)
		equal(t, "pruned with Limit 0", b.prune(t, before, 0), 0)
		equal(t, "pruned with Limit -1", b.prune(t, before, -1), 0)
		_, attempts := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "attempts kept", len(attempts), 1)
		requireEventKept(t, b, a.ID, ev.ID)
	})
}
