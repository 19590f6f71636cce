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

// RotateSecret replaces an endpoint's secret in one statement: the current
// secret becomes the previous one, valid until p.PreviousValidUntil (or
// dropped when that is not after p.Now).
func (s *Store) RotateSecret(ctx context.Context, p store.RotateSecretParams) (nanohook.Endpoint, error) {
	var until *time.Time
	if nanohook.PreviousSecretValid(p.PreviousValidUntil, p.Now) {
		u := truncMicros(p.PreviousValidUntil)
		until = &u
	}
	// The previous secret is copied as stored (sealed or not): it is
	// opened like the current one when read.
	sealed, err := s.secrets.Seal(store.FieldSecret, p.ID, p.Secret)
	if err != nil {
		return nanohook.Endpoint{}, fmt.Errorf("postgres: rotate secret: %w", err)
	}
	var e nanohook.Endpoint
	err = s.inTx(ctx, "rotate secret", func(tx pgx.Tx) error {
		var err error
		e, err = s.readEndpoint(tx.QueryRow(ctx, `UPDATE endpoints
			SET previous_secret = CASE WHEN $1::timestamptz IS NULL THEN '' ELSE secret END,
			    previous_secret_until = $1, secret = $2, updated_at = $3
			WHERE id = $4 AND account_id = $5 AND deleted_at IS NULL
			RETURNING `+endpointColumns, until, sealed, truncMicros(p.Now), p.ID, p.AccountID))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("endpoint", p.ID)
		}
		if err != nil {
			return wrap("rotate secret", err)
		}
		return nil
	})
	return e, err
}
