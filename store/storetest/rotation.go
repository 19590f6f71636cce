package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testRotation: a rotated-out secret is handed to claims while it is valid,
// and only then; rotation is account-scoped.
func testRotation(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("RotateSecretKeepsThePreviousUntilItExpires", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := open(t)
		now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		_, hash := nanohook.NewAPIKey()
		acct, _, err := s.CreateAccount(ctx, store.CreateAccountParams{Name: "r", KeyHash: hash, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		ep, err := s.CreateEndpoint(ctx, store.CreateEndpointParams{AccountID: acct.ID, URL: "https://example.com/r",
			Events: []nanohook.EventType{nanohook.EventJobCompleted}, Secret: "old-secret-1", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if !ep.PreviousSecretExpiresAt.IsZero() {
			t.Fatalf("a new endpoint has a previous secret until %s", ep.PreviousSecretExpiresAt)
		}
		until := now.Add(24 * time.Hour)
		got, err := s.RotateSecret(ctx, store.RotateSecretParams{AccountID: acct.ID, ID: ep.ID, Secret: "new-secret-2",
			PreviousValidUntil: until, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if got.Secret != "new-secret-2" || !got.PreviousSecretExpiresAt.Equal(until) {
			t.Fatalf("after rotation: secret %q, previous until %s", got.Secret, got.PreviousSecretExpiresAt)
		}

		publish := func(key string, at time.Time) {
			t.Helper()
			if _, err := s.PublishEvents(ctx, []store.PublishEventParams{{ID: nanohook.NewEventID(), AccountID: acct.ID,
				Type: nanohook.EventJobCompleted, TaskID: key, TaskType: "image", IdempotencyKey: key,
				Payload: []byte(`{}`), OccurredAt: at, Now: at}}); err != nil {
				t.Fatal(err)
			}
		}
		claimOne := func(at time.Time) store.ClaimedDelivery {
			t.Helper()
			// Leases outlast the test, so each claim sees only the new delivery.
			c, err := store.ClaimDue(ctx, s, store.ClaimDueParams{Now: at, LeaseUntil: at.Add(1000 * time.Hour), Limit: 10})
			if err != nil || len(c) != 1 {
				t.Fatalf("claim at %s: %d, %v", at, len(c), err)
			}
			return c[0]
		}
		publish("during", now)
		if c := claimOne(now.Add(time.Hour)); c.Secret != "new-secret-2" || c.PreviousSecret != "old-secret-1" {
			t.Fatalf("during the overlap: secret %q previous %q", c.Secret, c.PreviousSecret)
		}
		publish("after", now)
		if c := claimOne(until.Add(time.Second)); c.Secret != "new-secret-2" || c.PreviousSecret != "" {
			t.Fatalf("after the overlap: secret %q previous %q", c.Secret, c.PreviousSecret)
		}

		// A rotation without overlap drops the previous secret at once.
		got, err = s.RotateSecret(ctx, store.RotateSecretParams{AccountID: acct.ID, ID: ep.ID, Secret: "third-secret-3",
			PreviousValidUntil: now, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if !got.PreviousSecretExpiresAt.IsZero() {
			t.Fatalf("rotation without overlap kept a previous secret until %s", got.PreviousSecretExpiresAt)
		}
		publish("no-overlap", now)
		if c := claimOne(now.Add(2 * time.Minute)); c.Secret != "third-secret-3" || c.PreviousSecret != "" {
			t.Fatalf("after a rotation without overlap: secret %q previous %q", c.Secret, c.PreviousSecret)
		}

		// Another account, or a deleted endpoint, is not found.
		_, hash2 := nanohook.NewAPIKey()
		other, _, _ := s.CreateAccount(ctx, store.CreateAccountParams{Name: "o", KeyHash: hash2, Now: now})
		if _, err := s.RotateSecret(ctx, store.RotateSecretParams{AccountID: other.ID, ID: ep.ID, Secret: "x-secret-xx", Now: now}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another account rotated the secret: %v", err)
		}
		if err := s.DeleteEndpoint(ctx, acct.ID, ep.ID, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RotateSecret(ctx, store.RotateSecretParams{AccountID: acct.ID, ID: ep.ID, Secret: "x-secret-xx", Now: now}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a deleted endpoint's secret was rotated: %v", err)
		}
	})
}
