package storetest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

func testClaim(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Fields", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		ev := b.event(a.ID)
		b.publish(t, ev)

		claimed := b.claim(t, b.now, 10)
		equal(t, "claimed", len(claimed), 1)
		c := claimed[0]
		if c.DeliveryID == 0 {
			t.Fatal("delivery id not set")
		}
		equal(t, "account", c.AccountID, a.ID)
		equal(t, "endpoint", c.EndpointID, e.ID)
		equal(t, "url", c.URL, e.URL)
		equal(t, "secret", c.Secret, e.Secret)
		equal(t, "event id", c.EventID, ev.ID)
		equal(t, "event type", c.EventType, ev.Type)
		equal(t, "payload", string(c.Payload), string(ev.Payload))
		equal(t, "attempt", c.Attempt, 1)
		sameTime(t, "created at", c.CreatedAt, b.now)
		sameTime(t, "due at", c.DueAt, b.now)
	})

	t.Run("OnlyDue", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))

		equal(t, "claimed before due", len(b.claim(t, b.now.Add(-time.Microsecond), 10)), 0)
		equal(t, "claimed when due", len(b.claim(t, b.now, 10)), 1)
	})

	t.Run("LimitAndOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		// Published in reverse due order: the claim follows due time.
		var want []string
		for i := range 5 {
			ev := b.event(a.ID)
			ev.Now = b.now.Add(time.Duration(4-i) * time.Second)
			b.publish(t, ev)
			want = append([]string{ev.ID}, want...)
		}
		var got []string
		for _, n := range []int{2, 2, 1} {
			claimed := b.claim(t, b.now.Add(time.Minute), 2)
			equal(t, "claimed", len(claimed), n)
			for _, c := range claimed {
				got = append(got, c.EventID)
			}
		}
		equal(t, "claimed when none are left", len(b.claim(t, b.now.Add(time.Minute), 2)), 0)
		if !slices.Equal(got, want) {
			t.Fatalf("claimed events %v, want due order %v", got, want)
		}
	})

	t.Run("LeasedNotClaimedAgainUntilExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		quota := store.EndpointQuota{EndpointID: e.ID, Limit: 10}

		// Claimed a second after it fell due, by a node that then crashes.
		claimedAt, leaseUntil := b.now.Add(time.Second), b.now.Add(30*time.Second)
		first := b.claimQuotas(t, claimedAt, leaseUntil, quota)
		equal(t, "first claim", len(first), 1)
		sameTime(t, "lease due at", first[0].DueAt, b.now)
		// The lease is the delivery's next attempt time until it ends.
		d, _ := b.delivery(t, a.ID, first[0].DeliveryID)
		sameTime(t, "next attempt at while leased", d.NextAttemptAt, leaseUntil)
		equal(t, "claimed during the lease", len(b.claimQuotas(t, leaseUntil.Add(-time.Microsecond), leaseUntil.Add(time.Hour), quota)), 0)

		// Lease rescue: once the lease expires, RescueExpiredLeases queues
		// it again and another worker takes it with a new token, and it is
		// still the first attempt. It was due (for the rescuer) when the
		// lease expired.
		equal(t, "claimed at expiry before a rescue", len(b.claimQuotas(t, leaseUntil, leaseUntil.Add(time.Minute), quota)), 0)
		equal(t, "rescued", b.rescue(t, leaseUntil), int64(1))
		equal(t, "rescued again", b.rescue(t, leaseUntil.Add(time.Hour)), int64(0))
		rescued := b.claimQuotas(t, leaseUntil, leaseUntil.Add(time.Minute), quota)
		equal(t, "claimed at expiry", len(rescued), 1)
		equal(t, "rescued delivery", rescued[0].DeliveryID, first[0].DeliveryID)
		equal(t, "rescued attempt", rescued[0].Attempt, 1)
		sameTime(t, "rescued lease due at", rescued[0].DueAt, leaseUntil)
		if rescued[0].Token == first[0].Token {
			t.Fatalf("rescue reused lease token %d", first[0].Token)
		}
	})

	t.Run("PayloadSharedByAnEventsDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e1, e2, e3 := b.endpoint(t, a.ID), b.endpoint(t, a.ID), b.endpoint(t, a.ID)
		big := b.event(a.ID)
		big.Payload = fmt.Appendf(nil, `{"event":"job.completed","data":%q}`, strings.Repeat("x", 64<<10))
		other := b.event(a.ID)
		b.publish(t, big, other)

		claimed := b.claimQuotas(t, b.now, b.now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e1.ID, Limit: 10},
			store.EndpointQuota{EndpointID: e2.ID, Limit: 10},
			store.EndpointQuota{EndpointID: e3.ID, Limit: 10})
		equal(t, "claimed", len(claimed), 6)
		byEvent := map[string][]store.ClaimedDelivery{}
		for _, c := range claimed {
			byEvent[c.EventID] = append(byEvent[c.EventID], c)
		}
		for _, ev := range []store.PublishEventParams{big, other} {
			cs := byEvent[ev.ID]
			equal(t, "deliveries of "+ev.ID, len(cs), 3)
			for _, c := range cs {
				equal(t, "payload of "+ev.ID, string(c.Payload), string(ev.Payload))
				if &c.Payload[0] != &cs[0].Payload[0] {
					t.Fatalf("deliveries %d and %d of event %s hold copies of its payload, want one shared slice",
						cs[0].DeliveryID, c.DeliveryID, ev.ID)
				}
			}
		}
		if &byEvent[big.ID][0].Payload[0] == &byEvent[other.ID][0].Payload[0] {
			t.Fatal("two events share one payload slice")
		}
	})

	t.Run("SkipsFinishedDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID), b.event(a.ID))
		claimed := b.claim(t, b.now, 10)
		equal(t, "claimed", len(claimed), 2)
		b.complete(t, claimed[0], b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})
		b.complete(t, claimed[1], b.now, nanohook.DeliveryFailed, 500, "", time.Time{})
		equal(t, "claimable after finishing", len(b.claim(t, b.now.Add(24*time.Hour), 10)), 0)
	})

	t.Run("ConcurrentClaimersNeverShare", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		var quotas []store.EndpointQuota
		for range 3 {
			quotas = append(quotas, store.EndpointQuota{EndpointID: b.endpoint(t, a.ID).ID, Limit: 3})
		}
		events := make([]store.PublishEventParams, 100)
		for i := range events {
			events[i] = b.event(a.ID)
		}
		b.publish(t, events...)

		// Every worker asks for the same endpoints at once, each in its own
		// order, so claims overlap on every endpoint's queue head.
		const workers = 8
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			seen = map[int64]int{}
			errs = make(chan error, workers)
		)
		for w := range workers {
			mine := slices.Clone(quotas)
			if w%2 == 1 {
				slices.Reverse(mine)
			}
			wg.Go(func() {
				// Bounded, so a driver that hands out leased rows again fails
				// on the duplicate check instead of looping forever.
				for range 100 {
					claimed, err := b.s.ClaimDeliveries(b.ctx, store.ClaimParams{
						Now: b.now, LeaseUntil: b.now.Add(time.Minute), Owner: string(rune('a' + w)), Quotas: mine,
					})
					if err != nil {
						errs <- err
						return
					}
					if len(claimed) == 0 {
						return
					}
					mu.Lock()
					for _, c := range claimed {
						seen[c.DeliveryID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			requireNoError(t, err)
		}
		equal(t, "distinct deliveries claimed", len(seen), 300)
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("delivery %d claimed %d times under overlapping leases", id, n)
			}
		}
	})

	t.Run("ZeroLimitClaimsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		equal(t, "claimed with Limit 0", len(b.claim(t, b.now, 0)), 0)
		equal(t, "claimed with no quotas", len(b.claimQuotas(t, b.now, b.now.Add(time.Minute))), 0)
		e := b.heads(t)[0].EndpointID
		equal(t, "claimed with a quota of 0", len(b.claimQuotas(t, b.now, b.now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e, Limit: 0})), 0)
		equal(t, "claimed with a negative quota", len(b.claimQuotas(t, b.now, b.now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e, Limit: -1})), 0)
		equal(t, "claimed afterwards", len(b.claim(t, b.now, 1)), 1)
	})
}

