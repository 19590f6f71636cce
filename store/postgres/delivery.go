package postgres

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// claimSQL leases due deliveries by per-endpoint quotas and returns what a
// worker needs, in one statement (so one round trip, atomic without
// BEGIN/COMMIT):
//
//   - q is the quotas, one row per endpoint ($1 endpoints, $2 limits), in
//     the caller's order (ord).
//   - due takes, for each quota, up to its limit of the endpoint's due
//     deliveries in due order: one range of the partial index
//     deliveries_queue per endpoint, however deep any queue is. FOR NO KEY
//     UPDATE SKIP LOCKED passes over rows another node is claiming this
//     instant instead of waiting for them, and re-checks the WHERE of rows
//     that changed since the statement began: a row another node leased
//     meanwhile has a lease_token and is no longer in the queue, so two
//     nodes never lease one row. NO KEY
//     UPDATE, the lock an UPDATE of non-key columns takes anyway, still
//     lets attempts referencing the row be inserted meanwhile.
//   - token draws one lease token per claim from the shared sequence (a
//     CTE with a volatile function is evaluated once).
//   - claimed leases the rows, which takes them out of deliveries_queue
//     (into deliveries_leased), and moves next_attempt_at to the lease's
//     expiry, when RescueExpiredLeases puts a crashed node's claims back;
//     it returns the time each was due, for Lease.DueAt.
//   - the final join reads the endpoint and event of every claimed row,
//     the previous secret with its expiry as stored (whether it is still
//     valid is nanohook.PreviousSecretValid's decision, in Go).
//     An event's payload comes once, on the first of its rows (first), and
//     NULL on the others: a large event fanned out to many endpoints
//     crosses the network, and is held, once.
//
// $1 endpoints, $2 limits, $3 now, $4 leased until, $5 owner.
const claimSQL = `WITH q AS (
		SELECT * FROM unnest($1::bigint[], $2::integer[]) WITH ORDINALITY AS q(endpoint_id, n, ord)
	), due AS (
		SELECT x.id, x.next_attempt_at AS due_at, q.ord
		FROM q CROSS JOIN LATERAL (
			SELECT id, next_attempt_at FROM deliveries
			WHERE endpoint_id = q.endpoint_id AND status = 'pending' AND lease_token IS NULL AND next_attempt_at <= $3
			ORDER BY next_attempt_at, id
			LIMIT q.n
			FOR NO KEY UPDATE SKIP LOCKED
		) x
	), token AS (
		SELECT nextval('lease_tokens') AS t
	), claimed AS (
		UPDATE deliveries d SET next_attempt_at = $4, leased_until = $4, lease_token = token.t, lease_owner = $5
		FROM due, token
		WHERE d.id = due.id
		RETURNING d.id, d.lease_token, due.due_at, due.ord, d.account_id, d.endpoint_id, d.event_pk, d.event_type,
			d.attempts, d.created_at
	)
	SELECT c.id, c.lease_token, c.due_at, c.account_id, c.endpoint_id, c.event_type, c.attempts, c.created_at,
		ep.url, ep.secret, ep.status, ep.deleted_at IS NOT NULL, ep.disabled_reason,
		ep.previous_secret, ep.previous_secret_until,
		ev.id, c.event_pk, row_number() OVER w = 1, CASE WHEN row_number() OVER w = 1 THEN ev.payload END
	FROM claimed c
	JOIN endpoints ep ON ep.id = c.endpoint_id
	JOIN events ev ON ev.pk = c.event_pk
	WINDOW w AS (PARTITION BY c.event_pk ORDER BY c.id)
	ORDER BY c.ord, c.due_at, c.id`

