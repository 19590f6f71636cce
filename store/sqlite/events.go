package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// The events API: an account's published events, each with where it went.

func scanEvent(r scanner) (store.EventRecord, error) {
	var e store.EventRecord
	var typ string
	var occurred, created int64
	if err := r.Scan(&e.PK, &e.ID, &e.AccountID, &typ, &e.TaskID, &e.TaskType, &e.Payload, &occurred, &created); err != nil {
		return store.EventRecord{}, err
	}
	e.Type = nanohook.EventType(typ)
	e.OccurredAt = fromMicros(occurred)
	e.CreatedAt = fromMicros(created)
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	return e, nil
}

// ListEvents reads one page of the account's events (see
// sqlshared.ListEventsSQL) and their deliveries in one read transaction.
func (s *Store) ListEvents(ctx context.Context, p store.ListEventsParams) ([]store.EventRecord, error) {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrap("list events", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	q, args := sqlshared.ListEventsSQL(p, func(t time.Time) any { return micros(t) })
	rows, err := tx.QueryContext(ctx, sqlshared.Numbered(q), args...)
	events, err := sqlshared.CollectQuery(rows, err, scanEvent)
	if err != nil {
		return nil, wrap("list events", err)
	}
	if err := s.attachDeliveries(ctx, tx, events); err != nil {
		return nil, err
	}
	return events, nil
}

// GetEventRecord reads one published event of the account and its
// deliveries in one read transaction.
func (s *Store) GetEventRecord(ctx context.Context, accountID int64, id string) (store.EventRecord, error) {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return store.EventRecord{}, wrap("get event", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	e, err := scanEvent(tx.QueryRowContext(ctx, sqlshared.Numbered(sqlshared.EventByIDSQL), id, accountID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.EventRecord{}, notFound("event", id)
	}
	if err != nil {
		return store.EventRecord{}, wrap("get event", err)
	}
	events := []store.EventRecord{e}
	if err := s.attachDeliveries(ctx, tx, events); err != nil {
		return store.EventRecord{}, err
	}
	return events[0], nil
}

// attachDeliveries reads the deliveries of events (deliveries_event, a
// seek per event) and gives each event its own, by id.
func (s *Store) attachDeliveries(ctx context.Context, tx *sql.Tx, events []store.EventRecord) error {
	if len(events) == 0 {
		return nil
	}
	pks := make([]int64, len(events))
	for i := range events {
		pks[i] = events[i].PK
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+sqlshared.EventDeliveriesColumns+` FROM deliveries d
		WHERE d.event_pk IN (SELECT value FROM json_each(?)) ORDER BY d.event_pk, d.id`, idArray(pks))
	if err != nil {
		return wrap("list events: deliveries", err)
	}
	if err := sqlshared.AttachDeliveries(events, rows); err != nil {
		return wrap("list events: deliveries", err)
	}
	return nil
}