func testComplete(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Success", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		ev := b.event(a.ID)
		b.publish(t, ev)
		c := b.claim(t, b.now, 1)[0]

		r := result(c, b.now.Add(time.Second), nanohook.DeliverySucceeded, 204, "", time.Time{})
		r.Attempt.ResponseBody = "ok \u2028 \U0001F600"
		// Everything JSON must escape, and text PostgreSQL refuses raw (NUL):
		// the headers come back exactly, in order, duplicates and all.
		r.Attempt.RequestHeaders = []nanohook.Header{
			{Name: "Content-Type", Value: "application/json"},
			{Name: "X-Nano-Signature", Value: "v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"},
			{Name: "X-Odd", Value: "q\"uote \\ back\tslash\x00nul\x1f \u2028 \U0001F600 <&>"},
			{Name: "X-Odd", Value: ""},
		}
		r.Attempt.RemoteAddr = "[2001:db8::1]:8443"
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, []store.CompleteParams{r}))

		d, attempts := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "id", d.ID, c.DeliveryID)
		equal(t, "account", d.AccountID, a.ID)
		equal(t, "endpoint", d.EndpointID, e.ID)
		equal(t, "event", d.EventID, ev.ID)
		equal(t, "event type", d.EventType, ev.Type)
		equal(t, "status", d.Status, nanohook.DeliverySucceeded)
		equal(t, "attempts", d.Attempts, 1)
		equal(t, "last error", d.LastError, "")
		sameTime(t, "created at", d.CreatedAt, b.now)
		sameTime(t, "updated at", d.UpdatedAt, r.Now)

		equal(t, "attempts recorded", len(attempts), 1)
		at := attempts[0]
		if at.ID == 0 {
			t.Fatal("attempt id not set")
		}
		equal(t, "attempt delivery", at.DeliveryID, c.DeliveryID)
		equal(t, "attempt number", at.Number, 1)
		sameTime(t, "attempt started at", at.StartedAt, r.Attempt.StartedAt)
		equal(t, "attempt duration", at.Duration, r.Attempt.Duration)
		equal(t, "attempt status", at.ResponseStatus, 204)
		equal(t, "attempt body", at.ResponseBody, r.Attempt.ResponseBody)
		equal(t, "attempt error", at.Error, "")
		sameHeaders(t, "attempt request headers", at.RequestHeaders, r.Attempt.RequestHeaders)
		equal(t, "attempt remote address", at.RemoteAddr, r.Attempt.RemoteAddr)

		equal(t, "claimable after success", len(b.claim(t, b.now.Add(24*time.Hour), 10)), 0)
	})

	t.Run("RetryThenFail", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))

		c1 := b.claim(t, b.now, 1)[0]
		retryAt := b.now.Add(5 * time.Second)
		r1 := result(c1, b.now, nanohook.DeliveryPending, 302, "", retryAt)
		r1.Attempt.Location = "https://elsewhere.example.com/"
		r1.Attempt.RequestHeaders = []nanohook.Header{{Name: "X-Nano-Delivery-Attempt", Value: "1"}}
		r1.Attempt.RemoteAddr = "203.0.113.7:443"
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, []store.CompleteParams{r1}))

		d, _ := b.delivery(t, a.ID, c1.DeliveryID)
		equal(t, "status after a failed attempt", d.Status, nanohook.DeliveryPending)
		equal(t, "attempts", d.Attempts, 1)
		equal(t, "last error", d.LastError, "HTTP 302")
		sameTime(t, "next attempt at", d.NextAttemptAt, retryAt)

		// next_attempt_at is honoured by later claims, and the lease is gone.
		equal(t, "claimed before the retry is due", len(b.claim(t, retryAt.Add(-time.Microsecond), 1)), 0)
		c2 := b.claim(t, retryAt, 1)
		equal(t, "claimed when the retry is due", len(c2), 1)
		equal(t, "second attempt number", c2[0].Attempt, 2)

		b.complete(t, c2[0], retryAt, nanohook.DeliveryFailed, 0, "dial tcp: connection refused", time.Time{})
		d, attempts := b.delivery(t, a.ID, c1.DeliveryID)
		equal(t, "final status", d.Status, nanohook.DeliveryFailed)
		equal(t, "attempts", d.Attempts, 2)
		equal(t, "last error", d.LastError, "dial tcp: connection refused")
		equal(t, "attempts recorded", len(attempts), 2)
		equal(t, "first attempt number", attempts[0].Number, 1)
		equal(t, "first attempt location", attempts[0].Location, "https://elsewhere.example.com/")
		equal(t, "first attempt status", attempts[0].ResponseStatus, 302)
		equal(t, "second attempt number", attempts[1].Number, 2)
		equal(t, "second attempt error", attempts[1].Error, "dial tcp: connection refused")
		equal(t, "second attempt status", attempts[1].ResponseStatus, 0)
		sameHeaders(t, "first attempt request headers", attempts[0].RequestHeaders, r1.Attempt.RequestHeaders)
		equal(t, "first attempt remote address", attempts[0].RemoteAddr, "203.0.113.7:443")
		// No connection, nothing recorded: no headers, no address.
		sameHeaders(t, "second attempt request headers", attempts[1].RequestHeaders, nil)
		equal(t, "second attempt remote address", attempts[1].RemoteAddr, "")
		equal(t, "claimable after failing", len(b.claim(t, b.now.Add(24*time.Hour), 10)), 0)
	})

	t.Run("StaleTokenRecordsAttemptOnly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))

		old := b.claim(t, b.now, 1)[0]                        // lease until now+1m
		rescued := b.claim(t, b.now.Add(2*time.Minute), 1)[0] // the lease expired
		equal(t, "rescued delivery", rescued.DeliveryID, old.DeliveryID)

		// The first worker finishes late: its attempt is history, but the
		// delivery now belongs to the second worker.
		b.complete(t, old, b.now.Add(2*time.Minute), nanohook.DeliverySucceeded, 200, "", time.Time{})
		d, attempts := b.delivery(t, a.ID, old.DeliveryID)
		equal(t, "status after the stale completion", d.Status, nanohook.DeliveryPending)
		equal(t, "attempts after the stale completion", d.Attempts, 0)
		equal(t, "attempts recorded", len(attempts), 1)
		equal(t, "claimed while the second lease holds", len(b.claim(t, b.now.Add(2*time.Minute+time.Second), 1)), 0)

		b.complete(t, rescued, b.now.Add(3*time.Minute), nanohook.DeliveryPending, 503, "", b.now.Add(time.Hour))
		d, attempts = b.delivery(t, a.ID, old.DeliveryID)
		equal(t, "status after the current completion", d.Status, nanohook.DeliveryPending)
		equal(t, "attempts", d.Attempts, 1)
		equal(t, "last error", d.LastError, "HTTP 503")
		equal(t, "attempts recorded", len(attempts), 2)

		// A second completion with the (now cleared) current token changes
		// nothing either: a lease completes once.
		b.complete(t, rescued, b.now.Add(4*time.Minute), nanohook.DeliverySucceeded, 200, "", time.Time{})
		d, _ = b.delivery(t, a.ID, old.DeliveryID)
		equal(t, "status after a repeated completion", d.Status, nanohook.DeliveryPending)
	})

	t.Run("DisableEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		gone := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID), b.event(a.ID), b.event(a.ID))
		claimed := b.claim(t, b.now, 2) // one in this batch, one in flight elsewhere

		r := result(claimed[0], b.now, nanohook.DeliveryFailed, 410, "", time.Time{})
		r.DisableEndpoint = "endpoint answered 410 Gone"
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, []store.CompleteParams{r}))

		e := mustGetEndpoint(t, b, a.ID, gone.ID)
		equal(t, "endpoint status", e.Status, nanohook.EndpointDisabled)
		equal(t, "endpoint reason", e.DisabledReason, "endpoint answered 410 Gone")
		sameTime(t, "endpoint updated at", e.UpdatedAt, r.Now)

		d, _ := b.delivery(t, a.ID, claimed[0].DeliveryID)
		equal(t, "status of the 410 delivery", d.Status, nanohook.DeliveryFailed)
		equal(t, "last error of the 410 delivery", d.LastError, "HTTP 410")
		d, _ = b.delivery(t, a.ID, claimed[1].DeliveryID)
		equal(t, "status of the in-flight delivery", d.Status, nanohook.DeliveryFailed)
		equal(t, "last error of the in-flight delivery", d.LastError, "endpoint disabled: endpoint answered 410 Gone")
		equal(t, "claimable after disabling", len(b.claim(t, b.now.Add(24*time.Hour), 10)), 0)
		res := b.publish(t, b.event(a.ID))
		equal(t, "deliveries to the disabled endpoint (recorded failed)", res[0].Deliveries, 1)
		equal(t, "claimable after publishing to it", len(b.claim(t, b.now.Add(24*time.Hour), 10)), 0)
	})

	t.Run("SameLeaseTwiceInOneBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		c := b.claim(t, b.now, 1)[0]

		// A lease completes once: the first result wins, both attempts are
		// kept.
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, []store.CompleteParams{
			result(c, b.now, nanohook.DeliveryPending, 500, "", b.now.Add(time.Minute)),
			result(c, b.now, nanohook.DeliverySucceeded, 200, "", time.Time{}),
		}))
		d, attempts := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "status", d.Status, nanohook.DeliveryPending)
		equal(t, "last error", d.LastError, "HTTP 500")
		equal(t, "attempts recorded", len(attempts), 2)
	})

	t.Run("BatchOf1000", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		events := make([]store.PublishEventParams, 1000)
		for i := range events {
			events[i] = b.event(a.ID)
		}
		b.publish(t, events...)
		claimed := b.claim(t, b.now, 1000)
		equal(t, "claimed", len(claimed), 1000)

		results := make([]store.CompleteParams, len(claimed))
		for i, c := range claimed {
			status, next := nanohook.DeliverySucceeded, time.Time{}
			if i%2 == 1 {
				status, next = nanohook.DeliveryPending, b.now.Add(time.Hour)
			}
			results[i] = result(c, b.now, status, 200+300*(i%2), "", next)
			results[i].Attempt.RequestHeaders = []nanohook.Header{{Name: "X-Row", Value: strconv.Itoa(i)}}
			results[i].Attempt.RemoteAddr = fmt.Sprintf("10.0.%d.%d:443", i/256, i%256)
		}
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, results))
		// Rows keep their own values across the multi-row chunks.
		for _, i := range []int{0, 1, 63, 64, 65, 511, 999} {
			_, attempts := b.delivery(t, a.ID, claimed[i].DeliveryID)
			equal(t, "attempts recorded", len(attempts), 1)
			sameHeaders(t, "request headers", attempts[0].RequestHeaders, results[i].Attempt.RequestHeaders)
			equal(t, "remote address", attempts[0].RemoteAddr, results[i].Attempt.RemoteAddr)
		}
		equal(t, "claimable before the retries", len(b.claim(t, b.now.Add(time.Minute), 1000)), 0)
		retried := b.claim(t, b.now.Add(time.Hour), 1000)
		equal(t, "retries claimable", len(retried), 500)
		for _, c := range retried {
			equal(t, "retry attempt", c.Attempt, 2)
		}
	})

	t.Run("EmptyBatches", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, nil))
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, nil))
		res, err := b.s.PublishEvents(b.ctx, nil)
		requireNoError(t, err)
		equal(t, "results of an empty publish", len(res), 0)
	})
}

