package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/nanohook/nanohook/api"
)

// TestEndpointLimit: an account may hold MaxEndpointsPerAccount live
// endpoints (100 by default); one more is a 409 conflict naming the limit,
// and deleting one frees its place. Concurrent creates never overshoot
// (the store counts and inserts in one transaction; the conformance suite
// races them on both drivers). Before the limit, 100,000 endpoints on one
// account were accepted.
func TestEndpointLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, key := b.newAccount(t, "a")
	_, otherKey := b.newAccount(t, "b")
	create := func(key string, i int) response {
		return b.pub(t, "POST", "/api/v1/webhooks", key, fmt.Sprintf(`{"url":"https://example.com/hook/%d","events":["job.completed"]}`, i))
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []int64
		refused int
	)
	const tries = api.DefaultMaxEndpoints + 20
	for i := range tries {
		wg.Go(func() {
			r := create(key, i)
			mu.Lock()
			defer mu.Unlock()
			switch r.status {
			case http.StatusCreated:
				created = append(created, int64(r.body["data"].(map[string]any)["id"].(float64)))
			case http.StatusConflict:
				refused++
			default:
				t.Errorf("create %d: %d %s", i, r.status, r.raw)
			}
		})
	}
	wg.Wait()
	if len(created) != api.DefaultMaxEndpoints || refused != tries-api.DefaultMaxEndpoints {
		t.Fatalf("%d concurrent creates: %d created, %d refused; want %d and %d",
			tries, len(created), refused, api.DefaultMaxEndpoints, tries-api.DefaultMaxEndpoints)
	}
	msg := create(key, tries).wantError(t, http.StatusConflict, "conflict", "")
	if !strings.Contains(msg, fmt.Sprint(api.DefaultMaxEndpoints)) {
		t.Fatalf("message %q does not name the limit", msg)
	}
	create(otherKey, 0).wantData(t, http.StatusCreated)

	b.pub(t, "DELETE", fmt.Sprintf("/api/v1/webhooks/%d", created[0]), key, "").wantData(t, http.StatusOK)
	create(key, tries+1).wantData(t, http.StatusCreated)
	create(key, tries+2).wantError(t, http.StatusConflict, "conflict", "")

	// A negative setting lifts the limit.
	u := setup(t, func(c *api.Config) { c.MaxEndpointsPerAccount = -1 })
	_, ukey := u.newAccount(t, "u")
	for i := range api.DefaultMaxEndpoints + 1 {
		u.pub(t, "POST", "/api/v1/webhooks", ukey, fmt.Sprintf(`{"url":"https://example.com/hook/%d","events":["job.completed"]}`, i)).
			wantData(t, http.StatusCreated)
	}
}
