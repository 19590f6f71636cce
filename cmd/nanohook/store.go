package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/sqlite"
)

// defaultDB is where the embedded database lives unless --db says otherwise.
const defaultDB = "nanohook.db"

// openStore is the one place that picks a storage driver, from the --db
// value: a postgres:// URL or a SQLite file path. Opening applies migrations.
func openStore(ctx context.Context, db string) (store.Store, error) {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		return nil, fmt.Errorf("--db %s: PostgreSQL is not supported by this build yet; use a SQLite file path", redactURL(db))
	}
	path := strings.TrimPrefix(db, "sqlite://")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open SQLite database %s: %w", path, err)
	}
	return s, nil
}

// redactURL hides a password in a database URL before it is printed.
func redactURL(s string) string {
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	creds := s[scheme+3 : at]
	if i := strings.Index(creds, ":"); i >= 0 {
		return s[:scheme+3] + creds[:i] + ":xxxxx" + s[at:]
	}
	return s
}
