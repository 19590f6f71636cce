package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

func testPublish(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("FanOutToActiveSubscribedEndpointsOfTheAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		completed := b.endpoint(t, a.ID, nanohook.EventJobCompleted)
		b.endpoint(t, a.ID, nanohook.EventJobFailed)
		both := b.endpoint(t, a.ID, nanohook.EventJobFailed, nanohook.EventJobCompleted)
		disabled := b.endpoint(t, a.ID)
		st := nanohook.EndpointDisabled
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: disabled.ID, Status: &st, Now: b.now})
		requireNoError(t, err)
		deleted := b.endpoint(t, a.ID)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, deleted.ID, b.now))
		b.endpoint(t, other.ID, nanohook.EventJobCompleted)

		ev := b.event(a.ID)
		res := b.publish(t, ev)
		equal(t, "event id", res[0].EventID, ev.ID)
		equal(t, "duplicate", res[0].Duplicate, false)
		// Two to claim, and one recorded failed for the disabled endpoint.
		equal(t, "deliveries", res[0].Deliveries, 3)

		claimed := b.claim(t, b.now, 100)
		var endpoints []int64
		for _, c := range claimed {
			equal(t, "delivery account", c.AccountID, a.ID)
			equal(t, "delivery event", c.EventID, ev.ID)
			equal(t, "delivery event type", c.EventType, nanohook.EventJobCompleted)
			endpoints = append(endpoints, c.EndpointID)
		}
		slices.Sort(endpoints)
		if !slices.Equal(endpoints, []int64{completed.ID, both.ID}) {
			t.Fatalf("deliveries to endpoints %v, want %v", endpoints, []int64{completed.ID, both.ID})
		}

		// A failed-job event goes to the failed subscribers instead.
		fe := b.event(a.ID)
		fe.Type = nanohook.EventJobFailed
		fe.IdempotencyKey = nanohook.DefaultIdempotencyKey(fe.Type, fe.TaskID)
		res = b.publish(t, fe)
		equal(t, "deliveries of job.failed", res[0].Deliveries, 3)
	})

	// The count a publisher gets is the delivery rows the event got, the
	// failed one recorded for a disabled endpoint included: with a disabled
	// endpoint as the only subscriber, an answer of 0 would tell the
	// platform nobody listens although the delivery is in the history,
	// ready for recover.
	t.Run("DeliveriesCountsEveryRowCreated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		off := b.endpoint(t, a.ID) // both types
		st := nanohook.EndpointDisabled
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: off.ID, Status: &st, Now: b.now})
		requireNoError(t, err)
		on := b.endpoint(t, a.ID, nanohook.EventJobFailed)
		deleted := b.endpoint(t, a.ID)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, deleted.ID, b.now))

		onlyDisabled := b.event(a.ID) // job.completed: only off subscribes
		both := b.event(a.ID)
		both.Type = nanohook.EventJobFailed
		both.IdempotencyKey = nanohook.DefaultIdempotencyKey(both.Type, both.TaskID)
		res := b.publish(t, onlyDisabled, both)

		rows := map[string]int{}
		for _, ep := range []int64{off.ID, on.ID} { // a deleted endpoint gets none (and lists none)
			for _, d := range b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: ep, Limit: 100}) {
				rows[d.EventID]++
			}
		}
		equal(t, "rows of the event only a disabled endpoint subscribes to", rows[onlyDisabled.ID], 1)
		equal(t, "deliveries of the event only a disabled endpoint subscribes to", res[0].Deliveries, 1)
		equal(t, "rows of the event a disabled and an active endpoint subscribe to", rows[both.ID], 2)
		equal(t, "deliveries of the event both subscribe to", res[1].Deliveries, 2)

		// A duplicate answers what the first publish answered.
		onlyDisabled.ID += "_again"
		both.ID += "_again"
		dup := b.publish(t, onlyDisabled, both)
		equal(t, "duplicate", dup[0].Duplicate && dup[1].Duplicate, true)
		equal(t, "first duplicate's deliveries", dup[0].Deliveries, 1)
		equal(t, "second duplicate's deliveries", dup[1].Deliveries, 2)
	})

	t.Run("NoEndpointsNoDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		res := b.publish(t, b.event(a.ID))
		equal(t, "deliveries", res[0].Deliveries, 0)
		_, err := b.s.GetEvent(b.ctx, a.ID, res[0].EventID)
		requireNoError(t, err) // the event is kept all the same
	})

	t.Run("IdempotentAcrossCalls", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.endpoint(t, a.ID)
		first := b.event(a.ID)
		r1 := b.publish(t, first)

		again := first
		again.ID = "evt_should_not_be_used"
		again.Payload = []byte(`{"different":true}`)
		again.Now = b.now.Add(time.Minute)
		r2 := b.publish(t, again)

		equal(t, "first duplicate", r1[0].Duplicate, false)
		equal(t, "second duplicate", r2[0].Duplicate, true)
		equal(t, "second event id", r2[0].EventID, first.ID)
		equal(t, "second deliveries", r2[0].Deliveries, r1[0].Deliveries)
		equal(t, "deliveries", r1[0].Deliveries, 2)

		_, err := b.s.GetEvent(b.ctx, a.ID, again.ID)
		requireNotFound(t, err, "GetEvent of the duplicate's unused id")
		got, err := b.s.GetEvent(b.ctx, a.ID, first.ID)
		requireNoError(t, err)
		if !bytes.Equal(got.Payload, first.Payload) {
			t.Fatalf("payload = %s, want the first publish's %s", got.Payload, first.Payload)
		}
		equal(t, "claimable deliveries", len(b.claim(t, b.now.Add(time.Hour), 100)), 2)
	})

	t.Run("IdempotentWithinOneBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		e1, e2 := b.event(a.ID), b.event(a.ID)
		dup := e1
		dup.ID = "evt_dup_in_batch"
		res := b.publish(t, e1, dup, e2)

		equal(t, "first", res[0], store.PublishResult{EventID: e1.ID, Deliveries: 1})
		equal(t, "in-batch duplicate", res[1], store.PublishResult{EventID: e1.ID, Deliveries: 1, Duplicate: true})
		equal(t, "third", res[2], store.PublishResult{EventID: e2.ID, Deliveries: 1})
		equal(t, "claimable deliveries", len(b.claim(t, b.now, 100)), 2)
	})

	t.Run("IdempotencyKeysAreScopedToTheAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "a")
		other, _ := b.account(t, "b")
		ea := b.event(a.ID)
		eb := b.event(other.ID)
		eb.IdempotencyKey = ea.IdempotencyKey
		res := b.publish(t, ea, eb)
		equal(t, "second account's event is a duplicate", res[1].Duplicate, false)
		equal(t, "second account's event id", res[1].EventID, eb.ID)
	})

	t.Run("EmptyIdempotencyKeyNeverDeduplicates", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e1, e2 := b.event(a.ID), b.event(a.ID)
		e1.IdempotencyKey, e2.IdempotencyKey = "", ""
		res := b.publish(t, e1, e2)
		equal(t, "first duplicate", res[0].Duplicate, false)
		equal(t, "second duplicate", res[1].Duplicate, false)
		got, err := b.s.GetEvent(b.ctx, a.ID, e2.ID)
		requireNoError(t, err)
		equal(t, "stored key", got.IdempotencyKey, "")
	})

	t.Run("MissingAccountFailsTheWholeBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		good := b.event(a.ID)
		bad := b.event(a.ID + 1000)
		_, err := b.s.PublishEvents(b.ctx, []store.PublishEventParams{good, bad})
		requireNotFound(t, err, "PublishEvents with a missing account")

		_, err = b.s.GetEvent(b.ctx, a.ID, good.ID)
		requireNotFound(t, err, "GetEvent of an event of the failed batch")
		equal(t, "claimable deliveries", len(b.claim(t, b.now.Add(time.Hour), 100)), 0)
		// Its idempotency key was not used up either.
		res := b.publish(t, good)
		equal(t, "republished duplicate", res[0].Duplicate, false)
	})

	t.Run("PayloadBytesStoredExactly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		ev := b.event(a.ID)
		// U+2028/U+2029 (which JSON encoders like to escape), an emoji,
		// an escaped quote and backslash, a NUL-free but non-ASCII mix.
		ev.Payload = []byte("{\"data\":{\"caption\":\"line\u2028sep\u2029para \U0001F600 \\\"q\\\" \\\\ é\",\"n\":1e21}}")
		b.publish(t, ev)

		got, err := b.s.GetEvent(b.ctx, a.ID, ev.ID)
		requireNoError(t, err)
		if !bytes.Equal(got.Payload, ev.Payload) {
			t.Fatalf("stored payload\n%q\nwant\n%q", got.Payload, ev.Payload)
		}
		claimed := b.claim(t, b.now, 10)
		equal(t, "claimed", len(claimed), 1)
		if !bytes.Equal(claimed[0].Payload, ev.Payload) {
			t.Fatalf("claimed payload\n%q\nwant\n%q", claimed[0].Payload, ev.Payload)
		}
	})

	t.Run("GetEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		ev := b.event(a.ID)
		ev.Type = nanohook.EventJobFailed
		ev.TaskType = "video"
		b.publish(t, ev)

		got, err := b.s.GetEvent(b.ctx, a.ID, ev.ID)
		requireNoError(t, err)
		equal(t, "id", got.ID, ev.ID)
		equal(t, "account", got.AccountID, a.ID)
		equal(t, "type", got.Type, nanohook.EventJobFailed)
		equal(t, "task id", got.TaskID, ev.TaskID)
		equal(t, "task type", got.TaskType, "video")
		equal(t, "idempotency key", got.IdempotencyKey, ev.IdempotencyKey)
		sameTime(t, "occurred at", got.OccurredAt, ev.OccurredAt)
		sameTime(t, "created at", got.CreatedAt, ev.Now)

		_, err = b.s.GetEvent(b.ctx, other.ID, ev.ID)
		requireNotFound(t, err, "GetEvent by another account")
		_, err = b.s.GetEvent(b.ctx, a.ID, "evt_missing")
		requireNotFound(t, err, "GetEvent of a missing id")
	})

	t.Run("BatchOf1000", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.endpoint(t, a.ID)
		events := make([]store.PublishEventParams, nanohook.MaxBatchEvents)
		for i := range events {
			events[i] = b.event(a.ID)
		}
		res := b.publish(t, events...)
		for i, r := range res {
			if r != (store.PublishResult{EventID: events[i].ID, Deliveries: 2}) {
				t.Fatalf("result %d = %+v", i, r)
			}
		}
		claimed := b.claim(t, b.now, 1000)
		equal(t, "claimed in one call", len(claimed), 1000)
		claimed = append(claimed, b.claim(t, b.now, 1000)...)
		equal(t, "claimed in total", len(claimed), 2000)
		seen := map[string]int{}
		for _, c := range claimed {
			seen[c.EventID]++
		}
		for _, e := range events {
			if seen[e.ID] != 2 {
				t.Fatalf("event %s has %d deliveries, want 2", e.ID, seen[e.ID])
			}
		}
	})
}
