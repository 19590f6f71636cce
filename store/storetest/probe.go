package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/nanohook/nanohook/store"
)

// testProbeWrite: the write probe succeeds on a healthy store, again and
// again and from several callers at once, leaves every other row alone,
// and gives up with the caller's context. That it fails when storage
// cannot be written is each driver's own test (a full or read-only SQLite
// file, a read-only PostgreSQL role), since the suite cannot break a
// database in a driver-neutral way.
func testProbeWrite(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Repeats", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		res, err := b.s.PublishEvents(b.ctx, []store.PublishEventParams{b.event(a.ID)})
		requireNoError(t, err)
		before, err := b.s.Stats(b.ctx, b.now)
		requireNoError(t, err)

		for range 20 {
			requireNoError(t, b.s.ProbeWrite(b.ctx))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- b.s.ProbeWrite(b.ctx) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			requireNoError(t, err)
		}

		after, err := b.s.Stats(b.ctx, b.now)
		requireNoError(t, err)
		equal(t, "stats after the probes", after, before)
		ev, err := b.s.GetEvent(b.ctx, a.ID, res[0].EventID)
		requireNoError(t, err)
		equal(t, "event after the probes", ev.ID, res[0].EventID)
	})

	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		ctx, cancel := context.WithCancel(b.ctx)
		cancel()
		if err := b.s.ProbeWrite(ctx); err == nil {
			t.Fatal("ProbeWrite with a cancelled context succeeded")
		}
		requireNoError(t, b.s.ProbeWrite(b.ctx))
	})
}
