package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// publishAt publishes one event of type typ created at the given time and
// returns its id.
func (b *bundle) publishAt(t *testing.T, accountID int64, typ nanohook.EventType, at time.Time) string {
	t.Helper()
	return b.publishTaskAt(t, accountID, typ, "", at)
}

// publishTaskAt is publishAt for an event of the given task ("": a task of
// its own).
func (b *bundle) publishTaskAt(t *testing.T, accountID int64, typ nanohook.EventType, task string, at time.Time) string {
	t.Helper()
	ev := b.event(accountID)
	if task != "" {
		ev.TaskID = task
	}
	ev.Type = typ
	ev.IdempotencyKey = nanohook.DefaultIdempotencyKey(typ, ev.TaskID)
	ev.Now = at
	b.publish(t, ev)
	return ev.ID
}

// list calls ListDeliveries and fails the test on error.
func (b *bundle) list(t *testing.T, p store.ListDeliveriesParams) []nanohook.Delivery {
	t.Helper()
	ds, err := b.s.ListDeliveries(b.ctx, p)
	requireNoError(t, err)
	return ds
}

// failedDelivery publishes one event to the endpoint's account, claims it
// and fails it for good at the returned time (with one attempt).
func (b *bundle) failedDelivery(t *testing.T, accountID int64, created time.Time) (int64, time.Time) {
	t.Helper()
	b.publishAt(t, accountID, nanohook.EventJobCompleted, created)
	c := b.claim(t, created, 1)
	equal(t, "claimed", len(c), 1)
	b.complete(t, c[0], created, nanohook.DeliveryFailed, 500, "", time.Time{})
	return c[0].DeliveryID, created.Add(250 * time.Millisecond)
}

func eventIDs(ds []nanohook.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.EventID
	}
	return out
}

