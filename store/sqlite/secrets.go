package sqlite

import (
	"context"
	"database/sql"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// SetKeyring sets the keys that seal endpoint URLs and secrets on write and
// open them on read; nil stores new values as plaintext and refuses sealed
// ones. It
// is meant to be called once, right after Open; it is safe at any time.
func (s *Store) SetKeyring(k *store.Keyring) { s.secrets.Set(k) }

// readEndpoint is scanEndpoint with the URL and secret opened.
func (s *Store) readEndpoint(r scanner) (nanohook.Endpoint, error) {
	return s.secrets.OpenedEndpoint(scanEndpoint(r))
}

// secretsAfter reads the sealed columns of up to store.SecretBatch
// endpoints with ids above after (sqlshared.SecretsAfterSQL).
func secretsAfter(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, after int64) ([]store.StoredSecrets, error) {
	rows, err := q.QueryContext(ctx, secretsAfterSQL, after, store.SecretBatch)
	return sqlshared.CollectQuery(rows, err, sqlshared.ScanStoredSecrets)
}

var secretsAfterSQL = sqlshared.Numbered(sqlshared.SecretsAfterSQL)

// CheckSecrets opens every stored URL and secret with the keyring, reading in
// batches on the read pool so that a large table holds no snapshot for
// long.
func (s *Store) CheckSecrets(ctx context.Context) error {
	return store.CheckSecrets(ctx, s.secrets.Keyring(), func(ctx context.Context, after int64) ([]store.StoredSecrets, error) {
		batch, err := secretsAfter(ctx, s.reader, after)
		if err != nil {
			return nil, wrap("check secrets", err)
		}
		return batch, nil
	})
}

// ResealSecrets seals under the primary key, in the current format, every
// URL and secret that is not yet, one write transaction per batch. SQLite's
// single writer means no rotation can come between a batch's read and its
// write, but the swaps are compare-and-swap all the same, as on PostgreSQL.
func (s *Store) ResealSecrets(ctx context.Context) (int, error) {
	return store.ResealSecrets(ctx, "sqlite", s.secrets.Keyring(), func(ctx context.Context, after int64, plan func([]store.StoredSecrets) []store.SecretSwap) (batch []store.StoredSecrets, swapped int, err error) {
		err = s.inTx(ctx, "reseal secrets", func(tx *sql.Tx) error {
			swapped = 0 // counted afresh if inTx runs again
			var err error
			if batch, err = secretsAfter(ctx, tx, after); err != nil {
				return wrap("reseal secrets", err)
			}
			for _, w := range plan(batch) {
				// updated_at is left alone: nothing a customer sees changed.
				res, err := tx.ExecContext(ctx, `UPDATE endpoints SET url = ?, secret = ?, previous_secret = ?
					WHERE id = ? AND url = ? AND secret = ? AND previous_secret = ?`,
					w.URL, w.Secret, w.Previous, w.Old.ID, w.Old.URL, w.Old.Secret, w.Old.Previous)
				if err != nil {
					return wrap("reseal secrets", err)
				}
				n, err := res.RowsAffected()
				if err != nil {
					return wrap("reseal secrets", err)
				}
				swapped += int(n)
			}
			return nil
		})
		return batch, swapped, err
	})
}