func testRelease(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ReleasedIsDueAgainAtItsDueTimeWithoutAnAttempt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		later := b.event(a.ID)
		later.Now = b.now.Add(time.Second)
		b.publish(t, later)
		claimedAt := b.now.Add(time.Minute)
		claimed := b.claimQuotas(t, claimedAt, claimedAt.Add(time.Hour), store.EndpointQuota{EndpointID: e.ID, Limit: 2})
		equal(t, "claimed", len(claimed), 2)

		// Released in reverse: each goes back to its own due time, so the
		// endpoint's queue is as it was before the claim.
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{claimed[1].Lease}))
		d, _ := b.delivery(t, a.ID, claimed[1].DeliveryID)
		sameTime(t, "next attempt at after release", d.NextAttemptAt, later.Now)
		heads := b.heads(t)
		equal(t, "heads", len(heads), 1)
		sameTime(t, "head with the older one still leased", heads[0].DueAt, later.Now)
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{claimed[0].Lease}))
		sameTime(t, "head after both releases", b.heads(t)[0].DueAt, b.now)

		equal(t, "claimable before its due time", len(b.claim(t, b.now.Add(-time.Microsecond), 10)), 0)
		again := b.claimQuotas(t, claimedAt, claimedAt.Add(time.Hour), store.EndpointQuota{EndpointID: e.ID, Limit: 10})
		equal(t, "claimable after release", len(again), 2)
		equal(t, "first released delivery", again[0].DeliveryID, claimed[0].DeliveryID)
		equal(t, "second released delivery", again[1].DeliveryID, claimed[1].DeliveryID)
		sameTime(t, "due at of the reclaim", again[0].DueAt, b.now)
		equal(t, "attempt after release", again[0].Attempt, 1)
		d, attempts := b.delivery(t, a.ID, claimed[0].DeliveryID)
		equal(t, "attempts counted", d.Attempts, 0)
		equal(t, "attempts recorded", len(attempts), 0)
	})

	t.Run("StaleTokenDoesNotRelease", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		old := b.claim(t, b.now, 1)[0]
		current := b.claim(t, b.now.Add(2*time.Minute), 1)[0]

		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{old.Lease}))
		equal(t, "claimable while the current lease holds", len(b.claim(t, b.now.Add(2*time.Minute), 1)), 0)
		d, _ := b.delivery(t, a.ID, old.DeliveryID)
		sameTime(t, "next attempt at after a stale release", d.NextAttemptAt, b.now.Add(3*time.Minute))
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{current.Lease}))
		equal(t, "claimable after the current release", len(b.claim(t, b.now.Add(2*time.Minute), 1)), 1)
	})

	t.Run("CompletionAfterReleaseChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		c := b.claim(t, b.now, 1)[0]
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{c.Lease}))
		b.complete(t, c, b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})
		d, _ := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "status", d.Status, nanohook.DeliveryPending)
		sameTime(t, "next attempt at", d.NextAttemptAt, b.now)
	})
}

