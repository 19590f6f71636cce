package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// endpointColumns is the column list scanEndpoint reads, in its order.
const endpointColumns = sqlshared.EndpointColumns

// failPendingOfEndpointSQL fails the pending deliveries of a disabled
// endpoint: nothing will send them. Their leases are dropped so that a late
// completion of an in-flight attempt records the attempt without reviving
// them. $1 last_error, $2 updated_at, $3 endpoint.
//
// It must run as its own statement after the one that disabled the
// endpoint: under READ COMMITTED each statement sees what committed before it
// started, which then includes the deliveries of any publish that held the
// endpoint (FOR SHARE in the fan-out) while the disabling waited for it.
var failPendingOfEndpointSQL = `UPDATE deliveries
	SET status = 'failed', last_error = $1,
	    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $2
	WHERE ` + pendingOfEndpoint("$3")

// nextEndpointIDSQL takes the id of an endpoint about to be created from
// the identity's sequence, so that its URL and secret can be sealed for it
// (store.Field) before the row is written.
const nextEndpointIDSQL = `SELECT nextval(pg_get_serial_sequence('endpoints', 'id'))`

// insertEndpointSQL creates an active endpoint: $1 id (from
// nextEndpointIDSQL), $2 account, $3 sealed url, $4 events, $5 description,
// $6 sealed secret, $7 now.
const insertEndpointSQL = `INSERT INTO endpoints
	(id, account_id, url, events, status, description, disabled_reason, secret, created_at, updated_at)
	OVERRIDING SYSTEM VALUE
	VALUES ($1, $2, $3, $4, 'active', $5, '', $6, $7, $7) RETURNING ` + endpointColumns

// lockAccountSQL serialises the creates of one account's endpoints, so that
// each counts the live endpoints after the one before it committed. FOR NO
// KEY UPDATE conflicts with itself but not with the FOR KEY SHARE that
// foreign keys take: publishes and other writes of the account's rows go
// on meanwhile.
const lockAccountSQL = `SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`

// countLiveEndpointsSQL counts an account's live endpoints, stopping at $2:
// an account with more (created before the limit was lowered) costs no
// more to refuse.
const countLiveEndpointsSQL = `SELECT count(*) FROM (SELECT 1 FROM endpoints
	WHERE account_id = $1 AND deleted_at IS NULL LIMIT $2) AS live`

// CreateEndpoint stores a new, active endpoint. A missing account surfaces as
// the foreign key failing (or, with a limit, as no account row to lock) and
// is reported as store.ErrNotFound. With a limit on live endpoints, the
// account row is locked before they are counted (lockAccountSQL): under
// READ COMMITTED two creates that counted at once would both fit. The id is
// taken first (nextEndpointIDSQL) so that the URL and secret are written
// sealed for it.
func (s *Store) CreateEndpoint(ctx context.Context, p store.CreateEndpointParams) (nanohook.Endpoint, error) {
	var e nanohook.Endpoint
	err := s.inTx(ctx, "create endpoint", func(tx pgx.Tx) error {
		if p.MaxEndpoints > 0 {
			var one, live int
			err := tx.QueryRow(ctx, lockAccountSQL, p.AccountID).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return notFound("account", p.AccountID)
			}
			if err != nil {
				return wrap("create endpoint: lock account", err)
			}
			if err := tx.QueryRow(ctx, countLiveEndpointsSQL, p.AccountID, p.MaxEndpoints).Scan(&live); err != nil {
				return wrap("create endpoint: count endpoints", err)
			}
			if err := nanohook.CheckEndpointLimit(live, p.MaxEndpoints); err != nil {
				return err
			}
		}
		var id int64
		if err := tx.QueryRow(ctx, nextEndpointIDSQL).Scan(&id); err != nil {
			return wrap("create endpoint: next id", err)
		}
		url, err := s.secrets.Seal(store.FieldURL, id, p.URL)
		if err != nil {
			return fmt.Errorf("postgres: create endpoint: %w", err)
		}
		secret, err := s.secrets.Seal(store.FieldSecret, id, p.Secret)
		if err != nil {
			return fmt.Errorf("postgres: create endpoint: %w", err)
		}
		e, err = s.readEndpoint(tx.QueryRow(ctx, insertEndpointSQL,
			id, p.AccountID, url, eventStrings(p.Events), p.Description, secret, truncMicros(p.Now)))
		if isForeignKey(err) {
			return notFound("account", p.AccountID)
		}
		if err != nil {
			return wrap("create endpoint", err)
		}
		return nil
	})
	if err != nil {
		return nanohook.Endpoint{}, err
	}
	return e, nil
}

