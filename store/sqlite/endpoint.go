package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// endpointColumns is the column list scanEndpoint reads, in its order.
const endpointColumns = sqlshared.EndpointColumns

// CreateEndpoint stores a new, active endpoint. A missing account surfaces as
// the foreign key failing and is reported as store.ErrNotFound. The limit
// on live endpoints is counted inside the write transaction, which holds
// SQLite's one write lock (BEGIN IMMEDIATE), so concurrent creates count
// one after another.
//
// The URL and secret are sealed for the endpoint's id (store.Field), which
// the insert picks: the row goes in with both empty and gets them, sealed,
// in the same transaction, so that neither is ever written in clear.
func (s *Store) CreateEndpoint(ctx context.Context, p store.CreateEndpointParams) (nanohook.Endpoint, error) {
	var e nanohook.Endpoint
	err := s.inTx(ctx, "create endpoint", func(tx *sql.Tx) error {
		if p.MaxEndpoints > 0 {
			// Counting stops at the limit: an account with more (created
			// before the limit was lowered) costs no more to refuse.
			var live int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM endpoints
				WHERE account_id = ? AND deleted_at IS NULL LIMIT ?)`, p.AccountID, p.MaxEndpoints).Scan(&live); err != nil {
				return wrap("create endpoint: count endpoints", err)
			}
			if err := nanohook.CheckEndpointLimit(live, p.MaxEndpoints); err != nil {
				return err
			}
		}
		var id int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO endpoints
			(account_id, url, events, status, description, disabled_reason, secret, created_at, updated_at)
			VALUES (?, '', ?, 'active', ?, '', '', ?, ?) RETURNING id`,
			p.AccountID, joinEvents(p.Events), p.Description, micros(p.Now), micros(p.Now)).Scan(&id); err != nil {
			return err
		}
		url, err := s.secrets.Seal(store.FieldURL, id, p.URL)
		if err != nil {
			return err
		}
		secret, err := s.secrets.Seal(store.FieldSecret, id, p.Secret)
		if err != nil {
			return err
		}
		e, err = s.readEndpoint(tx.QueryRowContext(ctx, `UPDATE endpoints SET url = ?, secret = ?
			WHERE id = ? RETURNING `+endpointColumns, url, secret, id))
		return err
	})
	if isForeignKey(err) {
		return nanohook.Endpoint{}, notFound("account", p.AccountID)
	}
	if err != nil {
		return nanohook.Endpoint{}, wrap("create endpoint", err)
	}
	return e, nil
}

