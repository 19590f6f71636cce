package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// ClaimDeliveries leases up to p.Limit due deliveries in one write
// transaction: one UPDATE … RETURNING over the due index, then one join for
// the endpoint and event of every claimed row. All claims of one call share
// one fresh token; deliveries are told apart by id.
func (s *Store) ClaimDeliveries(ctx context.Context, p store.ClaimParams) ([]store.ClaimedDelivery, error) {
	if p.Limit <= 0 {
		return []store.ClaimedDelivery{}, nil
	}
	token := s.leaseSeq.Add(1)
	var out []store.ClaimedDelivery
	err := s.inLazyTx(ctx, "claim deliveries", func(tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, s.stmts.claim).QueryContext(ctx,
			micros(p.LeaseUntil), token, p.Owner, micros(p.Now), p.Limit, idArray(p.SkipEndpoints))
		if err != nil {
			return wrap("claim deliveries", err)
		}
		ids := make([]byte, 0, 16*min(p.Limit, 1024))
		ids = append(ids, '[')
		n := 0
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return wrap("claim deliveries", err)
			}
			if n > 0 {
				ids = append(ids, ',')
			}
			ids = strconv.AppendInt(ids, id, 10)
			n++
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return wrap("claim deliveries", err)
		}
		rows.Close()
		if n == 0 {
			return nil
		}
		ids = append(ids, ']')

		out = make([]store.ClaimedDelivery, 0, n)
		var stale []staleClaim
		var unopened []int64
		rows, err = tx.StmtContext(ctx, s.stmts.claimed).QueryContext(ctx, string(ids))
		if err != nil {
			return wrap("claim deliveries: fetch", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c store.ClaimedDelivery
			var eventType, epStatus, reason string
			var created, previousUntil int64
			var deleted bool
			if err := rows.Scan(&c.DeliveryID, &c.AccountID, &c.EndpointID, &eventType, &c.Attempt, &created,
				&c.URL, &c.Secret, &epStatus, &deleted, &reason, &c.PreviousSecret, &previousUntil,
				&c.EventID, &c.Payload); err != nil {
				return wrap("claim deliveries: fetch", err)
			}
			if previousUntil <= micros(p.Now) {
				c.PreviousSecret = "" // expired (or never rotated)
			}
			if deleted || epStatus != string(nanohook.EndpointActive) {
				// DeleteEndpoint and disabling finalise pending deliveries in
				// the same transaction, so this should not happen; if it does,
				// finish the delivery the same way instead of sending it.
				stale = append(stale, staleClaim{id: c.DeliveryID, deleted: deleted, reason: reason})
				continue
			}
			// A secret that cannot be opened (a key missing from this
			// node's keyring, a corrupt row) holds back only its own
			// delivery: see postponeUnopened.
			var err1, err2 error
			c.Secret, err1 = s.secrets.Open(c.EndpointID, c.Secret)
			c.PreviousSecret, err2 = s.secrets.Open(c.EndpointID, c.PreviousSecret)
			if err1 != nil || err2 != nil {
				unopened = append(unopened, c.DeliveryID)
				continue
			}
			c.Token = token
			c.EventType = nanohook.EventType(eventType)
			c.Attempt++
			c.CreatedAt = fromMicros(created)
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return wrap("claim deliveries: fetch", err)
		}
		rows.Close()
		for _, st := range stale {
			status, msg := nanohook.DeliveryFailed, store.DisabledError(st.reason)
			if st.deleted {
				status, msg = nanohook.DeliveryCancelled, "endpoint deleted"
			}
			if _, err := tx.ExecContext(ctx, `UPDATE deliveries
				SET status = ?, last_error = ?, leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = ?
				WHERE id = ?`, string(status), msg, micros(p.Now), st.id); err != nil {
				return wrap("claim deliveries: finish stale", err)
			}
		}
		return postponeUnopened(ctx, tx, unopened, p.Now)
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.ClaimedDelivery{}
	}
	return out, nil
}

