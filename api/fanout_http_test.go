package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nanohook/nanohook/api"
	"github.com/nanohook/nanohook/store"
)

// failingPublish is the real store, except that its failAt-th
// PublishEvents call fails as an outage would.
type failingPublish struct {
	api.Store
	calls  atomic.Int64
	failAt int64
}

func (s *failingPublish) PublishEvents(ctx context.Context, events []store.PublishEventParams) ([]store.PublishResult, error) {
	if s.calls.Add(1) == s.failAt {
		return nil, fmt.Errorf("test outage: %w", store.ErrUnavailable)
	}
	return s.Store.PublishEvents(ctx, events)
}

// TestBatchRetryAfterPartialCommit: a batch larger than three transactions
// (events of 101 rows each, to 100 endpoints: api.ChunkRows / 101 events a
// transaction) that fails at its third transaction answers 503 with its
// first two committed; publishing
// it again answers 202, reports those as duplicates and writes the rest,
// so every event ends with exactly one delivery per endpoint.
func TestBatchRetryAfterPartialCommit(t *testing.T) {
	t.Parallel()
	flaky := &failingPublish{failAt: 3}
	b := setup(t, func(c *api.Config) { flaky.Store = c.Store; c.Store = flaky })
	acct, key := b.newAccount(t, "a")
	const endpoints = 100
	perChunk := api.ChunkRows / (1 + endpoints)
	events := 3*perChunk + 10
	for i := range endpoints {
		b.newWebhook(t, key, fmt.Sprintf("https://example.com/hook/%d", i))
	}
	items := make([]string, events)
	for i := range items {
		items[i] = fmt.Sprintf(`{"account_id":%d,"event":"job.completed","task_id":"t%d","task_type":"image"}`, acct, i)
	}
	batch := `{"events":[` + strings.Join(items, ",") + `]}`

	b.adm(t, "POST", "/admin/v1/events/batch", batch).wantError(t, http.StatusServiceUnavailable, "storage_unavailable", "")
	if got := countAll(t, b.store); got != 2*perChunk*endpoints {
		t.Fatalf("%d deliveries after the failed batch, want the first two transactions' %d", got, 2*perChunk*endpoints)
	}

	res := b.adm(t, "POST", "/admin/v1/events/batch", batch).wantData(t, http.StatusAccepted)["results"].([]any)
	duplicates := 0
	for i, x := range res {
		m := x.(map[string]any)
		if m["duplicate"] == true {
			duplicates++
		}
		if m["deliveries"] != float64(endpoints) {
			t.Fatalf("result %d: %v", i, m)
		}
	}
	if duplicates != 2*perChunk {
		t.Fatalf("%d duplicates on the retry, want the %d committed before", duplicates, 2*perChunk)
	}
	if got := countAll(t, b.store); got != (events-2*perChunk)*endpoints {
		t.Fatalf("the retry wrote %d deliveries, want %d", got, (events-2*perChunk)*endpoints)
	}
}

// countAll claims every due delivery, however many, and counts them.
func countAll(t *testing.T, st store.Store) int {
	t.Helper()
	n := 0
	for {
		c := len(claimAll(t, st))
		n += c
		if c == 0 {
			return n
		}
	}
}
