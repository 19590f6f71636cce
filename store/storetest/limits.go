package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

func testEndpointLimit(t *testing.T, open func(t *testing.T) store.Store) {
	// create makes one endpoint of the account under the limit max.
	create := func(b *bundle, accountID int64, max int) (nanohook.Endpoint, error) {
		return b.s.CreateEndpoint(b.ctx, store.CreateEndpointParams{
			AccountID:    accountID,
			URL:          fmt.Sprintf("https://hooks.example.com/%d/%d", accountID, keySeq.Add(1)),
			Events:       []nanohook.EventType{nanohook.EventJobCompleted},
			Secret:       "whsec_test_secret",
			Now:          b.now,
			MaxEndpoints: max,
		})
	}
	requireLimited := func(t *testing.T, err error, what string) {
		t.Helper()
		if e, ok := errors.AsType[*nanohook.Error](err); !ok || e.Code != nanohook.CodeConflict {
			t.Fatalf("%s: error %v, want a *nanohook.Error of code %s", what, err, nanohook.CodeConflict)
		}
	}

	// CountEndpoints counts what CreateEndpoint's limit counts.
	t.Run("CountEndpoints", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "a")
		other, _ := b.account(t, "b")
		count := func(accountID int64) int {
			t.Helper()
			n, err := b.s.CountEndpoints(b.ctx, accountID)
			requireNoError(t, err)
			return n
		}
		equal(t, "endpoints of a new account", count(a.ID), 0)
		e1, e2 := b.endpoint(t, a.ID), b.endpoint(t, a.ID)
		b.endpoint(t, a.ID)
		b.endpoint(t, other.ID)
		disabled := nanohook.EndpointDisabled
		_, err := b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: e1.ID, Status: &disabled, Now: b.now})
		requireNoError(t, err)
		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, e2.ID, b.now))
		equal(t, "live endpoints (one disabled, one deleted)", count(a.ID), 2)
		equal(t, "the other account's", count(other.ID), 1)
		_, err = b.s.CountEndpoints(b.ctx, 4242)
		requireNotFound(t, err, "CountEndpoints of a missing account")
	})

	// Live endpoints count, active or disabled; deleted ones free their
	// place; other accounts are not concerned; 0 is no limit.
	t.Run("CountsLiveEndpoints", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "a")
		other, _ := b.account(t, "b")
		var made []nanohook.Endpoint
		for range 3 {
			e, err := create(b, a.ID, 3)
			requireNoError(t, err)
			made = append(made, e)
		}
		_, err := create(b, a.ID, 3)
		requireLimited(t, err, "a fourth endpoint under a limit of 3")

		disabled := nanohook.EndpointDisabled
		_, err = b.s.UpdateEndpoint(b.ctx, store.UpdateEndpointParams{AccountID: a.ID, ID: made[0].ID, Status: &disabled, Now: b.now})
		requireNoError(t, err)
		_, err = create(b, a.ID, 3)
		requireLimited(t, err, "an endpoint beside a disabled one")

		requireNoError(t, b.s.DeleteEndpoint(b.ctx, a.ID, made[1].ID, b.now))
		_, err = create(b, a.ID, 3)
		requireNoError(t, err)
		_, err = create(b, a.ID, 3)
		requireLimited(t, err, "an endpoint once the freed place is taken")

		_, err = create(b, other.ID, 3)
		requireNoError(t, err)
		_, err = create(b, a.ID, 0)
		requireNoError(t, err)
		_, err = create(b, a.ID, 2)
		requireLimited(t, err, "an endpoint of an account already over a lowered limit")
		_, err = create(b, 4242, 3)
		requireNotFound(t, err, "CreateEndpoint with a limit for a missing account")
	})

	// Creates racing for the last places never overshoot: the count and
	// the insert are one step.
	t.Run("ConcurrentCreates", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "a")
		const limit, creators = 5, 24
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created int
			errs    []error
		)
		start := make(chan struct{})
		for range creators {
			wg.Go(func() {
				<-start
				_, err := create(b, a.ID, limit)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					created++
				} else {
					errs = append(errs, err)
				}
			})
		}
		close(start)
		wg.Wait()
		equal(t, "endpoints created by racing creates", created, limit)
		for _, err := range errs {
			requireLimited(t, err, "a racing create beyond the limit")
		}
		list, err := b.s.ListEndpoints(b.ctx, store.ListEndpointsParams{AccountID: a.ID, Limit: 100})
		requireNoError(t, err)
		equal(t, "live endpoints", len(list), limit)
	})
}
