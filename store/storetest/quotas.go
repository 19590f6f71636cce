package storetest

import (
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testQuotas covers what the engine relies on to share due work: a claim
// takes so many of each endpoint's due deliveries, oldest first, and never
// more, whatever else is due.
func testQuotas(t *testing.T, open func(t *testing.T) store.Store) {
	// queued publishes n events of account a at b.now+i·step (i = 0…n-1),
	// each delivered to every endpoint of a, and returns their ids.
	queued := func(t *testing.T, b *bundle, accountID int64, n int, step time.Duration) []string {
		t.Helper()
		out := make([]string, n)
		for i := range n {
			ev := b.event(accountID)
			ev.Now = b.now.Add(time.Duration(i) * step)
			b.publish(t, ev)
			out[i] = ev.ID
		}
		return out
	}
	eventIDs := func(cs []store.ClaimedDelivery) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.EventID
		}
		return out
	}
	endpoints := func(cs []store.ClaimedDelivery) []int64 {
		out := make([]int64, len(cs))
		for i, c := range cs {
			out[i] = c.EndpointID
		}
		return out
	}

	t.Run("LimitPerEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e1, e2 := b.endpoint(t, a.ID), b.endpoint(t, a.ID)
		queued(t, b, a.ID, 5, time.Second)

		now := b.now.Add(time.Minute)
		got := b.claimQuotas(t, now, now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e1.ID, Limit: 2}, store.EndpointQuota{EndpointID: e2.ID, Limit: 3})
		sameInts(t, "endpoints claimed", endpoints(got), []int64{e1.ID, e1.ID, e2.ID, e2.ID, e2.ID})
		// The next claim takes what the quotas left, and then nothing.
		got = b.claimQuotas(t, now, now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e1.ID, Limit: 10}, store.EndpointQuota{EndpointID: e2.ID, Limit: 10})
		sameInts(t, "endpoints claimed next", endpoints(got), []int64{e1.ID, e1.ID, e1.ID, e2.ID, e2.ID})
		equal(t, "claimed when none are left", len(b.claimQuotas(t, now, now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e1.ID, Limit: 10}, store.EndpointQuota{EndpointID: e2.ID, Limit: 10})), 0)
	})

	t.Run("OldestFirstWithinAnEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		// Due in reverse publication order, two at the same instant (then
		// the lower id, the earlier publish, comes first).
		var evs []string
		for _, at := range []time.Duration{4, 3, 2, 2, 1, 0} {
			ev := b.event(a.ID)
			ev.Now = b.now.Add(at * time.Second)
			b.publish(t, ev)
			evs = append(evs, ev.ID)
		}
		want := []string{evs[5], evs[4], evs[2], evs[3], evs[1], evs[0]}
		var got []store.ClaimedDelivery
		for range 3 {
			got = append(got, b.claimQuotas(t, b.now.Add(time.Minute), b.now.Add(time.Hour),
				store.EndpointQuota{EndpointID: e.ID, Limit: 2})...)
		}
		sameStrings(t, "claimed events", eventIDs(got), want)
		for i := 1; i < len(got); i++ {
			if got[i].DueAt.Before(got[i-1].DueAt) {
				t.Fatalf("claim %d due at %v before claim %d due at %v", i, got[i].DueAt, i-1, got[i-1].DueAt)
			}
		}
	})

	t.Run("OnlyDueDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		ids := queued(t, b, a.ID, 3, time.Minute) // due at +0, +1m, +2m
		got := b.claimQuotas(t, b.now.Add(time.Minute), b.now.Add(time.Hour), store.EndpointQuota{EndpointID: e.ID, Limit: 10})
		sameStrings(t, "claimed at +1m", eventIDs(got), ids[:2])
	})

	t.Run("NothingDue", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		f, _ := b.account(t, "future")
		busy := b.endpoint(t, a.ID)
		idle := b.endpoint(t, a.ID, nanohook.EventJobFailed) // never gets a delivery
		future := b.endpoint(t, f.ID)
		later := b.event(f.ID)
		later.Now = b.now.Add(time.Hour)
		b.publish(t, later, b.event(a.ID))

		got := b.claimQuotas(t, b.now, b.now.Add(time.Minute),
			store.EndpointQuota{EndpointID: idle.ID, Limit: 10},
			store.EndpointQuota{EndpointID: future.ID, Limit: 10},
			store.EndpointQuota{EndpointID: busy.ID + future.ID + 1000, Limit: 10}, // no such endpoint
			store.EndpointQuota{EndpointID: busy.ID, Limit: 10})
		sameInts(t, "endpoints claimed", endpoints(got), []int64{busy.ID})
		equal(t, "claimed of an endpoint with nothing due", len(b.claimQuotas(t, b.now, b.now.Add(time.Minute),
			store.EndpointQuota{EndpointID: future.ID, Limit: 10})), 0)
		equal(t, "claimed when it falls due", len(b.claimQuotas(t, later.Now, later.Now.Add(time.Minute),
			store.EndpointQuota{EndpointID: future.ID, Limit: 10})), 1)
	})

	t.Run("GroupedInQuotaOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		e1, e2 := b.endpoint(t, a.ID), b.endpoint(t, a.ID)
		e3 := b.endpoint(t, other.ID)
		aIDs := queued(t, b, a.ID, 3, time.Second)
		oIDs := queued(t, b, other.ID, 3, time.Second)

		// Quotas in an order that is neither endpoint id nor due order.
		now := b.now.Add(time.Minute)
		got := b.claimQuotas(t, now, now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e3.ID, Limit: 2},
			store.EndpointQuota{EndpointID: e1.ID, Limit: 1},
			store.EndpointQuota{EndpointID: e2.ID, Limit: 3})
		sameInts(t, "endpoints claimed", endpoints(got), []int64{e3.ID, e3.ID, e1.ID, e2.ID, e2.ID, e2.ID})
		sameStrings(t, "events claimed", eventIDs(got), []string{oIDs[0], oIDs[1], aIDs[0], aIDs[0], aIDs[1], aIDs[2]})
		for _, c := range got {
			want := a.ID
			if c.EndpointID == e3.ID {
				want = other.ID
			}
			equal(t, "account of the claim", c.AccountID, want)
		}
		// All of one call may share a token; each claim is leased.
		for _, c := range got {
			d, _ := b.delivery(t, c.AccountID, c.DeliveryID)
			sameTime(t, "next attempt at of a claim", d.NextAttemptAt, now.Add(time.Minute))
		}
	})

	t.Run("EndpointListedTwice", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e1, e2 := b.endpoint(t, a.ID), b.endpoint(t, a.ID)
		ids := queued(t, b, a.ID, 5, time.Second)

		now := b.now.Add(time.Minute)
		got := b.claimQuotas(t, now, now.Add(time.Minute),
			store.EndpointQuota{EndpointID: e1.ID, Limit: 2},
			store.EndpointQuota{EndpointID: e2.ID, Limit: 1},
			store.EndpointQuota{EndpointID: e1.ID, Limit: 2})
		// Claimed twice: the first quota gets the oldest, the second the
		// next ones, each group in its quota's place.
		sameInts(t, "endpoints claimed", endpoints(got), []int64{e1.ID, e1.ID, e2.ID, e1.ID, e1.ID})
		sameStrings(t, "events claimed", eventIDs(got), []string{ids[0], ids[1], ids[0], ids[2], ids[3]})
		seen := map[int64]bool{}
		for _, c := range got {
			if seen[c.DeliveryID] {
				t.Fatalf("delivery %d claimed twice in one call", c.DeliveryID)
			}
			seen[c.DeliveryID] = true
		}
	})

	t.Run("InactiveEndpoints", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		deleted, disabled, live := b.endpoint(t, a.ID), b.endpoint(t, a.ID), b.endpoint(t, a.ID)
		// Pings are leased at once, to a disabled endpoint too; when the
		// node that made one dies, the delivery falls due at its lease's
		// expiry like any other.
		status := nanohook.EndpointDisabled
		reason := "customer paused it"
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: disabled.ID,
			Status: &status, DisabledReason: &reason, Now: b.now})
		requireNoError(t, err)
		ping, err := b.s.CreateTestDelivery(b.ctx, b.ping(a.ID, disabled.ID))
		requireNoError(t, err)
		b.publish(t, b.event(a.ID)) // to deleted and live (disabled: failed at once)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, deleted.ID, b.now))

		// Every lease has expired; the rescue queues the ping again.
		now := b.now.Add(time.Hour)
		equal(t, "leases rescued", b.rescue(t, now), int64(1))
		got := b.claimQuotas(t, now, now.Add(time.Minute),
			store.EndpointQuota{EndpointID: deleted.ID, Limit: 10},
			store.EndpointQuota{EndpointID: disabled.ID, Limit: 10},
			store.EndpointQuota{EndpointID: live.ID, Limit: 10})
		sameInts(t, "endpoints claimed", endpoints(got), []int64{live.ID})
		// The disabled endpoint's ping was failed, not handed out.
		d, _ := b.delivery(t, a.ID, ping.DeliveryID)
		equal(t, "status of the expired ping", d.Status, nanohook.DeliveryFailed)
		equal(t, "last error of the expired ping", d.LastError, "endpoint disabled: "+reason)
		for _, h := range b.heads(t) {
			if h.EndpointID != live.ID {
				t.Fatalf("queue head of endpoint %d after the claim; want only the live endpoint %d", h.EndpointID, live.ID)
			}
		}
	})
}

func sameInts(t *testing.T, what string, got, want []int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s = %q, want %q", what, got, want)
		}
	}
}