// postponeUnopened hands back the deliveries of a claim whose endpoint's
// secret this node cannot open, due again store.SecretRetryDelay later, with
// the customer-safe reason in last_error and no attempt counted. Failing the
// whole claim instead would stop every delivery: the unopenable one stays
// first in due order and would fail every later claim too. Pushing it back
// keeps the claimer from tripping over it at every poll, and a node with the
// key, or this one restarted with it, takes it at its new time.
//
// The store has no logger, so the detail (endpoint, key id, setting) is not
// reported here: CheckSecrets reports it, at serve's start and through
// `nanohook secrets check`.
func postponeUnopened(ctx context.Context, tx *sql.Tx, ids []int64, now time.Time) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries
			SET next_attempt_at = ?, last_error = ?, leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = ?
			WHERE id = ?`, micros(now.Add(store.SecretRetryDelay)), store.SecretUnopenedError, micros(now), id); err != nil {
			return wrap("claim deliveries: postpone undecryptable", err)
		}
	}
	return nil
}

// staleClaim is a claimed delivery whose endpoint turned out to be deleted
// or disabled.
type staleClaim struct {
	id      int64
	deleted bool
	reason  string
}

// CompleteDeliveries records a batch of attempts and moves their deliveries
// on, in one transaction. Each attempt is recorded even when its lease is
// stale; the delivery only changes when the lease token still matches.
// Both writes go in multi-row statements of up to chunkRows results.
func (s *Store) CompleteDeliveries(ctx context.Context, results []store.CompleteParams) error {
	if len(results) == 0 {
		return nil
	}
	return s.inLazyTx(ctx, "complete deliveries", func(tx *sql.Tx) error {
		// The statements are few and bounded, so they run on ctx itself.
		err := s.stmts.insertAttempts.exec(ctx, tx, len(results), func(args []any, i int) []any {
			r := &results[i]
			a := r.Attempt.Bounded() // the engine bounded it already; no caller stores more
			return append(args, r.DeliveryID, int64(a.Number), micros(a.StartedAt), a.Duration.Microseconds(),
				int64(a.ResponseStatus), a.ResponseBody, a.Location, a.Error,
				store.EncodeHeaders(a.RequestHeaders), a.RemoteAddr)
		})
		if err != nil {
			return wrap("complete deliveries: record attempts", err)
		}

		updates := store.FirstPerLease(results)
		err = s.stmts.completeDeliveries.exec(ctx, tx, len(updates), func(args []any, i int) []any {
			r := &updates[i]
			return append(args, r.DeliveryID, r.Token, string(r.Status), int64(r.Attempt.Number),
				nullMicros(r.NextAttemptAt), r.LastError(), micros(r.Now))
		})
		if err != nil {
			return wrap("complete deliveries", err)
		}

		// Every attempt, stale lease or not, tells whether its endpoint is
		// failing.
		marks := make([]int, 0, len(results))
		for i := range results {
			switch results[i].Status {
			case nanohook.DeliverySucceeded, nanohook.DeliveryPending, nanohook.DeliveryFailed:
				marks = append(marks, i)
			}
		}
		err = s.stmts.markFailing.exec(ctx, tx, len(marks), func(args []any, i int) []any {
			r := &results[marks[i]]
			ok := 0
			if r.Status == nanohook.DeliverySucceeded {
				ok = 1
			}
			return append(args, r.DeliveryID, ok, micros(r.Attempt.StartedAt))
		})
		if err != nil {
			return wrap("complete deliveries: mark failing endpoints", err)
		}

		for _, r := range results {
			if r.DisableEndpoint != "" {
				if err := s.disableEndpointOf(ctx, tx, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// disableEndpointOf disables the endpoint of r's delivery (the endpoint
// answered 410 Gone) and fails its pending deliveries. The endpoint is taken
// from the delivery row, which cannot disagree with it, rather than from
// r.EndpointID. An endpoint deleted meanwhile stays deleted.
func (s *Store) disableEndpointOf(ctx context.Context, tx *sql.Tx, r store.CompleteParams) error {
	var endpointID int64
	err := tx.QueryRowContext(ctx, `SELECT endpoint_id FROM deliveries WHERE id = ?`, r.DeliveryID).Scan(&endpointID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return wrap("complete deliveries: disable endpoint", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE endpoints SET status = 'disabled', disabled_reason = ?, updated_at = ?
		WHERE id = ? AND deleted_at IS NULL AND status = 'active'`, r.DisableEndpoint, micros(r.Now), endpointID)
	if err != nil {
		return wrap("complete deliveries: disable endpoint", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap("complete deliveries: disable endpoint", err)
	}
	if n == 0 {
		return nil // already disabled (its pending deliveries failed then) or deleted
	}
	if _, err := tx.StmtContext(ctx, s.stmts.failPendingOfEndpoint).ExecContext(ctx,
		store.DisabledError(r.DisableEndpoint), micros(r.Now), endpointID); err != nil {
		return wrap("complete deliveries: fail pending deliveries", err)
	}
	return nil
}

// ReleaseDeliveries drops leases without counting an attempt, so that a
// stopping node hands its unstarted work straight back instead of letting it
// wait for the lease to expire. Leases that are no longer current are
// ignored.
func (s *Store) ReleaseDeliveries(ctx context.Context, leases []store.Lease) error {
	if len(leases) == 0 {
		return nil
	}
	return s.inLazyTx(ctx, "release deliveries", func(tx *sql.Tx) error {
		release := tx.StmtContext(ctx, s.stmts.releaseDelivery)
		lctx := loopContext(ctx)
		for _, l := range leases {
			if err := ctx.Err(); err != nil {
				return wrap("release deliveries", err)
			}
			if _, err := release.ExecContext(lctx, l.DeliveryID, l.Token); err != nil {
				return wrap(fmt.Sprintf("release delivery %d", l.DeliveryID), err)
			}
		}
		return nil
	})
}

