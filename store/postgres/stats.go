package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nanohook/nanohook/store"
)

// statsSQL reads Store.Stats in one statement, so every number comes from
// the same snapshot. Each part reads a partial index: one pass over
// deliveries_queue counts the queued deliveries on both sides of now and
// finds the oldest due time; one over deliveries_leased does the same for
// the deliveries in flight, which are due once their lease has expired
// (until RescueExpiredLeases queues them again); endpoints_live_status
// counts the endpoints. The predicates are written exactly as the indexes'
// WHERE clauses so the planner matches them. $1 is now.
const statsSQL = `SELECT p.due + l.due, p.scheduled + l.scheduled, least(p.oldest, l.oldest),
		(SELECT count(*) FROM endpoints WHERE status = 'active' AND deleted_at IS NULL),
		(SELECT count(*) FROM endpoints WHERE status = 'disabled' AND deleted_at IS NULL)
	FROM (SELECT count(*) FILTER (WHERE next_attempt_at <= $1) AS due,
			count(*) FILTER (WHERE next_attempt_at > $1) AS scheduled,
			min(next_attempt_at) FILTER (WHERE next_attempt_at <= $1) AS oldest
		FROM deliveries WHERE status = 'pending' AND lease_token IS NULL) AS p,
		(SELECT count(*) FILTER (WHERE leased_until <= $1) AS due,
			count(*) FILTER (WHERE leased_until > $1) AS scheduled,
			min(leased_until) FILTER (WHERE leased_until <= $1) AS oldest
		FROM deliveries WHERE status = 'pending' AND lease_token IS NOT NULL) AS l`

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
	err = c.QueryRow(ctx, statsSQL, truncMicros(now)).Scan(
		&st.DueDeliveries, &st.ScheduledDeliveries, &oldest, &st.ActiveEndpoints, &st.DisabledEndpoints)
	if err != nil {
		return store.Stats{}, wrap("stats", err)
	}
	if oldest.Valid {
		st.OldestDueAt = oldest.Time
	}
	return st, nil
}
