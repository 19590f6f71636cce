package delivery_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanohook/nanohook/internal/skipnote"
	"github.com/nanohook/nanohook/store/postgres"
)

// openPostgres opens a fresh, migrated PostgreSQL store on a schema of its
// own in the database NANOHOOK_TEST_POSTGRES_URL names, dropped when the
// test ends, and returns it with that URL and the schema; it skips the test
// when the variable is not set.
func openPostgres(t *testing.T) (st *postgres.Store, base, schema string) {
	t.Helper()
	base = skipnote.SkipWithoutPostgres(t, "the engine's PostgreSQL tests")
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema = "nh_delivery_" + hex.EncodeToString(b[:])
	exec := func(sql string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatalf("connect to NANOHOOK_TEST_POSTGRES_URL: %v", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE SCHEMA " + schema)
	t.Cleanup(func() { exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err = postgres.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, base, schema
}
