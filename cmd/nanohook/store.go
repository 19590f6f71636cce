package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/nanohook/nanohook/internal/dburl"
	"github.com/nanohook/nanohook/store"
	"github.com/nanohook/nanohook/store/postgres"
	"github.com/nanohook/nanohook/store/sqlite"
)

// defaultDB is where the embedded database lives unless --db says otherwise.
const defaultDB = "nanohook.db"

// openStore is the one place that picks a storage driver, from the --db
// value: a postgres:// URL or a SQLite file path. Opening applies migrations.
func openStore(ctx context.Context, db string) (store.Store, error) {
	if dburl.IsPostgres(db) {
		s, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL database %s: %w", dburl.Redact(db), err)
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

// encryptionKeyUsage is --encryption-key's help, also the README's
// configuration reference.
const encryptionKeyUsage = "keys that encrypt endpoint URLs and webhook secrets at rest (AES-256-GCM): comma-separated, each 32 bytes in base64 or hex (openssl rand -base64 32); the first encrypts, every one decrypts, so \"new,old\" rotates (then run nanohook secrets reseal). Prefer the environment variable: command lines show in ps"

// addEncryptionKeyFlag gives fs --encryption-key (and so
// NANOHOOK_ENCRYPTION_KEY). It is a plain string flag, parsed by
// store.ParseKeyring after parseFlags, because parseFlags quotes the value
// of a flag that fails to parse in its error, and this one is a secret.
func addEncryptionKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("encryption-key", "", encryptionKeyUsage)
}

// keyedStore is a store that seals endpoint URLs and secrets with a
// keyring; both drivers are.
type keyedStore interface {
	store.Store
	SetKeyring(*store.Keyring)
}

// openKeyedStore is openStore with the keyring set before any secret is
// read or written.
func openKeyedStore(ctx context.Context, db string, k *store.Keyring) (store.Store, error) {
	s, err := openStore(ctx, db)
	if err != nil {
		return nil, err
	}
	ks, ok := s.(keyedStore)
	if !ok {
		s.Close()
		return nil, fmt.Errorf("--db %s: this storage cannot encrypt secrets", dburl.Redact(db))
	}
	ks.SetKeyring(k)
	return ks, nil
}

// dueListener is implemented by stores that can tell this node when another
// node published work (PostgreSQL's LISTEN/NOTIFY).
type dueListener interface {
	ListenDue(ctx context.Context, wake func()) error
}
