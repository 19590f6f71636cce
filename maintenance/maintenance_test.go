package maintenance_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/maintenance"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable time source shared by the "nodes" of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestOneLeaderAtATimeAndFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := maintenance.New(maintenance.Config{Store: st, NodeID: "a", Term: 30 * time.Second, Now: clk.Now})
	b := maintenance.New(maintenance.Config{Store: st, NodeID: "b", Term: 30 * time.Second, Now: clk.Now})

	for _, s := range []*maintenance.Service{a, b} {
		if err := s.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !a.IsLeader() || b.IsLeader() {
		t.Fatalf("leaders after first round: a=%v b=%v, want only a", a.IsLeader(), b.IsLeader())
	}
	// a renews within its term: b still cannot take over.
	clk.Add(20 * time.Second)
	a.RunOnce(ctx)
	clk.Add(20 * time.Second)
	b.RunOnce(ctx)
	if !a.IsLeader() || b.IsLeader() {
		t.Fatalf("after renewal: a=%v b=%v, want only a", a.IsLeader(), b.IsLeader())
	}
	// a dies (stops renewing): after its term b leads, and a learns it lost.
	clk.Add(31 * time.Second)
	b.RunOnce(ctx)
	a.RunOnce(ctx)
	if a.IsLeader() || !b.IsLeader() {
		t.Fatalf("after a's term ran out: a=%v b=%v, want only b", a.IsLeader(), b.IsLeader())
	}
}

func TestStopResignsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := maintenance.New(maintenance.Config{Store: st, NodeID: "a", Now: clk.Now})
	b := maintenance.New(maintenance.Config{Store: st, NodeID: "b", Now: clk.Now})
	a.InitTestSignals()
	a.Start(ctx)
	if !a.Rounds().Await(5*time.Second, a.IsLeader) {
		t.Fatal("a never became leader")
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// No clock movement: b takes over only because a resigned.
	if err := b.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.IsLeader() {
		t.Fatal("b did not lead after a resigned")
	}
}

func TestLeaderPrunesOldHistoryOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	old := now.Add(-40 * 24 * time.Hour)
	recent := now.Add(-time.Hour)

	_, hash := nanohook.NewAPIKey()
	acct, _, err := st.CreateAccount(ctx, store.CreateAccountParams{Name: "a", KeyHash: hash, Now: old})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID, URL: "https://example.com/h",
		Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_xxxxxxxx", Now: old}); err != nil {
		t.Fatal(err)
	}
	// Three deliveries: finished long ago, finished recently, pending since long ago.
	finish := func(key string, at time.Time, done bool) (string, int64) {
		res, err := st.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: acct.ID,
			Type: nanohook.EventJobCompleted, TaskID: key, TaskType: "image", IdempotencyKey: key,
			Payload: []byte(`{}`), OccurredAt: at, Now: at}})
		if err != nil {
			t.Fatal(err)
		}
		claimed, err := store.ClaimDue(ctx, st, store.ClaimDueParams{Now: at, LeaseUntil: at.Add(time.Minute), Limit: 1})
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %d %v", len(claimed), err)
		}
		if done {
			err = st.CompleteDeliveries(ctx, []store.CompleteParams{{Lease: claimed[0].Lease, Status: nanohook.DeliverySucceeded,
				Attempt: nanohook.Attempt{DeliveryID: claimed[0].DeliveryID, Number: 1, StartedAt: at, ResponseStatus: 200}, Now: at}})
		} else {
			err = st.ReleaseDeliveries(ctx, []store.Lease{claimed[0].Lease})
		}
		if err != nil {
			t.Fatal(err)
		}
		return res[0].EventID, claimed[0].DeliveryID
	}
	oldEvt, oldDel := finish("old", old, true)
	recentEvt, recentDel := finish("recent", recent, true)
	pendingEvt, pendingDel := finish("pending", old, false)

	svc := maintenance.New(maintenance.Config{Store: st, NodeID: "n", Now: func() time.Time { return now }, PruneBatch: 1})
	if err := svc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.GetDelivery(ctx, acct.ID, oldDel); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old finished delivery survived: %v", err)
	}
	if _, err := st.GetEvent(ctx, acct.ID, oldEvt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old event without deliveries survived: %v", err)
	}
	for _, id := range []int64{recentDel, pendingDel} {
		if _, _, err := st.GetDelivery(ctx, acct.ID, id); err != nil {
			t.Errorf("delivery %d was pruned: %v", id, err)
		}
	}
	for _, id := range []string{recentEvt, pendingEvt} {
		if _, err := st.GetEvent(ctx, acct.ID, id); err != nil {
			t.Errorf("event %s was pruned: %v", id, err)
		}
	}
}

func TestLeaderDisablesEndpointsFailingTooLong(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	start := clk.Now()

	_, hash := nanohook.NewAPIKey()
	acct, _, err := st.CreateAccount(ctx, store.CreateAccountParams{Name: "a", KeyHash: hash, Now: start})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := st.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID, URL: "https://example.com/h",
		Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_xxxxxxxx", Now: start})
	if err != nil {
		t.Fatal(err)
	}
	// One failed attempt at start, with a retry due in ten days.
	if _, err := st.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: acct.ID,
		Type: nanohook.EventJobCompleted, TaskID: "t", TaskType: "image", IdempotencyKey: "t",
		Payload: []byte(`{}`), OccurredAt: start, Now: start}}); err != nil {
		t.Fatal(err)
	}
	claimed, err := store.ClaimDue(ctx, st, store.ClaimDueParams{Now: start, LeaseUntil: start.Add(time.Minute), Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %d %v", len(claimed), err)
	}
	if err := st.CompleteDeliveries(ctx, []store.CompleteParams{{Lease: claimed[0].Lease, Status: nanohook.DeliveryPending,
		NextAttemptAt: start.Add(10 * 24 * time.Hour),
		Attempt:       nanohook.Attempt{DeliveryID: claimed[0].DeliveryID, Number: 1, StartedAt: start, ResponseStatus: 500},
		Now:           start}}); err != nil {
		t.Fatal(err)
	}

	svc := maintenance.New(maintenance.Config{Store: st, NodeID: "n", Now: clk.Now, DisableAfter: 2 * 24 * time.Hour})
	// Failing for one day: left alone.
	clk.Add(24 * time.Hour)
	if err := svc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetEndpoint(ctx, acct.ID, ep.ID); got.Status != nanohook.EndpointActive {
		t.Fatalf("endpoint disabled after one day: %+v", got)
	}
	// Failing for more than two days: the next round disables it.
	clk.Add(24*time.Hour + time.Second)
	if err := svc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetEndpoint(ctx, acct.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantReason := "failing for 2 days since 2026-03-01T00:00:00Z"
	if got.Status != nanohook.EndpointDisabled || got.DisabledReason != wantReason {
		t.Fatalf("endpoint = %s %q, want disabled %q", got.Status, got.DisabledReason, wantReason)
	}
	d, _, err := st.GetDelivery(ctx, acct.ID, claimed[0].DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != nanohook.DeliveryFailed || d.LastError != "endpoint disabled: "+wantReason {
		t.Fatalf("pending delivery = %s %q, want failed with the reason", d.Status, d.LastError)
	}
}
