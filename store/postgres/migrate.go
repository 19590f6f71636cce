package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook/store"
)

// migrationFiles holds the schema as numbered SQL files, compiled into the
// binary so that `nanohook serve` and `nanohook migrate` always carry exactly
// the schema their code expects.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pg_advisory_xact_lock key every node takes while it
// migrates, so that nodes starting at once apply each migration once: the
// second waits, then finds the version recorded. It is fixed (the ASCII of
// "nanohook"), so every version of nanohook agrees on it.
const migrationLock int64 = 0x6e616e6f686f6f6b

// migrations lists the embedded files in version order.
func migrations() ([]store.Migration, error) {
	return store.ReadMigrations(migrationFiles, "migrations")
}

// Migrate applies the embedded migrations that schema_migrations does not
// list yet, each in its own transaction together with its schema_migrations
// row, so a failed migration leaves no half-applied schema behind (DDL is
// transactional in PostgreSQL) and a second run does nothing.
//
// Every transaction first takes the advisory lock migrationLock, and only
// then creates schema_migrations if needed and checks the version: nodes
// starting together queue on the lock instead of racing each other's CREATE
// TABLE, and each finds what the previous one recorded.
//
// A migration may wait on the lock for as long as another node's takes, and
// may itself take long on a big table: the migrations are exempt from
// callTimeout, and lift the sessions' statement_timeout and lock_timeout
// for their own transactions (SET LOCAL ends with the transaction, so the
// pooled connection keeps its limits for later calls).
func (s *Store) Migrate(ctx context.Context) error {
	ctx = context.WithValue(ctx, noCallTimeout{}, true)
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	for _, m := range ms {
		err := s.inTx(ctx, "migrate "+m.Name, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0`); err != nil {
				return wrap("migrate: lift timeouts", err)
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
				return wrap("migrate: lock", err)
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    bigint      PRIMARY KEY,
				applied_at timestamptz NOT NULL
			)`); err != nil {
				return wrap("migrate: create schema_migrations", err)
			}
			var applied bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
				m.Version).Scan(&applied); err != nil {
				return wrap("migrate "+m.Name, err)
			}
			if applied {
				return nil
			}
			// No arguments: pgx sends the file with the simple protocol, which
			// runs its several statements in order.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return wrap("migrate "+m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.Version, truncMicros(s.now())); err != nil {
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