// ClaimDeliveries leases, for each quota, up to its limit of the
// endpoint's due deliveries, in one statement (see claimSQL). All claims of
// one call share one fresh token; deliveries are told apart by id.
func (s *Store) ClaimDeliveries(ctx context.Context, p store.ClaimParams) ([]store.ClaimedDelivery, error) {
	quotas := store.MergeQuotas(p.Quotas)
	if len(quotas) == 0 {
		return []store.ClaimedDelivery{}, nil
	}
	endpoints := make([]int64, len(quotas))
	limits := make([]int32, len(quotas))
	total := 0
	for i, q := range quotas {
		endpoints[i], limits[i] = q.EndpointID, int32(min(q.Limit, math.MaxInt32))
		total += int(limits[i])
	}
	c, err := s.acquireAsyncCommit(ctx, "claim deliveries")
	if err != nil {
		return nil, err
	}
	defer c.Release()
	now := truncMicros(p.Now)
	rows, err := c.Query(ctx, claimSQL, endpoints, limits, now, truncMicros(p.LeaseUntil), p.Owner)
	if err != nil {
		return nil, wrap("claim deliveries", err)
	}
	out := make([]store.ClaimedDelivery, 0, min(total, 1024))
	var eventPKs []int64
	payloads := map[int64][]byte{}
	var stale []staleClaim
	for rows.Next() {
		var cd store.ClaimedDelivery
		var eventType, epStatus, reason string
		var deleted, first bool
		var eventPK int64
		var payload []byte
		var previousUntil pgtype.Timestamptz
		if err := rows.Scan(&cd.DeliveryID, &cd.Token, &cd.DueAt, &cd.AccountID, &cd.EndpointID, &eventType, &cd.Attempt,
			&cd.CreatedAt, &cd.URL, &cd.Secret, &epStatus, &deleted, &reason, &cd.PreviousSecret, &previousUntil, &cd.EventID,
			&eventPK, &first, &payload); err != nil {
			rows.Close()
			return nil, wrap("claim deliveries", err)
		}
		if !nanohook.PreviousSecretValid(previousUntil.Time, now) {
			cd.PreviousSecret = "" // expired (or never rotated)
		}
		if first {
			if payload == nil {
				payload = []byte{}
			}
			payloads[eventPK] = payload
		}
		// DeleteEndpoint and disabling finish pending deliveries, and the
		// fan-out's FOR SHARE keeps new ones from slipping past them, so an
		// undeliverable claim should not happen (except for a ping to a
		// disabled endpoint whose lease expired); if it does, the delivery
		// is finished the same way instead of sent.
		ep := nanohook.EndpointState{Status: nanohook.EndpointStatus(epStatus), Deleted: deleted, DisabledReason: reason}
		if status, lastError, ok := nanohook.EndUndeliverable(ep); ok {
			stale = append(stale, staleClaim{lease: cd.Lease, status: status, lastError: lastError})
			continue
		}
		cd.EventType = nanohook.EventType(eventType)
		cd.Attempt++
		out = append(out, cd)
		eventPKs = append(eventPKs, eventPK)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap("claim deliveries", err)
	}
	for i := range out {
		out[i].Payload = payloads[eventPKs[i]]
	}
	if len(stale) > 0 {
		// The rows are leased to this call, so nobody else changes them
		// meanwhile; the lease token in the WHERE makes sure of it.
		b := &pgx.Batch{}
		for _, st := range stale {
			b.Queue(`UPDATE deliveries
				SET status = $1, last_error = $2, leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $3
				WHERE id = $4 AND lease_token = $5`, string(st.status), st.lastError, truncMicros(p.Now), st.lease.DeliveryID, st.lease.Token)
		}
		if err := c.SendBatch(ctx, b).Close(); err != nil {
			return nil, wrap("claim deliveries: finish stale", err)
		}
	}
	out, err = s.openClaims(ctx, c, out, p.Now)
	if err != nil {
		return nil, err
	}
	return store.GroupByQuota(p.Quotas, out), nil
}

// rescueLeasesSQL is RescueExpiredLeases: one probe of deliveries_leased.
// $1 now.
const rescueLeasesSQL = `UPDATE deliveries SET leased_until = NULL, lease_token = NULL, lease_owner = NULL
	WHERE status = 'pending' AND lease_token IS NOT NULL AND leased_until <= $1`

// RescueExpiredLeases puts deliveries whose lease has expired back in their
// endpoint's queue, due at once: their claimer crashed or lost its
// outcome. Any node may run it; two at once rescue each row once (the
// second waits for the first's row locks and then finds them rescued).
func (s *Store) RescueExpiredLeases(ctx context.Context, now time.Time) (int64, error) {
	c, err := s.acquire(ctx, "rescue expired leases")
	if err != nil {
		return 0, err
	}
	defer c.Release()
	tag, err := c.Exec(ctx, rescueLeasesSQL, truncMicros(now))
	if err != nil {
		return 0, wrap("rescue expired leases", err)
	}
	return tag.RowsAffected(), nil
}

