package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// The benchmarks below are shared by the drivers so that their figures
// measure the same work. Each reports ns/delivery, the unit of the
// end-to-end target (deliveries per second), besides Go's ns/op.

// publishBatch is the batch size of BenchPublish: a busy platform's publisher
// batches about this many job events per call.
const publishBatch = 100

// BenchPublish measures PublishEvents: each op is one call with 100 new
// events for an account with two subscribed endpoints, so 200 deliveries.
func BenchPublish(b *testing.B, s store.Store) {
	ctx := b.Context()
	now := t0
	a := benchAccount(b, s, now)
	seq := 0
	var deliveries int64
	for b.Loop() {
		res, err := s.PublishEvents(ctx, benchEvents(a.ID, now, &seq, publishBatch))
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			deliveries += int64(r.Deliveries)
		}
	}
	reportPerDelivery(b, deliveries)
}

// claimBatch is the claim and completion batch of BenchClaimComplete.
const claimBatch = 256

// BenchClaimComplete measures the engine's storage loop: each op claims 256
// due deliveries and completes them all as succeeded in one call. Work is
// published in chunks outside the timer whenever the queue runs dry.
func BenchClaimComplete(b *testing.B, s store.Store) {
	ctx := b.Context()
	now := t0
	a := benchAccount(b, s, now)
	seq := 0
	refill := func() {
		for range 50 {
			if _, err := s.PublishEvents(ctx, benchEvents(a.ID, now, &seq, publishBatch)); err != nil {
				b.Fatal(err)
			}
		}
	}
	refill()
	claimAndComplete(b, s, store.ClaimParams{Limit: claimBatch}, refill, a.ID)
}

func benchAccount(b *testing.B, s store.Store, now time.Time) nanohook.Account {
	a, _, err := s.CreateAccount(b.Context(), store.CreateAccountParams{Name: "bench", KeyHash: newKeyHash(), Now: now})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2 {
		if _, err := s.CreateEndpoint(b.Context(), store.CreateEndpointParams{
			AccountID: a.ID, URL: fmt.Sprintf("https://hooks.example.com/%d", i),
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_bench_secret", Now: now,
		}); err != nil {
			b.Fatal(err)
		}
	}
	return a
}

// benchEvents makes n events with a payload of a typical size (~200 bytes).
func benchEvents(accountID int64, now time.Time, seq *int, n int) []store.PublishEventParams {
	out := make([]store.PublishEventParams, n)
	for i := range out {
		*seq++
		task := fmt.Sprintf("task_%09d", *seq)
		out[i] = store.PublishEventParams{
			ID:             fmt.Sprintf("evt_bench_%09d", *seq),
			AccountID:      accountID,
			Type:           nanohook.EventJobCompleted,
			TaskID:         task,
			TaskType:       "image",
			IdempotencyKey: nanohook.DefaultIdempotencyKey(nanohook.EventJobCompleted, task),
			Payload: fmt.Appendf(nil, `{"event":"job.completed","task_id":%q,"task_type":"image","status":"completed",`+
				`"data":{"url":"https://cdn.example.com/%s.png","credits_charged":6},"timestamp":"2024-12-23T10:00:00Z"}`, task, task),
			OccurredAt: now,
			Now:        now,
		}
	}
	return out
}

func reportPerDelivery(b *testing.B, deliveries int64) {
	if deliveries == 0 {
		return
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(deliveries), "ns/delivery")
	b.ReportMetric(float64(deliveries)/b.Elapsed().Seconds(), "deliveries/s")
}

// skippedBacklog is how many due deliveries of a skipped endpoint
// BenchClaimSkipping puts ahead of the claimable ones.
const skippedBacklog = 20000

// BenchClaimSkipping measures claims while a dead endpoint (open breaker,
// at its in-flight cap) has a large backlog due ahead of healthy work: each
// op claims 64 deliveries of the healthy endpoint with the dead one in
// SkipEndpoints, and completes them. A claim that had to read past every
// skipped row would grow with the backlog; an index that answers the skip
// test keeps it flat.
func BenchClaimSkipping(b *testing.B, s store.Store) {
	ctx := b.Context()
	now := t0
	dead := benchAccount(b, s, now)
	seq := 0
	for range skippedBacklog / (2 * publishBatch) { // two endpoints each
		if _, err := s.PublishEvents(ctx, benchEvents(dead.ID, now.Add(-time.Hour), &seq, publishBatch)); err != nil {
			b.Fatal(err)
		}
	}
	deadEndpoints, err := s.ListEndpoints(ctx, store.ListEndpointsParams{AccountID: dead.ID, Limit: 10})
	if err != nil {
		b.Fatal(err)
	}
	skip := []int64{deadEndpoints[0].ID, deadEndpoints[1].ID}
	live := benchAccount(b, s, now)
	refill := func() {
		for range 10 {
			if _, err := s.PublishEvents(ctx, benchEvents(live.ID, now, &seq, publishBatch)); err != nil {
				b.Fatal(err)
			}
		}
	}
	refill()
	claimAndComplete(b, s, store.ClaimParams{Limit: 64, SkipEndpoints: skip}, refill, live.ID)
}

// claimAndComplete is the timed loop of the claim benchmarks: each op
// claims up to p.Limit due deliveries (all must be of account) and completes
// them all as succeeded in one call; refill publishes more, untimed, when a
// claim comes back short. It reports per-delivery figures.
func claimAndComplete(b *testing.B, s store.Store, p store.ClaimParams, refill func(), account int64) {
	ctx := b.Context()
	now := t0
	p.Now, p.LeaseUntil, p.Owner = now, now.Add(time.Minute), "bench"
	results := make([]store.CompleteParams, 0, p.Limit)
	var deliveries int64
	for b.Loop() {
		claimed, err := s.ClaimDeliveries(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		if len(claimed) < p.Limit {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
		results = results[:0]
		for _, c := range claimed {
			if c.AccountID != account {
				b.Fatalf("claimed delivery %d of account %d, want only account %d's", c.DeliveryID, c.AccountID, account)
			}
			results = append(results, store.CompleteParams{
				Lease: c.Lease,
				Attempt: nanohook.Attempt{
					DeliveryID: c.DeliveryID, Number: c.Attempt, StartedAt: now,
					Duration: 42 * time.Millisecond, ResponseStatus: 200, ResponseBody: `{"ok":true}`,
				},
				Status:     nanohook.DeliverySucceeded,
				EndpointID: c.EndpointID,
				Now:        now,
			})
		}
		if err := s.CompleteDeliveries(ctx, results); err != nil {
			b.Fatal(err)
		}
		deliveries += int64(len(claimed))
	}
	reportPerDelivery(b, deliveries)
}
