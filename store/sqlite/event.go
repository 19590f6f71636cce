package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// PublishEvents writes a batch of events and their deliveries in one
// transaction: one fsync for the whole batch, and a publisher's 2xx means all
// of it is on disk. A missing account rolls everything back.
//
// An empty IdempotencyKey is stored as NULL, so such events are never
// treated as duplicates of one another.
func (s *Store) PublishEvents(ctx context.Context, events []store.PublishEventParams) ([]store.PublishResult, error) {
	if len(events) == 0 {
		return []store.PublishResult{}, nil
	}
	out := make([]store.PublishResult, len(events))
	err := s.inTx(ctx, "publish events", func(tx *sql.Tx) error {
		accountExists := tx.StmtContext(ctx, s.stmts.accountExists)
		insertEvent := tx.StmtContext(ctx, s.stmts.insertEvent)
		existingEvent := tx.StmtContext(ctx, s.stmts.existingEvent)
		fanOut := tx.StmtContext(ctx, s.stmts.fanOut)

		// Batches usually carry few accounts; each is checked once.
		known := make(map[int64]bool)
		lctx := loopContext(ctx)
		for i, p := range events {
			if err := ctx.Err(); err != nil {
				return wrap("publish events", err)
			}
			if !known[p.AccountID] {
				var one int
				err := accountExists.QueryRowContext(lctx, p.AccountID).Scan(&one)
				if errors.Is(err, sql.ErrNoRows) {
					return notFound("account", p.AccountID)
				}
				if err != nil {
					return wrap("publish events: account", err)
				}
				known[p.AccountID] = true
			}

			var key any // NULL: no idempotency
			if p.IdempotencyKey != "" {
				key = p.IdempotencyKey
			}
			payload := p.Payload
			if payload == nil {
				payload = []byte{} // NOT NULL column; nil would bind as NULL
			}
			var pk int64
			err := insertEvent.QueryRowContext(lctx, p.ID, p.AccountID, string(p.Type), p.TaskID, p.TaskType,
				key, payload, micros(p.OccurredAt), micros(p.Now)).Scan(&pk)
			if errors.Is(err, sql.ErrNoRows) {
				// The key was used before (possibly earlier in this batch).
				r := store.PublishResult{Duplicate: true}
				if err := existingEvent.QueryRowContext(lctx, p.AccountID, key).Scan(&r.EventID, &r.Deliveries); err != nil {
					return wrap("publish events: existing event", err)
				}
				out[i] = r
				continue
			}
			if err != nil {
				return wrap("publish events: insert event", err)
			}
			n, err := fanOutEvent(lctx, fanOut, p.AccountID, pk, p.Type, micros(p.Now))
			if err != nil {
				return wrap("publish events: insert deliveries", err)
			}
			out[i] = store.PublishResult{EventID: p.ID, Deliveries: n}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fanOutEvent runs the fan-out statement for one event and returns how many
// pending deliveries it created (the failed ones recorded for disabled
// endpoints are not counted).
func fanOutEvent(ctx context.Context, fanOut *sql.Stmt, accountID, pk int64, typ nanohook.EventType, now int64) (int, error) {
	rows, err := fanOut.QueryContext(ctx, accountID, pk, string(typ), now)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var pending bool
		if err := rows.Scan(&pending); err != nil {
			return 0, err
		}
		if pending {
			n++
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return n, rows.Close()
}

// GetEvent returns an event of the account by its public id; another
// account's event is store.ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, accountID int64, id string) (nanohook.Event, error) {
	var e nanohook.Event
	var typ string
	var occurred, created int64
	err := s.reader.QueryRowContext(ctx, `SELECT id, account_id, type, task_id, task_type,
			coalesce(idempotency_key, ''), payload, occurred_at, created_at
		FROM events WHERE id = ? AND account_id = ?`, id, accountID).
		Scan(&e.ID, &e.AccountID, &typ, &e.TaskID, &e.TaskType, &e.IdempotencyKey, &e.Payload, &occurred, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nanohook.Event{}, notFound("event", id)
	}
	if err != nil {
		return nanohook.Event{}, wrap("get event", err)
	}
	e.Type = nanohook.EventType(typ)
	e.OccurredAt = fromMicros(occurred)
	e.CreatedAt = fromMicros(created)
	return e, nil
}
