package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// ClaimDeliveries leases, for each quota, up to its limit of the
// endpoint's due deliveries. The writer, which every publish, claim and
// outcome waits for, is held only for the lease itself; what can be read
// is read on the reader pool, before and after it:
//
//   - claimPick, once per endpoint and in one read transaction, reads the
//     ids and due times of the endpoint's oldest due deliveries: one range
//     of deliveries_queue, read from the index alone, about 10 µs in
//     process. One statement for every quota is not cheaper here: SQLite's
//     LIMIT cannot depend on an outer row, so it has to step through each
//     queue row by row (a recursive walk, a seek per delivery), which
//     measured ten times the cost of the per-endpoint ranges for two
//     quotas of 128, and no less for 64 quotas of 4 (BenchmarkClaimQuotas).
//   - claimLease, in a write transaction, leases those that are still due
//     and unleased (another process on the same file may have taken some
//     since the read) and returns their rows: setting the lease columns
//     takes them out of deliveries_queue (into deliveries_leased), and
//     next_attempt_at becomes the lease's expiry, when RescueExpiredLeases
//     puts a crashed node's claims back.
//   - claimEndpoints and claimEvents then read, once each, the endpoints
//     and events the leased rows name (see claimDetails): a fan-out of a
//     large event to many endpoints holds its bytes once, and a claim of
//     a hundred deliveries to ten endpoints opens ten URLs and secrets.
//
// All claims of one call share one fresh token; deliveries are told apart
// by id.
func (s *Store) ClaimDeliveries(ctx context.Context, p store.ClaimParams) ([]store.ClaimedDelivery, error) {
	quotas := store.MergeQuotas(p.Quotas)
	if len(quotas) == 0 {
		return []store.ClaimedDelivery{}, nil
	}
	picks, err := s.pickDue(ctx, quotas, p.Now)
	if err != nil || len(picks) == 0 {
		return []store.ClaimedDelivery{}, err
	}
	pickIDs := make([]int64, len(picks))
	for i, pk := range picks {
		pickIDs[i] = pk.id
	}

	token := s.leaseSeq.Add(1)
	var leased []leasedRow
	err = s.inTxWithoutFsync(ctx, "claim deliveries", func(tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, s.stmts.claimLease).QueryContext(ctx,
			micros(p.LeaseUntil), token, p.Owner, idArray(pickIDs), micros(p.Now))
		leased, err = sqlshared.CollectQuery(rows, err, func(r sqlshared.Scanner) (leasedRow, error) {
			var l leasedRow
			err := r.Scan(&l.id, &l.accountID, &l.endpointID, &l.eventType, &l.attempts, &l.createdAt, &l.eventPK)
			return l, err
		})
		if err != nil {
			return wrap("claim deliveries: lease", err)
		}
		return nil
	})
	if err != nil || len(leased) == 0 {
		return []store.ClaimedDelivery{}, err
	}

	// RETURNING gives the rows in no promised order; each finds its place
	// among the picks, which are in quota order, oldest first.
	at := make(map[int64]int, len(picks))
	for i, pk := range picks {
		at[pk.id] = i
	}
	slices.SortFunc(leased, func(a, b leasedRow) int { return cmp.Compare(at[a.id], at[b.id]) })
	claims, ended, err := s.claimDetails(ctx, leased, p.Now)
	if err != nil {
		// The deliveries are leased but cannot be sent: hand them back
		// where they were, or, failing that, their leases expire and
		// RescueExpiredLeases queues them again.
		back := make([]store.Lease, len(leased))
		for i, l := range leased {
			back[i] = store.Lease{DeliveryID: l.id, Token: token, DueAt: picks[at[l.id]].dueAt}
		}
		return nil, errors.Join(err, s.ReleaseDeliveries(context.WithoutCancel(ctx), back))
	}
	for i := range claims {
		c := &claims[i]
		c.Token = token
		c.DueAt = picks[at[c.DeliveryID]].dueAt
	}
	// If ending the unsendable ones fails, they stay leased: claimed again
	// when the lease expires, they are found unsendable again then. The
	// claims to send are leased and committed either way, so they go out
	// rather than wait for their own leases to expire.
	_ = s.endUnsendable(ctx, ended, token, p.Now)
	return store.GroupByQuota(p.Quotas, claims), nil
}

// leasedRow is what claimLease returns of a delivery it leased.
type leasedRow struct {
	id, accountID, endpointID int64
	eventType                 string
	attempts                  int
	createdAt, eventPK        int64
}

// unsendable is a leased delivery that is not sent: its endpoint turned out
// to be deleted or disabled (it ends as nanohook.EndUndeliverable says), or
// its URL or secret cannot be opened (postponed: see endUnsendable).
type unsendable struct {
	id        int64
	unopened  bool
	status    nanohook.DeliveryStatus
	lastError string
}