// pendingOfEndpoint is the WHERE clause that finds the pending deliveries
// of the endpoint given by the SQL expression id: those queued, from
// deliveries_queue, and those leased, from deliveries_leased (as small as
// the deliveries in flight). Each half names its index's predicate, so
// that the planner need not read the endpoint's whole history through
// deliveries_endpoint instead; status = 'pending' is checked again on the
// row itself, which a concurrent change may have finished meanwhile.
func pendingOfEndpoint(id string) string {
	return `status = 'pending' AND id IN (
		SELECT id FROM deliveries WHERE endpoint_id = ` + id + ` AND status = 'pending' AND lease_token IS NULL
		UNION ALL
		SELECT id FROM deliveries WHERE endpoint_id = ` + id + ` AND status = 'pending' AND lease_token IS NOT NULL)`
}

// queueHeadsSQL walks deliveries_queue from endpoint to endpoint (a loose
// index scan) instead of reading every pending row. Each step takes the
// first entry past the previous endpoint: in the index's order that entry
// is the next endpoint's head, its earliest pending delivery, and that
// delivery's row gives the account too (copied from the endpoint). So the
// cost is one index probe and one row per endpoint with pending
// deliveries, however many each has queued.
const queueHeadsSQL = `WITH RECURSIVE h AS (
		(SELECT endpoint_id, account_id, next_attempt_at FROM deliveries
			WHERE status = 'pending' AND lease_token IS NULL
			ORDER BY endpoint_id, next_attempt_at, id LIMIT 1)
		UNION ALL
		SELECT x.endpoint_id, x.account_id, x.next_attempt_at FROM h CROSS JOIN LATERAL (
			SELECT endpoint_id, account_id, next_attempt_at FROM deliveries
			WHERE status = 'pending' AND lease_token IS NULL AND endpoint_id > h.endpoint_id
			ORDER BY endpoint_id, next_attempt_at, id LIMIT 1) x
	)
	SELECT endpoint_id, account_id, next_attempt_at FROM h ORDER BY endpoint_id`

// QueueHeads lists each endpoint with pending deliveries and its head,
// across every node sharing the database: see queueHeadsSQL for the walk.
func (s *Store) QueueHeads(ctx context.Context) ([]store.QueueHead, error) {
	c, err := s.acquire(ctx, "queue heads")
	if err != nil {
		return nil, err
	}
	defer c.Release()
	rows, err := c.Query(ctx, queueHeadsSQL)
	out, err := sqlshared.CollectQuery(rows, err, func(r sqlshared.Scanner) (h store.QueueHead, err error) {
		return h, r.Scan(&h.EndpointID, &h.AccountID, &h.DueAt)
	})
	if err != nil {
		return nil, wrap("queue heads", err)
	}
	return out, nil
}

// staleClaim is a claimed delivery whose endpoint turned out to be deleted
// or disabled, and how it ends (nanohook.EndUndeliverable).
type staleClaim struct {
	lease     store.Lease
	status    nanohook.DeliveryStatus
	lastError string
}

// insertAttemptsSQL records a batch of attempts, one row per element of the
// arrays, in input order (ids follow it). The attempt is recorded whatever
// the lease says (it happened), but only for a delivery that still exists,
// so that one pruned delivery cannot fail the whole batch on the foreign
// key.
const insertAttemptsSQL = `INSERT INTO attempts
		(delivery_id, number, started_at, duration_us, response_status, response_body, location, error,
		 request_headers, remote_addr)
	SELECT v.delivery_id, v.number, v.started_at, v.duration_us, v.response_status, v.response_body, v.location, v.error,
		v.request_headers, v.remote_addr
	FROM unnest($1::bigint[], $2::integer[], $3::timestamptz[], $4::bigint[], $5::integer[], $6::bytea[], $7::text[], $8::text[],
			$9::text[], $10::text[])
		WITH ORDINALITY AS v(delivery_id, number, started_at, duration_us, response_status, response_body, location, error,
			request_headers, remote_addr, ord)
	WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = v.delivery_id)
	ORDER BY v.ord`

// completeDeliveriesSQL moves a batch of deliveries on. Only the holder of
// the current lease does: the token must match. A NULL next attempt time
// keeps the old one (final states need none).
const completeDeliveriesSQL = `UPDATE deliveries d
	SET status = v.status, attempts = v.attempts,
	    next_attempt_at = coalesce(v.next_attempt_at, d.next_attempt_at), last_error = v.last_error,
	    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = v.updated_at
	FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::integer[], $5::timestamptz[], $6::text[], $7::timestamptz[])
		AS v(id, lease_token, status, attempts, next_attempt_at, last_error, updated_at)
	WHERE d.id = v.id AND d.lease_token = v.lease_token`

