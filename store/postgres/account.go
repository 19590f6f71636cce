package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// CreateAccount creates an account and its first API key in one statement
// (a data-modifying WITH is atomic on its own), so an account never exists
// without a way to use it.
func (s *Store) CreateAccount(ctx context.Context, p store.CreateAccountParams) (nanohook.Account, nanohook.APIKey, error) {
	a, k := nanohook.NewAccount(p.Name, p.KeyHash, truncMicros(p.Now))
	c, err := s.acquire(ctx, "create account")
	if err != nil {
		return nanohook.Account{}, nanohook.APIKey{}, err
	}
	defer c.Release()
	err = c.QueryRow(ctx, `WITH a AS (
			INSERT INTO accounts (name, created_at) VALUES ($1, $3) RETURNING id)
		INSERT INTO api_keys (account_id, hash, created_at) SELECT a.id, $2, $3 FROM a
		RETURNING account_id, id`, p.Name, p.KeyHash, a.CreatedAt).Scan(&a.ID, &k.ID)
	if err != nil {
		return nanohook.Account{}, nanohook.APIKey{}, wrap("create account", err)
	}
	k.AccountID = a.ID
	return a, k, nil
}

// GetAccount returns an account by id.
func (s *Store) GetAccount(ctx context.Context, id int64) (nanohook.Account, error) {
	c, err := s.acquire(ctx, "get account")
	if err != nil {
		return nanohook.Account{}, err
	}
	defer c.Release()
	a := nanohook.Account{ID: id}
	err = c.QueryRow(ctx, `SELECT name, created_at FROM accounts WHERE id = $1`, id).Scan(&a.Name, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nanohook.Account{}, notFound("account", id)
	}
	if err != nil {
		return nanohook.Account{}, wrap("get account", err)
	}
	return a, nil
}

// CreateAPIKey adds a key to an existing account; the foreign key on
// api_keys.account_id is what detects a missing account.
func (s *Store) CreateAPIKey(ctx context.Context, p store.CreateAPIKeyParams) (nanohook.APIKey, error) {
	c, err := s.acquire(ctx, "create api key")
	if err != nil {
		return nanohook.APIKey{}, err
	}
	defer c.Release()
	k := nanohook.NewAccountKey(p.AccountID, p.KeyHash, truncMicros(p.Now))
	err = c.QueryRow(ctx, `INSERT INTO api_keys (account_id, hash, created_at) VALUES ($1, $2, $3) RETURNING id`,
		p.AccountID, p.KeyHash, k.CreatedAt).Scan(&k.ID)
	if isForeignKey(err) {
		return nanohook.APIKey{}, notFound("account", p.AccountID)
	}
	if err != nil {
		return nanohook.APIKey{}, wrap("create api key", err)
	}
	return k, nil
}

// DeleteAPIKey revokes a key rather than deleting it, so that audit trails
// can still name the key a request used. The interface passes no time, so
// revoked_at comes from the Store's clock; it decides nothing but the record.
func (s *Store) DeleteAPIKey(ctx context.Context, accountID, keyID int64) error {
	c, err := s.acquire(ctx, "delete api key")
	if err != nil {
		return err
	}
	defer c.Release()
	tag, err := c.Exec(ctx, `UPDATE api_keys SET revoked_at = $1
		WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL`, truncMicros(s.now()), keyID, accountID)
	if err != nil {
		return wrap("delete api key", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("api key", keyID)
	}
	return nil
}

// APIKeyByHash finds the live (unrevoked) key with this hash. It runs on
// every authenticated request, so it is one lookup in the UNIQUE hash index.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (nanohook.APIKey, error) {
	c, err := s.acquire(ctx, "api key by hash")
	if err != nil {
		return nanohook.APIKey{}, err
	}
	defer c.Release()
	var k nanohook.APIKey
	err = c.QueryRow(ctx, `SELECT k.id, k.account_id, k.hash, k.created_at
		FROM api_keys k JOIN accounts a ON a.id = k.account_id
		WHERE k.hash = $1 AND k.revoked_at IS NULL`, hash).Scan(&k.ID, &k.AccountID, &k.Hash, &k.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nanohook.APIKey{}, notFound("api key", "with this hash")
	}
	if err != nil {
		return nanohook.APIKey{}, wrap("api key by hash", err)
	}
	return k, nil
}
