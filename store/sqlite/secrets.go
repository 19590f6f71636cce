package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// secretBatch is how many endpoints one step of CheckSecrets or
// ResealSecrets reads. A step of ResealSecrets is one write transaction:
// small enough that the API and the engine barely notice it holding the
// single writer, large enough that a big table takes few of them.
const secretBatch = 200

// resealPasses bounds how often ResealSecrets goes over the table again
// because rows changed under it (a rotation between its read and its
// write). SQLite's single writer makes that impossible here, but the
// compare-and-swap is kept so both drivers behave alike.
const resealPasses = 5

// SetKeyring sets the keys that seal endpoint secrets on write and open them
// on read; nil stores new secrets as plaintext and refuses sealed ones. It
// is meant to be called once, right after Open; it is safe at any time.
func (s *Store) SetKeyring(k *store.Keyring) { s.secrets.Set(k) }

// readEndpoint is scanEndpoint with the secret opened.
func (s *Store) readEndpoint(r scanner) (nanohook.Endpoint, error) {
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
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, after int64) ([]storedSecrets, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, secret, previous_secret FROM endpoints
		WHERE id > ? ORDER BY id LIMIT ?`, after, secretBatch)
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

// CheckSecrets opens every stored secret with the keyring, reading in
// batches on the read pool so that a large table holds no snapshot for
// long.
func (s *Store) CheckSecrets(ctx context.Context) error {
	check := s.secrets.Keyring().NewSecretCheck()
	for after := int64(0); ; {
		batch, err := secretsAfter(ctx, s.reader, after)
		if err != nil {
			return wrap("check secrets", err)
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

// ResealSecrets seals under the primary key every secret that is plaintext
// or sealed under another key, one write transaction per batch.
func (s *Store) ResealSecrets(ctx context.Context) (int, error) {
	k := s.secrets.Keyring()
	if k == nil {
		return 0, fmt.Errorf("sqlite: reseal secrets: %s is not set: there is no key to encrypt with", store.KeySetting)
	}
	total := 0
	for range resealPasses {
		check := k.NewSecretCheck()
		missed := 0
		for after := int64(0); ; {
			var batch []storedSecrets
			done, skipped := 0, 0 // counted into total and missed once committed
			err := s.inTx(ctx, "reseal secrets", func(tx *sql.Tx) error {
				var err error
				if batch, err = secretsAfter(ctx, tx, after); err != nil {
					return wrap("reseal secrets", err)
				}
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
					// Compare-and-swap: only the values read above are
					// replaced. updated_at is left alone: nothing a customer
					// sees changed.
					res, err := tx.ExecContext(ctx, `UPDATE endpoints SET secret = ?, previous_secret = ?
						WHERE id = ? AND secret = ? AND previous_secret = ?`,
						secret, previous, r.id, r.secret, r.previous)
					if err != nil {
						return wrap("reseal secrets", err)
					}
					if n, err := res.RowsAffected(); err != nil {
						return wrap("reseal secrets", err)
					} else if n == 1 {
						done++
					} else {
						skipped++
					}
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
	return total, fmt.Errorf("sqlite: reseal secrets: endpoints kept changing during %d passes; run it again", resealPasses)
}