// lockEndpointsOfSQL locks the endpoints of the given deliveries before a
// completion touches the deliveries: deleting or disabling an endpoint locks
// the endpoint and then its deliveries, and taking them in the same order
// here keeps a 410 answered during a delete from deadlocking with it.
const lockEndpointsOfSQL = `SELECT e.id FROM endpoints e
	WHERE e.id IN (SELECT d.endpoint_id FROM deliveries d WHERE d.id = ANY ($1))
	ORDER BY e.id
	FOR NO KEY UPDATE`

// markFailingSQL keeps endpoints' failing_since up to date from a batch of
// attempts ($1 delivery ids, $2 whether each succeeded, $3 their start
// times); the endpoint is the delivery row's. Per endpoint, the latest
// success of the batch clears the mark and the earliest failure after it
// (or, with no success, the earliest failure) sets it; a mark already set
// is kept unless a success clears it (the earlier of the two is kept).
// Only endpoints whose mark changes are locked and written, in id order,
// and before the batch touches any delivery: disabling and deleting lock
// the endpoint before its deliveries too, so neither can deadlock with it.
const markFailingSQL = `WITH v AS (
		SELECT d.endpoint_id AS eid, x.ok, x.t
		FROM unnest($1::bigint[], $2::boolean[], $3::timestamptz[]) AS x(id, ok, t)
		JOIN deliveries d ON d.id = x.id
	), o AS (
		SELECT eid, max(t) FILTER (WHERE ok) AS last_ok FROM v GROUP BY eid
	), a AS (
		SELECT o.eid, o.last_ok,
			(SELECT min(v.t) FROM v WHERE v.eid = o.eid AND NOT v.ok
				AND (o.last_ok IS NULL OR v.t > o.last_ok)) AS first_fail
		FROM o
	), n AS (
		SELECT e.id, CASE
			WHEN a.last_ok IS NOT NULL THEN a.first_fail
			ELSE least(e.failing_since, a.first_fail) END AS fs
		FROM a JOIN endpoints e ON e.id = a.eid
		WHERE e.failing_since IS DISTINCT FROM (CASE
			WHEN a.last_ok IS NOT NULL THEN a.first_fail
			ELSE least(e.failing_since, a.first_fail) END)
		ORDER BY e.id
		FOR NO KEY UPDATE OF e
	)
	UPDATE endpoints SET failing_since = n.fs FROM n WHERE endpoints.id = n.id`

// disableEndpointOfSQL disables the endpoint of delivery $1 (it answered
// 410 Gone) with reason $2 at $3. The endpoint is taken from the delivery
// row, which cannot disagree with it. One already disabled keeps its reason,
// and one deleted stays deleted.
const disableEndpointOfSQL = `UPDATE endpoints SET status = 'disabled', disabled_reason = $2, updated_at = $3
	WHERE id = (SELECT endpoint_id FROM deliveries WHERE id = $1) AND deleted_at IS NULL AND status = 'active'`

// failPendingOfDisabledSQL is failPendingOfEndpointSQL for the endpoint of
// delivery $3, run after disableEndpointOfSQL in the same batch: if the
// endpoint is now disabled (and live), nothing will send its pending
// deliveries.
var failPendingOfDisabledSQL = `UPDATE deliveries
	SET status = 'failed', last_error = $1,
	    leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = $2
	WHERE ` + pendingOfEndpoint(`(SELECT e.id FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
			WHERE d.id = $3 AND e.status = 'disabled' AND e.deleted_at IS NULL)`)

