package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/nanohook/nanohook/store"
)

// statsSQL reads Store.Stats in one statement, so every number comes from
// the same snapshot, and from covering partial indexes alone, so no table
// row is read: one pass over deliveries_queue counts the queued deliveries
// on both sides of now and finds the oldest due time; one over
// deliveries_leased does the same for the deliveries in flight, which are
// due once their lease has expired (until RescueExpiredLeases queues them
// again); endpoints_live_status counts the endpoints. The predicates are
// written exactly as the indexes' WHERE clauses so the planner matches
// them. ?1 is now.
const statsSQL = `SELECT p.due + l.due, p.scheduled + l.scheduled, min(coalesce(p.oldest, l.oldest), coalesce(l.oldest, p.oldest)),
		(SELECT count(*) FROM endpoints WHERE status = 'active' AND deleted_at IS NULL),
		(SELECT count(*) FROM endpoints WHERE status = 'disabled' AND deleted_at IS NULL)
	FROM (SELECT count(*) FILTER (WHERE next_attempt_at <= ?1) AS due,
			count(*) FILTER (WHERE next_attempt_at > ?1) AS scheduled,
			min(next_attempt_at) FILTER (WHERE next_attempt_at <= ?1) AS oldest
		FROM deliveries WHERE status = 'pending' AND lease_token IS NULL) AS p,
		(SELECT count(*) FILTER (WHERE leased_until <= ?1) AS due,
			count(*) FILTER (WHERE leased_until > ?1) AS scheduled,
			min(leased_until) FILTER (WHERE leased_until <= ?1) AS oldest
		FROM deliveries INDEXED BY deliveries_leased WHERE status = 'pending' AND lease_token IS NOT NULL) AS l`

// Stats counts pending deliveries and live endpoints on the read pool, so a
// metrics scrape never waits for the writer.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	var st store.Stats
	var oldest sql.NullInt64
	err := s.reader.QueryRowContext(ctx, statsSQL, micros(now)).Scan(
		&st.DueDeliveries, &st.ScheduledDeliveries, &oldest, &st.ActiveEndpoints, &st.DisabledEndpoints)
	if err != nil {
		return store.Stats{}, wrap("stats", err)
	}
	if oldest.Valid {
		st.OldestDueAt = fromMicros(oldest.Int64)
	}
	return st, nil
}
