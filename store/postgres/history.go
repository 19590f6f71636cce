package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// The customers' delivery-history tools: listing an endpoint's deliveries,
// retrying one, and recovering an endpoint's failed ones.
//
// Retry and recover lock the endpoint FOR SHARE before they make
// deliveries pending, as the fan-out of a publish does: deleting or
// disabling the endpoint locks it FOR NO KEY UPDATE and then finishes its
// pending deliveries in a later statement, so a delivery can never be made
// pending behind a concurrent delete or disable, and the locks are taken in
// the same order (endpoint, then deliveries) as everywhere else. Both notify
// dueChannel when they made something due, so that every node's engine
// looks.

// deliveryColumns is the column list scanDelivery reads, in its order, over
// deliveries d joined with events ev.
const deliveryColumns = sqlshared.DeliveryColumns

func scanDelivery(r sqlshared.Scanner) (nanohook.Delivery, error) {
	var d nanohook.Delivery
	var eventType, status string
	if err := r.Scan(&d.ID, &d.AccountID, &d.EndpointID, &d.EventID, &eventType, &status,
		&d.Attempts, &d.NextAttemptAt, &d.LastError, &d.CreatedAt, &d.UpdatedAt); err != nil {
		return nanohook.Delivery{}, err
	}
	d.EventType = nanohook.EventType(eventType)
	d.Status = nanohook.DeliveryStatus(status)
	return d, nil
}

// ListDeliveries reads one page of an endpoint's history, newest first,
// after checking that the endpoint is a live one of the account. The page
// walks deliveries_endpoint backwards from the
// cursor; only the filters given are part of the statement.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) ([]nanohook.Delivery, error) {
	var q strings.Builder
	args := []any{p.EndpointID, p.AccountID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q.WriteString(`SELECT ` + deliveryColumns + `
		FROM deliveries d JOIN events ev ON ev.pk = d.event_pk
		WHERE d.endpoint_id = $1 AND d.account_id = $2`)
	if p.BeforeID > 0 {
		q.WriteString(` AND d.id < ` + arg(p.BeforeID))
	}
	if p.Status != "" {
		q.WriteString(` AND d.status = ` + arg(string(p.Status)))
	}
	if p.Event != "" {
		q.WriteString(` AND d.event_type = ` + arg(string(p.Event)))
	}
	if p.TaskID != "" {
		q.WriteString(` AND ev.task_id = ` + arg(p.TaskID))
	}
	if !p.Since.IsZero() {
		q.WriteString(` AND d.created_at >= ` + arg(truncMicros(p.Since)))
	}
	if !p.Until.IsZero() {
		q.WriteString(` AND d.created_at < ` + arg(truncMicros(p.Until)))
	}
	q.WriteString(` ORDER BY d.id DESC LIMIT ` + arg(store.ListLimit(p.Limit)))

	c, err := s.acquire(ctx, "list deliveries")
	if err != nil {
		return nil, err
	}
	defer c.Release()
	// The endpoint check and the page travel in one batch (one round trip).
	// Each statement reads its own snapshot: an endpoint deleted between
	// the two only means the page of a just-deleted endpoint is answered.
	b := &pgx.Batch{}
	var live bool
	b.Queue(`SELECT EXISTS (SELECT 1 FROM endpoints WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL)`,
		p.EndpointID, p.AccountID).QueryRow(func(r pgx.Row) error { return r.Scan(&live) })
	var out []nanohook.Delivery
	b.Queue(q.String(), args...).Query(func(rows pgx.Rows) (err error) {
		out, err = sqlshared.Collect(rows, scanDelivery)
		return err
	})
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrap("list deliveries", err)
	}
	if !live {
		return nil, notFound("endpoint", p.EndpointID)
	}
	return out, nil
}

