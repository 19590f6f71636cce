// Package storetest is the conformance suite of store.Store: every storage
// driver (store/sqlite, store/postgres) runs the same behaviours, so the
// delivery engine and the API can rely on the interface's contract instead
// of on one database's quirks.
//
// A driver's test calls Run with a function that opens a fresh, empty,
// migrated store and registers its cleanup. Every behaviour is its own
// parallel subtest on its own store, so a failure names exactly one contract
// and tests never see each other's rows.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// Run runs the whole suite against the driver that open returns. open is
// called once per subtest and must return an empty store with migrations
// applied; it should close the store with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Migrations", func(t *testing.T) { t.Parallel(); testMigrations(t, open) })
	t.Run("Accounts", func(t *testing.T) { t.Parallel(); testAccounts(t, open) })
	t.Run("Endpoints", func(t *testing.T) { t.Parallel(); testEndpoints(t, open) })
	t.Run("EndpointLimit", func(t *testing.T) { t.Parallel(); testEndpointLimit(t, open) })
	t.Run("Publish", func(t *testing.T) { t.Parallel(); testPublish(t, open) })
	t.Run("Claim", func(t *testing.T) { t.Parallel(); testClaim(t, open) })
	t.Run("Quotas", func(t *testing.T) { t.Parallel(); testQuotas(t, open) })
	t.Run("QueueHeads", func(t *testing.T) { t.Parallel(); testQueueHeads(t, open) })
	t.Run("Complete", func(t *testing.T) { t.Parallel(); testComplete(t, open) })
	t.Run("Release", func(t *testing.T) { t.Parallel(); testRelease(t, open) })
	t.Run("GetDelivery", func(t *testing.T) { t.Parallel(); testGetDelivery(t, open) })
	t.Run("Concurrency", func(t *testing.T) { t.Parallel(); testConcurrency(t, open) })
	t.Run("Leadership", func(t *testing.T) { t.Parallel(); testLeadership(t, open) })
	t.Run("Prune", func(t *testing.T) { t.Parallel(); testPrune(t, open) })
	t.Run("ListDeliveries", func(t *testing.T) { t.Parallel(); testListDeliveries(t, open) })
	t.Run("Events", func(t *testing.T) { t.Parallel(); testEvents(t, open) })
	t.Run("RetryDelivery", func(t *testing.T) { t.Parallel(); testRetryDelivery(t, open) })
	t.Run("RecoverDeliveries", func(t *testing.T) { t.Parallel(); testRecoverDeliveries(t, open) })
	t.Run("Rotation", func(t *testing.T) { t.Parallel(); testRotation(t, open) })
	t.Run("TestDelivery", func(t *testing.T) { t.Parallel(); testTestDelivery(t, open) })
	t.Run("AutoDisable", func(t *testing.T) { t.Parallel(); testAutoDisable(t, open) })
	t.Run("Stats", func(t *testing.T) { t.Parallel(); testStats(t, open) })
	t.Run("Bounds", func(t *testing.T) { t.Parallel(); testBounds(t, open) })
	t.Run("ProbeWrite", func(t *testing.T) { t.Parallel(); testProbeWrite(t, open) })
}

// t0 is the suite's "now": fixed, so that tests move time by passing it, and
// with microsecond precision, the precision drivers are required to keep.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)

// bundle is what every subtest starts from.
type bundle struct {
	s   store.Store
	ctx context.Context
	now time.Time
}

func setup(t *testing.T, open func(t *testing.T) store.Store) *bundle {
	t.Helper()
	return &bundle{s: open(t), ctx: t.Context(), now: t0}
}

// keySeq makes API key hashes unique across the parallel subtests.
var keySeq atomic.Int64

func newKeyHash() []byte {
	sum := sha256.Sum256(fmt.Appendf(nil, "nhk_test_%d", keySeq.Add(1)))
	return sum[:]
}

// account creates an account with one key.
func (b *bundle) account(t *testing.T, name string) (nanohook.Account, nanohook.APIKey) {
	t.Helper()
	a, k, err := b.s.CreateAccount(b.ctx, store.CreateAccountParams{Name: name, KeyHash: newKeyHash(), Now: b.now})
	requireNoError(t, err)
	return a, k
}

// endpoint creates an active endpoint of the account subscribed to events
// (both job events when none are given).
func (b *bundle) endpoint(t *testing.T, accountID int64, events ...nanohook.EventType) nanohook.Endpoint {
	t.Helper()
	if len(events) == 0 {
		events = []nanohook.EventType{nanohook.EventJobCompleted, nanohook.EventJobFailed}
	}
	e, err := b.s.CreateEndpoint(b.ctx, store.CreateEndpointParams{
		AccountID: accountID,
		URL:       fmt.Sprintf("https://hooks.example.com/%d/%d", accountID, keySeq.Add(1)),
		Events:    events,
		Secret:    "whsec_test_secret",
		Now:       b.now,
	})
	requireNoError(t, err)
	return e
}