// CountEndpoints counts the account's live endpoints from its index
// (endpoints_account_live), on the read pool.
func (s *Store) CountEndpoints(ctx context.Context, accountID int64) (int, error) {
	var n int
	err := s.stmts.countEndpoints.QueryRowContext(ctx, accountID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
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
	e, err := s.readEndpoint(s.reader.QueryRowContext(ctx, `SELECT `+endpointColumns+`
		FROM endpoints WHERE id = ? AND account_id = ? AND deleted_at IS NULL`, id, accountID))
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := s.reader.QueryContext(ctx, `SELECT `+endpointColumns+`
		FROM endpoints WHERE account_id = ? AND deleted_at IS NULL AND id > ?
		ORDER BY id LIMIT ?`, p.AccountID, p.AfterID, store.ListLimit(p.Limit))
	out, err := sqlshared.CollectQuery(rows, err, s.readEndpoint)
	if err != nil {
		return nil, wrap("list endpoints", err)
	}
	return out, nil
}

// UpdateEndpoint changes the non-nil fields of a live endpoint in one
// transaction. Disabling it fails its pending deliveries (nothing will send
// them); activating it clears the disabled reason unless one is given.
func (s *Store) UpdateEndpoint(ctx context.Context, p store.UpdateEndpointParams) (nanohook.Endpoint, error) {
	return sqlshared.InTxValue(ctx, s.inTx, "update endpoint", func(tx *sql.Tx) (nanohook.Endpoint, error) {
		e, err := s.readEndpoint(tx.QueryRowContext(ctx, `SELECT `+endpointColumns+`
			FROM endpoints WHERE id = ? AND account_id = ? AND deleted_at IS NULL`, p.ID, p.AccountID))
		if errors.Is(err, sql.ErrNoRows) {
			return e, notFound("endpoint", p.ID)
		}
		if err != nil {
			return e, wrap("update endpoint", err)
		}
		ch := nanohook.ApplyEndpointPatch(e, p.Patch(), fromMicros(micros(p.Now)))
		return ch.Endpoint, s.writeEndpointChange(ctx, tx, ch)
	})
}

// writeEndpointChange writes what nanohook.ApplyEndpointPatch decided: the
// endpoint's row and, when it was disabled, its pending deliveries failed.
func (s *Store) writeEndpointChange(ctx context.Context, tx *sql.Tx, ch nanohook.EndpointChange) error {
	e := &ch.Endpoint
	var url any // NULL keeps the stored URL
	if ch.URLChanged {
		var err error
		if url, err = s.secrets.Seal(store.FieldURL, e.ID, e.URL); err != nil {
			return wrap("update endpoint", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE endpoints
		SET url = coalesce(?, url), events = ?, status = ?, description = ?, disabled_reason = ?, updated_at = ?,
		    failing_since = CASE WHEN ? THEN 0 ELSE failing_since END
		WHERE id = ?`,
		url, joinEvents(e.Events), string(e.Status), e.Description, e.DisabledReason, micros(e.UpdatedAt),
		ch.Reenabled, e.ID); err != nil {
		return wrap("update endpoint", err)
	}
	if ch.FailPending {
		if _, err := tx.StmtContext(ctx, s.stmts.failPendingOfEndpoint).ExecContext(ctx,
			ch.PendingError, micros(e.UpdatedAt), e.ID); err != nil {
			return wrap("update endpoint: fail pending deliveries", err)
		}
	}
	return nil
}

// DeleteEndpoint soft-deletes a live endpoint (its deliveries keep their
// history) and cancels its pending deliveries, in one transaction.
func (s *Store) DeleteEndpoint(ctx context.Context, accountID, id int64, now time.Time) error {
	status, lastError, _ := nanohook.EndUndeliverable(nanohook.EndpointState{Deleted: true})
	return s.inTx(ctx, "delete endpoint", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE endpoints SET deleted_at = ?, updated_at = ?
			WHERE id = ? AND account_id = ? AND deleted_at IS NULL`, micros(now), micros(now), id, accountID)
		if err != nil {
			return wrap("delete endpoint", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap("delete endpoint", err)
		} else if n == 0 {
			return notFound("endpoint", id)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries
			SET status = ?3, last_error = ?4,
			    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = ?1
			WHERE `+pendingOfEndpoint("?2"), micros(now), id, string(status), lastError); err != nil {
			return wrap("delete endpoint: cancel pending deliveries", err)
		}
		return nil
	})
}

// DisableFailingEndpoints disables the live, active endpoints failing since
// before p.FailingSince (a range of the partial index endpoints_failing)
// and fails their pending deliveries, in one transaction.
func (s *Store) DisableFailingEndpoints(ctx context.Context, p store.DisableFailingParams) ([]int64, error) {
	ids := []int64{}
	err := s.inTx(ctx, "disable failing endpoints", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, failing_since FROM endpoints
			WHERE failing_since > 0 AND failing_since < ? AND status = 'active' AND deleted_at IS NULL
			ORDER BY id`, micros(p.FailingSince))
		if err != nil {
			return wrap("disable failing endpoints", err)
		}
		var since []int64
		for rows.Next() {
			var id, fs int64
			if err := rows.Scan(&id, &fs); err != nil {
				rows.Close()
				return wrap("disable failing endpoints", err)
			}
			ids = append(ids, id)
			since = append(since, fs)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return wrap("disable failing endpoints", err)
		}
		rows.Close()
		failPending := tx.StmtContext(ctx, s.stmts.failPendingOfEndpoint)
		for i, id := range ids {
			ch := nanohook.ApplyEndpointPatch(nanohook.Endpoint{ID: id, Status: nanohook.EndpointActive},
				nanohook.DisableFailing(p.Reason, fromMicros(since[i])), p.Now)
			if _, err := tx.ExecContext(ctx, `UPDATE endpoints SET status = ?, disabled_reason = ?, updated_at = ?
				WHERE id = ?`, string(ch.Endpoint.Status), ch.Endpoint.DisabledReason, micros(p.Now), id); err != nil {
				return wrap("disable failing endpoints", err)
			}
			if _, err := failPending.ExecContext(ctx, ch.PendingError, micros(p.Now), id); err != nil {
				return wrap("disable failing endpoints: fail pending deliveries", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// Subscribed event types are stored comma-separated: event types never
// contain commas, and the fan-out query matches them with instr().
func joinEvents(ts []nanohook.EventType) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(t))
	}
	return b.String()
}

func splitEvents(s string) []nanohook.EventType {
	if s == "" {
		return []nanohook.EventType{}
	}
	parts := strings.Split(s, ",")
	out := make([]nanohook.EventType, len(parts))
	for i, p := range parts {
		out[i] = nanohook.EventType(p)
	}
	return out
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner = sqlshared.Scanner

func scanEndpoint(r scanner) (nanohook.Endpoint, error) {
	var e nanohook.Endpoint
	var events, status string
	var created, updated, previousUntil int64
	if err := r.Scan(&e.ID, &e.AccountID, &e.URL, &events, &status, &e.Description, &e.DisabledReason,
		&e.Secret, &created, &updated, &previousUntil); err != nil {
		return nanohook.Endpoint{}, err
	}
	if previousUntil > 0 {
		e.PreviousSecretExpiresAt = fromMicros(previousUntil)
	}
	e.Events = splitEvents(events)
	e.Status = nanohook.EndpointStatus(status)
	e.CreatedAt = fromMicros(created)
	e.UpdatedAt = fromMicros(updated)
	return e, nil
}
