package sqlite

import (
	"context"
	"database/sql"
	"strconv"

	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/internal/sqlshared"
)

// PruneHistory deletes one bounded step of old history in one write
// transaction, in three statements:
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
	if p.Limit <= 0 {
		return 0, nil
	}
	before := micros(p.Before)
	var deleted int
	err := s.inTx(ctx, "prune history", func(tx *sql.Tx) error {
		deleted = 0
		rows, err := tx.QueryContext(ctx, pruneDeliveriesSQL, before, p.Limit)
		if err != nil {
			return wrap("prune history: deliveries", err)
		}
		events := make([]byte, 0, 16*min(p.Limit, 1024))
		events = append(events, '[')
		for rows.Next() {
			var pk int64
			if err := rows.Scan(&pk); err != nil {
				rows.Close()
				return wrap("prune history: deliveries", err)
			}
			if deleted > 0 {
				events = append(events, ',')
			}
			events = strconv.AppendInt(events, pk, 10)
			deleted++
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return wrap("prune history: deliveries", err)
		}
		rows.Close()
		events = append(events, ']')

		if deleted > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM events
				WHERE pk IN (SELECT value FROM json_each(?1)) AND created_at < ?2
				  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk)`,
				string(events), before); err != nil {
				return wrap("prune history: events of pruned deliveries", err)
			}
		}
		if _, err := tx.ExecContext(ctx, pruneEventsWindowSQL, before, p.Limit); err != nil {
			return wrap("prune history: events without deliveries", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return deleted, nil
}

// The statements of a prune step that read the same on both drivers.
var (
	pruneDeliveriesSQL   = sqlshared.Numbered(sqlshared.PruneDeliveriesSQL)
	pruneEventsWindowSQL = sqlshared.Numbered(sqlshared.PruneEventsWindowSQL)
)
