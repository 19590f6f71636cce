package sqlite

import (
	"context"
	"database/sql"

	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// deletePrunedEvents is steps 2 and 3 of PruneHistory: the events of the
// pruned deliveries, then the window of events that never had one.
func deletePrunedEvents(ctx context.Context, tx *sql.Tx, events []int64, before any, limit int) error {
	if len(events) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM events
			WHERE pk IN (SELECT value FROM json_each(?1)) AND created_at < ?2
			  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk)`,
			idArray(events), before); err != nil {
			return wrap("prune history: events of pruned deliveries", err)
		}
	}
	if _, err := tx.ExecContext(ctx, pruneEventsWindowSQL, before, limit); err != nil {
		return wrap("prune history: events without deliveries", err)
	}
	return nil
}

// pruneEventsWindowSQL is sqlshared.PruneEventsWindowSQL as SQLite binds it.
var pruneEventsWindowSQL = sqlshared.Numbered(sqlshared.PruneEventsWindowSQL)

// PruneHistory deletes one bounded step of old history in one write
// transaction (sqlshared.PruneHistory), in three statements:
//
//  1. Up to p.Limit finished deliveries last updated before p.Before,
//     oldest first, found through the partial index deliveries_finished.
//     Their attempts go with them by ON DELETE CASCADE (foreign keys are on
//     for every connection), through attempts_delivery.
//  2. The events of exactly those deliveries, when created before p.Before
//     and left without any delivery: each pruned delivery orphans at most
//     one event, so this costs no more than step 1.
//  3. Events that never had a delivery (no endpoint was subscribed): among
//     the p.Limit oldest events by pk, those created before p.Before and
//     without deliveries. The sweep looks at a fixed window instead of
//     searching the whole table for orphans, so a step costs O(p.Limit)
//     however many old events still have deliveries; pks grow with
//     insertion, so the window follows the pruning front. An event in the
//     window that must stay (a pending delivery, or one finished after
//     p.Before) only delays the orphans behind it until it is pruned
//     itself. Ordering by pk needs no index on events, whose insert is on
//     the publish path.
//
// Pending deliveries are never selected, and an event with any delivery
// left is never deleted, so nothing in flight is touched.
func (s *Store) PruneHistory(ctx context.Context, p store.PruneParams) (int, error) {
	return sqlshared.PruneHistory(ctx, s.inTx, queryTx, wrap, p.Limit, micros(p.Before), deletePrunedEvents)
}