// eventSeq makes event ids and default idempotency keys unique.
var eventSeq atomic.Int64

// event is a publishable job.completed event with a unique id and key.
func (b *bundle) event(accountID int64) store.PublishEventParams {
	n := eventSeq.Add(1)
	task := fmt.Sprintf("task_%d", n)
	return store.PublishEventParams{
		ID:             fmt.Sprintf("evt_test_%d", n),
		AccountID:      accountID,
		Type:           nanohook.EventJobCompleted,
		TaskID:         task,
		TaskType:       "image",
		IdempotencyKey: nanohook.DefaultIdempotencyKey(nanohook.EventJobCompleted, task),
		Payload:        fmt.Appendf(nil, `{"event":"job.completed","task_id":%q}`, task),
		OccurredAt:     b.now.Add(-time.Second),
		Now:            b.now,
	}
}

func (b *bundle) publish(t *testing.T, events ...store.PublishEventParams) []store.PublishResult {
	t.Helper()
	res, err := b.s.PublishEvents(b.ctx, events)
	requireNoError(t, err)
	if len(res) != len(events) {
		t.Fatalf("PublishEvents: %d results for %d events", len(res), len(events))
	}
	return res
}

// claim claims up to limit deliveries due at now, of any endpoints
// (store.ClaimDue), leased for a minute.
func (b *bundle) claim(t *testing.T, now time.Time, limit int) []store.ClaimedDelivery {
	t.Helper()
	c, err := store.ClaimDue(b.ctx, b.s, store.ClaimDueParams{Now: now, LeaseUntil: now.Add(time.Minute), Limit: limit, Owner: "test"})
	requireNoError(t, err)
	return c
}

// claimQuotas claims by quotas at now, leased until leaseUntil.
func (b *bundle) claimQuotas(t *testing.T, now, leaseUntil time.Time, quotas ...store.EndpointQuota) []store.ClaimedDelivery {
	t.Helper()
	c, err := b.s.ClaimDeliveries(b.ctx, store.ClaimParams{Now: now, LeaseUntil: leaseUntil, Owner: "test", Quotas: quotas})
	requireNoError(t, err)
	if c == nil {
		t.Fatal("ClaimDeliveries returned nil, want an empty slice")
	}
	return c
}

// rescue runs RescueExpiredLeases at now and returns how many it queued.
func (b *bundle) rescue(t *testing.T, now time.Time) int64 {
	t.Helper()
	n, err := b.s.RescueExpiredLeases(b.ctx, now)
	requireNoError(t, err)
	return n
}

// heads returns QueueHeads.
func (b *bundle) heads(t *testing.T) []store.QueueHead {
	t.Helper()
	h, err := b.s.QueueHeads(b.ctx)
	requireNoError(t, err)
	if h == nil {
		t.Fatal("QueueHeads returned nil, want an empty slice")
	}
	return h
}

// nextDue is the earliest queue head (store.NextDueAt of QueueHeads).
func (b *bundle) nextDue(t *testing.T) (time.Time, bool) {
	t.Helper()
	return store.NextDueAt(b.heads(t))
}

// complete finishes one claim with an attempt that took 250ms and answered
// status (0: no response, with errText).
func (b *bundle) complete(t *testing.T, c store.ClaimedDelivery, now time.Time, status nanohook.DeliveryStatus, code int, errText string, next time.Time) {
	t.Helper()
	requireNoError(t, b.s.CompleteDeliveries(b.ctx, []store.CompleteParams{result(c, now, status, code, errText, next)}))
}

func result(c store.ClaimedDelivery, now time.Time, status nanohook.DeliveryStatus, code int, errText string, next time.Time) store.CompleteParams {
	return store.CompleteParams{
		Lease: c.Lease,
		Attempt: nanohook.Attempt{
			DeliveryID:     c.DeliveryID,
			Number:         c.Attempt,
			StartedAt:      now,
			Duration:       250 * time.Millisecond,
			ResponseStatus: code,
			ResponseBody:   fmt.Sprintf("answer %d", code),
			Error:          errText,
		},
		Status:        status,
		NextAttemptAt: next,
		EndpointID:    c.EndpointID,
		Now:           now.Add(250 * time.Millisecond),
	}
}

func (b *bundle) delivery(t *testing.T, accountID, id int64) (nanohook.Delivery, []nanohook.Attempt) {
	t.Helper()
	d, as, err := b.s.GetDelivery(b.ctx, accountID, id)
	requireNoError(t, err)
	return d, as
}

// Assertions: few and plain, so that drivers need no test dependency.

func requireNoError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func requireNotFound(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: got error %v, want store.ErrNotFound", what, err)
	}
}

func equal[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// sameHeaders compares request headers exactly; nil and empty are the same.
func sameHeaders(t *testing.T, what string, got, want []nanohook.Header) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func ids(cs []store.ClaimedDelivery) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.DeliveryID
	}
	return out
}
