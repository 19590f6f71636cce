package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/postgres"
	"github.com/nanohook/nanohook/store/sqlite"
)

// defaultDB is where the embedded database lives unless --db says otherwise.
const defaultDB = "nanohook.db"

// openStore is the one place that picks a storage driver, from the --db
// value: a postgres:// URL or a SQLite file path. Opening applies migrations.
func openStore(ctx context.Context, db string) (store.Store, error) {
	if isPostgresURL(db) {
		s, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL database %s: %w", redactURL(db), err)
		}
		return s, nil
	}
	path := strings.TrimPrefix(db, "sqlite://")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open SQLite database %s: %w", path, err)
	}
	return s, nil
}

func isPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// dueListener is implemented by stores that can tell this node when another
// node published work (PostgreSQL's LISTEN/NOTIFY).
type dueListener interface {
	ListenDue(ctx context.Context, wake func()) error
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
