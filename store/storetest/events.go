package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testEvents: ListEvents and GetEventRecord show an account's published
// events newest first, each with its payload and its deliveries, never a
// test call's ping nor another account's event.
func testEvents(t *testing.T, open func(t *testing.T) store.Store) {
	// setupEvents publishes, a minute apart, to an account with two
	// endpoints (the second subscribed to job.failed only):
	//
	//	0 job.completed task a
	//	1 job.failed    task b
	//	2 job.completed task a
	//
	// with a ping between 1 and 2, and one event of another account.
	type fixture struct {
		*bundle
		account, other nanohook.Account
		e1, e2         nanohook.Endpoint
		events         []store.PublishEventParams
		tasks          []string
		ping           string
	}
	setupEvents := func(t *testing.T) *fixture {
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		o, _ := b.account(t, "other")
		f := &fixture{bundle: b, account: a, other: o, e1: b.endpoint(t, a.ID), e2: b.endpoint(t, a.ID, nanohook.EventJobFailed)}
		b.endpoint(t, o.ID)
		base := fmt.Sprintf("task_%d_", a.ID)
		f.tasks = []string{base + "a", base + "b", base + "a"}
		types := []nanohook.EventType{nanohook.EventJobCompleted, nanohook.EventJobFailed, nanohook.EventJobCompleted}
		for i, typ := range types {
			if i == 2 {
				p := b.ping(a.ID, f.e1.ID)
				p.Now = b.now.Add(90 * time.Second)
				_, err := b.s.CreateTestDelivery(b.ctx, p)
				requireNoError(t, err)
				f.ping = p.EventID
			}
			ev := b.event(a.ID)
			ev.Type, ev.TaskID = typ, f.tasks[i]
			ev.IdempotencyKey = ev.ID // events 0 and 2 are one task's, both published
			ev.Now = b.now.Add(time.Duration(i) * time.Minute)
			b.publish(t, ev)
			f.events = append(f.events, ev)
		}
		b.publish(t, b.event(o.ID))
		return f
	}
	// ids is the fixture's events with these indexes, newest first.
	ids := func(f *fixture, idx ...int) string {
		out := []string{}
		for _, i := range slices.Backward(idx) {
			out = append(out, f.events[i].ID)
		}
		return fmtSlice(out)
	}
	list := func(t *testing.T, f *fixture, set func(p *store.ListEventsParams)) []store.EventRecord {
		t.Helper()
		p := store.ListEventsParams{AccountID: f.account.ID, Limit: 100}
		if set != nil {
			set(&p)
		}
		got, err := f.s.ListEvents(f.ctx, p)
		requireNoError(t, err)
		return got
	}
	eventIDs := func(es []store.EventRecord) string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.ID)
		}
		return fmtSlice(out)
	}

	t.Run("NewestFirstWithPayloadAndDeliveries", func(t *testing.T) {
		t.Parallel()
		f := setupEvents(t)
		got := list(t, f, nil)
		equal(t, "events", eventIDs(got), ids(f, 0, 1, 2))
		for i, e := range got {
			want := f.events[len(f.events)-1-i]
			equal(t, "account", e.AccountID, f.account.ID)
			equal(t, "type", e.Type, want.Type)
			equal(t, "task", e.TaskID, want.TaskID)
			equal(t, "task type", e.TaskType, want.TaskType)
			equal(t, "payload", string(e.Payload), string(want.Payload))
			sameTime(t, "created at", e.CreatedAt, want.Now)
			sameTime(t, "occurred at", e.OccurredAt, want.OccurredAt)
			if i > 0 && e.PK >= got[i-1].PK {
				t.Fatalf("pks not descending: %d after %d", e.PK, got[i-1].PK)
			}
		}
		// job.completed went to e1 only, job.failed to both, by delivery id.
		equal(t, "deliveries of event 2", len(got[0].Deliveries), 1)
		equal(t, "its endpoint", got[0].Deliveries[0].EndpointID, f.e1.ID)
		equal(t, "its status", got[0].Deliveries[0].Status, nanohook.DeliveryPending)
		failed := got[1].Deliveries
		equal(t, "deliveries of event 1", len(failed), 2)
		if failed[0].DeliveryID >= failed[1].DeliveryID {
			t.Fatalf("deliveries not by id: %+v", failed)
		}
		equal(t, "endpoints of event 1", fmtSlice([]int64{failed[0].EndpointID, failed[1].EndpointID}), fmtSlice([]int64{f.e1.ID, f.e2.ID}))

		// A finished delivery shows its status.
		for _, c := range f.claim(t, f.now.Add(10*time.Minute), 100) {
			if c.EventID == f.events[0].ID {
				f.complete(t, c, f.now.Add(10*time.Minute), nanohook.DeliverySucceeded, 200, "", time.Time{})
			}
		}
		e, err := f.s.GetEventRecord(f.ctx, f.account.ID, f.events[0].ID)
		requireNoError(t, err)
		equal(t, "status after the attempt", e.Deliveries[0].Status, nanohook.DeliverySucceeded)
		equal(t, "payload of one", string(e.Payload), string(f.events[0].Payload))
		equal(t, "pk of one", e.PK, got[2].PK)
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		f := setupEvents(t)
		m := time.Minute
		all := list(t, f, nil)
		for _, tc := range []struct {
			name string
			set  func(p *store.ListEventsParams)
			want []int
		}{
			{"Type", func(p *store.ListEventsParams) { p.Type = nanohook.EventJobCompleted }, []int{0, 2}},
			{"TaskID", func(p *store.ListEventsParams) { p.TaskID = f.tasks[0] }, []int{0, 2}},
			{"TaskIDAndType", func(p *store.ListEventsParams) { p.TaskID, p.Type = f.tasks[1], nanohook.EventJobCompleted }, nil},
			{"PingType", func(p *store.ListEventsParams) { p.Type = nanohook.EventPing }, nil},
			{"SinceInclusive", func(p *store.ListEventsParams) { p.Since = f.now.Add(m) }, []int{1, 2}},
			{"UntilExclusive", func(p *store.ListEventsParams) { p.Until = f.now.Add(2 * m) }, []int{0, 1}},
			{"BeforePK", func(p *store.ListEventsParams) { p.BeforePK = all[0].PK }, []int{0, 1}},
			{"Limit", func(p *store.ListEventsParams) { p.Limit = 2 }, []int{1, 2}},
		} {
			equal(t, tc.name, eventIDs(list(t, f, tc.set)), ids(f, tc.want...))
		}
	})

	t.Run("Tenancy", func(t *testing.T) {
		t.Parallel()
		f := setupEvents(t)
		theirs := list(t, f, func(p *store.ListEventsParams) { p.AccountID = f.other.ID })
		equal(t, "the other account's events", len(theirs), 1)
		_, err := f.s.GetEventRecord(f.ctx, f.other.ID, f.events[0].ID)
		requireNotFound(t, err, "GetEventRecord by another account")
		_, err = f.s.GetEventRecord(f.ctx, f.account.ID, theirs[0].ID)
		requireNotFound(t, err, "GetEventRecord of another account's event")
		_, err = f.s.GetEventRecord(f.ctx, f.account.ID, f.ping)
		requireNotFound(t, err, "GetEventRecord of a ping")
		_, err = f.s.GetEventRecord(f.ctx, f.account.ID, "evt_missing")
		requireNotFound(t, err, "GetEventRecord of a missing id")
	})
}