// claimDetails reads, on the reader pool, the endpoint and the event of
// each leased row, once per endpoint and per event, and makes the claims,
// in the order of leased. Deliveries that are not to be sent come back in
// ended instead.
//
// The rows are leased and committed, so nothing else moves them; an
// endpoint changed since the lease is read as it is now, as if the claim
// had come a moment later. DeleteEndpoint and disabling fail pending
// deliveries (leased ones included) in their own transaction, so a claim
// that finds its endpoint gone finds its lease gone too, and endUnsendable
// leaves it alone.
func (s *Store) claimDetails(ctx context.Context, leased []leasedRow, now time.Time) (claims []store.ClaimedDelivery, ended []unsendable, err error) {
	endpointIDs := make([]int64, 0, 16)
	eventPKs := make([]int64, 0, len(leased))
	seenEndpoint := make(map[int64]bool, 16)
	seenEvent := make(map[int64]bool, len(leased))
	for _, l := range leased {
		if !seenEndpoint[l.endpointID] {
			seenEndpoint[l.endpointID] = true
			endpointIDs = append(endpointIDs, l.endpointID)
		}
		if !seenEvent[l.eventPK] {
			seenEvent[l.eventPK] = true
			eventPKs = append(eventPKs, l.eventPK)
		}
	}
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, wrap("claim deliveries: details", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep

	type endpointRow struct {
		claim store.ClaimedDelivery // URL and secrets, opened
		end   *unsendable           // how its deliveries end, if they are not sent
	}
	endpoints := make(map[int64]*endpointRow, len(endpointIDs))
	rows, err := tx.StmtContext(ctx, s.stmts.claimEndpoints).QueryContext(ctx, idArray(endpointIDs))
	if err != nil {
		return nil, nil, wrap("claim deliveries: endpoints", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e endpointRow
		var st nanohook.EndpointState
		var status string
		var previousUntil int64
		if err := rows.Scan(&e.claim.EndpointID, &e.claim.URL, &e.claim.Secret, &status, &st.Deleted,
			&st.DisabledReason, &e.claim.PreviousSecret, &previousUntil); err != nil {
			return nil, nil, wrap("claim deliveries: endpoints", err)
		}
		st.Status = nanohook.EndpointStatus(status)
		if !nanohook.PreviousSecretValid(fromMicros(previousUntil), now) {
			e.claim.PreviousSecret = "" // expired (or never rotated)
		}
		// An undeliverable endpoint (see above; in practice a ping to a
		// disabled endpoint whose lease expired) finishes its deliveries
		// as EndUndeliverable says instead of sending them. A URL or
		// secret that cannot be opened (a key missing from this node's
		// keyring, a corrupt row) holds back only its endpoint's
		// deliveries. See endUnsendable.
		if status, lastError, ok := nanohook.EndUndeliverable(st); ok {
			e.end = &unsendable{status: status, lastError: lastError}
		} else if s.secrets.OpenClaim(&e.claim) != nil {
			e.end = &unsendable{unopened: true}
		}
		endpoints[e.claim.EndpointID] = &e
	}
	if err := rows.Err(); err != nil {
		return nil, nil, wrap("claim deliveries: endpoints", err)
	}
	rows.Close()

	type eventRow struct {
		id      string
		payload []byte
	}
	events := make(map[int64]eventRow, len(eventPKs))
	rows, err = tx.StmtContext(ctx, s.stmts.claimEvents).QueryContext(ctx, idArray(eventPKs))
	if err != nil {
		return nil, nil, wrap("claim deliveries: events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pk int64
		var e eventRow
		if err := rows.Scan(&pk, &e.id, &e.payload); err != nil {
			return nil, nil, wrap("claim deliveries: events", err)
		}
		if e.payload == nil {
			e.payload = []byte{}
		}
		events[pk] = e
	}
	if err := rows.Err(); err != nil {
		return nil, nil, wrap("claim deliveries: events", err)
	}

	claims = make([]store.ClaimedDelivery, 0, len(leased))
	for _, l := range leased {
		ep, ev := endpoints[l.endpointID], events[l.eventPK]
		if ep == nil || ev.payload == nil {
			// The foreign keys make this impossible while the lease holds.
			return nil, nil, fmt.Errorf("sqlite: claim deliveries: delivery %d: its endpoint or event is missing", l.id)
		}
		if ep.end != nil {
			u := *ep.end
			u.id = l.id
			ended = append(ended, u)
			continue
		}
		c := ep.claim
		c.DeliveryID = l.id
		c.AccountID = l.accountID
		c.EventID = ev.id
		c.EventType = nanohook.EventType(l.eventType)
		c.Payload = ev.payload
		c.Attempt = l.attempts + 1
		c.CreatedAt = fromMicros(l.createdAt)
		claims = append(claims, c)
	}
	return claims, ended, nil
}

// endUnsendable ends the claims of this lease that are not to be sent.
// Those of a deleted or disabled endpoint finish as EndUndeliverable says.
// Those whose endpoint's URL or secret this node cannot open are handed
// back, due again store.SecretRetryDelay later, with the customer-safe
// reason in last_error and no attempt counted. Failing the whole claim
// instead would stop every delivery: the unopenable one stays first in due
// order and would fail every later claim too. Pushing it back keeps the
// claimer from tripping over it at every poll, and a node with the key, or
// this one restarted with it, takes it at its new time. The store has no
// logger, so the detail (endpoint, key id, setting) is not reported here:
// CheckSecrets reports it, at serve's start and through `nanohook secrets
// check`.
//
// Only deliveries still under this lease change.
func (s *Store) endUnsendable(ctx context.Context, ended []unsendable, token int64, now time.Time) error {
	if len(ended) == 0 {
		return nil
	}
	return s.inTxWithoutFsync(ctx, "claim deliveries: end unsendable", func(tx *sql.Tx) error {
		for _, u := range ended {
			var err error
			if u.unopened {
				_, err = tx.ExecContext(ctx, `UPDATE deliveries
					SET next_attempt_at = ?, last_error = ?, leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = ?
					WHERE id = ? AND lease_token = ?`,
					micros(now.Add(store.SecretRetryDelay)), store.SecretUnopenedError, micros(now), u.id, token)
			} else {
				_, err = tx.ExecContext(ctx, `UPDATE deliveries
					SET status = ?, last_error = ?, leased_until = NULL, lease_token = NULL, lease_owner = NULL, updated_at = ?
					WHERE id = ? AND lease_token = ?`, string(u.status), u.lastError, micros(now), u.id, token)
			}
			if err != nil {
				return wrap("claim deliveries: end unsendable", err)
			}
		}
		return nil
	})
}

// pick is a due delivery a claim chose, with the time it was due.
type pick struct {
	id    int64
	dueAt time.Time
}

// pickDue reads, for each quota, the ids and due times of up to its limit
// of the endpoint's due deliveries, oldest first, in one read transaction
// on the reader pool; the result is in quota order. quotas name each
// endpoint once (store.MergeQuotas).
func (s *Store) pickDue(ctx context.Context, quotas []store.EndpointQuota, now time.Time) ([]pick, error) {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrap("claim deliveries", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	stmt := tx.StmtContext(ctx, s.stmts.claimPick)
	lctx := loopContext(ctx)
	var picks []pick
	for _, q := range quotas {
		if err := ctx.Err(); err != nil {
			return nil, wrap("claim deliveries", err)
		}
		rows, err := stmt.QueryContext(lctx, q.EndpointID, micros(now), q.Limit)
		if err != nil {
			return nil, wrap("claim deliveries", err)
		}
		for rows.Next() {
			var id, due int64
			if err := rows.Scan(&id, &due); err != nil {
				rows.Close()
				return nil, wrap("claim deliveries", err)
			}
			picks = append(picks, pick{id: id, dueAt: fromMicros(due)})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, wrap("claim deliveries", err)
		}
	}
	return picks, nil
}

// claimPickSQL is one endpoint's part of a claim (see writerStmts).
const claimPickSQL = `SELECT id, next_attempt_at FROM deliveries
	WHERE endpoint_id = ?1 AND status = 'pending' AND lease_token IS NULL AND next_attempt_at <= ?2
	ORDER BY next_attempt_at, id
	LIMIT ?3`

// queueHeadsSQL walks deliveries_queue from endpoint to endpoint (a loose
// index scan) instead of reading every pending row. Each step seeks the
// first entry past the previous endpoint: in the index's order that entry
// is the next endpoint's head, its earliest pending delivery, and that
// delivery's row gives the endpoint, the time and the account (copied from
// the endpoint). So the cost is one index seek and one row per endpoint
// with pending deliveries, however many each has queued; it measured a
// third less than seeking the next endpoint and its head separately and
// reading the account from the endpoint (BenchmarkQueueHeads). The walk
// starts from endpoint 0, below every id, and yields ascending ids.
const queueHeadsSQL = `WITH RECURSIVE q(endpoint_id, account_id, due) AS (
		SELECT 0, 0, 0
		UNION ALL
		SELECT d.endpoint_id, d.account_id, d.next_attempt_at FROM q JOIN deliveries d ON d.id = (
			SELECT id FROM deliveries WHERE status = 'pending' AND lease_token IS NULL AND endpoint_id > q.endpoint_id
			ORDER BY endpoint_id, next_attempt_at, id LIMIT 1)
	)
	SELECT endpoint_id, account_id, due FROM q WHERE endpoint_id > 0`

// RescueExpiredLeases puts deliveries whose lease has expired back in their
// endpoint's queue, due at once: their claimer crashed or lost its
// outcome. A read of deliveries_leased first (one seek, on the read pool)
// spares the writer when, as nearly always, there are none.
func (s *Store) RescueExpiredLeases(ctx context.Context, now time.Time) (int64, error) {
	var one int
	err := s.stmts.anyExpiredLease.QueryRowContext(ctx, micros(now)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("rescue expired leases", err)
	}
	var n int64
	err = s.inTxWithoutFsync(ctx, "rescue expired leases", func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.stmts.rescueLeases).ExecContext(ctx, micros(now))
		if err != nil {
			return wrap("rescue expired leases", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return wrap("rescue expired leases", err)
		}
		return nil
	})
	return n, err
}

// QueueHeads lists each endpoint with pending deliveries and its head, on
// the read pool: see queueHeadsSQL for the walk. The engine reads it at
// every round of planning, so it never waits for the writer.
func (s *Store) QueueHeads(ctx context.Context) ([]store.QueueHead, error) {
	rows, err := s.stmts.queueHeads.QueryContext(ctx)
	out, err := sqlshared.CollectQuery(rows, err, func(r sqlshared.Scanner) (store.QueueHead, error) {
		var h store.QueueHead
		var due int64
		err := r.Scan(&h.EndpointID, &h.AccountID, &due)
		h.DueAt = fromMicros(due)
		return h, err
	})
	if err != nil {
		return nil, wrap("queue heads", err)
	}
	return out, nil
}

// CompleteDeliveries records a batch of attempts and moves their deliveries
// on, in one transaction. Each attempt is recorded even when its lease is
// stale; the delivery only changes when the lease token still matches.
// Both writes go in multi-row statements of up to chunkRows results.
func (s *Store) CompleteDeliveries(ctx context.Context, results []store.CompleteParams) error {
	if len(results) == 0 {
		return nil
	}
	return s.inTxWithoutFsync(ctx, "complete deliveries", func(tx *sql.Tx) error {
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
		// failing (nanohook.AttemptHealth).
		type mark struct{ i, ok int } // ok: 1 the attempt succeeded, 0 it failed
		marks := make([]mark, 0, len(results))
		for i := range results {
			if ok, told := nanohook.AttemptHealth(results[i].Status); told {
				marks = append(marks, mark{i, boolInt(ok)})
			}
		}
		err = s.stmts.markFailing.exec(ctx, tx, len(marks), func(args []any, i int) []any {
			m := marks[i]
			r := &results[m.i]
			return append(args, r.DeliveryID, m.ok, micros(r.Attempt.StartedAt))
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
		nanohook.DisabledEndpointError(r.DisableEndpoint), micros(r.Now), endpointID); err != nil {
		return wrap("complete deliveries: fail pending deliveries", err)
	}
	return nil
}

// ReleaseDeliveries drops leases without counting an attempt and makes
// each delivery due again when it was due before its claim (Lease.DueAt),
// so that a stopping node hands its unstarted work straight back instead of
// letting it wait for the lease to expire, in its old place in its
// endpoint's queue. Leases that are no longer current are ignored.
func (s *Store) ReleaseDeliveries(ctx context.Context, leases []store.Lease) error {
	if len(leases) == 0 {
		return nil
	}
	return s.inTxWithoutFsync(ctx, "release deliveries", func(tx *sql.Tx) error {
		release := tx.StmtContext(ctx, s.stmts.releaseDelivery)
		lctx := loopContext(ctx)
		for _, l := range leases {
			if err := ctx.Err(); err != nil {
				return wrap("release deliveries", err)
			}
			if _, err := release.ExecContext(lctx, l.DeliveryID, l.Token, nullMicros(l.DueAt)); err != nil {
				return wrap(fmt.Sprintf("release delivery %d", l.DeliveryID), err)
			}
		}
		return nil
	})
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
			d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.updated_at, ev.payload
		FROM deliveries d JOIN events ev ON ev.pk = d.event_pk
		WHERE d.id = ? AND d.account_id = ?`, id, accountID).
		Scan(&d.ID, &d.AccountID, &d.EndpointID, &d.EventID, &eventType, &status,
			&d.Attempts, &next, &d.LastError, &created, &updated, &d.Payload)
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
	if d.Payload == nil {
		d.Payload = []byte{}
	}

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

// boolInt is b as the 1 or 0 SQLite stores.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
