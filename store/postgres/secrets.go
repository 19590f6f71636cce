package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// secretBatch is how many endpoints one step of CheckSecrets or
// ResealSecrets reads; a step of ResealSecrets is one short transaction, so
// that it never holds many row locks while the API and the engines run.
const secretBatch = 200

// resealPasses bounds how often ResealSecrets goes over the table again
// because rows changed under it: an endpoint rotated (on any node) between
// its read and its compare-and-swap is read again in the next pass, since
// rotating copied the old secret, perhaps sealed under an old key, into
// previous_secret.
const resealPasses = 5

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

// storedSecrets is one endpoint's secret columns as stored.
type storedSecrets struct {
	id               int64
	secret, previous string
}

// secretsAfter reads the secret columns of up to secretBatch endpoints with
// ids above after, deleted ones included: their secrets are at rest too.
func secretsAfter(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, after int64) ([]storedSecrets, error) {
	rows, err := q.Query(ctx, `SELECT id, secret, previous_secret FROM endpoints
		WHERE id > $1 ORDER BY id LIMIT $2`, after, secretBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedSecrets
	for rows.Next() {
		var r storedSecrets
		if err := rows.Scan(&r.id, &r.secret, &r.previous); err != nil {
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
	check := s.secrets.Keyring().NewSecretCheck()
	for after := int64(0); ; {
		batch, err := s.secretsBatch(ctx, after)
		if err != nil {
			return err
		}
		for _, r := range batch {
			check.Add(r.id, r.secret, r.previous)
		}
		if len(batch) < secretBatch {
			return check.Err()
		}
		after = batch[len(batch)-1].id
	}
}

// secretsBatch is secretsAfter on a connection of its own.
func (s *Store) secretsBatch(ctx context.Context, after int64) ([]storedSecrets, error) {
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
}

// ResealSecrets seals under the primary key every secret that is plaintext
// or sealed under another key, one transaction per batch. Each row is
// swapped only if both its columns still hold what was read (under READ
// COMMITTED the UPDATE re-checks that against the latest committed row), so
// a concurrent rotation always wins and its row is read again.
func (s *Store) ResealSecrets(ctx context.Context) (int, error) {
	k := s.secrets.Keyring()
	if k == nil {
		return 0, fmt.Errorf("postgres: reseal secrets: %s is not set: there is no key to encrypt with", store.KeySetting)
	}
	total := 0
	for range resealPasses {
		check := k.NewSecretCheck()
		missed := 0
		for after := int64(0); ; {
			var batch []storedSecrets
			done, skipped := 0, 0 // counted into total and missed once committed
			err := s.inTx(ctx, "reseal secrets", func(tx pgx.Tx) error {
				var err error
				if batch, err = secretsAfter(ctx, tx, after); err != nil {
					return wrap("reseal secrets", err)
				}
				b := &pgx.Batch{}
				for _, r := range batch {
					secret, c1, err1 := k.Reseal(r.secret)
					previous, c2, err2 := k.Reseal(r.previous)
					if err1 != nil || err2 != nil {
						check.Add(r.id, r.secret, r.previous)
						continue
					}
					if !c1 && !c2 {
						continue
					}
					// updated_at is left alone: nothing a customer sees
					// changed.
					b.Queue(`UPDATE endpoints SET secret = $1, previous_secret = $2
						WHERE id = $3 AND secret = $4 AND previous_secret = $5`,
						secret, previous, r.id, r.secret, r.previous)
				}
				if b.Len() == 0 {
					return nil
				}
				br := tx.SendBatch(ctx, b)
				for range b.Len() {
					tag, err := br.Exec()
					if err != nil {
						_ = br.Close()
						return wrap("reseal secrets", err)
					}
					if tag.RowsAffected() == 1 {
						done++
					} else {
						skipped++
					}
				}
				if err := br.Close(); err != nil {
					return wrap("reseal secrets", err)
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += done
			missed += skipped
			if len(batch) < secretBatch {
				break
			}
			after = batch[len(batch)-1].id
		}
		if missed == 0 {
			return total, check.Err()
		}
	}
	return total, fmt.Errorf("postgres: reseal secrets: endpoints kept changing during %d passes; run it again", resealPasses)
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
