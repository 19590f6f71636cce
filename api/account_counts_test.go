package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/store/sqlite"
)

// countingStore counts the endpoint counts publishes read.
type countingStore struct {
	*sqlite.Store
	counts atomic.Int64
}

func (s *countingStore) CountEndpoints(ctx context.Context, accountID int64) (int, error) {
	s.counts.Add(1)
	return s.Store.CountEndpoints(ctx, accountID)
}

// Single-event publishes for one account read its endpoints once per
// accountCountsTTL (250 ms), not once a request; an account that does not
// exist is looked up every time (and refused every time).
func TestPublishesShareTheAccountLookup(t *testing.T) {
	t.Parallel()
	var cs *countingStore
	b := setup(t, func(c *api.Config) {
		cs = &countingStore{Store: c.Store.(*sqlite.Store)}
		c.Store = cs
	})
	id, key := b.newAccount(t, "acme")
	b.newWebhook(t, key, "https://a.example.com/hook")
	publish := func(account int64, task string) response {
		return b.adm(t, "POST", "/admin/v1/events",
			fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":%q,"task_type":"image","data":{}}`, account, task))
	}

	start, before := time.Now(), cs.counts.Load()
	const publishes = 40
	for i := range publishes {
		publish(id, fmt.Sprint("t", i)).wantData(t, http.StatusAccepted)
	}
	limit := 1 + int64(time.Since(start)/api.AccountCountsTTL)
	if n := cs.counts.Load() - before; n > limit {
		t.Fatalf("%d publishes read the account's endpoints %d times, want at most %d", publishes, n, limit)
	}

	// Once the count is old, the next publish reads it again and sees a
	// new endpoint.
	b.newWebhook(t, key, "https://b.example.com/hook")
	time.Sleep(api.AccountCountsTTL)
	before = cs.counts.Load()
	if d := publish(id, "later").wantData(t, http.StatusAccepted); d["deliveries"] != float64(2) {
		t.Fatalf("after a second endpoint: %v deliveries, want 2", d["deliveries"])
	}
	if n := cs.counts.Load() - before; n != 1 {
		t.Fatalf("a publish after the count aged read the endpoints %d times, want 1", n)
	}

	before = cs.counts.Load()
	for i := range 3 {
		if r := publish(id+1000, fmt.Sprint("nobody", i)); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("publish for a missing account: %d %s, want 422", r.status, r.raw)
		}
	}
	if n := cs.counts.Load() - before; n != 3 {
		t.Fatalf("3 publishes for a missing account looked it up %d times, want 3 (not remembered)", n)
	}
}
