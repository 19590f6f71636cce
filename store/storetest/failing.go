package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testAutoDisable covers the auto-disable ladder: CompleteDeliveries keeps
// each endpoint's failing_since, DisableFailingEndpoints disables endpoints
// failing for too long, re-enabling restarts the clock, and events for a
// disabled endpoint are recorded as failed deliveries.
func testAutoDisable(t *testing.T, open func(t *testing.T) store.Store) {
	const reason = "failing for 5 days"
	disableFailing := func(t *testing.T, b *bundle, since, now time.Time) []int64 {
		t.Helper()
		got, err := b.s.DisableFailingEndpoints(b.ctx, store.DisableFailingParams{FailingSince: since, Now: now, Reason: reason})
		requireNoError(t, err)
		return got
	}
	// attempt publishes one event to the account's endpoints, claims it at
	// at and completes every claim with status.
	attempt := func(t *testing.T, b *bundle, accountID int64, at time.Time, status nanohook.DeliveryStatus) {
		t.Helper()
		ev := b.event(accountID)
		ev.Now = at
		b.publish(t, ev)
		cs := b.claim(t, at, 100)
		if len(cs) == 0 {
			t.Fatal("nothing claimed")
		}
		var rs []store.CompleteParams
		for _, c := range cs {
			code, next := 500, at.Add(time.Hour)
			switch status {
			case nanohook.DeliverySucceeded:
				code, next = 200, time.Time{}
			case nanohook.DeliveryFailed:
				next = time.Time{}
			}
			rs = append(rs, result(c, at, status, code, "", next))
		}
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, rs))
	}

	t.Run("FailedCompletionSetsFailingSinceKeepingTheEarliest", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		t1 := b.now.Add(time.Minute)
		attempt(t, b, a.ID, t1, nanohook.DeliveryPending)
		attempt(t, b, a.ID, t1.Add(time.Hour), nanohook.DeliveryFailed)
		// Failing since t1 exactly: a bound at t1 is not "before", one just after is.
		equal(t, "disabled with bound at t1", len(disableFailing(t, b, t1, t1.Add(2*time.Hour))), 0)
		got := disableFailing(t, b, t1.Add(time.Microsecond), t1.Add(2*time.Hour))
		if !slices.Equal(got, []int64{e.ID}) {
			t.Fatalf("disabled %v, want [%d]", got, e.ID)
		}
		ep := mustGetEndpoint(t, b, a.ID, e.ID)
		equal(t, "status", ep.Status, nanohook.EndpointDisabled)
		equal(t, "reason", ep.DisabledReason, nanohook.FailingReason(reason, t1))
	})

	t.Run("StaleLeaseFailureCounts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		c := b.claim(t, b.now, 1)[0]
		c.Token++ // not the current lease
		b.complete(t, c, b.now, nanohook.DeliveryPending, 503, "", b.now.Add(time.Hour))
		got := disableFailing(t, b, b.now.Add(time.Second), b.now.Add(time.Hour))
		if !slices.Equal(got, []int64{e.ID}) {
			t.Fatalf("disabled %v, want [%d]", got, e.ID)
		}
	})

	t.Run("SuccessClearsFailingSince", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		attempt(t, b, a.ID, b.now, nanohook.DeliveryPending)
		attempt(t, b, a.ID, b.now.Add(time.Minute), nanohook.DeliverySucceeded)
		equal(t, "disabled after a success", len(disableFailing(t, b, b.now.Add(time.Hour), b.now.Add(time.Hour))), 0)
		equal(t, "status", mustGetEndpoint(t, b, a.ID, e.ID).Status, nanohook.EndpointActive)
		// Failing again starts a fresh clock.
		t2 := b.now.Add(2 * time.Minute)
		attempt(t, b, a.ID, t2, nanohook.DeliveryFailed)
		equal(t, "disabled with bound at t2", len(disableFailing(t, b, t2, t2.Add(time.Hour))), 0)
		equal(t, "disabled after t2", len(disableFailing(t, b, t2.Add(time.Microsecond), t2.Add(time.Hour))), 1)
	})

	t.Run("SuccessAndFailureInOneBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID), b.event(a.ID))
		cs := b.claim(t, b.now, 2)
		equal(t, "claimed", len(cs), 2)
		// A failure, then a later success: healthy.
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, []store.CompleteParams{
			result(cs[0], b.now, nanohook.DeliveryPending, 500, "", b.now.Add(time.Hour)),
			result(cs[1], b.now.Add(time.Second), nanohook.DeliverySucceeded, 200, "", time.Time{}),
		}))
		equal(t, "disabled", len(disableFailing(t, b, b.now.Add(time.Hour), b.now.Add(time.Hour))), 0)
		equal(t, "status", mustGetEndpoint(t, b, a.ID, e.ID).Status, nanohook.EndpointActive)
	})

	t.Run("DisableFailingEndpoints", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		old := b.endpoint(t, a.ID, nanohook.EventJobCompleted)
		recent := b.endpoint(t, a.ID, nanohook.EventJobFailed)
		healthy := b.endpoint(t, a.ID, nanohook.EventType("test.healthy"))
		old2 := b.endpoint(t, a.ID, nanohook.EventType("test.old2"))

		fail := func(typ nanohook.EventType, at time.Time, status nanohook.DeliveryStatus) {
			t.Helper()
			ev := b.event(a.ID)
			ev.Type, ev.Now = typ, at
			b.publish(t, ev)
			c := b.claim(t, at, 1)[0]
			code, next := 500, at.Add(time.Hour)
			if status == nanohook.DeliverySucceeded {
				code, next = 200, time.Time{}
			}
			b.complete(t, c, at, status, code, "", next)
		}
		tOld := b.now
		fail(nanohook.EventJobCompleted, tOld, nanohook.DeliveryPending)
		fail(nanohook.EventType("test.old2"), tOld.Add(time.Minute), nanohook.DeliveryFailed)
		fail(nanohook.EventType("test.healthy"), tOld.Add(2*time.Minute), nanohook.DeliverySucceeded)
		bound := tOld.Add(time.Hour)
		fail(nanohook.EventJobFailed, bound.Add(time.Minute), nanohook.DeliveryPending)
		// old has a pending delivery (waiting for its retry) and a fresh one.
		ev := b.event(a.ID)
		ev.Now = bound.Add(2 * time.Minute)
		fresh := b.publish(t, ev)[0]
		equal(t, "fresh deliveries", fresh.Deliveries, 1)

		now := bound.Add(time.Hour)
		got := disableFailing(t, b, bound, now)
		if !slices.Equal(got, []int64{old.ID, old2.ID}) {
			t.Fatalf("disabled %v, want [%d %d]", got, old.ID, old2.ID)
		}
		for _, x := range []struct {
			ep    nanohook.Endpoint
			since time.Time
		}{{old, tOld}, {old2, tOld.Add(time.Minute)}} {
			ep := mustGetEndpoint(t, b, a.ID, x.ep.ID)
			equal(t, "status", ep.Status, nanohook.EndpointDisabled)
			equal(t, "reason", ep.DisabledReason, nanohook.FailingReason(reason, x.since))
			if !strings.HasPrefix(ep.DisabledReason, reason+" since ") {
				t.Fatalf("reason %q", ep.DisabledReason)
			}
		}
		for _, ep := range []nanohook.Endpoint{recent, healthy} {
			equal(t, "untouched status", mustGetEndpoint(t, b, a.ID, ep.ID).Status, nanohook.EndpointActive)
		}
		// old's pending deliveries failed with the reason.
		want := "endpoint disabled: " + nanohook.FailingReason(reason, tOld)
		ds := b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: old.ID, Limit: 100})
		equal(t, "old's deliveries", len(ds), 2)
		for _, d := range ds {
			equal(t, "old's delivery status", d.Status, nanohook.DeliveryFailed)
			equal(t, "old's delivery error", d.LastError, want)
			sameTime(t, "old's delivery updated", d.UpdatedAt, now)
		}
		// recent's pending delivery is untouched.
		ds = b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: recent.ID, Limit: 100})
		equal(t, "recent's delivery", ds[0].Status, nanohook.DeliveryPending)
		// A second run disables nothing more.
		equal(t, "second run", len(disableFailing(t, b, bound, now)), 0)
	})

	t.Run("ReEnableResetsTheClock", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		attempt(t, b, a.ID, b.now, nanohook.DeliveryPending)
		bound := b.now.Add(time.Hour)
		equal(t, "disabled", len(disableFailing(t, b, bound, bound)), 1)
		active := nanohook.EndpointActive
		ep, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Status: &active, Now: bound})
		requireNoError(t, err)
		equal(t, "re-enabled", ep.Status, nanohook.EndpointActive)
		equal(t, "reason cleared", ep.DisabledReason, "")
		equal(t, "disabled again", len(disableFailing(t, b, bound, bound.Add(time.Minute))), 0)
		equal(t, "status", mustGetEndpoint(t, b, a.ID, e.ID).Status, nanohook.EndpointActive)
	})

	t.Run("PublishToDisabledEndpointRecordsAFailedDelivery", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		live := b.endpoint(t, a.ID)
		deleted := b.endpoint(t, a.ID)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, deleted.ID, b.now))
		disabled, why := nanohook.EndpointDisabled, "maintenance window"
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID,
			Status: &disabled, DisabledReason: &why, Now: b.now})
		requireNoError(t, err)

		ev := b.event(a.ID)
		res := b.publish(t, ev)[0]
		equal(t, "deliveries counted (the live one's and the disabled one's)", res.Deliveries, 2)
		ev.ID += "_again"
		dup := b.publish(t, ev)[0]
		equal(t, "duplicate", dup.Duplicate, true)
		equal(t, "duplicate's deliveries", dup.Deliveries, 2)
		ds := b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: e.ID, Limit: 100})
		equal(t, "deliveries to the disabled endpoint", len(ds), 1)
		d, as := b.delivery(t, a.ID, ds[0].ID)
		equal(t, "status", d.Status, nanohook.DeliveryFailed)
		equal(t, "attempts", d.Attempts, 0)
		equal(t, "attempt rows", len(as), 0)
		equal(t, "last error", d.LastError, "endpoint disabled: maintenance window")
		equal(t, "event", d.EventID, res.EventID)
		// Only the live endpoint's delivery is claimable.
		cs := b.claim(t, b.now, 10)
		equal(t, "claimed", len(cs), 1)
		equal(t, "claimed endpoint", cs[0].EndpointID, live.ID)

		// Re-enable, then recover: the recorded event is replayed.
		active := nanohook.EndpointActive
		later := b.now.Add(time.Hour)
		_, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Status: &active, Now: later})
		requireNoError(t, err)
		n, err := b.s.RecoverDeliveries(b.ctx, store.RecoverParams{AccountID: a.ID, EndpointID: e.ID,
			Since: b.now.Add(-time.Hour), Now: later, Limit: 100})
		requireNoError(t, err)
		equal(t, "recovered", n, 1)
		// (The live endpoint's lease has expired: it is claimed again too.)
		cs = b.claim(t, later, 10)
		i := slices.IndexFunc(cs, func(c store.ClaimedDelivery) bool { return c.DeliveryID == d.ID })
		if i < 0 {
			t.Fatalf("recovered delivery %d not claimed: %v", d.ID, ids(cs))
		}
		equal(t, "attempt number", cs[i].Attempt, 1)
	})
}