func deliveryIDs(ds []nanohook.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func requireConflict(t *testing.T, err error, msg, what string) {
	t.Helper()
	var e *nanohook.Error
	if !errors.As(err, &e) || e.Code != nanohook.CodeConflict {
		t.Fatalf("%s: got error %v, want a *nanohook.Error with code %s", what, err, nanohook.CodeConflict)
	}
	equal(t, what+": message", e.Message, msg)
}

func testListDeliveries(t *testing.T, open func(t *testing.T) store.Store) {
	// history sets up one endpoint with four deliveries, a minute apart:
	//
	//	0 job.completed succeeded
	//	1 job.completed failed
	//	2 job.failed    pending (a retry is scheduled)
	//	3 job.failed    failed
	//
	// (events 1 and 3 of one task, the others of a task each) and a second
	// endpoint of the account that receives the same events.
	type history struct {
		*bundle
		account  nanohook.Account
		endpoint nanohook.Endpoint
		other    nanohook.Endpoint
		events   []string // by index above
		tasks    []string // of each event
	}
	setupHistory := func(t *testing.T) *history {
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		h := &history{bundle: b, account: a, endpoint: b.endpoint(t, a.ID), other: b.endpoint(t, a.ID)}
		types := []nanohook.EventType{nanohook.EventJobCompleted, nanohook.EventJobCompleted, nanohook.EventJobFailed, nanohook.EventJobFailed}
		base := fmt.Sprintf("task_%d_", a.ID)
		h.tasks = []string{base + "a", base + "b", base + "c", base + "b"}
		for i, typ := range types {
			h.events = append(h.events, b.publishTaskAt(t, a.ID, typ, h.tasks[i], b.now.Add(time.Duration(i)*time.Minute)))
		}
		outcome := []nanohook.DeliveryStatus{nanohook.DeliverySucceeded, nanohook.DeliveryFailed, nanohook.DeliveryPending, nanohook.DeliveryFailed}
		done := b.now.Add(10 * time.Minute)
		for _, c := range b.claim(t, done, 100) {
			status := nanohook.DeliverySucceeded
			if c.EndpointID == h.endpoint.ID {
				status = outcome[slices.Index(h.events, c.EventID)]
			}
			b.complete(t, c, done, status, 500, "", done.Add(time.Hour))
		}
		return h
	}
	// want is the endpoint's events with these indexes, newest first.
	want := func(h *history, idx ...int) []string {
		out := []string{}
		for _, i := range slices.Backward(idx) {
			out = append(out, h.events[i])
		}
		return out
	}
	params := func(h *history) store.ListDeliveriesParams {
		return store.ListDeliveriesParams{AccountID: h.account.ID, EndpointID: h.endpoint.ID, Limit: 100}
	}

	t.Run("NewestFirstWithFields", func(t *testing.T) {
		t.Parallel()
		h := setupHistory(t)
		ds := h.list(t, params(h))
		equal(t, "events", fmtSlice(eventIDs(ds)), fmtSlice(want(h, 0, 1, 2, 3)))
		for i, d := range ds {
			equal(t, "account", d.AccountID, h.account.ID)
			equal(t, "endpoint", d.EndpointID, h.endpoint.ID)
			if i > 0 && d.ID >= ds[i-1].ID {
				t.Fatalf("ids not descending: %v", deliveryIDs(ds))
			}
		}
		last := ds[0] // event 3: failed, job.failed
		equal(t, "status", last.Status, nanohook.DeliveryFailed)
		equal(t, "event type", last.EventType, nanohook.EventJobFailed)
		equal(t, "attempts", last.Attempts, 1)
		equal(t, "last error", last.LastError, "HTTP 500")
		sameTime(t, "created at", last.CreatedAt, h.now.Add(3*time.Minute))
		sameTime(t, "updated at", last.UpdatedAt, h.now.Add(10*time.Minute+250*time.Millisecond))
		pending := ds[1]
		equal(t, "pending status", pending.Status, nanohook.DeliveryPending)
		sameTime(t, "pending next attempt", pending.NextAttemptAt, h.now.Add(70*time.Minute))
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		h := setupHistory(t)
		m := time.Minute
		for _, tc := range []struct {
			name string
			set  func(p *store.ListDeliveriesParams)
			want []int
		}{
			{"StatusFailed", func(p *store.ListDeliveriesParams) { p.Status = nanohook.DeliveryFailed }, []int{1, 3}},
			{"StatusPending", func(p *store.ListDeliveriesParams) { p.Status = nanohook.DeliveryPending }, []int{2}},
			{"StatusSucceeded", func(p *store.ListDeliveriesParams) { p.Status = nanohook.DeliverySucceeded }, []int{0}},
			{"StatusCancelled", func(p *store.ListDeliveriesParams) { p.Status = nanohook.DeliveryCancelled }, nil},
			{"Event", func(p *store.ListDeliveriesParams) { p.Event = nanohook.EventJobFailed }, []int{2, 3}},
			{"TaskID", func(p *store.ListDeliveriesParams) { p.TaskID = h.tasks[1] }, []int{1, 3}},
			{"TaskIDOfOne", func(p *store.ListDeliveriesParams) { p.TaskID = h.tasks[2] }, []int{2}},
			{"TaskIDAndEvent", func(p *store.ListDeliveriesParams) {
				p.TaskID, p.Event = h.tasks[1], nanohook.EventJobFailed
			}, []int{3}},
			{"TaskIDUnknown", func(p *store.ListDeliveriesParams) { p.TaskID = h.tasks[1] + "x" }, nil},
			{"SinceInclusive", func(p *store.ListDeliveriesParams) { p.Since = h.now.Add(m) }, []int{1, 2, 3}},
			{"UntilExclusive", func(p *store.ListDeliveriesParams) { p.Until = h.now.Add(2 * m) }, []int{0, 1}},
			{"SinceAndUntil", func(p *store.ListDeliveriesParams) { p.Since, p.Until = h.now.Add(m), h.now.Add(3*m) }, []int{1, 2}},
			{"StatusAndEvent", func(p *store.ListDeliveriesParams) {
				p.Status, p.Event = nanohook.DeliveryFailed, nanohook.EventJobFailed
			}, []int{3}},
			{"StatusAndSince", func(p *store.ListDeliveriesParams) {
				p.Status, p.Since = nanohook.DeliveryFailed, h.now.Add(2*m)
			}, []int{3}},
			{"AllFilters", func(p *store.ListDeliveriesParams) {
				p.Status, p.Event, p.Since, p.Until = nanohook.DeliveryFailed, nanohook.EventJobCompleted, h.now, h.now.Add(2*m)
			}, []int{1}},
			{"BeforeID", func(p *store.ListDeliveriesParams) {
				all := h.list(t, params(h))
				p.BeforeID = all[1].ID // event 2's delivery
			}, []int{0, 1}},
		} {
			p := params(h)
			tc.set(&p)
			equal(t, tc.name, fmtSlice(eventIDs(h.list(t, p))), fmtSlice(want(h, tc.want...)))
		}
	})

	t.Run("CursorPagination", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.endpoint(t, a.ID) // interleaves its deliveries' ids with e's
		for i := range 11 {
			b.publishAt(t, a.ID, nanohook.EventJobCompleted, b.now.Add(time.Duration(i)*time.Second))
		}
		all := b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: e.ID, Limit: 100})
		equal(t, "deliveries", len(all), 11)
		var paged []int64
		p := store.ListDeliveriesParams{AccountID: a.ID, EndpointID: e.ID, Limit: 4}
		for range 10 {
			page := b.list(t, p)
			paged = append(paged, deliveryIDs(page)...)
			if len(page) < p.Limit {
				break
			}
			p.BeforeID = page[len(page)-1].ID
		}
		equal(t, "paged ids", fmtSlice(paged), fmtSlice(deliveryIDs(all)))

		// The limit is clamped to at least one.
		equal(t, "page of Limit 0", len(b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: e.ID})), 1)
	})

	t.Run("Tenancy", func(t *testing.T) {
		t.Parallel()
		h := setupHistory(t)
		other, _ := h.bundle.account(t, "other")
		_, err := h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{AccountID: other.ID, EndpointID: h.endpoint.ID, Limit: 10})
		requireNotFound(t, err, "ListDeliveries of another account's endpoint")
		_, err = h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{AccountID: h.account.ID, EndpointID: h.other.ID + 1000, Limit: 10})
		requireNotFound(t, err, "ListDeliveries of a missing endpoint")
	})

	t.Run("DeletedEndpoint", func(t *testing.T) {
		t.Parallel()
		h := setupHistory(t)
		requireNoError(t, h.s.DeleteEndpoint(h.ctx, h.account.ID, h.endpoint.ID, h.now.Add(time.Hour)))
		_, err := h.s.ListDeliveries(h.ctx, params(h))
		requireNotFound(t, err, "ListDeliveries of a deleted endpoint")
	})
}

