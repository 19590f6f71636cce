package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// PruneHistory deletes one bounded step of old history in one transaction
// (sqlshared.PruneHistory): the finished deliveries, then, in one batch of
// statements of their own after that one, so that their NOT EXISTS sees
// its deletions, the events of exactly those deliveries left without any
// (each pruned delivery orphans at most one event, so this costs no more),
// and the window of events that never had a delivery.
func (s *Store) PruneHistory(ctx context.Context, p store.PruneParams) (int, error) {
	return sqlshared.PruneHistory(ctx, s.inTx, queryTx, wrap, p.Limit, truncMicros(p.Before),
		func(ctx context.Context, tx pgx.Tx, events []int64, before any, limit int) error {
			b := &pgx.Batch{}
			if len(events) > 0 {
				b.Queue(`DELETE FROM events
					WHERE pk = ANY ($1) AND created_at < $2
					  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk)`, events, before)
			}
			b.Queue(sqlshared.PruneEventsWindowSQL, before, limit)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return wrap("prune history: events", err)
			}
			return nil
		})
}
