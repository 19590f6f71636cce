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

// readSnapshot is the events API's transaction: one snapshot for a page
// and its deliveries, reading only.
var readSnapshot = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

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
	err := s.inTxWith(ctx, "list events", readSnapshot, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, args...)
		if err == nil {
			events, err = sqlshared.Collect(rows, scanEvent)
		}
		if err == nil {
			err = attachDeliveries(ctx, tx, events)
		}
		if err != nil {
			return wrap("list events", err)
		}
		return nil
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
	err := s.inTxWith(ctx, "get event", readSnapshot, func(tx pgx.Tx) error {
		e, err := scanEvent(tx.QueryRow(ctx, sqlshared.EventByIDSQL, id, accountID))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("event", id)
		}
		if err == nil {
			events = []store.EventRecord{e}
			err = attachDeliveries(ctx, tx, events)
		}
		if err != nil {
			return wrap("get event", err)
		}
		return nil
	})
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