// CountEndpoints counts the account's live endpoints from its index
// (endpoints_account_live).
func (s *Store) CountEndpoints(ctx context.Context, accountID int64) (int, error) {
	c, err := s.acquire(ctx, "count endpoints")
	if err != nil {
		return 0, err
	}
	defer c.Release()
	var n int
	err = c.QueryRow(ctx, `SELECT (SELECT count(*) FROM endpoints
			WHERE account_id = a.id AND deleted_at IS NULL)
		FROM accounts a WHERE a.id = $1`, accountID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound("account", accountID)
	}
	if err != nil {
		return 0, wrap("count endpoints", err)
	}
	return n, nil
}

// GetEndpoint returns a live endpoint of the account. Another account's
// endpoint and a deleted one are both store.ErrNotFound.
func (s *Store) GetEndpoint(ctx context.Context, accountID, id int64) (nanohook.Endpoint, error) {
	c, err := s.acquire(ctx, "get endpoint")
	if err != nil {
		return nanohook.Endpoint{}, err
	}
	defer c.Release()
	e, err := s.readEndpoint(c.QueryRow(ctx, `SELECT `+endpointColumns+`
		FROM endpoints WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL`, id, accountID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nanohook.Endpoint{}, notFound("endpoint", id)
	}
	if err != nil {
		return nanohook.Endpoint{}, wrap("get endpoint", err)
	}
	return e, nil
}

// ListEndpoints pages through the live endpoints of an account by ascending
// id (keyset pagination: stable while endpoints are added or deleted).
// Limit is clamped to 1..1000; the API picks its own default.
func (s *Store) ListEndpoints(ctx context.Context, p store.ListEndpointsParams) ([]nanohook.Endpoint, error) {
	c, err := s.acquire(ctx, "list endpoints")
	if err != nil {
		return nil, err
	}
	defer c.Release()
	rows, err := c.Query(ctx, `SELECT `+endpointColumns+`
		FROM endpoints WHERE account_id = $1 AND deleted_at IS NULL AND id > $2
		ORDER BY id LIMIT $3`, p.AccountID, p.AfterID, store.ListLimit(p.Limit))
	out, err := sqlshared.CollectQuery(rows, err, s.readEndpoint)
	if err != nil {
		return nil, wrap("list endpoints", err)
	}
	return out, nil
}

// UpdateEndpoint changes the non-nil fields of a live endpoint in one
// transaction. Disabling it fails its pending deliveries (nothing will send
// them); activating it clears the disabled reason unless one is given.
//
// The row is read FOR NO KEY UPDATE, so concurrent updates of one endpoint
// apply one after the other (each sees the previous one's result, as with
// SQLite's single writer), and a publish fanning out to the endpoint finishes
// before the pending deliveries are failed.
func (s *Store) UpdateEndpoint(ctx context.Context, p store.UpdateEndpointParams) (nanohook.Endpoint, error) {
	return sqlshared.InTxValue(ctx, s.inTx, "update endpoint", func(tx pgx.Tx) (nanohook.Endpoint, error) {
		e, err := s.readEndpoint(tx.QueryRow(ctx, `SELECT `+endpointColumns+`
			FROM endpoints WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
			FOR NO KEY UPDATE`, p.ID, p.AccountID))
		if errors.Is(err, pgx.ErrNoRows) {
			return e, notFound("endpoint", p.ID)
		}
		if err != nil {
			return e, wrap("update endpoint", err)
		}
		ch := nanohook.ApplyEndpointPatch(e, p.Patch(), truncMicros(p.Now))
		return ch.Endpoint, s.writeEndpointChange(ctx, tx, ch)
	})
}

// writeEndpointChange writes what nanohook.ApplyEndpointPatch decided: the
// endpoint's row, then, as a statement of its own (see
// failPendingOfEndpointSQL), its pending deliveries failed when it was
// disabled.
func (s *Store) writeEndpointChange(ctx context.Context, tx pgx.Tx, ch nanohook.EndpointChange) error {
	e := &ch.Endpoint
	var url *string // NULL keeps the stored URL
	if ch.URLChanged {
		sealed, err := s.secrets.Seal(store.FieldURL, e.ID, e.URL)
		if err != nil {
			return wrap("update endpoint", err)
		}
		url = &sealed
	}
	if _, err := tx.Exec(ctx, `UPDATE endpoints
		SET url = coalesce($1, url), events = $2, status = $3, description = $4, disabled_reason = $5, updated_at = $6,
		    failing_since = CASE WHEN $8 THEN NULL ELSE failing_since END
		WHERE id = $7`,
		url, eventStrings(e.Events), string(e.Status), e.Description, e.DisabledReason, e.UpdatedAt, e.ID,
		ch.Reenabled); err != nil {
		return wrap("update endpoint", err)
	}
	if ch.FailPending {
		if _, err := tx.Exec(ctx, failPendingOfEndpointSQL, ch.PendingError, e.UpdatedAt, e.ID); err != nil {
			return wrap("update endpoint: fail pending deliveries", err)
		}
	}
	return nil
}

// DeleteEndpoint soft-deletes a live endpoint (its deliveries keep their
// history) and cancels its pending deliveries, in one transaction of two
// statements; the second sees the deliveries of any publish that was fanning
// out to the endpoint while the first waited for its lock.
func (s *Store) DeleteEndpoint(ctx context.Context, accountID, id int64, now time.Time) error {
	now = truncMicros(now)
	status, lastError, _ := nanohook.EndUndeliverable(nanohook.EndpointState{Deleted: true})
	return s.inTx(ctx, "delete endpoint", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE endpoints SET deleted_at = $1, updated_at = $1
			WHERE id = $2 AND account_id = $3 AND deleted_at IS NULL`, now, id, accountID)
		if err != nil {
			return wrap("delete endpoint", err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("endpoint", id)
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries
			SET status = $3, last_error = $4,
			    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $1
			WHERE `+pendingOfEndpoint("$2"), now, id, status, lastError); err != nil {
			return wrap("delete endpoint: cancel pending deliveries", err)
		}
		return nil
	})
}

