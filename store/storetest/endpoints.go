package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

func testEndpoints(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("CreateAndGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e, err := b.s.CreateEndpoint(b.ctx, store.CreateEndpointParams{
			AccountID:   a.ID,
			URL:         "https://hooks.example.com/nano",
			Events:      []nanohook.EventType{nanohook.EventJobFailed, nanohook.EventJobCompleted},
			Secret:      "whsec_abcdefgh",
			Description: "production",
			Now:         b.now,
		})
		requireNoError(t, err)
		if e.ID == 0 {
			t.Fatal("endpoint id not set")
		}
		for name, got := range map[string]nanohook.Endpoint{"created": e, "got": mustGetEndpoint(t, b, a.ID, e.ID)} {
			equal(t, name+" id", got.ID, e.ID)
			equal(t, name+" account", got.AccountID, a.ID)
			equal(t, name+" url", got.URL, "https://hooks.example.com/nano")
			if !slices.Equal(got.Events, []nanohook.EventType{nanohook.EventJobFailed, nanohook.EventJobCompleted}) {
				t.Fatalf("%s events = %v, want the given order", name, got.Events)
			}
			equal(t, name+" status", got.Status, nanohook.EndpointActive)
			equal(t, name+" description", got.Description, "production")
			equal(t, name+" disabled reason", got.DisabledReason, "")
			equal(t, name+" secret", got.Secret, "whsec_abcdefgh")
			sameTime(t, name+" created at", got.CreatedAt, b.now)
			sameTime(t, name+" updated at", got.UpdatedAt, b.now)
		}
	})

	t.Run("CreateForMissingAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		_, err := b.s.CreateEndpoint(b.ctx, store.CreateEndpointParams{
			AccountID: 4242, URL: "https://x.example.com", Events: []nanohook.EventType{nanohook.EventJobCompleted},
			Secret: "whsec_abcdefgh", Now: b.now,
		})
		requireNotFound(t, err, "CreateEndpoint for a missing account")
	})

	t.Run("GetMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		_, err := b.s.GetEndpoint(b.ctx, a.ID, 999)
		requireNotFound(t, err, "GetEndpoint of a missing id")
	})

	t.Run("TenantScoping", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "a")
		other, _ := b.account(t, "b")
		e := b.endpoint(t, a.ID)
		url := "https://evil.example.com"
		disabled := nanohook.EndpointDisabled

		_, err := b.s.GetEndpoint(b.ctx, other.ID, e.ID)
		requireNotFound(t, err, "GetEndpoint by another account")
		_, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: other.ID, ID: e.ID, URL: &url, Status: &disabled, Now: b.now})
		requireNotFound(t, err, "UpdateEndpoint by another account")
		requireNotFound(t, b.s.DeleteEndpoint(b.ctx, other.ID, e.ID, b.now), "DeleteEndpoint by another account")
		list, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: other.ID, Limit: 100})
		requireNoError(t, err)
		equal(t, "endpoints listed for the other account", len(list), 0)

		got := mustGetEndpoint(t, b, a.ID, e.ID)
		equal(t, "url after foreign update", got.URL, e.URL)
		equal(t, "status after foreign update", got.Status, nanohook.EndpointActive)
	})

	t.Run("ListPagination", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		var want []int64
		for i := range 7 {
			want = append(want, b.endpoint(t, a.ID).ID)
			if i%3 == 0 {
				b.endpoint(t, other.ID) // interleaved ids of another account
			}
		}
		deleted := want[3]
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, deleted, b.now))
		want = slices.Delete(want, 3, 4)

		var got []int64
		after := int64(0)
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			page, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: a.ID, AfterID: after, Limit: 2})
			requireNoError(t, err)
			if len(page) > 2 {
				t.Fatalf("page of %d endpoints with Limit 2", len(page))
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				equal(t, "listed endpoint account", e.AccountID, a.ID)
				got = append(got, e.ID)
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(got, want) {
			t.Fatalf("listed %v, want %v (ascending, without the deleted %d)", got, want, deleted)
		}

		all, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: a.ID, Limit: 5000})
		requireNoError(t, err)
		equal(t, "endpoints with an oversized Limit", len(all), len(want))

		// Limit is clamped, not an error: 0 or less still returns a page.
		for _, limit := range []int{0, -5} {
			page, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: a.ID, Limit: limit})
			requireNoError(t, err)
			if len(page) < 1 {
				t.Fatalf("Limit %d returned an empty page", limit)
			}
			equal(t, "first id", page[0].ID, want[0])
		}
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID, nanohook.EventJobCompleted)
		later := b.now.Add(time.Hour)

		url := "https://new.example.com/hook"
		desc := "staging"
		got, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{
			AccountID: a.ID, ID: e.ID, URL: &url, Description: &desc,
			Events: []nanohook.EventType{nanohook.EventJobFailed}, Now: later,
		})
		requireNoError(t, err)
		for name, got := range map[string]nanohook.Endpoint{"returned": got, "stored": mustGetEndpoint(t, b, a.ID, e.ID)} {
			equal(t, name+" url", got.URL, url)
			equal(t, name+" description", got.Description, desc)
			if !slices.Equal(got.Events, []nanohook.EventType{nanohook.EventJobFailed}) {
				t.Fatalf("%s events = %v", name, got.Events)
			}
			equal(t, name+" status", got.Status, nanohook.EndpointActive)
			equal(t, name+" secret", got.Secret, e.Secret)
			sameTime(t, name+" created at", got.CreatedAt, e.CreatedAt)
			sameTime(t, name+" updated at", got.UpdatedAt, later)
		}

		// Nothing given: nothing changes but updated_at.
		got, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Now: later.Add(time.Hour)})
		requireNoError(t, err)
		equal(t, "url after empty update", got.URL, url)
		equal(t, "description after empty update", got.Description, desc)
		if !slices.Equal(got.Events, []nanohook.EventType{nanohook.EventJobFailed}) {
			t.Fatalf("events after empty update = %v", got.Events)
		}

		_, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID + 1000, URL: &url, Now: later})
		requireNotFound(t, err, "UpdateEndpoint of a missing id")
	})

	t.Run("DisableFailsPendingAndEnableClearsReason", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		keep := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID), b.event(a.ID))

		disabled, active := nanohook.EndpointDisabled, nanohook.EndpointActive
		reason := "paused for maintenance"
		got, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{
			AccountID: a.ID, ID: e.ID, Status: &disabled, DisabledReason: &reason, Now: b.now.Add(time.Second),
		})
		requireNoError(t, err)
		equal(t, "status", got.Status, nanohook.EndpointDisabled)
		equal(t, "disabled reason", got.DisabledReason, reason)

		// Only the other endpoint's deliveries are left to claim; the disabled
		// endpoint's were failed with the reason.
		claimed := b.claim(t, b.now.Add(time.Minute), 100)
		equal(t, "claimable deliveries", len(claimed), 2)
		for _, c := range claimed {
			equal(t, "claimed endpoint", c.EndpointID, keep.ID)
		}
		// While it is disabled, new events create no pending delivery to
		// it, only one already failed, which counts.
		res := b.publish(t, b.event(a.ID))
		equal(t, "deliveries of an event published while disabled", res[0].Deliveries, 2)
		equal(t, "claimable while disabled", len(b.claim(t, b.now.Add(time.Minute), 100)), 1)

		got, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Status: &active, Now: b.now.Add(2 * time.Second)})
		requireNoError(t, err)
		equal(t, "status after enable", got.Status, nanohook.EndpointActive)
		equal(t, "reason after enable", got.DisabledReason, "")
		res = b.publish(t, b.event(a.ID))
		equal(t, "deliveries after enable", res[0].Deliveries, 2)
	})

	t.Run("DisabledDeliveriesCarryTheReason", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		withReason := b.endpoint(t, a.ID)
		byOwner := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		// Claim and release to learn the delivery ids.
		claimed := b.claim(t, b.now, 10)
		equal(t, "claimed", len(claimed), 2)
		leases := make([]store.Lease, len(claimed))
		for i, c := range claimed {
			leases[i] = c.Lease
		}
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, leases))

		disabled := nanohook.EndpointDisabled
		reason := "too many failures"
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: withReason.ID, Status: &disabled, DisabledReason: &reason, Now: b.now.Add(time.Second)})
		requireNoError(t, err)
		_, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: byOwner.ID, Status: &disabled, Now: b.now.Add(time.Second)})
		requireNoError(t, err)

		for _, c := range claimed {
			d, _ := b.delivery(t, a.ID, c.DeliveryID)
			equal(t, "status", d.Status, nanohook.DeliveryFailed)
			want := "endpoint disabled: by its owner"
			if c.EndpointID == withReason.ID {
				want = "endpoint disabled: too many failures"
			}
			equal(t, "last error", d.LastError, want)
			sameTime(t, "updated at", d.UpdatedAt, b.now.Add(time.Second))
		}
	})

	t.Run("DeleteIsSoftAndCancelsPending", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID), b.event(a.ID))
		// One delivery is in flight (leased) when the endpoint goes, the
		// other is waiting.
		claimed := b.claim(t, b.now, 2)
		equal(t, "claimed", len(claimed), 2)
		inFlight, waiting := claimed[0], claimed[1]
		requireNoError(t, b.s.ReleaseDeliveries(b.ctx, []store.Lease{waiting.Lease}))

		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, e.ID, b.now.Add(time.Second)))
		_, err := b.s.GetEndpoint(b.ctx, a.ID, e.ID)
		requireNotFound(t, err, "GetEndpoint after delete")
		requireNotFound(t, b.s.DeleteEndpoint(b.ctx, a.ID, e.ID, b.now), "second DeleteEndpoint")
		url := "https://x.example.com"
		_, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, URL: &url, Now: b.now})
		requireNotFound(t, err, "UpdateEndpoint after delete")

		// History stays readable, and both are cancelled by the delete itself.
		for _, c := range claimed {
			d, _ := b.delivery(t, a.ID, c.DeliveryID)
			equal(t, "status after delete", d.Status, nanohook.DeliveryCancelled)
			equal(t, "endpoint of the delivery", d.EndpointID, e.ID)
			sameTime(t, "updated at", d.UpdatedAt, b.now.Add(time.Second))
		}
		equal(t, "claimable after delete", len(b.claim(t, b.now.Add(time.Hour), 10)), 0)
		// The in-flight attempt finishes late: recorded, delivery unchanged.
		b.complete(t, inFlight, b.now.Add(2*time.Second), nanohook.DeliverySucceeded, 200, "", time.Time{})
		d, attempts := b.delivery(t, a.ID, inFlight.DeliveryID)
		equal(t, "status after late completion", d.Status, nanohook.DeliveryCancelled)
		equal(t, "attempts recorded", len(attempts), 1)

		res := b.publish(t, b.event(a.ID))
		equal(t, "deliveries to a deleted endpoint", res[0].Deliveries, 0)
	})

	t.Run("IDsNeverReused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		last := b.endpoint(t, a.ID)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, last.ID, b.now))
		next := b.endpoint(t, a.ID)
		if next.ID <= last.ID {
			t.Fatalf("new endpoint id %d after deleting %d: ids must never be reused", next.ID, last.ID)
		}
	})
}

func mustGetEndpoint(t *testing.T, b *bundle, accountID, id int64) nanohook.Endpoint {
	t.Helper()
	e, err := b.s.GetEndpoint(b.ctx, accountID, id)
	requireNoError(t, err)
	return e
}