// CompleteDeliveries records a batch of attempts and moves their deliveries
// on, in one transaction and one round trip: the statements travel in one
// pgx.Batch, which PostgreSQL runs as one implicit transaction, and each
// writes all rows of the batch from arrays. Each attempt is recorded even
// when its lease is stale; the delivery only changes when the lease token
// still matches.
func (s *Store) CompleteDeliveries(ctx context.Context, results []store.CompleteParams) error {
	if len(results) == 0 {
		return nil
	}
	n := len(results)
	var (
		aDelivery = make([]int64, n)
		aNumber   = make([]int32, n)
		aStarted  = make([]time.Time, n)
		aDuration = make([]int64, n)
		aStatus   = make([]int32, n)
		aBody     = make([][]byte, n)
		aLocation = make([]string, n)
		aError    = make([]string, n)
		aHeaders  = make([]string, n)
		aRemote   = make([]string, n)
		gone      []int64
	)
	for i := range results {
		r := &results[i]
		a := r.Attempt.Bounded() // the engine bounded it already; no caller stores more
		aDelivery[i] = r.DeliveryID
		aNumber[i] = int32(a.Number)
		aStarted[i] = truncMicros(a.StartedAt)
		aDuration[i] = a.Duration.Microseconds()
		aStatus[i] = int32(a.ResponseStatus)
		aBody[i] = []byte(a.ResponseBody)
		aLocation[i] = pgText(a.Location)
		aError[i] = pgText(a.Error)
		aHeaders[i] = store.EncodeHeaders(a.RequestHeaders) // valid UTF-8, NUL escaped
		aRemote[i] = pgText(a.RemoteAddr)
		if r.DisableEndpoint != "" {
			gone = append(gone, r.DeliveryID)
		}
	}

	updates := store.FirstPerLease(results)
	m := len(updates)
	var (
		uID      = make([]int64, m)
		uToken   = make([]int64, m)
		uStatus  = make([]string, m)
		uNumber  = make([]int32, m)
		uNext    = make([]pgtype.Timestamptz, m)
		uLastErr = make([]string, m)
		uNow     = make([]time.Time, m)
	)
	for i := range updates {
		r := &updates[i]
		uID[i] = r.DeliveryID
		uToken[i] = r.Token
		uStatus[i] = string(r.Status)
		uNumber[i] = int32(r.Attempt.Number)
		uNext[i] = nullTime(r.NextAttemptAt)
		uLastErr[i] = pgText(r.LastError())
		uNow[i] = truncMicros(r.Now)
	}

	// Every attempt, stale lease or not, tells whether its endpoint is
	// failing (nanohook.AttemptHealth).
	var (
		mDelivery = make([]int64, 0, n)
		mOK       = make([]bool, 0, n)
		mStarted  = make([]time.Time, 0, n)
	)
	for i := range results {
		if ok, told := nanohook.AttemptHealth(results[i].Status); told {
			mDelivery = append(mDelivery, results[i].DeliveryID)
			mOK = append(mOK, ok)
			mStarted = append(mStarted, aStarted[i])
		}
	}

	b := &pgx.Batch{}
	if len(gone) > 0 {
		b.Queue(lockEndpointsOfSQL, gone)
	}
	if len(mDelivery) > 0 {
		b.Queue(markFailingSQL, mDelivery, mOK, mStarted)
	}
	b.Queue(insertAttemptsSQL, aDelivery, aNumber, aStarted, aDuration, aStatus, aBody, aLocation, aError, aHeaders, aRemote)
	b.Queue(completeDeliveriesSQL, uID, uToken, uStatus, uNumber, uNext, uLastErr, uNow)
	for _, r := range results {
		if r.DisableEndpoint != "" {
			b.Queue(disableEndpointOfSQL, r.DeliveryID, pgText(r.DisableEndpoint), truncMicros(r.Now))
			b.Queue(failPendingOfDisabledSQL, pgText(nanohook.DisabledEndpointError(r.DisableEndpoint)), truncMicros(r.Now), r.DeliveryID)
		}
	}

	c, err := s.acquireAsyncCommit(ctx, "complete deliveries")
	if err != nil {
		return err
	}
	defer c.Release()
	// Closing reads every result; the first error (which rolled the whole
	// batch back) is the one returned.
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return wrap("complete deliveries", err)
	}
	return nil
}

// pgText makes s storable in a text column. Attempt errors and Location
// headers come from remote servers and may carry bytes PostgreSQL text
// refuses (NUL, invalid UTF-8), which would fail the whole batch; they
// become U+FFFD, as encoding/json would render them anyway. Valid text is
// returned unchanged, without copying.
func pgText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// releaseSQL drops leases without counting an attempt, only where the token
// is still current, puts each delivery back at the time it was due before
// its claim ($3; NULL keeps the lease's expiry), and wakes the other nodes
// if it released anything: the work is due now, not when the lease would
// have expired.
const releaseSQL = `WITH released AS (
		UPDATE deliveries d SET next_attempt_at = coalesce(v.due_at, d.next_attempt_at),
			leased_until = NULL, lease_token = NULL, lease_owner = NULL
		FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[]) AS v(id, lease_token, due_at)
		WHERE d.id = v.id AND d.lease_token = v.lease_token
		RETURNING 1
	)
	SELECT pg_notify('` + dueChannel + `', current_schema()) WHERE EXISTS (SELECT 1 FROM released)`

