package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// SetKeyring sets the keys that seal endpoint secrets on write and open them
// on read; nil stores new secrets as plaintext and refuses sealed ones. It
// is meant to be called once, right after Open; it is safe at any time.
// Every node sharing the database needs keys that open every row.
func (s *Store) SetKeyring(k *store.Keyring) { s.secrets.Set(k) }

// readEndpoint is scanEndpoint with the secret opened.
func (s *Store) readEndpoint(r pgx.Row) (nanohook.Endpoint, error) {
	e, err := scanEndpoint(r)
	if err != nil {
		return e, err
	}
	if e.Secret, err = s.secrets.Open(e.ID, e.Secret); err != nil {
		return nanohook.Endpoint{}, err
	}
	return e, nil
}

// secretsAfter reads the secret columns of up to store.SecretBatch
// endpoints with ids above after, deleted ones included: their secrets are
// at rest too.
func secretsAfter(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, after int64) ([]store.StoredSecrets, error) {
	rows, err := q.Query(ctx, `SELECT id, secret, previous_secret FROM endpoints
		WHERE id > $1 ORDER BY id LIMIT $2`, after, store.SecretBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.StoredSecrets
	for rows.Next() {
		var r store.StoredSecrets
		if err := rows.Scan(&r.ID, &r.Secret, &r.Previous); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CheckSecrets opens every stored secret with the keyring, in batches. Each
// batch takes a connection of its own, so that a large table is not one
// call: a call is cut at callTimeout, and serve would refuse to start.
func (s *Store) CheckSecrets(ctx context.Context) error {
	return store.CheckSecrets(ctx, s.secrets.Keyring(), func(ctx context.Context, after int64) ([]store.StoredSecrets, error) {
		c, err := s.acquire(ctx, "check secrets")
		if err != nil {
			return nil, err
		}
		defer c.Release()
		batch, err := secretsAfter(ctx, c, after)
		if err != nil {
			return nil, wrap("check secrets", err)
		}
		return batch, nil
	})
}

// ResealSecrets seals under the primary key every secret that is plaintext
// or sealed under another key, one transaction per batch. Each row is
// swapped only if both its columns still hold what was read (under READ
// COMMITTED the UPDATE re-checks that against the latest committed row), so
// a concurrent rotation on any node always wins and its row is read again
// in the next pass.
func (s *Store) ResealSecrets(ctx context.Context) (int, error) {
	return store.ResealSecrets(ctx, "postgres", s.secrets.Keyring(), func(ctx context.Context, after int64, plan func([]store.StoredSecrets) []store.SecretSwap) (batch []store.StoredSecrets, swapped int, err error) {
		err = s.inTx(ctx, "reseal secrets", func(tx pgx.Tx) error {
			swapped = 0
			var err error
			if batch, err = secretsAfter(ctx, tx, after); err != nil {
				return wrap("reseal secrets", err)
			}
			swaps := plan(batch)
			if len(swaps) == 0 {
				return nil
			}
			b := &pgx.Batch{}
			for _, w := range swaps {
				// updated_at is left alone: nothing a customer sees changed.
				b.Queue(`UPDATE endpoints SET secret = $1, previous_secret = $2
					WHERE id = $3 AND secret = $4 AND previous_secret = $5`,
					w.Secret, w.Previous, w.Old.ID, w.Old.Secret, w.Old.Previous)
			}
			br := tx.SendBatch(ctx, b)
			for range swaps {
				tag, err := br.Exec()
				if err != nil {
					_ = br.Close()
					return wrap("reseal secrets", err)
				}
				swapped += int(tag.RowsAffected())
			}
			if err := br.Close(); err != nil {
				return wrap("reseal secrets", err)
			}
			return nil
		})
		return batch, swapped, err
	})
}

// openClaimSecrets opens the secrets of a claim in place and returns the
// deliveries whose secrets opened. One whose secret cannot be opened (a key
// missing from this node's keyring, a corrupt row) is handed back due
// store.SecretRetryDelay later, with the customer-safe reason in last_error
// and no attempt counted; the rest of the claim goes ahead. Failing the
// whole claim instead would stop every delivery: the unopenable one stays
// first in due order and would fail every later claim too. Pushing it back
// keeps the claimer from tripping over it at every poll, and a node with the
// key, or this one restarted with it, takes it at its new time. No
// notification is sent: the other nodes find it when it is due.
//
// The store has no logger, so the detail (endpoint, key id, setting) is not
// reported here: CheckSecrets reports it, at serve's start and through
// `nanohook secrets check`.
func (s *Store) openClaimSecrets(ctx context.Context, c *conn, out []store.ClaimedDelivery, now time.Time) ([]store.ClaimedDelivery, error) {
	var ids, tokens []int64
	kept := out[:0]
	for _, cd := range out {
		var err1, err2 error
		cd.Secret, err1 = s.secrets.Open(cd.EndpointID, cd.Secret)
		cd.PreviousSecret, err2 = s.secrets.Open(cd.EndpointID, cd.PreviousSecret)
		if err1 != nil || err2 != nil {
			ids, tokens = append(ids, cd.DeliveryID), append(tokens, cd.Token)
			continue
		}
		kept = append(kept, cd)
	}
	if len(ids) == 0 {
		return kept, nil
	}
	// The lease token in the WHERE makes sure only this claim's rows move.
	if _, err := c.Exec(ctx, `UPDATE deliveries d
		SET next_attempt_at = $3, last_error = $4, leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $5
		FROM unnest($1::bigint[], $2::bigint[]) AS v(id, lease_token)
		WHERE d.id = v.id AND d.lease_token = v.lease_token`,
		ids, tokens, us(now.Add(store.SecretRetryDelay)), store.SecretUnopenedError, us(now)); err != nil {
		return nil, wrap("claim deliveries: postpone undecryptable", err)
	}
	return kept, nil
}

// openTestSecrets opens the secrets of a test delivery in place. The ping
// is already written and leased when they turn out not to open; it is
// failed at once, so that no claim trips over it later and the customer's
// history says why nothing was sent. The customer reads last_error, so it
// gets the generic reason; the caller gets the detail in the error.
func (s *Store) openTestSecrets(ctx context.Context, c *conn, cd *store.ClaimedDelivery, now time.Time) error {
	var err error
	if cd.Secret, err = s.secrets.Open(cd.EndpointID, cd.Secret); err == nil {
		cd.PreviousSecret, err = s.secrets.Open(cd.EndpointID, cd.PreviousSecret)
	}
	if err == nil {
		return nil
	}
	if _, ferr := c.Exec(ctx, `UPDATE deliveries
		SET status = 'failed', last_error = $1, leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $2
		WHERE id = $3 AND lease_token = $4`, store.SecretUnopenedError, us(now), cd.DeliveryID, cd.Token); ferr != nil {
		return errors.Join(wrap("create test delivery", err), wrap("create test delivery: fail", ferr))
	}
	return wrap("create test delivery", err)
}
