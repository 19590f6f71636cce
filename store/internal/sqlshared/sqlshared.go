// Package sqlshared holds what the SQL drivers share that is no domain
// rule: the column lists of their common schema, the statements they write
// alike, and reading rows, whichever database/sql or pgx produced them.
// Domain decisions live in the root package nanohook.
package sqlshared

import (
	"context"
	"strings"

	"github.com/nanohook/nanohook/store"
)

// EndpointColumns is the column list an endpoint is read with, in the
// order each driver's scanEndpoint reads it.
const EndpointColumns = `id, account_id, url, events, status, description, disabled_reason, secret, created_at, updated_at, previous_secret_until`

// DeliveryColumns is the column list a delivery is read with, over
// deliveries d joined with events ev, in the order each driver's
// scanDelivery reads it.
const DeliveryColumns = `d.id, d.account_id, d.endpoint_id, ev.id, d.event_type, d.status,
	d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.updated_at`

// Scanner is one row, as pgx.Row, pgx.Rows, *sql.Row and *sql.Rows have
// it.
type Scanner interface {
	Scan(dest ...any) error
}

// DeliveryByIDSQL reads one delivery with DeliveryColumns: $1 its id.
const DeliveryByIDSQL = `SELECT ` + DeliveryColumns + `
	FROM deliveries d JOIN events ev ON ev.pk = d.event_pk WHERE d.id = $1`

// PruneDeliveriesSQL deletes up to $2 finished deliveries last updated
// before $1, oldest first, and returns the event of each. They are found
// through the partial index deliveries_finished: status IN (…) is written
// exactly as in the index's WHERE clause, so that the planner can use it.
// Their attempts go with them by ON DELETE CASCADE.
const PruneDeliveriesSQL = `DELETE FROM deliveries WHERE id IN (
		SELECT id FROM deliveries
		WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < $1
		ORDER BY updated_at, id
		LIMIT $2)
	RETURNING event_pk`

// PruneEventsWindowSQL deletes, among the $2 oldest events by pk, those
// created before $1 that have no delivery: events that never had one (no
// endpoint was subscribed). A fixed window instead of a search of the
// whole table keeps a step O($2) however many old events still have
// deliveries; pks grow with insertion, so the window follows the pruning
// front.
const PruneEventsWindowSQL = `DELETE FROM events
	WHERE pk IN (SELECT pk FROM events ORDER BY pk LIMIT $2) AND created_at < $1
	  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk)`

// Query runs a statement of this package, written with $N parameters, in
// a driver's transaction Tx and dialect.
type Query[Tx any] func(ctx context.Context, tx Tx, q string, args ...any) (Rows, error)

// PruneHistory is one step of store.Store.PruneHistory, the same on every
// driver: in one transaction of inTx, up to limit finished deliveries last
// updated before before (the time as the driver binds it) go with their
// attempts (PruneDeliveriesSQL, run by query), then deleteEvents deletes,
// among the events of those deliveries, the ones created before before
// and left without any delivery, and runs PruneEventsWindowSQL (with
// before and limit); its
// statements come after the first, so that their NOT EXISTS sees its
// deletions. It returns how many deliveries it deleted; errors are wrapped
// by the driver's wrap. Pending deliveries are never selected and an event
// with any delivery left is never deleted, so nothing in flight is
// touched. A limit of 0 or less deletes nothing.
func PruneHistory[Tx any](ctx context.Context, inTx InTx[Tx], query Query[Tx], wrap func(op string, err error) error,
	limit int, before any, deleteEvents func(ctx context.Context, tx Tx, events []int64, before any, limit int) error) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	return InTxValue(ctx, inTx, "prune history", func(tx Tx) (int, error) {
		rows, err := query(ctx, tx, PruneDeliveriesSQL, before, limit)
		events, err := CollectQuery(rows, err, scanInt64)
		if err != nil {
			return 0, wrap("prune history: deliveries", err)
		}
		return len(events), deleteEvents(ctx, tx, events, before, limit)
	})
}

func scanInt64(s Scanner) (v int64, err error) { return v, s.Scan(&v) }

// Rows is what pgx.Rows and *sql.Rows have in common.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// CollectQuery is Collect of a query's rows, or the query's error.
func CollectQuery[T any](rows Rows, err error, scan func(Scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return Collect(rows, scan)
}

// Collect reads every row of rows with scan, into a non-nil slice, and
// closes rows.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	defer closeRows(rows)
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// closeRows closes pgx's rows (Close()) and database/sql's (Close() error).
func closeRows(rows Rows) {
	switch r := rows.(type) {
	case interface{ Close() }:
		r.Close()
	case interface{ Close() error }:
		_ = r.Close() // the error, if any, is rows.Err's
	}
}

// SecretsAfterSQL reads the sealed columns of up to $2 endpoints with ids
// above $1, deleted ones included: their URLs and secrets are at rest too.
const SecretsAfterSQL = `SELECT id, url, secret, previous_secret FROM endpoints
	WHERE id > $1 ORDER BY id LIMIT $2`

// ScanStoredSecrets reads a row of SecretsAfterSQL.
func ScanStoredSecrets(r Scanner) (store.StoredSecrets, error) {
	var s store.StoredSecrets
	err := r.Scan(&s.ID, &s.URL, &s.Secret, &s.Previous)
	return s, err
}

// InTx is a driver's transaction runner: fn runs in a transaction named op
// (for errors), perhaps more than once.
type InTx[Tx any] func(ctx context.Context, op string, fn func(tx Tx) error) error

// InTxValue runs fn in a transaction of inTx and returns its value, or the
// zero value and the error when the transaction failed.
func InTxValue[Tx, T any](ctx context.Context, inTx InTx[Tx], op string, fn func(tx Tx) (T, error)) (T, error) {
	var v T
	err := inTx(ctx, op, func(tx Tx) error {
		var err error
		v, err = fn(tx)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// Numbered rewrites the PostgreSQL parameters $1, $2, … of a statement
// both drivers run as SQLite's ?1, ?2, …, which bind the same arguments.
// Statements are written with no '$' but in their parameters.
func Numbered(q string) string { return strings.ReplaceAll(q, "$", "?") }
