package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook/store"
)

// AcquireLeadership takes or renews the named leadership in one statement:
// the row is inserted when absent, and otherwise updated only when p.Holder
// already holds it or its term ended at or before p.Now. RETURNING yields a
// row exactly when the insert or the update happened, which is exactly when
// p.Holder holds the leadership afterwards.
//
// INSERT … ON CONFLICT DO UPDATE is atomic under concurrency: of several
// nodes asking at once for an absent row, one inserts it, and the others wait
// for it, then evaluate the WHERE against the row it committed and find a
// running term that is not theirs.
func (s *Store) AcquireLeadership(ctx context.Context, p store.LeadershipParams) (bool, error) {
	c, err := s.acquire(ctx, "acquire leadership "+p.Name)
	if err != nil {
		return false, err
	}
	defer c.Release()
	var holder string
	err = c.QueryRow(ctx, `INSERT INTO leaderships (name, holder, until) VALUES ($1, $2, $4)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE leaderships.holder = excluded.holder OR leaderships.until <= $3
		RETURNING holder`, p.Name, p.Holder, truncMicros(p.Now), truncMicros(p.Until)).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
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
	c, err := s.acquire(ctx, "resign leadership "+name)
	if err != nil {
		return err
	}
	defer c.Release()
	if _, err := c.Exec(ctx, `DELETE FROM leaderships WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return wrap("resign leadership "+name, err)
	}
	return nil
}