// DisableFailingEndpoints disables the live, active endpoints failing since
// before p.FailingSince (a range of the partial index endpoints_failing)
// and fails their pending deliveries, in one transaction. The endpoints are
// locked in id order, as a completion locks them, and each is disabled
// before its deliveries are touched, as UpdateEndpoint does.
func (s *Store) DisableFailingEndpoints(ctx context.Context, p store.DisableFailingParams) ([]int64, error) {
	ids := []int64{}
	now := truncMicros(p.Now)
	prefix := pgText(p.Reason)
	err := s.inTx(ctx, "disable failing endpoints", func(tx pgx.Tx) error {
		ids = ids[:0]
		rows, err := tx.Query(ctx, `SELECT id, failing_since FROM endpoints
			WHERE failing_since < $1 AND status = 'active' AND deleted_at IS NULL
			ORDER BY id
			FOR NO KEY UPDATE`, truncMicros(p.FailingSince))
		if err != nil {
			return wrap("disable failing endpoints", err)
		}
		var since []time.Time
		for rows.Next() {
			var id int64
			var fs time.Time
			if err := rows.Scan(&id, &fs); err != nil {
				rows.Close()
				return wrap("disable failing endpoints", err)
			}
			ids = append(ids, id)
			since = append(since, fs)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap("disable failing endpoints", err)
		}
		if len(ids) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		for i, id := range ids {
			ch := nanohook.ApplyEndpointPatch(nanohook.Endpoint{ID: id, Status: nanohook.EndpointActive},
				nanohook.DisableFailing(prefix, since[i]), now)
			b.Queue(`UPDATE endpoints SET status = $1, disabled_reason = $2, updated_at = $3 WHERE id = $4`,
				string(ch.Endpoint.Status), ch.Endpoint.DisabledReason, now, id)
			b.Queue(failPendingOfEndpointSQL, ch.PendingError, now, id)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return wrap("disable failing endpoints", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// eventStrings is ts as the text[] the events column holds.
func eventStrings(ts []nanohook.EventType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

func scanEndpoint(r sqlshared.Scanner) (nanohook.Endpoint, error) {
	var e nanohook.Endpoint
	var events []string
	var status string
	var previousUntil *time.Time
	if err := r.Scan(&e.ID, &e.AccountID, &e.URL, &events, &status, &e.Description, &e.DisabledReason,
		&e.Secret, &e.CreatedAt, &e.UpdatedAt, &previousUntil); err != nil {
		return nanohook.Endpoint{}, err
	}
	if previousUntil != nil {
		e.PreviousSecretExpiresAt = *previousUntil
	}
	e.Events = make([]nanohook.EventType, len(events))
	for i, t := range events {
		e.Events[i] = nanohook.EventType(t)
	}
	e.Status = nanohook.EndpointStatus(status)
	return e, nil
}
