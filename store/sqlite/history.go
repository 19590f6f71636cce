package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// The customers' delivery-history tools: listing an endpoint's deliveries,
// retrying one, and recovering an endpoint's failed ones.

// deliveryColumns is the column list scanDelivery reads, in its order, over
// deliveries d joined with events ev.
const deliveryColumns = sqlshared.DeliveryColumns

func scanDelivery(r scanner) (nanohook.Delivery, error) {
	var d nanohook.Delivery
	var eventType, status string
	var next, created, updated int64
	if err := r.Scan(&d.ID, &d.AccountID, &d.EndpointID, &d.EventID, &eventType, &status,
		&d.Attempts, &next, &d.LastError, &created, &updated); err != nil {
		return nanohook.Delivery{}, err
	}
	d.EventType = nanohook.EventType(eventType)
	d.Status = nanohook.DeliveryStatus(status)
	d.NextAttemptAt = fromMicros(next)
	d.CreatedAt = fromMicros(created)
	d.UpdatedAt = fromMicros(updated)
	return d, nil
}

// ListDeliveries reads one page of an endpoint's history, newest first, in
// one read transaction so that the endpoint check and the page agree. The
// page walks deliveries_endpoint backwards from the cursor; only the filters
// given are part of the statement, so an absent filter costs nothing.
// Filters are checked row by row on that walk: a rare status, event type or
// task reads past the rows it skips, bounded by the endpoint's retained
// history.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) ([]nanohook.Delivery, error) {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrap("list deliveries", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep

	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM endpoints WHERE id = ? AND account_id = ? AND deleted_at IS NULL`,
		p.EndpointID, p.AccountID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("endpoint", p.EndpointID)
	}
	if err != nil {
		return nil, wrap("list deliveries", err)
	}

	var q strings.Builder
	q.WriteString(`SELECT ` + deliveryColumns + `
		FROM deliveries d JOIN events ev ON ev.pk = d.event_pk
		WHERE d.endpoint_id = ? AND d.account_id = ?`)
	args := []any{p.EndpointID, p.AccountID}
	if p.BeforeID > 0 {
		q.WriteString(` AND d.id < ?`)
		args = append(args, p.BeforeID)
	}
	if p.Status != "" {
		q.WriteString(` AND d.status = ?`)
		args = append(args, string(p.Status))
	}
	if p.Event != "" {
		q.WriteString(` AND d.event_type = ?`)
		args = append(args, string(p.Event))
	}
	if p.TaskID != "" {
		q.WriteString(` AND ev.task_id = ?`)
		args = append(args, p.TaskID)
	}
	if !p.Since.IsZero() {
		q.WriteString(` AND d.created_at >= ?`)
		args = append(args, micros(p.Since))
	}
	if !p.Until.IsZero() {
		q.WriteString(` AND d.created_at < ?`)
		args = append(args, micros(p.Until))
	}
	q.WriteString(` ORDER BY d.id DESC LIMIT ?`)
	args = append(args, store.ListLimit(p.Limit))

	rows, err := tx.QueryContext(ctx, q.String(), args...)
	out, err := sqlshared.CollectQuery(rows, err, scanDelivery)
	if err != nil {
		return nil, wrap("list deliveries", err)
	}
	return out, nil
}

// RetryDelivery makes one delivery due again in one write transaction (see
// store.Store for the rules). The retry restarts nothing else: the attempt
// count is kept, so if the retried attempt fails the engine schedules the
// next one (or gives up) by its attempt number, as for any other attempt. A
// delivery that had used up its schedule thus gets exactly one more
// attempt, which is what a manual retry asks for.
func (s *Store) RetryDelivery(ctx context.Context, accountID, id int64, now time.Time) (nanohook.Delivery, error) {
	return sqlshared.InTxValue(ctx, s.inTx, "retry delivery", func(tx *sql.Tx) (nanohook.Delivery, error) {
		var status, epStatus string
		var leasedUntil sql.NullInt64
		var deleted bool
		err := tx.QueryRowContext(ctx, `SELECT d.status, d.leased_until, ep.status, ep.deleted_at IS NOT NULL
			FROM deliveries d JOIN endpoints ep ON ep.id = d.endpoint_id
			WHERE d.id = ? AND d.account_id = ?`, id, accountID).Scan(&status, &leasedUntil, &epStatus, &deleted)
		if errors.Is(err, sql.ErrNoRows) {
			return nanohook.Delivery{}, notFound("delivery", id)
		}
		if err != nil {
			return nanohook.Delivery{}, wrap("retry delivery", err)
		}
		var leased time.Time
		if leasedUntil.Valid {
			leased = fromMicros(leasedUntil.Int64)
		}
		ep := nanohook.EndpointState{Status: nanohook.EndpointStatus(epStatus), Deleted: deleted}
		action, err := nanohook.PlanRetry(nanohook.DeliveryStatus(status), leased, ep, fromMicros(micros(now)))
		if err != nil {
			return nanohook.Delivery{}, err
		}
		if err := retry(ctx, tx, id, action, micros(now)); err != nil {
			return nanohook.Delivery{}, wrap("retry delivery", err)
		}
		d, err := scanDelivery(tx.QueryRowContext(ctx, deliveryByIDSQL, id))
		if err != nil {
			return d, wrap("retry delivery: read back", err)
		}
		return d, nil
	})
}

// deliveryByIDSQL reads one delivery: ?1 its id.
var deliveryByIDSQL = sqlshared.Numbered(sqlshared.DeliveryByIDSQL)

// retry carries out what nanohook.PlanRetry decided for delivery id at now.
func retry(ctx context.Context, tx *sql.Tx, id int64, action nanohook.RetryAction, now int64) error {
	var err error
	switch action {
	case nanohook.RetryRequeue:
		_, err = tx.ExecContext(ctx, `UPDATE deliveries
			SET status = 'pending', next_attempt_at = ?1,
			    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = ?1
			WHERE id = ?2`, now, id)
	case nanohook.RetryDueNow:
		_, err = tx.ExecContext(ctx, `UPDATE deliveries
			SET next_attempt_at = min(next_attempt_at, ?1), updated_at = ?1
			WHERE id = ?2`, now, id)
	}
	return err
}

// RecoverDeliveries re-queues one bounded step of an endpoint's failed
// deliveries in one write transaction, oldest first, found through the
// partial index deliveries_endpoint_failed. Test pings stay failed (see
// store.Store.RecoverDeliveries).
func (s *Store) RecoverDeliveries(ctx context.Context, p store.RecoverParams) (int, error) {
	var n int64
	err := s.inTx(ctx, "recover deliveries", func(tx *sql.Tx) error {
		n = 0
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM endpoints WHERE id = ? AND account_id = ? AND deleted_at IS NULL`,
			p.EndpointID, p.AccountID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("endpoint", p.EndpointID)
		}
		if err != nil {
			return wrap("recover deliveries", err)
		}
		if err := nanohook.CheckRecover(nanohook.EndpointStatus(status)); err != nil {
			return err
		}
		until := int64(math.MaxInt64)
		if !p.Until.IsZero() {
			until = micros(p.Until)
		}
		if p.CountOnly {
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM deliveries
				WHERE endpoint_id = ?2 AND status = 'failed' AND event_type <> '`+string(nanohook.EventPing)+`'
				  AND created_at >= ?3 AND created_at < ?4 AND updated_at <= ?1`,
				micros(p.Now), p.EndpointID, micros(p.Since), until).Scan(&n)
			if err != nil {
				return wrap("recover deliveries: count", err)
			}
			return nil
		}
		if p.Limit <= 0 {
			return nil
		}
		// status = 'failed' is written literally, as in the index.
		res, err := tx.ExecContext(ctx, `UPDATE deliveries
			SET status = 'pending', next_attempt_at = ?1,
			    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = ?1
			WHERE id IN (
				SELECT id FROM deliveries
				WHERE endpoint_id = ?2 AND status = 'failed' AND event_type <> '`+string(nanohook.EventPing)+`'
				  AND created_at >= ?3 AND created_at < ?4 AND updated_at <= ?1
				ORDER BY id
				LIMIT ?5)`, micros(p.Now), p.EndpointID, micros(p.Since), until, p.Limit)
		if err != nil {
			return wrap("recover deliveries", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return wrap("recover deliveries", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}
