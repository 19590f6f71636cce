package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// PruneHistory deletes one bounded step of old history in one transaction,
// in the three statements of the SQLite driver:
//
//  1. Up to p.Limit finished deliveries last updated before p.Before,
//     oldest first, found through the partial index deliveries_finished.
//     Their attempts go with them by ON DELETE CASCADE.
//  2. The events of exactly those deliveries, when created before p.Before
//     and left without any delivery: each pruned delivery orphans at most
//     one event, so this costs no more than step 1.
//  3. Events that never had a delivery (no endpoint was subscribed): among
//     the p.Limit oldest events by pk, those created before p.Before and
//     without deliveries. The sweep looks at a fixed window instead of
//     searching the whole table for orphans, so a step costs O(p.Limit)
//     however many old events still have deliveries; pks grow with
//     insertion, so the window follows the pruning front.
//
// Steps 2 and 3 are statements of their own, after step 1, so that their
// NOT EXISTS sees step 1's deletions. Pending deliveries are never
// selected, and an event with any delivery left is never deleted, so nothing
// in flight is touched.
func (s *Store) PruneHistory(ctx context.Context, p store.PruneParams) (int, error) {
	if p.Limit <= 0 {
		return 0, nil
	}
	return sqlshared.InTxValue(ctx, s.inTx, "prune history", func(tx pgx.Tx) (int, error) {
		before := truncMicros(p.Before)
		rows, err := tx.Query(ctx, sqlshared.PruneDeliveriesSQL, before, p.Limit)
		if err != nil {
			return 0, wrap("prune history: deliveries", err)
		}
		events, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return 0, wrap("prune history: deliveries", err)
		}
		b := &pgx.Batch{}
		if len(events) > 0 {
			b.Queue(`DELETE FROM events
				WHERE pk = ANY ($1) AND created_at < $2
				  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk)`, events, before)
		}
		b.Queue(sqlshared.PruneEventsWindowSQL, before, p.Limit)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return 0, wrap("prune history: events", err)
		}
		return len(events), nil
	})
}
