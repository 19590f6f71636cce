package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nanohook/nanohook/store"
)

// statsSQL reads Store.Stats in one statement, so every number comes from
// the same snapshot. Each part is a range of a partial index: the pending
// counts and the oldest due time of deliveries_due, the endpoint counts of
// endpoints_live_status. The predicates are written exactly as the indexes'
// WHERE clauses so the planner matches them. $1 is now.
const statsSQL = `SELECT
	(SELECT count(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1),
	(SELECT count(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at > $1),
	(SELECT next_attempt_at FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1
		ORDER BY next_attempt_at LIMIT 1),
	(SELECT count(*) FROM endpoints WHERE status = 'active' AND deleted_at IS NULL),
	(SELECT count(*) FROM endpoints WHERE status = 'disabled' AND deleted_at IS NULL)`

// Stats counts pending deliveries and live endpoints across every node
// sharing the database.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	c, err := s.acquire(ctx, "stats")
	if err != nil {
		return store.Stats{}, err
	}
	defer c.Release()
	var st store.Stats
	var oldest pgtype.Timestamptz
	err = c.QueryRow(ctx, statsSQL, us(now)).Scan(
		&st.DueDeliveries, &st.ScheduledDeliveries, &oldest, &st.ActiveEndpoints, &st.DisabledEndpoints)
	if err != nil {
		return store.Stats{}, wrap("stats", err)
	}
	if oldest.Valid {
		st.OldestDueAt = oldest.Time
	}
	return st, nil
}
