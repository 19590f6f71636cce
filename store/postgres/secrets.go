package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// SetKeyring sets the keys that seal endpoint URLs and secrets on write and
// open them on read; nil stores new values as plaintext and refuses sealed
// ones. It
// is meant to be called once, right after Open; it is safe at any time.
// Every node sharing the database needs keys that open every row.
func (s *Store) SetKeyring(k *store.Keyring) { s.secrets.Set(k) }

// readEndpoint is scanEndpoint with the URL and secret opened.
func (s *Store) readEndpoint(r sqlshared.Scanner) (nanohook.Endpoint, error) {
	return s.secrets.OpenedEndpoint(scanEndpoint(r))
}

// secretsAfter reads the sealed columns of up to store.SecretBatch
// endpoints with ids above after (sqlshared.SecretsAfterSQL).
func secretsAfter(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, after int64) ([]store.StoredSecrets, error) {
	rows, err := q.Query(ctx, sqlshared.SecretsAfterSQL, after, store.SecretBatch)
	return sqlshared.CollectQuery(rows, err, sqlshared.ScanStoredSecrets)
}

// CheckSecrets opens every stored URL and secret with the keyring, in
// batches. Each
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

// ResealSecrets seals under the primary key, in the current format, every
// URL and secret that is not yet, one transaction per batch. Each row is
// swapped only if its three columns still hold what was read (under READ
// COMMITTED the UPDATE re-checks that against the latest committed row), so
// a concurrent rotation or URL change on any node always wins and its row is
// read again in the next pass.
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
				b.Queue(`UPDATE endpoints SET url = $1, secret = $2, previous_secret = $3
					WHERE id = $4 AND url = $5 AND secret = $6 AND previous_secret = $7`,
					w.URL, w.Secret, w.Previous, w.Old.ID, w.Old.URL, w.Old.Secret, w.Old.Previous)
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

// openClaims opens the URLs and secrets of a claim in place and returns the
// deliveries whose values opened. One whose URL or secret cannot be opened
// (a key missing from this node's keyring, a corrupt row) is handed back due
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
func (s *Store) openClaims(ctx context.Context, c *conn, out []store.ClaimedDelivery, now time.Time) ([]store.ClaimedDelivery, error) {
	var ids, tokens []int64
	kept := out[:0]
	for _, cd := range out {
		if err := s.secrets.OpenClaim(&cd); err != nil {
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
		ids, tokens, truncMicros(now.Add(store.SecretRetryDelay)), store.SecretUnopenedError, truncMicros(now)); err != nil {
		return nil, wrap("claim deliveries: postpone undecryptable", err)
	}
	return kept, nil
}

// openTestDelivery opens the URL and secrets of a test delivery in place.
// The ping is already written and leased when they turn out not to open;
// it is failed at once, so that no claim trips over it later and the
// customer's history says why nothing was sent. The customer reads
// last_error, so it gets the generic reason; the caller gets the detail in
// the error.
func (s *Store) openTestDelivery(ctx context.Context, c *conn, cd *store.ClaimedDelivery, now time.Time) error {
	err := s.secrets.OpenClaim(cd)
	if err == nil {
		return nil
	}
	if _, ferr := c.Exec(ctx, `UPDATE deliveries
		SET status = 'failed', last_error = $1, leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $2
		WHERE id = $3 AND lease_token = $4`, store.SecretUnopenedError, truncMicros(now), cd.DeliveryID, cd.Token); ferr != nil {
		return errors.Join(wrap("create test delivery", err), wrap("create test delivery: fail", ferr))
	}
	return wrap("create test delivery", err)
}