// RetryDelivery makes one delivery due again in one transaction (see
// store.Store for the rules). The retry restarts nothing else: the attempt
// count is kept, so if the retried attempt fails the engine schedules the
// next one (or gives up) by its attempt number, as for any other attempt. A
// delivery that had used up its schedule thus gets exactly one more
// attempt, which is what a manual retry asks for.
func (s *Store) RetryDelivery(ctx context.Context, accountID, id int64, now time.Time) (nanohook.Delivery, error) {
	return sqlshared.InTxValue(ctx, s.inTx, "retry delivery", func(tx pgx.Tx) (nanohook.Delivery, error) {
		var endpointID int64
		err := tx.QueryRow(ctx, `SELECT endpoint_id FROM deliveries WHERE id = $1 AND account_id = $2`,
			id, accountID).Scan(&endpointID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nanohook.Delivery{}, notFound("delivery", id)
		}
		if err != nil {
			return nanohook.Delivery{}, wrap("retry delivery", err)
		}
		var ep nanohook.EndpointState
		if err := tx.QueryRow(ctx, `SELECT status, deleted_at IS NOT NULL FROM endpoints WHERE id = $1 FOR SHARE`,
			endpointID).Scan(&ep.Status, &ep.Deleted); err != nil {
			return nanohook.Delivery{}, wrap("retry delivery: lock endpoint", err)
		}
		// Read under the endpoint's lock, and locked itself: a completion of
		// an attempt in flight waits for this transaction (claims skip it).
		var status nanohook.DeliveryStatus
		var leasedUntil pgtype.Timestamptz
		if err := tx.QueryRow(ctx, `SELECT status, leased_until FROM deliveries WHERE id = $1 FOR NO KEY UPDATE`,
			id).Scan(&status, &leasedUntil); err != nil {
			return nanohook.Delivery{}, wrap("retry delivery", err)
		}
		at := truncMicros(now)
		action, err := nanohook.PlanRetry(status, leasedUntil.Time, ep, at)
		if err != nil {
			return nanohook.Delivery{}, err
		}
		if err := retry(ctx, tx, id, action, at); err != nil {
			return nanohook.Delivery{}, err
		}
		d, err := scanDelivery(tx.QueryRow(ctx, sqlshared.DeliveryByIDSQL, id))
		if err != nil {
			return d, wrap("retry delivery: read back", err)
		}
		return d, nil
	})
}

// retry carries out what nanohook.PlanRetry decided for delivery id at
// now, and wakes every node's engine when it made the delivery due.
func retry(ctx context.Context, tx pgx.Tx, id int64, action nanohook.RetryAction, at time.Time) error {
	b := &pgx.Batch{}
	switch action {
	case nanohook.RetryNothing:
		return nil
	case nanohook.RetryRequeue:
		b.Queue(`UPDATE deliveries
			SET status = 'pending', next_attempt_at = $1,
			    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $1
			WHERE id = $2`, at, id)
	case nanohook.RetryDueNow:
		b.Queue(`UPDATE deliveries
			SET next_attempt_at = least(next_attempt_at, $1), updated_at = $1
			WHERE id = $2`, at, id)
	}
	b.Queue(notifyDueSQL)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return wrap("retry delivery", err)
	}
	return nil
}

// notifyDueSQL wakes the engines of every node at commit.
const notifyDueSQL = `SELECT pg_notify('` + dueChannel + `', current_schema())`

// recoverSQL re-queues one step of an endpoint's failed deliveries, oldest
// first, through the partial index deliveries_endpoint_failed (status =
// 'failed' is written exactly as in the index). status is checked again on
// the rows updated, since under READ COMMITTED a row changed meanwhile is
// re-checked only against the outer WHERE. Test pings stay failed (see
// store.Store.RecoverDeliveries). $1 now, $2 endpoint, $3 since, $4 until
// (NULL: open), $5 limit.
const recoverSQL = `UPDATE deliveries d
	SET status = 'pending', next_attempt_at = $1,
	    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $1
	WHERE d.id IN (
			SELECT id FROM deliveries
			WHERE endpoint_id = $2 AND status = 'failed' AND event_type <> '` + string(nanohook.EventPing) + `'
			  AND created_at >= $3 AND ($4::timestamptz IS NULL OR created_at < $4)
			  AND updated_at <= $1
			ORDER BY id
			LIMIT $5)
	  AND d.status = 'failed'`

// RecoverDeliveries re-queues one bounded step of an endpoint's failed
// deliveries in one transaction, under a share lock of the endpoint.
func (s *Store) RecoverDeliveries(ctx context.Context, p store.RecoverParams) (int, error) {
	var n int64
	err := s.inTx(ctx, "recover deliveries", func(tx pgx.Tx) error {
		n = 0
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM endpoints
			WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
			FOR SHARE`, p.EndpointID, p.AccountID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("endpoint", p.EndpointID)
		}
		if err != nil {
			return wrap("recover deliveries", err)
		}
		if err := nanohook.CheckRecover(nanohook.EndpointStatus(status)); err != nil {
			return err
		}
		if p.CountOnly {
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM deliveries
				WHERE endpoint_id = $1 AND status = 'failed' AND event_type <> '`+string(nanohook.EventPing)+`'
				  AND created_at >= $2 AND ($3::timestamptz IS NULL OR created_at < $3)
				  AND updated_at <= $4`, p.EndpointID, truncMicros(p.Since), nullTime(p.Until), truncMicros(p.Now)).Scan(&n); err != nil {
				return wrap("recover deliveries: count", err)
			}
			return nil
		}
		if p.Limit <= 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, recoverSQL, truncMicros(p.Now), p.EndpointID, truncMicros(p.Since), nullTime(p.Until), p.Limit)
		if err != nil {
			return wrap("recover deliveries", err)
		}
		if n = tag.RowsAffected(); n > 0 {
			if _, err := tx.Exec(ctx, notifyDueSQL); err != nil {
				return wrap("recover deliveries: notify", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}
