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
// due deliveries (128 of each of an account's two endpoints) and completes
// them all as succeeded in one call. Work is published in chunks outside
// the timer whenever the queue runs dry.
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
	quotas := benchQuotas(b, s, a.ID, claimBatch/2)
	claimAndComplete(b, s, store.ClaimParams{Quotas: quotas}, false, refill, a.ID)
}

// quotaEndpoints and perQuota shape BenchClaimQuotas: a claim shared out
// across many endpoints, a few deliveries each.
const quotaEndpoints, perQuota = 64, 4

// BenchClaimQuotas measures a claim shared out fairly across many
// endpoints, as the engine's planner asks for it when many customers have
// work due: each op claims 4 due deliveries of each of 64 endpoints (256 in
// all) and completes them. Against BenchClaimComplete (the same 256
// deliveries from two endpoints) it shows what each quota of a call costs.
func BenchClaimQuotas(b *testing.B, s store.Store) {
	ctx := b.Context()
	now := t0
	a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "bench", KeyHash: newKeyHash(), Now: now})
	if err != nil {
		b.Fatal(err)
	}
	for i := range quotaEndpoints {
		benchEndpoint(b, s, a.ID, i, now)
	}
	seq := 0
	refill := func() {
		for range 4 {
			if _, err := s.PublishEvents(ctx, benchEvents(a.ID, now, &seq, publishBatch)); err != nil {
				b.Fatal(err)
			}
		}
	}
	refill()
	claimAndComplete(b, s, store.ClaimParams{Quotas: benchQuotas(b, s, a.ID, perQuota)}, false, refill, a.ID)
}

func benchAccount(b *testing.B, s store.Store, now time.Time) nanohook.Account {
	a, _, err := s.CreateAccount(b.Context(), store.CreateAccountParams{Name: "bench", KeyHash: newKeyHash(), Now: now})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2 {
		benchEndpoint(b, s, a.ID, i, now)
	}
	return a
}

// benchEndpoint adds an endpoint subscribed to job.completed (what
// benchEvents publishes) to an account.
func benchEndpoint(b *testing.B, s store.Store, accountID int64, i int, now time.Time) nanohook.Endpoint {
	e, err := s.CreateEndpoint(b.Context(), store.CreateEndpointParams{
		AccountID: accountID, URL: fmt.Sprintf("https://hooks.example.com/%d/%d", accountID, i),
		Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "whsec_bench_secret", Now: now,
	})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// benchQuotas asks for up to limit deliveries of each of an account's
// endpoints.
func benchQuotas(b *testing.B, s store.Store, accountID int64, limit int) []store.EndpointQuota {
	eps, err := s.ListEndpoints(b.Context(), store.ListEndpointsParams{AccountID: accountID, Limit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	out := make([]store.EndpointQuota, len(eps))
	for i, e := range eps {
		out[i] = store.EndpointQuota{EndpointID: e.ID, Limit: limit}
	}
	return out
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

// fairBacklog is the deep queue of BenchClaimFair: due deliveries of one
// account, ahead of everyone else's.
const fairBacklog = 100_000

// BenchClaimFair measures what one account's backlog costs another
// account's deliveries. In both sub-benchmarks one account's two endpoints
// hold 100,000 deliveries of an hour ago: with backlog=100000 they are all
// due, ahead of anything else; with backlog=0 they were recorded failed
// (the endpoints were disabled), so the tables are as large and only the
// queue differs. Each op is what the engine pays to serve the other
// account: QueueHeads, a claim of 64 due deliveries of its endpoint, and
// their completion. Every part reads only the quiet account's range of
// deliveries_queue (and one index probe per endpoint for the heads), so
// the two figures should be the same; a claim or heads query that read
// past the backlog would grow with it.
func BenchClaimFair(b *testing.B, open func(b *testing.B) store.Store) {
	for _, backlog := range []int{0, fairBacklog} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			s := open(b)
			ctx := b.Context()
			now := t0
			busy := benchAccount(b, s, now)
			if backlog == 0 {
				disabled := nanohook.EndpointDisabled
				for _, q := range benchQuotas(b, s, busy.ID, 0) {
					if _, err := s.UpdateEndpoint(ctx, store.UpdateEndpointParams{AccountID: busy.ID, ID: q.EndpointID,
						Status: &disabled, Now: now}); err != nil {
						b.Fatal(err)
					}
				}
			}
			seq := 0
			for range fairBacklog / (2 * publishBatch) { // to both endpoints
				if _, err := s.PublishEvents(ctx, benchEvents(busy.ID, now.Add(-time.Hour), &seq, publishBatch)); err != nil {
					b.Fatal(err)
				}
			}
			quiet, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "quiet", KeyHash: newKeyHash(), Now: now})
			if err != nil {
				b.Fatal(err)
			}
			benchEndpoint(b, s, quiet.ID, 0, now)
			refill := func() {
				for range 10 {
					if _, err := s.PublishEvents(ctx, benchEvents(quiet.ID, now, &seq, publishBatch)); err != nil {
						b.Fatal(err)
					}
				}
			}
			refill()
			claimAndComplete(b, s, store.ClaimParams{Quotas: benchQuotas(b, s, quiet.ID, 64)}, true, refill, quiet.ID)
		})
	}
}

// headsEndpoints is how many endpoints have pending deliveries in
// BenchQueueHeads, and headsDepth how many each.
const headsEndpoints, headsDepth = 1000, 20

// BenchQueueHeads measures QueueHeads with 1,000 endpoints (of 100
// accounts) that have 20 pending deliveries each: the price of the
// engine's every look at the queues. It reports ns/endpoint; it should
// not grow with the depth of the queues.
func BenchQueueHeads(b *testing.B, s store.Store) {
	ctx := b.Context()
	now := t0
	seq := 0
	const accounts = 100
	for i := range accounts {
		a, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "bench", KeyHash: newKeyHash(), Now: now})
		if err != nil {
			b.Fatal(err)
		}
		for j := range headsEndpoints / accounts {
			benchEndpoint(b, s, a.ID, j, now)
		}
		// Some queues due now, some later: heads of both kinds.
		if _, err := s.PublishEvents(ctx, benchEvents(a.ID, now.Add(time.Duration(i%2)*time.Hour), &seq, headsDepth)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		heads, err := s.QueueHeads(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(heads) != headsEndpoints {
			b.Fatalf("%d queue heads, want %d", len(heads), headsEndpoints)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/headsEndpoints, "ns/endpoint")
}

// claimAndComplete is the timed loop of the claim benchmarks: each op
// claims by p.Quotas (after reading QueueHeads first when heads is set,
// as the engine does to plan), all claims must be of account, and
// completes them all as succeeded in one call; refill publishes more,
// untimed, when a claim comes back short. It reports per-delivery figures.
func claimAndComplete(b *testing.B, s store.Store, p store.ClaimParams, heads bool, refill func(), account int64) {
	ctx := b.Context()
	now := t0
	p.Now, p.LeaseUntil, p.Owner = now, now.Add(time.Minute), "bench"
	want := 0
	for _, q := range p.Quotas {
		want += q.Limit
	}
	results := make([]store.CompleteParams, 0, want)
	var deliveries int64
	for b.Loop() {
		if heads {
			if _, err := s.QueueHeads(ctx); err != nil {
				b.Fatal(err)
			}
		}
		claimed, err := s.ClaimDeliveries(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		if len(claimed) < want {
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
