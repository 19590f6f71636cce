package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// probePad is the size of the blob a write probe stores: at least one whole
// page for page sizes up to 8 KiB (SQLite's default is 4 KiB), so that
// every probe needs a page of its own.
const probePad = 8 << 10

// ProbeWrite writes the pad into the write_probe slot that has none, then
// clears the other slot, in one write transaction through the writer
// connection (bounded by lockWait and ctx like every write), committed
// with the usual fsync. It thus fails as a publish would on a read-only
// file, a full disk or a database at its max_page_count (it needs a free
// page), or while another process holds the write lock; and it leaves the
// table as it found it, one pad in one of two rows (see migration 0010).
func (s *Store) ProbeWrite(ctx context.Context) error {
	return s.inTx(ctx, "write probe", func(tx *sql.Tx) error {
		var slot int64
		err := tx.QueryRowContext(ctx, `UPDATE write_probe SET pad = zeroblob(?1), probed_at = ?2
			WHERE slot = (SELECT slot FROM write_probe ORDER BY pad IS NOT NULL, slot LIMIT 1)
			RETURNING slot`, probePad, micros(s.now())).Scan(&slot)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: write probe: the write_probe table has no rows")
		}
		if err != nil {
			return wrap("write probe", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE write_probe SET pad = NULL WHERE slot <> ?`, slot); err != nil {
			return wrap("write probe", err)
		}
		return nil
	})
}
