package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testBounds checks the limits a store keeps whatever its callers send:
// receiver text is cut to its documented size when an attempt is written,
// and a delivery is read with its newest attempts only.
func testBounds(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("CompleteCutsReceiverText", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		c := b.claim(t, b.now, 1)[0]
		// An attempt as an engine without the sender's cut would make it:
		// a quoted 256 KiB status line, a 200 KiB Location, a body far
		// past its cap, and bytes PostgreSQL text refuses.
		r := result(c, b.now, nanohook.DeliveryPending, 302, "", b.now.Add(time.Minute))
		r.Attempt.Error = `malformed HTTP status code "` + strings.Repeat("x\x00\xff", 256<<10/3) + `"`
		r.Attempt.Location = "https://elsewhere.example.com/" + strings.Repeat("l", 200<<10)
		r.Attempt.RemoteAddr = strings.Repeat("9", 1000)
		r.Attempt.ResponseBody = strings.Repeat("b", 1<<20)
		requireNoError(t, b.s.CompleteDeliveries(b.ctx, []store.CompleteParams{r}))

		d, attempts := b.delivery(t, a.ID, c.DeliveryID)
		equal(t, "attempts recorded", len(attempts), 1)
		got := attempts[0]
		want := r.Attempt.Bounded()
		equal(t, "error", got.Error, want.Error)
		equal(t, "last error", d.LastError, want.Error)
		equal(t, "location", got.Location, want.Location)
		equal(t, "remote address", got.RemoteAddr, want.RemoteAddr)
		equal(t, "response body", got.ResponseBody, want.ResponseBody)
		if len(got.Error) > nanohook.MaxStoredError || !strings.HasSuffix(got.Error, "…[262172 bytes]") {
			t.Fatalf("error: %d bytes ending %q, want at most %d ending in the original length",
				len(got.Error), got.Error[max(0, len(got.Error)-20):], nanohook.MaxStoredError)
		}
	})

	t.Run("GetDeliveryNewestAttempts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		b.endpoint(t, a.ID)
		b.publish(t, b.event(a.ID))
		// A delivery retried past the bound, as a customer may retry
		// without end: each attempt fails and is due again at once.
		const made = store.MaxDetailAttempts + 5
		now := b.now
		var id int64
		for range made {
			c := b.claim(t, now, 1)[0]
			id = c.DeliveryID
			b.complete(t, c, now, nanohook.DeliveryPending, 500, "", now)
			now = now.Add(time.Second)
		}
		d, attempts := b.delivery(t, a.ID, id)
		equal(t, "attempt count", d.Attempts, made)
		equal(t, "attempts returned", len(attempts), store.MaxDetailAttempts)
		for i, at := range attempts {
			equal(t, "attempt number", at.Number, made-store.MaxDetailAttempts+1+i)
		}
	})
}
