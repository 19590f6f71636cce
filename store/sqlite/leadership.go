package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/nanohook/nanohook/store"
)

// AcquireLeadership takes or renews the named leadership in one statement:
// the row is inserted when absent, and otherwise updated only when p.Holder
// already holds it or its term ended at or before p.Now. RETURNING yields a
// row exactly when the insert or the update happened, which is exactly when
// p.Holder holds the leadership afterwards. A single statement is atomic on
// its own, and the writer's one connection orders concurrent callers.
func (s *Store) AcquireLeadership(ctx context.Context, p store.LeadershipParams) (bool, error) {
	var holder string
	err := s.writer.QueryRowContext(ctx, `INSERT INTO leaderships (name, holder, until) VALUES (?1, ?2, ?4)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE leaderships.holder = excluded.holder OR leaderships.until <= ?3
		RETURNING holder`, p.Name, p.Holder, micros(p.Now), micros(p.Until)).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // another holder's term is still running
	}
	if err != nil {
		return false, wrap("acquire leadership "+p.Name, err)
	}
	return holder == p.Holder, nil
}

// ResignLeadership deletes the leadership row if holder has it, so that the
// next AcquireLeadership by anyone succeeds at once. Resigning a leadership
// one does not hold (or that does not exist) does nothing.
func (s *Store) ResignLeadership(ctx context.Context, name, holder string) error {
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM leaderships WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return wrap("resign leadership "+name, err)
	}
	return nil
}