// ReleaseDeliveries drops leases without counting an attempt and makes
// each delivery due again when it was due before its claim (Lease.DueAt),
// so that a stopping node hands its unstarted work straight back instead of
// letting it wait for the lease to expire, in its old place in its
// endpoint's queue. Leases that are no longer current are ignored.
func (s *Store) ReleaseDeliveries(ctx context.Context, leases []store.Lease) error {
	if len(leases) == 0 {
		return nil
	}
	ids := make([]int64, len(leases))
	tokens := make([]int64, len(leases))
	dueAt := make([]pgtype.Timestamptz, len(leases))
	for i, l := range leases {
		ids[i], tokens[i], dueAt[i] = l.DeliveryID, l.Token, nullTime(l.DueAt)
	}
	c, err := s.acquireAsyncCommit(ctx, "release deliveries")
	if err != nil {
		return err
	}
	defer c.Release()
	if _, err := c.Exec(ctx, releaseSQL, ids, tokens, dueAt); err != nil {
		return wrap("release deliveries", err)
	}
	return nil
}

// GetDelivery returns a delivery of the account with its newest attempts
// in order, in one statement so that the two agree (one snapshot) at the
// cost of repeating the delivery's columns on every attempt row; the
// payload, up to the largest event allowed, comes on the first row only.
func (s *Store) GetDelivery(ctx context.Context, accountID, id int64) (nanohook.Delivery, []nanohook.Attempt, error) {
	c, err := s.acquire(ctx, "get delivery")
	if err != nil {
		return nanohook.Delivery{}, nil, err
	}
	defer c.Release()
	rows, err := c.Query(ctx, `SELECT d.id, d.account_id, d.endpoint_id, ev.id, d.event_type, d.status,
			d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.updated_at,
			CASE WHEN row_number() OVER (ORDER BY a.number, a.id) = 1 THEN ev.payload END,
			a.id, a.number, a.started_at, a.duration_us, a.response_status, a.response_body, a.location, a.error,
			a.request_headers, a.remote_addr
		FROM deliveries d
		JOIN events ev ON ev.pk = d.event_pk
		LEFT JOIN LATERAL (
			SELECT * FROM attempts WHERE delivery_id = d.id
			ORDER BY number DESC, id DESC LIMIT $3
		) a ON true
		WHERE d.id = $1 AND d.account_id = $2
		ORDER BY a.number, a.id`, id, accountID, store.MaxDetailAttempts)
	if err != nil {
		return nanohook.Delivery{}, nil, wrap("get delivery", err)
	}
	defer rows.Close()
	var d nanohook.Delivery
	found := false
	attempts := []nanohook.Attempt{}
	for rows.Next() {
		var eventType, status string
		var (
			payload            []byte
			aID, aDuration     *int64
			aNumber, aResponse *int32
			aStarted           pgtype.Timestamptz
			aBody              []byte
			aLocation, aError  *string
			aHeaders, aRemote  *string
		)
		if err := rows.Scan(&d.ID, &d.AccountID, &d.EndpointID, &d.EventID, &eventType, &status,
			&d.Attempts, &d.NextAttemptAt, &d.LastError, &d.CreatedAt, &d.UpdatedAt, &payload,
			&aID, &aNumber, &aStarted, &aDuration, &aResponse, &aBody, &aLocation, &aError,
			&aHeaders, &aRemote); err != nil {
			return nanohook.Delivery{}, nil, wrap("get delivery", err)
		}
		if !found {
			d.Payload = payload
			if d.Payload == nil {
				d.Payload = []byte{}
			}
		}
		found = true
		d.EventType = nanohook.EventType(eventType)
		d.Status = nanohook.DeliveryStatus(status)
		if aID == nil {
			continue // no attempts yet: the one row is the delivery alone
		}
		headers, err := store.DecodeHeaders(*aHeaders)
		if err != nil {
			return nanohook.Delivery{}, nil, fmt.Errorf("postgres: get delivery: attempt %d: %w", *aID, err)
		}
		attempts = append(attempts, nanohook.Attempt{
			ID:             *aID,
			DeliveryID:     id,
			Number:         int(*aNumber),
			StartedAt:      aStarted.Time,
			Duration:       time.Duration(*aDuration) * time.Microsecond,
			ResponseStatus: int(*aResponse),
			ResponseBody:   string(aBody),
			Location:       *aLocation,
			Error:          *aError,
			RequestHeaders: headers,
			RemoteAddr:     *aRemote,
		})
	}
	if err := rows.Err(); err != nil {
		return nanohook.Delivery{}, nil, wrap("get delivery", err)
	}
	if !found {
		return nanohook.Delivery{}, nil, notFound("delivery", id)
	}
	return d, attempts, nil
}
