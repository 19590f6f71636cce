package postgres

import (
	"context"
	"fmt"
)

// ProbeWrite rewrites the one row of write_probe (see migration 0009) in
// one autocommitted statement on the main pool, whose commits wait for the
// WAL flush like a publish's: it fails as a publish would on a read-only
// session or database (a standby after a failover, default_transaction_read_only),
// a full disk, or a server that cannot be reached, within callTimeout and ctx.
func (s *Store) ProbeWrite(ctx context.Context) error {
	c, err := s.acquire(ctx, "write probe")
	if err != nil {
		return err
	}
	defer c.Release()
	tag, err := c.Exec(ctx, `UPDATE write_probe SET probed_at = $1 WHERE id = 1`, truncMicros(s.now()))
	if err != nil {
		return wrap("write probe", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("postgres: write probe: the write_probe table has no row")
	}
	return nil
}