func testRetryDelivery(t *testing.T, open func(t *testing.T) store.Store) {
	for _, final := range []nanohook.DeliveryStatus{nanohook.DeliveryFailed, nanohook.DeliverySucceeded} {
		t.Run("From"+string(final), func(t *testing.T) {
			t.Parallel()
			b := setup(t, open)
			a, _ := b.account(t, "acme")
			b.endpoint(t, a.ID)
			b.publish(t, b.event(a.ID))
			c := b.claim(t, b.now, 1)[0]
			b.complete(t, c, b.now, final, 500, "", time.Time{})

			at := b.now.Add(time.Hour)
			d, err := b.s.RetryDelivery(b.ctx, a.ID, c.DeliveryID, at)
			requireNoError(t, err)
			equal(t, "id", d.ID, c.DeliveryID)
			equal(t, "event", d.EventID, c.EventID)
			equal(t, "status", d.Status, nanohook.DeliveryPending)
			equal(t, "attempts", d.Attempts, 1)
			sameTime(t, "next attempt at", d.NextAttemptAt, at)
			sameTime(t, "updated at", d.UpdatedAt, at)
			got, _ := b.delivery(t, a.ID, c.DeliveryID)
			equal(t, "stored status", got.Status, nanohook.DeliveryPending)

			equal(t, "claimed before the retry", len(b.claim(t, at.Add(-time.Microsecond), 1)), 0)
			again := b.claim(t, at, 1)
			equal(t, "claimed at the retry", len(again), 1)
			equal(t, "attempt number continues", again[0].Attempt, 2)
		})
	}

	t.Run("PendingMadeDue", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		c := b.claim(t, b.now, 1)[0]
		b.complete(t, c, b.now, nanohook.DeliveryPending, 503, "", b.now.Add(time.Hour))

		at := b.now.Add(time.Minute)
		d, err := b.s.RetryDelivery(b.ctx, a.ID, c.DeliveryID, at)
		requireNoError(t, err)
		equal(t, "status", d.Status, nanohook.DeliveryPending)
		sameTime(t, "next attempt at", d.NextAttemptAt, at)
		equal(t, "claimed at the retry", len(b.claim(t, at, 1)), 1)
	})

	t.Run("PendingLeasedUnchanged", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		c := b.claim(t, b.now, 1)[0] // leased for a minute

		before, _ := b.delivery(t, a.ID, c.DeliveryID)
		d, err := b.s.RetryDelivery(b.ctx, a.ID, c.DeliveryID, b.now.Add(10*time.Second))
		requireNoError(t, err)
		equal(t, "status", d.Status, nanohook.DeliveryPending)
		sameTime(t, "next attempt at", d.NextAttemptAt, before.NextAttemptAt)
		sameTime(t, "updated at", d.UpdatedAt, before.UpdatedAt)
		equal(t, "claimed during the lease", len(b.claim(t, b.now.Add(20*time.Second), 1)), 0)
		// The lease still completes the delivery.
		b.complete(t, c, b.now.Add(20*time.Second), nanohook.DeliverySucceeded, 200, "", time.Time{})
		d, _ = b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "status after completion", d.Status, nanohook.DeliverySucceeded)
	})

	t.Run("DeletedEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		failed, _ := b.failedDelivery(t, a.ID, b.now)
		b.publish(t, b.event(a.ID)) // pending: cancelled by the delete
		cancelled := b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: e.ID, Limit: 1})[0].ID
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, e.ID, b.now.Add(time.Minute)))
		_, err := b.s.RetryDelivery(b.ctx, a.ID, failed, b.now.Add(time.Hour))
		requireConflict(t, err, nanohook.EndpointDeletedMessage, "retry of a failed delivery of a deleted endpoint")
		_, err = b.s.RetryDelivery(b.ctx, a.ID, cancelled, b.now.Add(time.Hour))
		requireConflict(t, err, nanohook.EndpointDeletedMessage, "retry of a cancelled delivery")
		d, _ := b.delivery(t, a.ID, cancelled)
		equal(t, "cancelled delivery status", d.Status, nanohook.DeliveryCancelled)
	})

	t.Run("DisabledEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		id, _ := b.failedDelivery(t, a.ID, b.now)
		disabled, active := nanohook.EndpointDisabled, nanohook.EndpointActive
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Status: &disabled, Now: b.now})
		requireNoError(t, err)
		_, err = b.s.RetryDelivery(b.ctx, a.ID, id, b.now.Add(time.Hour))
		requireConflict(t, err, nanohook.EndpointDisabledMessage, "retry with the endpoint disabled")
		d, _ := b.delivery(t, a.ID, id)
		equal(t, "status after the refused retry", d.Status, nanohook.DeliveryFailed)

		_, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Status: &active, Now: b.now})
		requireNoError(t, err)
		d, err = b.s.RetryDelivery(b.ctx, a.ID, id, b.now.Add(time.Hour))
		requireNoError(t, err)
		equal(t, "status after re-enabling", d.Status, nanohook.DeliveryPending)
	})

	t.Run("Tenancy", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		b.endpoint(t, a.ID)
		id, _ := b.failedDelivery(t, a.ID, b.now)
		_, err := b.s.RetryDelivery(b.ctx, other.ID, id, b.now.Add(time.Hour))
		requireNotFound(t, err, "RetryDelivery by another account")
		_, err = b.s.RetryDelivery(b.ctx, a.ID, id+1000, b.now.Add(time.Hour))
		requireNotFound(t, err, "RetryDelivery of a missing delivery")
		d, _ := b.delivery(t, a.ID, id)
		equal(t, "status after the refused retries", d.Status, nanohook.DeliveryFailed)
	})
}

