package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// CreateAccount creates an account and its first API key in one transaction,
// so an account never exists without a way to use it.
func (s *Store) CreateAccount(ctx context.Context, p store.CreateAccountParams) (nanohook.Account, nanohook.APIKey, error) {
	a, k := nanohook.NewAccount(p.Name, p.KeyHash, fromMicros(micros(p.Now)))
	err := s.inTx(ctx, "create account", func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `INSERT INTO accounts (name, created_at) VALUES (?, ?) RETURNING id`,
			a.Name, micros(a.CreatedAt)).Scan(&a.ID); err != nil {
			return wrap("create account", err)
		}
		k.AccountID = a.ID
		if err := tx.QueryRowContext(ctx, `INSERT INTO api_keys (account_id, hash, created_at) VALUES (?, ?, ?) RETURNING id`,
			a.ID, k.Hash, micros(k.CreatedAt)).Scan(&k.ID); err != nil {
			return wrap("create account: key", err)
		}
		return nil
	})
	if err != nil {
		return nanohook.Account{}, nanohook.APIKey{}, err
	}
	return a, k, nil
}

// GetAccount returns an account by id.
func (s *Store) GetAccount(ctx context.Context, id int64) (nanohook.Account, error) {
	a := nanohook.Account{ID: id}
	var created int64
	err := s.stmts.getAccount.QueryRowContext(ctx, id).Scan(&a.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nanohook.Account{}, notFound("account", id)
	}
	if err != nil {
		return nanohook.Account{}, wrap("get account", err)
	}
	a.CreatedAt = fromMicros(created)
	return a, nil
}

// CreateAPIKey adds a key to an existing account; the foreign key on
// api_keys.account_id is what detects a missing account.
func (s *Store) CreateAPIKey(ctx context.Context, p store.CreateAPIKeyParams) (nanohook.APIKey, error) {
	k := nanohook.NewAccountKey(p.AccountID, p.KeyHash, fromMicros(micros(p.Now)))
	// In a transaction, like every write, so that a held lock answers
	// within inTx's bound instead of queueing busy timeouts.
	return sqlshared.InTxValue(ctx, s.inTx, "create api key", func(tx *sql.Tx) (nanohook.APIKey, error) {
		err := tx.QueryRowContext(ctx, `INSERT INTO api_keys (account_id, hash, created_at) VALUES (?, ?, ?) RETURNING id`,
			k.AccountID, k.Hash, micros(k.CreatedAt)).Scan(&k.ID)
		if isForeignKey(err) {
			return k, notFound("account", k.AccountID)
		}
		if err != nil {
			return k, wrap("create api key", err)
		}
		return k, nil
	})
}

// DeleteAPIKey revokes a key rather than deleting it, so that audit trails
// can still name the key a request used. The interface passes no time, so
// revoked_at comes from the Store's clock; it decides nothing but the record.
func (s *Store) DeleteAPIKey(ctx context.Context, accountID, keyID int64) error {
	var n int64
	err := s.inTx(ctx, "delete api key", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ?
			WHERE id = ? AND account_id = ? AND revoked_at IS NULL`, micros(s.now()), keyID, accountID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return wrap("delete api key", err)
	}
	if n == 0 {
		return notFound("api key", keyID)
	}
	return nil
}

// APIKeyByHash finds the live (unrevoked) key with this hash. It runs on
// every authenticated request, so it is one lookup in the UNIQUE hash index.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (nanohook.APIKey, error) {
	var k nanohook.APIKey
	var created int64
	err := s.stmts.apiKeyByHash.QueryRowContext(ctx, hash).Scan(&k.ID, &k.AccountID, &k.Hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nanohook.APIKey{}, notFound("api key", "with this hash")
	}
	if err != nil {
		return nanohook.APIKey{}, wrap("api key by hash", err)
	}
	k.CreatedAt = fromMicros(created)
	return k, nil
}
