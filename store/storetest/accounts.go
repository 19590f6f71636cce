package storetest

import (
	"bytes"
	"testing"

	"github.com/nanohook/nanohook/store"
)

func testMigrations(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("MigrateTwiceKeepsData", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		requireNoError(t, b.s.Migrate(b.ctx))
		requireNoError(t, b.s.Migrate(b.ctx))
		got, err := b.s.GetAccount(b.ctx, a.ID)
		requireNoError(t, err)
		equal(t, "account name after Migrate", got.Name, "acme")
	})

	t.Run("Ping", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		requireNoError(t, b.s.Ping(b.ctx))
	})
}

func testAccounts(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("CreateAndGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, k := b.account(t, "acme")
		if a.ID == 0 || k.ID == 0 {
			t.Fatalf("ids not set: account %d, key %d", a.ID, k.ID)
		}
		equal(t, "key account", k.AccountID, a.ID)
		sameTime(t, "created at", a.CreatedAt, b.now)

		got, err := b.s.GetAccount(b.ctx, a.ID)
		requireNoError(t, err)
		equal(t, "id", got.ID, a.ID)
		equal(t, "name", got.Name, "acme")
		sameTime(t, "created at", got.CreatedAt, b.now)

		_, err = b.s.GetAccount(b.ctx, a.ID+1000)
		requireNotFound(t, err, "GetAccount of a missing id")
	})

	t.Run("APIKeyByHash", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, k1 := b.account(t, "acme")
		other, _ := b.account(t, "other")

		got, err := b.s.APIKeyByHash(b.ctx, k1.Hash)
		requireNoError(t, err)
		equal(t, "key id", got.ID, k1.ID)
		equal(t, "key account", got.AccountID, a.ID)
		if !bytes.Equal(got.Hash, k1.Hash) {
			t.Fatalf("hash = %x, want %x", got.Hash, k1.Hash)
		}
		sameTime(t, "key created at", got.CreatedAt, b.now)

		k2, err := b.s.CreateAPIKey(b.ctx, store.CreateAPIKeyParams{AccountID: a.ID, KeyHash: newKeyHash(), Now: b.now})
		requireNoError(t, err)
		got, err = b.s.APIKeyByHash(b.ctx, k2.Hash)
		requireNoError(t, err)
		equal(t, "second key id", got.ID, k2.ID)
		equal(t, "second key account", got.AccountID, a.ID)

		// A key of another account resolves to that account, never this one.
		ko, err := b.s.CreateAPIKey(b.ctx, store.CreateAPIKeyParams{AccountID: other.ID, KeyHash: newKeyHash(), Now: b.now})
		requireNoError(t, err)
		got, err = b.s.APIKeyByHash(b.ctx, ko.Hash)
		requireNoError(t, err)
		equal(t, "other key account", got.AccountID, other.ID)

		_, err = b.s.APIKeyByHash(b.ctx, newKeyHash())
		requireNotFound(t, err, "APIKeyByHash of an unknown hash")
	})

	t.Run("CreateAPIKeyMissingAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.account(t, "acme")
		_, err := b.s.CreateAPIKey(b.ctx, store.CreateAPIKeyParams{AccountID: a.ID + 1000, KeyHash: newKeyHash(), Now: b.now})
		requireNotFound(t, err, "CreateAPIKey for a missing account")
	})

	t.Run("DuplicateKeyHashRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, k := b.account(t, "acme")
		_, err := b.s.CreateAPIKey(b.ctx, store.CreateAPIKeyParams{AccountID: a.ID, KeyHash: k.Hash, Now: b.now})
		if err == nil {
			t.Fatal("a second key with the same hash was accepted")
		}
	})

	t.Run("DeleteAPIKeyRevokes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, k1 := b.account(t, "acme")
		k2, err := b.s.CreateAPIKey(b.ctx, store.CreateAPIKeyParams{AccountID: a.ID, KeyHash: newKeyHash(), Now: b.now})
		requireNoError(t, err)

		requireNoError(t, b.s.DeleteAPIKey(b.ctx, a.ID, k1.ID))
		_, err = b.s.APIKeyByHash(b.ctx, k1.Hash)
		requireNotFound(t, err, "APIKeyByHash of a revoked key")
		requireNotFound(t, b.s.DeleteAPIKey(b.ctx, a.ID, k1.ID), "DeleteAPIKey of a revoked key")

		// The account's other key keeps working.
		_, err = b.s.APIKeyByHash(b.ctx, k2.Hash)
		requireNoError(t, err)
	})

	t.Run("DeleteAPIKeyOfAnotherAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, ka := b.account(t, "acme")
		other, _ := b.account(t, "other")

		requireNotFound(t, b.s.DeleteAPIKey(b.ctx, other.ID, ka.ID), "DeleteAPIKey with another account's key id")
		requireNotFound(t, b.s.DeleteAPIKey(b.ctx, a.ID, ka.ID+1000), "DeleteAPIKey of a missing key")
		got, err := b.s.APIKeyByHash(b.ctx, ka.Hash)
		requireNoError(t, err)
		equal(t, "key still live", got.ID, ka.ID)
	})
}
