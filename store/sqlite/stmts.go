package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// writerStmts are the statements of the hot paths (publish, claim,
// complete, release, and a few reads). Parsing SQL costs about as much as
// running these small statements, so they are prepared once, the writes on
// the writer's one connection, and reused by every transaction.
type writerStmts struct {
	accountExists         *sql.Stmt
	insertEvent           *sql.Stmt
	existingEvent         *sql.Stmt
	fanTargets            *sql.Stmt
	claimLease            *sql.Stmt
	releaseDelivery       *sql.Stmt
	failPendingOfEndpoint *sql.Stmt
	rescueLeases          *sql.Stmt
	all                   []*sql.Stmt

	// On the reader pool: the reads of every claim loop, publish and
	// authenticated request. A query given as text is prepared afresh at
	// each call, which for these costs more than running it.
	queueHeads      *sql.Stmt
	claimPick       *sql.Stmt
	claimEndpoints  *sql.Stmt
	claimEvents     *sql.Stmt
	anyExpiredLease *sql.Stmt
	getAccount      *sql.Stmt
	countEndpoints  *sql.Stmt
	apiKeyByHash    *sql.Stmt

	// Multi-row statements of PublishEvents and CompleteDeliveries, see
	// chunkStmts.
	insertDeliveries   *chunkStmts
	insertAttempts     *chunkStmts
	completeDeliveries *chunkStmts
	markFailing        *chunkStmts
}

// The attempt is recorded whatever the lease says (it happened), but only
// for a delivery that still exists, so that one pruned delivery cannot fail
// the whole batch on the foreign key. VALUES columns are, in order:
// delivery_id, number, started_at, duration_us, response_status,
// response_body, location, error, request_headers, remote_addr.
// insertAttemptsCols is the number of VALUES columns per row of
// insertAttemptsSQL.
const insertAttemptsCols = 10

func insertAttemptsSQL(values string) string {
	return `INSERT INTO attempts
		(delivery_id, number, started_at, duration_us, response_status, response_body, location, error,
		 request_headers, remote_addr)
		SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9, column10
		FROM (VALUES ` + values + `) AS v
		WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = v.column1)`
}

// Only the holder of the current lease moves a delivery on. A NULL next
// attempt time keeps the old one (final states need none). VALUES columns:
// id, lease_token, status, attempts, next_attempt_at, last_error, updated_at.
func completeDeliveriesSQL(values string) string {
	return `UPDATE deliveries
		SET status = v.column3, attempts = v.column4,
		    next_attempt_at = coalesce(v.column5, deliveries.next_attempt_at), last_error = v.column6,
		    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = v.column7
		FROM (VALUES ` + values + `) AS v
		WHERE deliveries.id = v.column1 AND deliveries.lease_token = v.column2`
}

// markFailingSQL keeps endpoints' failing_since up to date from a batch of
// attempts (the delivery's endpoint, from its row). VALUES columns:
// delivery_id, ok (1: the attempt succeeded, 0: it failed), started_at.
// Per endpoint, the latest success of the batch clears the mark and the
// earliest failure after it (or, with no success, the earliest failure)
// sets it; a mark already set is kept unless a success clears it (the
// earlier of the two is kept). Only rows whose mark changes are written.
func markFailingSQL(values string) string {
	return `WITH v AS (
			SELECT d.endpoint_id AS eid, x.column2 AS ok, x.column3 AS t
			FROM (VALUES ` + values + `) AS x JOIN deliveries d ON d.id = x.column1
		), o AS (
			SELECT eid, max(CASE WHEN ok = 1 THEN t END) AS last_ok FROM v GROUP BY eid
		), a AS (
			SELECT o.eid, o.last_ok,
				(SELECT min(v.t) FROM v WHERE v.eid = o.eid AND v.ok = 0
					AND (o.last_ok IS NULL OR v.t > o.last_ok)) AS first_fail
			FROM o
		), n AS (
			SELECT a.eid, CASE
				WHEN a.last_ok IS NOT NULL THEN coalesce(a.first_fail, 0)
				WHEN e.failing_since = 0 THEN a.first_fail
				ELSE min(e.failing_since, a.first_fail) END AS fs
			FROM a JOIN endpoints e ON e.id = a.eid
		)
		UPDATE endpoints SET failing_since = n.fs
		FROM n WHERE endpoints.id = n.eid AND endpoints.failing_since <> n.fs`
}

