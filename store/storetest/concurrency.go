package storetest

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

func testConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	// Publishers, workers and API reads all at once, as in `nanohook serve`:
	// every delivery is completed exactly once, and nothing fails with a
	// lock error.
	t.Run("PublishClaimCompleteTogether", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		quotas := []store.EndpointQuota{
			{EndpointID: b.endpoint(t, a.ID).ID, Limit: 8},
			{EndpointID: b.endpoint(t, a.ID).ID, Limit: 8},
		}

		const publishers, batches, perBatch, workers = 3, 10, 10, 4
		const want = publishers * batches * perBatch * 2
		var (
			wg            sync.WaitGroup
			publishing    sync.WaitGroup
			published     atomic.Bool
			mu            sync.Mutex
			completed     = map[int64]int{}
			errs          = make(chan error, publishers+workers+1)
			firstDelivery atomic.Int64
		)
		publishing.Add(publishers)
		for range publishers {
			wg.Go(func() {
				defer publishing.Done()
				for range batches {
					events := make([]store.PublishEventParams, perBatch)
					for i := range events {
						events[i] = b.event(a.ID)
					}
					if _, err := b.s.PublishEvents(b.ctx, events); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Go(func() { publishing.Wait(); published.Store(true) })
		for w := range workers {
			wg.Go(func() {
				for range 10_000 { // bounded: a stuck claim fails the count below
					done := published.Load() // read before claiming: no work can appear after
					claimed, err := b.s.ClaimDeliveries(b.ctx, store.ClaimParams{
						Now: b.now, LeaseUntil: b.now.Add(time.Hour), Owner: string(rune('a' + w)), Quotas: quotas,
					})
					if err != nil {
						errs <- err
						return
					}
					if len(claimed) == 0 {
						if done {
							return
						}
						runtime.Gosched()
						continue
					}
					results := make([]store.CompleteParams, len(claimed))
					for i, c := range claimed {
						results[i] = result(c, b.now, nanohook.DeliverySucceeded, 200, "", time.Time{})
					}
					if err := b.s.CompleteDeliveries(b.ctx, results); err != nil {
						errs <- err
						return
					}
					firstDelivery.CompareAndSwap(0, claimed[0].DeliveryID)
					if _, _, err := b.s.GetDelivery(b.ctx, a.ID, claimed[0].DeliveryID); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for _, c := range claimed {
						completed[c.DeliveryID]++
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
		equal(t, "deliveries completed", len(completed), want)
		for id, n := range completed {
			if n != 1 {
				t.Fatalf("delivery %d completed %d times", id, n)
			}
		}
		d, attempts := b.delivery(t, a.ID, firstDelivery.Load())
		equal(t, "status", d.Status, nanohook.DeliverySucceeded)
		equal(t, "attempts", len(attempts), 1)
		equal(t, "endpoints with anything left pending", len(b.heads(t)), 0)
	})
}