// nextDueAtSQL is NextDueAt's query, prepared once on the reader pool: it
// runs after most claims.
const nextDueAtSQL = `
		WITH head AS (
			SELECT next_attempt_at AS t FROM deliveries
			WHERE status = 'pending' AND (leased_until IS NULL OR leased_until <= next_attempt_at)
			ORDER BY next_attempt_at LIMIT 1)
		SELECT min(t) FROM (
			SELECT t FROM head
			UNION ALL
			SELECT leased_until FROM deliveries
			WHERE status = 'pending' AND leased_until > next_attempt_at
			  AND next_attempt_at < coalesce((SELECT t FROM head), 9223372036854775807))`

// NextDueAt is the earliest moment any pending delivery becomes claimable,
// the later of its next_attempt_at and its lease expiry, so that an idle
// engine can sleep exactly until then.
//
// Rather than computing that over every pending row, it walks the due index
// from the front: the first row whose lease does not outlast its due time
// bounds the answer (every later row is due no earlier), and only the leased
// rows in front of it (the ones in flight) can beat it with their lease
// expiry. The cost is the in-flight prefix, not the backlog.
func (s *Store) NextDueAt(ctx context.Context) (time.Time, bool, error) {
	var v sql.NullInt64
	err := s.stmts.nextDueAt.QueryRowContext(ctx).Scan(&v)
	if err != nil {
		return time.Time{}, false, wrap("next due at", err)
	}
	if !v.Valid {
		return time.Time{}, false, nil
	}
	return fromMicros(v.Int64), true, nil
}

// GetDelivery returns a delivery of the account with its newest attempts
// in order, read in one transaction so the two agree.
func (s *Store) GetDelivery(ctx context.Context, accountID, id int64) (nanohook.Delivery, []nanohook.Attempt, error) {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nanohook.Delivery{}, nil, wrap("get delivery", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep

	var d nanohook.Delivery
	var eventType, status string
	var next, created, updated int64
	err = tx.QueryRowContext(ctx, `SELECT d.id, d.account_id, d.endpoint_id, ev.id, d.event_type, d.status,
			d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.updated_at
		FROM deliveries d JOIN events ev ON ev.pk = d.event_pk
		WHERE d.id = ? AND d.account_id = ?`, id, accountID).
		Scan(&d.ID, &d.AccountID, &d.EndpointID, &d.EventID, &eventType, &status,
			&d.Attempts, &next, &d.LastError, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nanohook.Delivery{}, nil, notFound("delivery", id)
	}
	if err != nil {
		return nanohook.Delivery{}, nil, wrap("get delivery", err)
	}
	d.EventType = nanohook.EventType(eventType)
	d.Status = nanohook.DeliveryStatus(status)
	d.NextAttemptAt = fromMicros(next)
	d.CreatedAt = fromMicros(created)
	d.UpdatedAt = fromMicros(updated)

	// The newest first, from the end of the (delivery_id, number) index,
	// then put back in order.
	rows, err := tx.QueryContext(ctx, `SELECT * FROM (
			SELECT id, number, started_at, duration_us, response_status,
				response_body, location, error, request_headers, remote_addr
			FROM attempts WHERE delivery_id = ? ORDER BY number DESC, id DESC LIMIT ?)
		ORDER BY number, id`, id, store.MaxDetailAttempts)
	if err != nil {
		return nanohook.Delivery{}, nil, wrap("get delivery: attempts", err)
	}
	defer rows.Close()
	attempts := []nanohook.Attempt{}
	for rows.Next() {
		a := nanohook.Attempt{DeliveryID: id}
		var started, dur int64
		var headers string
		if err := rows.Scan(&a.ID, &a.Number, &started, &dur, &a.ResponseStatus,
			&a.ResponseBody, &a.Location, &a.Error, &headers, &a.RemoteAddr); err != nil {
			return nanohook.Delivery{}, nil, wrap("get delivery: attempts", err)
		}
		if a.RequestHeaders, err = store.DecodeHeaders(headers); err != nil {
			return nanohook.Delivery{}, nil, fmt.Errorf("sqlite: get delivery: attempt %d: %w", a.ID, err)
		}
		a.StartedAt = fromMicros(started)
		a.Duration = time.Duration(dur) * time.Microsecond
		attempts = append(attempts, a)
	}
	if err := rows.Err(); err != nil {
		return nanohook.Delivery{}, nil, wrap("get delivery: attempts", err)
	}
	return d, attempts, nil
}

// idArray writes ids as a JSON array for json_each ("[]" when empty).
func idArray(ids []int64) string {
	b := make([]byte, 0, 2+8*len(ids))
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}