func testGetDelivery(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("PendingAndScoped", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		e := b.endpoint(t, a.ID)
		ev := b.event(a.ID)
		b.publish(t, ev)
		c := b.claim(t, b.now, 1)[0]
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{c.Lease}))

		d, attempts := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "id", d.ID, c.DeliveryID)
		equal(t, "account", d.AccountID, a.ID)
		equal(t, "endpoint", d.EndpointID, e.ID)
		equal(t, "event", d.EventID, ev.ID)
		equal(t, "event type", d.EventType, nanohook.EventJobCompleted)
		equal(t, "status", d.Status, nanohook.DeliveryPending)
		equal(t, "attempts", d.Attempts, 0)
		equal(t, "last error", d.LastError, "")
		sameTime(t, "next attempt at", d.NextAttemptAt, b.now)
		sameTime(t, "created at", d.CreatedAt, b.now)
		sameTime(t, "updated at", d.UpdatedAt, b.now)
		equal(t, "attempts recorded", len(attempts), 0)
		equal(t, "payload", string(d.Payload), string(ev.Payload))

		// With attempts the payload is there once, as it was sent.
		c = b.claim(t, b.now, 1)[0]
		b.complete(t, c, b.now, nanohook.DeliveryPending, 500, "", b.now.Add(time.Minute))
		c = b.claim(t, b.now.Add(time.Minute), 1)[0]
		b.complete(t, c, b.now.Add(time.Minute), nanohook.DeliverySucceeded, 200, "", time.Time{})
		d, attempts = b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "attempts recorded after two", len(attempts), 2)
		equal(t, "payload with attempts", string(d.Payload), string(ev.Payload))
		equal(t, "payload sent", string(c.Payload), string(ev.Payload))

		_, _, err := b.s.GetDelivery(b.ctx, other.ID, c.DeliveryID)
		requireNotFound(t, err, "GetDelivery by another account")
		_, _, err = b.s.GetDelivery(b.ctx, a.ID, c.DeliveryID+1000)
		requireNotFound(t, err, "GetDelivery of a missing id")
	})
}
