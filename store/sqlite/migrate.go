package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// migrationFiles holds the schema as numbered SQL files, compiled into the
// binary so that `nanohook serve` and `nanohook migrate` always carry exactly
// the schema their code expects.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int64
	name    string
	sql     string
}

// migrations lists the embedded files in version order. Files are named
// NNNN_what.sql; a file without a number is a programming error, so it fails
// loudly here rather than being skipped.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must start with a positive number and an underscore", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return int(a.version - b.version) })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %q and %q share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
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
		err := s.inTx(ctx, "migrate "+m.name, func(tx *sql.Tx) error {
			// Checked inside the transaction: BEGIN IMMEDIATE holds the write
			// lock, so another process migrating the same file waits here and
			// then sees the row this one wrote.
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
				return wrap("migrate "+m.name, err)
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return wrap("migrate "+m.name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.version, micros(s.now())); err != nil {
				return wrap("migrate "+m.name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
