package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// The events API: an account's published events, each with where it went.

func scanEvent(r sqlshared.Scanner) (store.EventRecord, error) {
	var e store.EventRecord
	var typ string
	if err := r.Scan(&e.PK, &e.ID, &e.AccountID, &typ, &e.TaskID, &e.TaskType, &e.Payload, &e.OccurredAt, &e.CreatedAt); err != nil {
		return store.EventRecord{}, err
	}
	e.Type = nanohook.EventType(typ)
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	return e, nil
}

// eventDeliveriesSQL reads the deliveries of the events whose pks are $1
// (deliveries_event, a seek per event).
const eventDeliveriesSQL = `SELECT ` + sqlshared.EventDeliveriesColumns + ` FROM deliveries d
	WHERE d.event_pk = ANY($1) ORDER BY d.event_pk, d.id`

// ListEvents reads one page of the account's events (see
// sqlshared.ListEventsSQL), then their deliveries, in one repeatable-read
// transaction so that the two agree.
func (s *Store) ListEvents(ctx context.Context, p store.ListEventsParams) ([]store.EventRecord, error) {
	q, args := sqlshared.ListEventsSQL(p, func(t time.Time) any { return truncMicros(t) })
	var events []store.EventRecord
	err := s.readTx(ctx, "list events", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		if events, err = sqlshared.Collect(rows, scanEvent); err != nil {
			return err
		}
		return attachDeliveries(ctx, tx, events)
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// GetEventRecord reads one published event of the account and its
// deliveries in one repeatable-read transaction.
func (s *Store) GetEventRecord(ctx context.Context, accountID int64, id string) (store.EventRecord, error) {
	var events []store.EventRecord
	err := s.readTx(ctx, "get event", func(tx pgx.Tx) error {
		e, err := scanEvent(tx.QueryRow(ctx, sqlshared.EventByIDSQL, id, accountID))
		if err != nil {
			return err
		}
		events = []store.EventRecord{e}
		return attachDeliveries(ctx, tx, events)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.EventRecord{}, notFound("event", id)
	}
	if err != nil {
		return store.EventRecord{}, err
	}
	return events[0], nil
}

func attachDeliveries(ctx context.Context, tx pgx.Tx, events []store.EventRecord) error {
	if len(events) == 0 {
		return nil
	}
	pks := make([]int64, len(events))
	for i := range events {
		pks[i] = events[i].PK
	}
	rows, err := tx.Query(ctx, eventDeliveriesSQL, pks)
	if err != nil {
		return err
	}
	return sqlshared.AttachDeliveries(events, rows)
}

// readTx runs fn in a read-only, repeatable-read transaction on a
// connection of the pool; an error of fn other than pgx.ErrNoRows is
// wrapped with op.
func (s *Store) readTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	c, err := s.acquire(ctx, op)
	if err != nil {
		return err
	}
	defer c.Release()
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return wrap(op, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only; nothing to keep
	if err := fn(tx); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return wrap(op, err)
	}
	return nil
}
