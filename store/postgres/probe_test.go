package postgres

// The write probe (issue 13, item 10) against a database that turns
// read-only under a running Store. The server is shared with other tests,
// so the fault is confined to a role of this test's own: its sessions are
// made read-only (ALTER ROLE … SET default_transaction_read_only, as an
// operator fencing a database does, and the setting a standby enforces)
// and cut, so that the pool reconnects into read-only sessions, as it
// does after a failover lands it on a standby.

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nanohook/nanohook/store"
)

// roleSchema creates a login role and a schema it owns, both dropped when
// the test ends, and returns the role and the URL that connects as it to
// that schema.
func roleSchema(t *testing.T) (role, u string) {
	t.Helper()
	base := baseURL(t)
	role = randomName("nh_role_")
	schema := randomName("nh_")
	admin(t, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() { admin(t, `DROP ROLE `+role) })
	admin(t, `CREATE SCHEMA `+schema+` AUTHORIZATION `+role)
	t.Cleanup(func() { admin(t, `DROP SCHEMA `+schema+` CASCADE`) })
	pu, err := url.Parse(withParams(t, base, "search_path", schema, "application_name", role))
	if err != nil {
		t.Fatal(err)
	}
	pu.User = url.User(role)
	return role, pu.String()
}

// cutSessions terminates every session of role, so that the pool opens new
// ones, which pick up the role's settings.
func cutSessions(t *testing.T, role string) {
	t.Helper()
	admin(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
}

// probeUntil runs ProbeWrite until ok(err) holds or ten seconds pass: the
// first calls after cutSessions may meet a connection the server has just
// closed, which the pool replaces.
func probeUntil(t *testing.T, s *Store, ok func(error) bool) (time.Duration, error) {
	t.Helper()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		start := time.Now()
		err = s.ProbeWrite(ctx)
		took := time.Since(start)
		cancel()
		if ok(err) {
			return took, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, err
}

// TestProbeWriteFailsOnAReadOnlyDatabase: once the Store's sessions are
// read-only, the probe fails with store.ErrUnavailable (SQLSTATE 25006)
// while Ping still succeeds; once they are writable again, it succeeds.
func TestProbeWriteFailsOnAReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	role, u := roleSchema(t)
	s := openURL(t, u)
	if err := s.ProbeWrite(t.Context()); err != nil {
		t.Fatalf("probe on a writable database: %v", err)
	}

	admin(t, `ALTER ROLE `+role+` SET default_transaction_read_only = on`)
	cutSessions(t, role)
	took, err := probeUntil(t, s, func(err error) bool { return err == nil || isReadOnly(err) })
	switch {
	case err == nil:
		t.Fatal("the write probe succeeded on read-only sessions")
	case !isReadOnly(err) || !errors.Is(err, store.ErrUnavailable):
		t.Fatalf("write probe on read-only sessions: %v, want store.ErrUnavailable for a read-only transaction", err)
	}
	t.Logf("write probe on read-only sessions: %v after %v", err, took.Round(time.Millisecond))
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping on read-only sessions: %v (the probe is what must notice)", err)
	}

	admin(t, `ALTER ROLE `+role+` RESET default_transaction_read_only`)
	cutSessions(t, role)
	if _, err := probeUntil(t, s, func(err error) bool { return err == nil }); err != nil {
		t.Fatalf("write probe once the sessions are writable again: %v", err)
	}
}

// isReadOnly reports PostgreSQL's read_only_sql_transaction.
func isReadOnly(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "25006"
}
