package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// ping is the parameters of a test delivery to an endpoint, with a unique
// event id, leased for a minute from b.now.
func (b *bundle) ping(accountID, endpointID int64) store.TestDeliveryParams {
	n := eventSeq.Add(1)
	return store.TestDeliveryParams{
		AccountID:  accountID,
		EndpointID: endpointID,
		EventID:    fmt.Sprintf("evt_ping_%d", n),
		TaskID:     "ping",
		TaskType:   "ping",
		// Not JSON, with a NUL and an invalid UTF-8 byte: stored and handed
		// back as the exact bytes.
		Payload:    fmt.Appendf(nil, "{\"event\":\"ping\",\"n\":%d}\x00\xff", n),
		Now:        b.now,
		LeaseUntil: b.now.Add(time.Minute),
		Owner:      "test",
	}
}

// testTestDelivery: CreateTestDelivery writes a ping event and one delivery
// already leased to the caller, for active and disabled endpoints only.
func testTestDelivery(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ReturnsALeasedClaim", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID) // subscribed to job events only: a ping goes anyway
		p := b.ping(a.ID, e.ID)
		c, err := b.s.CreateTestDelivery(b.ctx, p)
		requireNoError(t, err)
		if c.DeliveryID == 0 {
			t.Fatal("claim has no delivery id")
		}
		equal(t, "account", c.AccountID, a.ID)
		equal(t, "endpoint", c.EndpointID, e.ID)
		equal(t, "url", c.URL, e.URL)
		equal(t, "secret", c.Secret, e.Secret)
		equal(t, "previous secret", c.PreviousSecret, "")
		equal(t, "event id", c.EventID, p.EventID)
		equal(t, "event type", c.EventType, nanohook.EventPing)
		equal(t, "attempt", c.Attempt, 1)
		sameTime(t, "created at", c.CreatedAt, p.Now)
		if !bytes.Equal(c.Payload, p.Payload) {
			t.Fatalf("payload = %q, want %q", c.Payload, p.Payload)
		}

		d, as := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "status", d.Status, nanohook.DeliveryPending)
		equal(t, "delivery event type", d.EventType, nanohook.EventPing)
		equal(t, "delivery event id", d.EventID, p.EventID)
		equal(t, "attempts", d.Attempts, 0)
		equal(t, "attempt rows", len(as), 0)

		// Leased: no claim returns it before the lease expires, while other
		// due work is claimed as usual.
		other := b.publish(t, b.event(a.ID))[0]
		equal(t, "published deliveries", other.Deliveries, 1)
		got := b.claim(t, b.now, 10)
		equal(t, "claims at now", len(got), 1)
		if got[0].EventID == p.EventID {
			t.Fatal("ClaimDeliveries returned the leased test delivery")
		}
		equal(t, "claims before the lease ends", len(b.claim(t, p.LeaseUntil.Add(-time.Microsecond), 10)), 0)
		sameTime(t, "lease due at", c.DueAt, p.Now)
		sameTime(t, "next attempt at while leased", d.NextAttemptAt, p.LeaseUntil)
		// Both are leased, so neither is in a queue until rescued.
		_, ok := b.nextDue(t)
		equal(t, "anything queued while both are leased", ok, false)

		// Once the lease has expired it is claimable like any delivery.
		// (The published delivery's lease expires at the same moment.)
		var again []store.ClaimedDelivery
		for _, g := range b.claim(t, p.LeaseUntil, 10) {
			if g.DeliveryID == c.DeliveryID {
				again = append(again, g)
			}
		}
		equal(t, "test delivery claims after the lease", len(again), 1)
		equal(t, "reclaimed attempt", again[0].Attempt, 1)
		equal(t, "reclaimed event type", again[0].EventType, nanohook.EventPing)
		if again[0].Token == c.Token {
			t.Fatal("the reclaim kept the test delivery's lease token")
		}
	})

	t.Run("ReleaseMakesItDueAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		p := b.ping(a.ID, e.ID)
		c, err := b.s.CreateTestDelivery(b.ctx, p)
		requireNoError(t, err)
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{c.Lease}))
		d, _ := b.delivery(t, a.ID, c.DeliveryID)
		sameTime(t, "next attempt at after release", d.NextAttemptAt, p.Now)
		got := b.claimQuotas(t, p.Now, p.LeaseUntil, store.EndpointQuota{EndpointID: e.ID, Limit: 10})
		equal(t, "claims after release", len(got), 1)
		equal(t, "claimed ping", got[0].DeliveryID, c.DeliveryID)
		if !bytes.Equal(got[0].Payload, p.Payload) {
			t.Fatalf("claimed payload = %q, want %q", got[0].Payload, p.Payload)
		}
	})

	t.Run("CompleteRecordsTheAttempt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		p := b.ping(a.ID, e.ID)
		p.TaskID, p.TaskType = "task_ping_1", "endpoint.test"
		c, err := b.s.CreateTestDelivery(b.ctx, p)
		requireNoError(t, err)
		b.complete(t, c, b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})

		d, as := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "status", d.Status, nanohook.DeliverySucceeded)
		equal(t, "event type", d.EventType, nanohook.EventPing)
		equal(t, "attempts", d.Attempts, 1)
		equal(t, "attempt rows", len(as), 1)
		equal(t, "attempt number", as[0].Number, 1)
		equal(t, "attempt status", as[0].ResponseStatus, 200)
		equal(t, "claims after completion", len(b.claim(t, p.LeaseUntil.Add(time.Hour), 10)), 0)

		ev, err := b.s.GetEvent(b.ctx, a.ID, p.EventID)
		requireNoError(t, err)
		equal(t, "event id", ev.ID, p.EventID)
		equal(t, "event account", ev.AccountID, a.ID)
		equal(t, "event type", ev.Type, nanohook.EventPing)
		equal(t, "task id", ev.TaskID, p.TaskID)
		equal(t, "task type", ev.TaskType, p.TaskType)
		equal(t, "idempotency key", ev.IdempotencyKey, "")
		sameTime(t, "event created at", ev.CreatedAt, p.Now)
		if !bytes.Equal(ev.Payload, p.Payload) {
			t.Fatalf("event payload = %q, want %q", ev.Payload, p.Payload)
		}
		_, err = b.s.GetEvent(b.ctx, a.ID+1000, p.EventID)
		requireNotFound(t, err, "GetEvent of the ping by another account")
	})

	t.Run("PreviousSecretWhileValid", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		_, err := b.s.RotateSecret(b.ctx, store.RotateSecretParams{AccountID: a.ID, ID: e.ID, Secret: "whsec_new",
			PreviousValidUntil: b.now.Add(time.Hour), Now: b.now})
		requireNoError(t, err)
		c, err := b.s.CreateTestDelivery(b.ctx, b.ping(a.ID, e.ID))
		requireNoError(t, err)
		equal(t, "secret", c.Secret, "whsec_new")
		equal(t, "previous secret", c.PreviousSecret, e.Secret)

		p := b.ping(a.ID, e.ID)
		p.Now = b.now.Add(time.Hour) // the previous secret is no longer valid
		p.LeaseUntil = p.Now.Add(time.Minute)
		c, err = b.s.CreateTestDelivery(b.ctx, p)
		requireNoError(t, err)
		equal(t, "previous secret after it expired", c.PreviousSecret, "")
	})

	t.Run("DisabledEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		disabled := nanohook.EndpointDisabled
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Status: &disabled, Now: b.now})
		requireNoError(t, err)
		c, err := b.s.CreateTestDelivery(b.ctx, b.ping(a.ID, e.ID))
		requireNoError(t, err)
		equal(t, "url", c.URL, e.URL)
		b.complete(t, c, b.now, nanohook.DeliverySucceeded, 204, "", time.Time{})
		d, as := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "status", d.Status, nanohook.DeliverySucceeded)
		equal(t, "attempt rows", len(as), 1)
		got, err := b.s.GetEndpoint(b.ctx, a.ID, e.ID)
		requireNoError(t, err)
		equal(t, "endpoint status", got.Status, nanohook.EndpointDisabled)
	})

	t.Run("DeletedOrForeignEndpointIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		e := b.endpoint(t, a.ID)
		gone := b.endpoint(t, a.ID)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, gone.ID, b.now))

		for _, tc := range []struct {
			what                string
			accountID, endpoint int64
		}{
			{"deleted endpoint", a.ID, gone.ID},
			{"another account's endpoint", other.ID, e.ID},
			{"missing endpoint", a.ID, e.ID + 1000},
		} {
			p := b.ping(tc.accountID, tc.endpoint)
			_, err := b.s.CreateTestDelivery(b.ctx, p)
			requireNotFound(t, err, "CreateTestDelivery to a "+tc.what)
			_, err = b.s.GetEvent(b.ctx, tc.accountID, p.EventID)
			requireNotFound(t, err, "GetEvent after a refused test delivery to a "+tc.what)
		}
		equal(t, "claims", len(b.claim(t, b.now.Add(time.Hour), 10)), 0)
		equal(t, "endpoints with anything pending", len(b.heads(t)), 0)
	})

	t.Run("NeverDeduplicated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		p1, p2 := b.ping(a.ID, e.ID), b.ping(a.ID, e.ID) // same task id and type
		c1, err := b.s.CreateTestDelivery(b.ctx, p1)
		requireNoError(t, err)
		c2, err := b.s.CreateTestDelivery(b.ctx, p2)
		requireNoError(t, err)
		if c1.DeliveryID == c2.DeliveryID || c1.EventID == c2.EventID || c1.Token == c2.Token {
			t.Fatalf("two pings share a delivery, event or token: %+v and %+v", c1.Lease, c2.Lease)
		}
		for _, c := range []store.ClaimedDelivery{c1, c2} {
			d, _ := b.delivery(t, a.ID, c.DeliveryID)
			equal(t, "event id", d.EventID, c.EventID)
			_, err := b.s.GetEvent(b.ctx, a.ID, c.EventID)
			requireNoError(t, err)
		}
	})
}
