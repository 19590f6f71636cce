package main

import (
	"context"
	"fmt"
	"io"
)

// runMigrate applies the embedded schema migrations and exits.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	addConfigFlag(fs, serveFlagNames()...) // serve's file configures migrate too
	db := fs.String("db", defaultDB, "SQLite file, or a postgres:// URL")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	s, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}
