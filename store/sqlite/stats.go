package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/nanohook/nanohook/store"
)

// statsSQL reads Store.Stats in one statement, so every number comes from
// the same snapshot. Each part is a range of a covering partial index, so no
// table row is read: the pending counts and the oldest due time come from
// deliveries_due, the endpoint counts from endpoints_live_status. The
// predicates are written exactly as the indexes' WHERE clauses so the
// planner matches them. ?1 is now.
const statsSQL = `SELECT
	(SELECT count(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1),
	(SELECT count(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at > ?1),
	(SELECT next_attempt_at FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1
		ORDER BY next_attempt_at LIMIT 1),
	(SELECT count(*) FROM endpoints WHERE status = 'active' AND deleted_at IS NULL),
	(SELECT count(*) FROM endpoints WHERE status = 'disabled' AND deleted_at IS NULL)`

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
