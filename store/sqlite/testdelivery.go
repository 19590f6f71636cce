package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// CreateTestDelivery writes a ping event and one delivery of it to one live
// endpoint of the account, active or disabled, already leased to the caller,
// in one write transaction, and returns the delivery as a claim.
//
// The event has no idempotency key (stored as NULL), so pings never
// deduplicate. The endpoint's subscriptions are not consulted. The delivery
// is pending and leased until p.LeaseUntil with a fresh token; like any
// leased delivery its next_attempt_at is the lease's expiry, so
// ClaimDeliveries passes over it until then, and its Lease.DueAt is p.Now,
// when it would have been due unleased (a release makes it due then). SQLite's
// single writer orders this against DeleteEndpoint and UpdateEndpoint: a
// delete or disable that commits after it finishes the delivery as it does
// any pending one.
func (s *Store) CreateTestDelivery(ctx context.Context, p store.TestDeliveryParams) (store.ClaimedDelivery, error) {
	now := micros(p.Now)
	c := p.Claim(fromMicros(now))
	c.Token = s.leaseSeq.Add(1)
	err := s.inTx(ctx, "create test delivery", func(tx *sql.Tx) error {
		var previousUntil int64
		err := tx.QueryRowContext(ctx, `SELECT url, secret, previous_secret, previous_secret_until
			FROM endpoints WHERE id = ? AND account_id = ? AND deleted_at IS NULL`, p.EndpointID, p.AccountID).
			Scan(&c.URL, &c.Secret, &c.PreviousSecret, &previousUntil)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("endpoint", p.EndpointID)
		}
		if err != nil {
			return wrap("create test delivery: endpoint", err)
		}
		if !nanohook.PreviousSecretValid(fromMicros(previousUntil), p.Now) {
			c.PreviousSecret = "" // expired (or never rotated)
		}
		// A URL or secret that cannot be opened rolls the whole ping back:
		// nothing is left behind that the engine could not send either.
		if err := s.secrets.OpenClaim(&c); err != nil {
			return wrap("create test delivery", err)
		}

		var pk int64
		err = tx.QueryRowContext(ctx, `INSERT INTO events
			(id, account_id, type, task_id, task_type, idempotency_key, payload, occurred_at, created_at)
			VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?7)
			RETURNING pk`,
			p.EventID, p.AccountID, string(c.EventType), p.TaskID, p.TaskType, c.Payload, now).Scan(&pk)
		if err != nil {
			return wrap("create test delivery: insert event", err)
		}

		err = tx.QueryRowContext(ctx, `INSERT INTO deliveries
			(account_id, endpoint_id, event_pk, event_type, status, attempts, next_attempt_at,
			 leased_until, lease_token, lease_owner, last_error, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?6, ?6, ?7, ?8, '', ?5, ?5)
			RETURNING id`,
			p.AccountID, p.EndpointID, pk, string(c.EventType), now, micros(p.LeaseUntil), c.Token, p.Owner).
			Scan(&c.DeliveryID)
		if err != nil {
			return wrap("create test delivery: insert delivery", err)
		}
		return nil
	})
	if err != nil {
		return store.ClaimedDelivery{}, err
	}
	return c, nil
}