// insertDeliveriesSQL writes fan-out rows. VALUES columns: account_id,
// endpoint_id, event_pk, event_type, status, now (next attempt, created,
// updated), last_error.
func insertDeliveriesSQL(values string) string {
	return `INSERT INTO deliveries
		(account_id, endpoint_id, event_pk, event_type, status, attempts, next_attempt_at, last_error, created_at, updated_at)
		SELECT column1, column2, column3, column4, column5, 0, column6, column7, column6, column6
		FROM (VALUES ` + values + `)`
}

func (w *writerStmts) prepare(ctx context.Context, db, reader *sql.DB) error {
	var err error
	if w.insertDeliveries, err = prepareChunks(ctx, db, 7, insertDeliveriesSQL); err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	for _, r := range []struct {
		dst *(*sql.Stmt)
		sql string
	}{
		{&w.queueHeads, queueHeadsSQL},
		// A claim's reads (see ClaimDeliveries). claimPick's predicate is
		// written literally so the planner can match it to the index's
		// WHERE clause; leased deliveries are not in the queue. ?1
		// endpoint, ?2 now, ?3 limit.
		{&w.claimPick, claimPickSQL},
		// The endpoints (a JSON array of ids) and events (of pks) of the
		// deliveries a claim leased, each once.
		{&w.claimEndpoints, `SELECT id, url, secret, status, deleted_at IS NOT NULL, disabled_reason,
				previous_secret, previous_secret_until
			FROM endpoints WHERE id IN (SELECT value FROM json_each(?))`},
		{&w.claimEvents, `SELECT pk, id, payload FROM events WHERE pk IN (SELECT value FROM json_each(?))`},
		{&w.anyExpiredLease, `SELECT 1 FROM deliveries INDEXED BY deliveries_leased
			WHERE status = 'pending' AND lease_token IS NOT NULL AND leased_until <= ? LIMIT 1`},
		{&w.getAccount, `SELECT name, created_at FROM accounts WHERE id = ?`},
		// Every publish request checks its accounts with it: parsing it
		// afresh cost a twentieth of the server's CPU with one event a
		// request.
		{&w.countEndpoints, `SELECT (SELECT count(*) FROM endpoints
				WHERE account_id = a.id AND deleted_at IS NULL)
			FROM accounts a WHERE a.id = ?`},
		{&w.apiKeyByHash, `SELECT k.id, k.account_id, k.hash, k.created_at
			FROM api_keys k JOIN accounts a ON a.id = k.account_id
			WHERE k.hash = ? AND k.revoked_at IS NULL`},
	} {
		st, err := reader.PrepareContext(ctx, r.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", firstLine(r.sql), err)
		}
		*r.dst = st
		w.all = append(w.all, st)
	}
	if w.insertAttempts, err = prepareChunks(ctx, db, insertAttemptsCols, insertAttemptsSQL); err != nil {
		return fmt.Errorf("insert attempts: %w", err)
	}
	if w.completeDeliveries, err = prepareChunks(ctx, db, 7, completeDeliveriesSQL); err != nil {
		return fmt.Errorf("complete deliveries: %w", err)
	}
	if w.markFailing, err = prepareChunks(ctx, db, 3, markFailingSQL); err != nil {
		return fmt.Errorf("mark failing endpoints: %w", err)
	}
	for _, s := range []struct {
		dst *(*sql.Stmt)
		sql string
	}{
		{&w.accountExists, `SELECT 1 FROM accounts WHERE id = ?`},

		// An event whose (account, idempotency key) exists is skipped; no row
		// comes back and the caller looks the existing one up.
		{&w.insertEvent, `INSERT INTO events
			(id, account_id, type, task_id, task_type, idempotency_key, payload, occurred_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, idempotency_key) DO NOTHING
			RETURNING pk`},
		{&w.existingEvent, `SELECT e.id, (SELECT count(*) FROM deliveries d WHERE d.event_pk = e.pk)
			FROM events e WHERE e.account_id = ? AND e.idempotency_key = ?`},

		// An account's live endpoints, for the fan-out of its events.
		{&w.fanTargets, `SELECT id, events, status, disabled_reason FROM endpoints
			WHERE account_id = ? AND deleted_at IS NULL ORDER BY id`},

		// The claim, per endpoint: one range of the partial index
		// deliveries_queue, in due order, read from the index alone.
		// Leasing takes the deliveries out of deliveries_queue (lease_token
		// is set) into deliveries_leased, and moves next_attempt_at to the
		// lease's expiry: a delivery whose lease expires unfinished is due
		// at once when RescueExpiredLeases puts it back. The ids were read
		// on the reader pool, outside this transaction: only those still
		// pending, unleased and due are taken. ?1 leased until, ?2 token,
		// ?3 owner, ?4 the ids (a JSON array), ?5 now.
		{&w.claimLease, `UPDATE deliveries SET next_attempt_at = ?1, leased_until = ?1, lease_token = ?2, lease_owner = ?3
			WHERE id IN (SELECT value FROM json_each(?4))
				AND status = 'pending' AND lease_token IS NULL AND next_attempt_at <= ?5
			RETURNING id, account_id, endpoint_id, event_type, attempts, created_at, event_pk`},

		// A release puts the delivery back where it was in its endpoint's
		// queue (?3, the time it was due before the claim; NULL keeps the
		// lease's expiry).
		{&w.releaseDelivery, `UPDATE deliveries
			SET next_attempt_at = coalesce(?3, next_attempt_at), leased_until = NULL, lease_token = NULL, lease_owner = NULL
			WHERE id = ?1 AND lease_token = ?2`},
		// Nothing will send the pending deliveries of a disabled endpoint:
		// they fail, and their leases are dropped so that a late completion
		// of an in-flight attempt records the attempt without reviving them.
		{&w.failPendingOfEndpoint, `UPDATE deliveries
			SET status = 'failed', last_error = ?1,
			    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = ?2
			WHERE ` + pendingOfEndpoint("?3")},
		// RescueExpiredLeases: one seek of deliveries_leased. ?1 now.
		{&w.rescueLeases, `UPDATE deliveries INDEXED BY deliveries_leased
			SET leased_until = NULL, lease_token = NULL, lease_owner = NULL
			WHERE status = 'pending' AND lease_token IS NOT NULL AND leased_until <= ?1`},
	} {
		st, err := db.PrepareContext(ctx, s.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", firstLine(s.sql), err)
		}
		*s.dst = st
		w.all = append(w.all, st)
	}
	return nil
}

func (w *writerStmts) close() error {
	var errs []error
	for _, s := range w.all {
		errs = append(errs, s.Close())
	}
	w.all = nil
	errs = append(errs, w.insertDeliveries.close(), w.insertAttempts.close(), w.completeDeliveries.close(), w.markFailing.close())
	return errors.Join(errs...)
}

// pendingOfEndpoint is the WHERE clause that finds the pending deliveries
// of the endpoint given by param: those queued, from deliveries_queue, and
// those leased, from deliveries_leased (a scan of it, as small as the
// deliveries in flight). Each half names its index's predicate, so that
// the planner does not read the endpoint's whole history through
// deliveries_endpoint instead.
func pendingOfEndpoint(param string) string {
	return `id IN (
		SELECT id FROM deliveries WHERE endpoint_id = ` + param + ` AND status = 'pending' AND lease_token IS NULL
		UNION ALL
		SELECT id FROM deliveries INDEXED BY deliveries_leased
			WHERE endpoint_id = ` + param + ` AND status = 'pending' AND lease_token IS NOT NULL)`
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