func testRecoverDeliveries(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("RangeBounds", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		var failed []int64
		for i := range 5 {
			id, _ := b.failedDelivery(t, a.ID, b.now.Add(time.Duration(i)*time.Minute))
			failed = append(failed, id)
		}
		// Untouchable in every range: one succeeded, one pending.
		b.publishAt(t, a.ID, nanohook.EventJobCompleted, b.now.Add(90*time.Second))
		ok := b.claim(t, b.now.Add(90*time.Second), 1)[0]
		b.complete(t, ok, b.now.Add(90*time.Second), nanohook.DeliverySucceeded, 200, "", time.Time{})
		b.publishAt(t, a.ID, nanohook.EventJobCompleted, b.now.Add(150*time.Second))

		now := b.now.Add(time.Hour)
		recover := func(since, until time.Time) int {
			n, err := b.s.RecoverDeliveries(b.ctx, store.RecoverParams{AccountID: a.ID, EndpointID: e.ID,
				Since: since, Until: until, Now: now, Limit: 100})
			requireNoError(t, err)
			return n
		}
		statuses := func() map[int64]nanohook.DeliveryStatus {
			out := map[int64]nanohook.DeliveryStatus{}
			for _, d := range b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: e.ID, Limit: 100}) {
				out[d.ID] = d.Status
			}
			return out
		}

		// [1m, 3m): deliveries 1 and 2; since is inclusive, until exclusive.
		equal(t, "recovered in [1m, 3m)", recover(b.now.Add(time.Minute), b.now.Add(3*time.Minute)), 2)
		st := statuses()
		for i, id := range failed {
			want := nanohook.DeliveryFailed
			if i == 1 || i == 2 {
				want = nanohook.DeliveryPending
			}
			equal(t, "status", st[id], want)
		}
		d, _ := b.delivery(t, a.ID, failed[1])
		sameTime(t, "recovered next attempt", d.NextAttemptAt, now)
		equal(t, "recovered attempts kept", d.Attempts, 1)
		d, _ = b.delivery(t, a.ID, ok.DeliveryID)
		equal(t, "succeeded delivery", d.Status, nanohook.DeliverySucceeded)
		pending := b.list(t, store.ListDeliveriesParams{AccountID: a.ID, EndpointID: e.ID, Limit: 1})[0]
		sameTime(t, "untouched pending delivery's next attempt", pending.NextAttemptAt, b.now.Add(150*time.Second))

		// Open until: 3 and 4; then nothing is left after 1m.
		equal(t, "recovered since 3m", recover(b.now.Add(3*time.Minute), time.Time{}), 2)
		equal(t, "recovered since 1m again", recover(b.now.Add(time.Minute), time.Time{}), 0)
		equal(t, "still failed", st[failed[0]], nanohook.DeliveryFailed)

		// The recovered deliveries are claimable at Now, and only they and
		// the pending one are.
		equal(t, "claimable at Now", len(b.claim(t, now, 100)), 5)
	})

	// A test ping is a one-off check made on request, never retried (the
	// README says so): a recover after a failed ping re-sent it.
	t.Run("SkipsTestPings", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		job, _ := b.failedDelivery(t, a.ID, b.now)
		p := b.ping(a.ID, e.ID)
		p.Now, p.LeaseUntil = b.now.Add(time.Second), b.now.Add(time.Minute)
		ping, err := b.s.CreateTestDelivery(b.ctx, p)
		requireNoError(t, err)
		b.complete(t, ping, p.Now, nanohook.DeliveryFailed, 500, "", time.Time{})

		params := store.RecoverParams{AccountID: a.ID, EndpointID: e.ID, Since: b.now, Now: b.now.Add(time.Hour), Limit: 100}
		count := params
		count.CountOnly = true
		n, err := b.s.RecoverDeliveries(b.ctx, count)
		requireNoError(t, err)
		equal(t, "counted (the job event only)", n, 1)
		n, err = b.s.RecoverDeliveries(b.ctx, params)
		requireNoError(t, err)
		equal(t, "recovered (the job event only)", n, 1)
		d, _ := b.delivery(t, a.ID, ping.DeliveryID)
		equal(t, "ping status after recover", d.Status, nanohook.DeliveryFailed)
		claimed := b.claim(t, b.now.Add(time.Hour), 100)
		equal(t, "claimable after recover", len(claimed), 1)
		equal(t, "claimed delivery", claimed[0].DeliveryID, job)
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		for i := range 5 {
			b.failedDelivery(t, a.ID, b.now.Add(time.Duration(i)*time.Second))
		}
		// CountOnly counts them all, whatever the Limit, and changes nothing.
		n, err := b.s.RecoverDeliveries(b.ctx, store.RecoverParams{AccountID: a.ID, EndpointID: e.ID,
			Since: b.now, Now: b.now.Add(time.Hour), Limit: 2, CountOnly: true})
		requireNoError(t, err)
		equal(t, "counted", n, 5)
		equal(t, "claimable after counting", len(b.claim(t, b.now.Add(time.Hour), 100)), 0)
		var got []int
		for range 5 {
			n, err := b.s.RecoverDeliveries(b.ctx, store.RecoverParams{AccountID: a.ID, EndpointID: e.ID,
				Since: b.now, Now: b.now.Add(time.Hour), Limit: 2})
			requireNoError(t, err)
			got = append(got, n)
			if n < 2 {
				break
			}
		}
		equal(t, "steps", fmtSlice(got), fmtSlice([]int{2, 2, 1}))
		equal(t, "claimable", len(b.claim(t, b.now.Add(time.Hour), 100)), 5)
	})

	t.Run("OnlyFailedByNow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		_, failedAt := b.failedDelivery(t, a.ID, b.now)
		p := store.RecoverParams{AccountID: a.ID, EndpointID: e.ID, Since: b.now, Now: failedAt.Add(-time.Microsecond), Limit: 10}
		n, err := b.s.RecoverDeliveries(b.ctx, p)
		requireNoError(t, err)
		equal(t, "recovered with Now before the failure", n, 0)
		p.Now = failedAt
		n, err = b.s.RecoverDeliveries(b.ctx, p)
		requireNoError(t, err)
		equal(t, "recovered with Now at the failure", n, 1)
	})

	t.Run("AfterReEnabling", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		e := b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID), b.event(a.ID)) // pending, failed by the disable
		disabled, active := nanohook.EndpointDisabled, nanohook.EndpointActive
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Status: &disabled, Now: b.now})
		requireNoError(t, err)
		p := store.RecoverParams{AccountID: a.ID, EndpointID: e.ID, Since: b.now, Now: b.now.Add(time.Hour), Limit: 10}
		_, err = b.s.RecoverDeliveries(b.ctx, p)
		requireConflict(t, err, nanohook.EndpointDisabledMessage, "recover with the endpoint disabled")

		_, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e.ID, Status: &active, Now: b.now})
		requireNoError(t, err)
		n, err := b.s.RecoverDeliveries(b.ctx, p)
		requireNoError(t, err)
		equal(t, "recovered after re-enabling", n, 2)
	})

	t.Run("TenancyAndDeleted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		other, _ := b.account(t, "other")
		e := b.endpoint(t, a.ID)
		id, _ := b.failedDelivery(t, a.ID, b.now)
		p := store.RecoverParams{AccountID: other.ID, EndpointID: e.ID, Since: b.now, Now: b.now.Add(time.Hour), Limit: 10}
		_, err := b.s.RecoverDeliveries(b.ctx, p)
		requireNotFound(t, err, "RecoverDeliveries by another account")
		d, _ := b.delivery(t, a.ID, id)
		equal(t, "status after another account's recover", d.Status, nanohook.DeliveryFailed)

		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, e.ID, b.now))
		p.AccountID = a.ID
		_, err = b.s.RecoverDeliveries(b.ctx, p)
		requireNotFound(t, err, "RecoverDeliveries of a deleted endpoint")
	})
}

// fmtSlice makes slices comparable with equal.
func fmtSlice[T any](s []T) string {
	if len(s) == 0 {
		return "[]"
	}
	return fmt.Sprint(s)
}
