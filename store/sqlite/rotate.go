package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// RotateSecret replaces an endpoint's secret in one statement: the current
// secret becomes the previous one, valid until p.PreviousValidUntil (or
// dropped when that is not after p.Now).
func (s *Store) RotateSecret(ctx context.Context, p store.RotateSecretParams) (nanohook.Endpoint, error) {
	until := micros(p.PreviousValidUntil)
	if !nanohook.PreviousSecretValid(p.PreviousValidUntil, p.Now) {
		until = 0
	}
	// The previous secret is copied as stored (sealed or not): it is
	// opened like the current one when read.
	sealed, err := s.secrets.Seal(store.FieldSecret, p.ID, p.Secret)
	if err != nil {
		return nanohook.Endpoint{}, fmt.Errorf("sqlite: rotate secret: %w", err)
	}
	var e nanohook.Endpoint
	err = s.inTx(ctx, "rotate secret", func(tx *sql.Tx) error {
		var err error
		e, err = s.readEndpoint(tx.QueryRowContext(ctx, `UPDATE endpoints
			SET previous_secret = CASE WHEN ?1 > 0 THEN secret ELSE '' END,
			    previous_secret_until = ?1, secret = ?2, updated_at = ?3
			WHERE id = ?4 AND account_id = ?5 AND deleted_at IS NULL
			RETURNING `+endpointColumns, until, sealed, micros(p.Now), p.ID, p.AccountID))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("endpoint", p.ID)
		}
		if err != nil {
			return wrap("rotate secret", err)
		}
		return nil
	})
	return e, err
}
