package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// testDeliverySQL writes a ping event and one leased delivery of it to one
// live endpoint of the account, in one statement (atomic without
// BEGIN/COMMIT), and returns what the claim needs. It returns no row when
// the endpoint is not a live endpoint of the account.
//
//   - ep: FOR SHARE holds the endpoint until commit, as the publish fan-out
//     does: a concurrent delete or disable waits for this statement and then
//     finishes the new delivery with the endpoint's other pending ones, or
//     this statement waits for it and, re-reading the row, finds a deleted
//     endpoint gone (and a disabled one still there, which is allowed).
//   - token: one lease token from the shared sequence.
//   - d: leased like a claim, its next_attempt_at the lease's expiry (so it
//     is not due before then).
//   - no pg_notify: the delivery is leased to the caller, so there is
//     nothing for the other nodes to claim.
//
// $1 endpoint, $2 account, $3 event id, $4 event type, $5 task id, $6 task
// type, $7 payload, $8 now, $9 leased until, $10 owner.
const testDeliverySQL = `WITH ep AS (
		SELECT id, account_id, url, secret, previous_secret, previous_secret_until
		FROM endpoints
		WHERE id = $1::bigint AND account_id = $2::bigint AND deleted_at IS NULL
		FOR SHARE
	), ev AS (
		INSERT INTO events (id, account_id, type, task_id, task_type, idempotency_key, payload, occurred_at, created_at)
		SELECT $3::text, ep.account_id, $4::text, $5::text, $6::text, NULL, $7::bytea, $8::timestamptz, $8::timestamptz
		FROM ep
		RETURNING pk
	), token AS (
		SELECT nextval('lease_tokens') AS t
	), d AS (
		INSERT INTO deliveries
			(account_id, endpoint_id, event_pk, event_type, status, attempts, next_attempt_at,
			 leased_until, lease_token, lease_owner, last_error, created_at, updated_at)
		SELECT ep.account_id, ep.id, ev.pk, $4::text, 'pending', 0, $9::timestamptz,
			$9::timestamptz, token.t, $10::text, '', $8::timestamptz, $8::timestamptz
		FROM ep, ev, token
		RETURNING id, lease_token
	)
	SELECT d.id, d.lease_token, ep.url, ep.secret, ep.previous_secret, ep.previous_secret_until FROM d, ep`

// CreateTestDelivery writes a ping event and one delivery of it to one live
// endpoint of the account, active or disabled, already leased to the
// caller, and returns the delivery as a claim. The event has no idempotency
// key (NULL), so pings never deduplicate; the endpoint's subscriptions are
// not consulted. See testDeliverySQL for the locking.
func (s *Store) CreateTestDelivery(ctx context.Context, p store.TestDeliveryParams) (store.ClaimedDelivery, error) {
	now := truncMicros(p.Now)
	c := p.Claim(now)
	conn, err := s.acquire(ctx, "create test delivery")
	if err != nil {
		return store.ClaimedDelivery{}, err
	}
	defer conn.Release()
	var previousUntil pgtype.Timestamptz
	err = conn.QueryRow(ctx, testDeliverySQL, p.EndpointID, p.AccountID, p.EventID, string(c.EventType),
		p.TaskID, p.TaskType, c.Payload, now, truncMicros(p.LeaseUntil), p.Owner).
		Scan(&c.DeliveryID, &c.Token, &c.URL, &c.Secret, &c.PreviousSecret, &previousUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ClaimedDelivery{}, notFound("endpoint", p.EndpointID)
	}
	if err != nil {
		return store.ClaimedDelivery{}, wrap("create test delivery", err)
	}
	if !nanohook.PreviousSecretValid(previousUntil.Time, now) {
		c.PreviousSecret = "" // expired (or never rotated)
	}
	if err := s.openTestDelivery(ctx, conn, &c, p.Now); err != nil {
		return store.ClaimedDelivery{}, err
	}
	return c, nil
}
