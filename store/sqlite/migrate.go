package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/nanohook/nanohook/store"
)

// migrationFiles holds the schema as numbered SQL files, compiled into the
// binary so that `nanohook serve` and `nanohook migrate` always carry exactly
// the schema their code expects.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations lists the embedded files in version order.
func migrations() ([]store.Migration, error) {
	return store.ReadMigrations(migrationFiles, "migrations")
}

// Migrate applies the embedded migrations that schema_migrations does not
// list yet, each in its own transaction together with its schema_migrations
// row, so a failed migration leaves no half-applied schema behind and a
// second run (or a second process) does nothing.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return wrap("migrate: create schema_migrations", err)
	}
	for _, m := range ms {
		err := s.inTx(ctx, "migrate "+m.Name, func(tx *sql.Tx) error {
			// Checked inside the transaction: BEGIN IMMEDIATE holds the write
			// lock, so another process migrating the same file waits here and
			// then sees the row this one wrote.
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
				return wrap("migrate "+m.Name, err)
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return wrap("migrate "+m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.Version, micros(s.now())); err != nil {
				return wrap("migrate "+m.Name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
